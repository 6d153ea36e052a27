"""`manage.py ensure_admin`: make sure the superuser `admin` exists (run by `make run` and compose)."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Create the superuser 'admin' if it does not exist: with ROBOTEST_ADMIN_PASSWORD if set, "
        "otherwise with a random password printed once. Does nothing when it exists."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        existing = User._default_manager.filter(**{User.USERNAME_FIELD: ADMIN_USERNAME}).first()
        if existing is not None:
            if not existing.is_superuser:
                raise CommandError(
                    f"A user {ADMIN_USERNAME!r} exists but is not a superuser: make it one in the "
                    f"admin or with `manage.py shell`, or rename it, then run ensure_admin again"
                )
            self.stdout.write(f"Admin user {ADMIN_USERNAME!r} exists; nothing to do.")
            return

        password = settings.ROBOTEST_ADMIN_PASSWORD
        generated = not password
        if generated:
            password = secrets.token_urlsafe(16)
        try:
            with transaction.atomic():
                User._default_manager.create_superuser(
                    **{User.USERNAME_FIELD: ADMIN_USERNAME}, email="", password=password
                )
        except IntegrityError:
            # Another process (a second web replica) created it between our check and insert.
            self.stdout.write(f"Admin user {ADMIN_USERNAME!r} exists; nothing to do.")
            return

        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin user {ADMIN_USERNAME!r} with password: {password}\n"
                    "It is shown only this once: note it, or set ROBOTEST_ADMIN_PASSWORD before "
                    "the first run next time."
                )
            )
        else:
            self.stdout.write(
                f"Created admin user {ADMIN_USERNAME!r} with the password from ROBOTEST_ADMIN_PASSWORD."
            )
