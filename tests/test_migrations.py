"""The migrations describe the models as they are: nothing left for `makemigrations` to write."""

import io

from django.core.management import call_command


def test_the_models_need_no_new_migration(db):
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits 1 when a migration is missing
        raise AssertionError(f"makemigrations would write a migration:\n{out.getvalue()}") from exc
