"""Shared set-up of the hand-run benchmarks: environment, a fresh database, machine facts, stats.

Imported before Django: `configure()` sets the environment the settings read and calls
`django.setup()`. Nothing here is used by the application or the test suite.
"""

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgres://postgres@127.0.0.1:5432/robotest_bench"
REDIS_URL = "redis://127.0.0.1:6379/12"
SECRET_KEY = "benchmark-only-secret-key-not-for-production"


def bench_env(database_url: str, redis_url: str = REDIS_URL) -> dict[str, str]:
    """The environment a benchmark process (or the daphne it starts) runs with."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="robotest_site.settings.local",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=SECRET_KEY,
        DEBUG="false",
        ROBOTEST_SIMULATOR_SEED="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def configure(database_url: str, *, fresh: bool, redis_url: str = REDIS_URL) -> None:
    """Point Django at the benchmark database (recreated and migrated when `fresh`) and set it up."""
    os.environ.update(bench_env(database_url, redis_url))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    if fresh:
        _recreate(database_url)
    import django

    django.setup()
    import logging

    # The engine logs every start and stop at INFO; keep the benchmark's own output readable.
    logging.getLogger("sessions").setLevel(logging.WARNING)
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    _flush_redis(redis_url)


def _recreate(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _flush_redis(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def machine() -> dict[str, str]:
    """The facts docs/benchmarks.md records with each result."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )
    facts = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip(),
        "cpu": cpu,
        "memory": subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.splitlines()[1].split()[1],
        "python": platform.python_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        # BENCH_COMMIT names the commit of a snapshot (`git archive`) that has no .git of its own.
        "commit": os.environ.get("BENCH_COMMIT") or subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }
    try:
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                facts["postgresql"] = cursor.fetchone()[0]
        else:
            import sqlite3

            facts["sqlite"] = sqlite3.sqlite_version
    except Exception as exc:  # noqa: BLE001 - facts are best effort
        facts["database"] = f"unknown ({exc})"
    return facts


def save_json(path: str | None, facts: dict, args, results: list) -> None:
    """The run's machine, arguments and results, to `--json PATH` if given."""
    if path:
        import json
        from pathlib import Path

        Path(path).write_text(json.dumps({"machine": facts, "args": vars(args), "results": results}, indent=2, default=str))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def clear_readings() -> None:
    """Empty the readings (and results, rollups) tables so every timed run inserts into a table of one size."""
    from django.db import connection

    from sessions.models import Reading, ReadingRollup, ValidationResult

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"TRUNCATE {Reading._meta.db_table}, {ValidationResult._meta.db_table}, {ReadingRollup._meta.db_table}"
            )
            # Flush the previous run's dirty pages now rather than inside the next timed run.
            cursor.execute("CHECKPOINT")
        else:
            cursor.execute(f"DELETE FROM {ValidationResult._meta.db_table}")
            cursor.execute(f"DELETE FROM {ReadingRollup._meta.db_table}")
            cursor.execute(f"DELETE FROM {Reading._meta.db_table}")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def stop_server(server) -> None:
    """SIGTERM a server process started by a benchmark; kill it after 10 s."""
    import signal
    import subprocess

    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def staff_token(username: str) -> str:
    """The DRF token of staff user `username`, made the first time (Django set up by `configure`)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
    return Token.objects.get_or_create(user=user)[0].key


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daphne(url: str, port: int, *, variant: str = "as-is", redis_url: str = REDIS_URL):
    """`daphne robotest_site.asgi:application` (or a benchmarks/variants.py variant) on `port`: (process, log path)."""
    import tempfile

    log = Path(tempfile.gettempdir()) / f"bench_daphne_{port}.log"
    env = bench_env(url, redis_url)
    app = "robotest_site.asgi:application"
    if variant != "as-is":
        env["BENCH_VARIANT"] = variant
        env["PYTHONPATH"] = f"{ROOT}:{Path(__file__).resolve().parent}"
        app = "asgi_variant:application"
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/daphne"), "-b", "127.0.0.1", "-p", str(port), app],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    return server, log


def wait_ready(base: str) -> None:
    """Wait up to 30 s for a started server to answer `/health`."""
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/health", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit("daphne did not answer within 30 s: see its log")
