"""`manage.py prune_readings --older-than 30d [--dry-run]`: retention, from cron or a one-shot container."""

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from sessions import services

_DURATION = re.compile(r"([0-9]{1,6})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m` → a timedelta; CommandError naming --older-than otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise CommandError(
            f"--older-than: expected a positive whole number of days, hours or minutes such as 30d, 12h or 90m, "
            f"got {text!r}"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = (
        "Delete the readings, rollups and results of finished sessions that ended longer ago than --older-than "
        "and are not flagged keep (the session rows stay, marked pruned); and expired ingest Idempotency-Keys. "
        "docs/retention.md"
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, metavar="AGE", help="30d, 12h or 90m")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")
        parser.add_argument(
            "--chunk", type=int, default=services.PRUNE_CHUNK, metavar="ROWS",
            help=f"Rows deleted per transaction (default {services.PRUNE_CHUNK:,}).",
        )

    def handle(self, *args, older_than: str, dry_run: bool, chunk: int, **options):
        if chunk < 1:
            raise CommandError(f"--chunk: must be at least 1, got {chunk}")
        report = services.readings_prune(older_than=duration(older_than), dry_run=dry_run, chunk=chunk)
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(
            f"{verb}: {report.sessions} sessions' data ({report.readings} readings, {report.rollups} rollups, "
            f"{report.results} results); {report.keys} expired idempotency keys"
        )
