"""`manage.py create_rig_token RIG [--name N]`: a token that may only ingest into RIG's sessions."""

from django.core.management.base import BaseCommand, CommandError

from sensors.models import Rig, RigToken


class Command(BaseCommand):
    help = (
        "Create a token for RIG and print its key once (only its SHA-256 is stored). The rig sends "
        "'Authorization: Token <key>'; the key may ingest into and read the readings of RIG's sessions, nothing else."
    )

    def add_arguments(self, parser):
        parser.add_argument("rig", help="The rig's name.")
        parser.add_argument("--name", default="", help="What holds the key (a PLC, a script), shown in the admin.")

    def handle(self, *args, rig: str, name: str, **options):
        found = Rig.objects.filter(name=rig).first()
        if found is None:
            names = ", ".join(Rig.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No rig named {rig!r} (rigs: {names}): create it in the admin or the API first")
        max_name = RigToken._meta.get_field("name").max_length
        if len(name) > max_name:
            raise CommandError(f"--name is {len(name)} characters; at most {max_name}")
        token, key = RigToken.issue(rig=found, name=name)
        if options["verbosity"] >= 1:
            self.stderr.write(f"Token {token.pk} for rig {found.name!r}; the key is shown this once:")
        self.stdout.write(key)
