"""The read benchmarks' dataset: 10,000,000 readings on PostgreSQL, built once and reused.

    .venv/bin/python benchmarks/read_dataset.py [--database-url URL] [--rebuild]

One external rig `readbench` with four sensors sampled at 250 Hz each: `f1`, `f2`, `f3` (force,
numbers) and `ft6` (force_torque, objects fx..tz). Completed sessions, one after another in time:
- `bench-1m`: 1,000 s, 1,000,000 readings (a thousand one-second buckets over all of them);
- `bench-100k`: 100 s, 100,000 readings;
- `filler-1` … `filler-9`: the other 8,900,000.
Readings go in by binary COPY (sessions.recording.storage), their rollups by sessions.recording.rollups.rollup_rebuild
(the pipeline's sums, computed by the database), then ANALYZE. The database is dropped and rebuilt
only when it does not hold a complete dataset (`bench-1m`'s description says so, written last).

Other scripts call `ensure_dataset(database_url)` → {session name: id}; it configures Django for
that database (benchmarks/_bench.py) when nothing has yet.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/robotest_readbench"
RIG = "readbench"
SENSORS = [("f1", "force", "N"), ("f2", "force", "N"), ("f3", "force", "N"), ("ft6", "force_torque", "")]
RATE_HZ = 250
COMPLETE = "read benchmark dataset v1: complete"
# (name, seconds): 1,000 readings a second across the four sensors.
SESSIONS = [("bench-1m", 1000), ("bench-100k", 100)] + [(f"filler-{i}", 1000) for i in range(1, 9)] + [("filler-9", 900)]
# The first session starts here (whole seconds, 2025-06-15); each starts 60 s after the last ended.
T_FIRST = 1_750_000_000
CHUNK_SECONDS = 50


def ensure_dataset(database_url: str = DEFAULT_URL, *, rebuild: bool = False) -> dict[str, int]:
    """Session name → id of a complete dataset in `database_url`, built first if needed."""
    if rebuild or not _complete(database_url):
        from django.apps import apps

        if apps.ready:
            from django.db import connections

            connections.close_all()
        _bench._recreate(database_url)
        _configure(database_url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        _fill()
    _configure(database_url)
    from django.core.management import call_command

    # A dataset built by an older commit gets this commit's schema (new columns, indexes); its rows stay.
    call_command("migrate", verbosity=0, interactive=False)
    from sessions.models import RecordingSession

    return dict(RecordingSession.objects.filter(rig__name=RIG).values_list("name", "id"))


def _configure(database_url: str) -> None:
    from django.apps import apps

    if not apps.ready:
        _bench.configure(database_url, fresh=False)


def _complete(database_url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT description FROM recording_recordingsession WHERE name = 'bench-1m'"
            ).fetchone()
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        return False
    return row is not None and row[0] == COMPLETE


def _fill() -> None:
    from datetime import UTC, datetime

    from django.db import connection, transaction

    from sensors.models import Rig
    from sensors.services import rig_create
    from sessions.models import RecordingSession
    from sessions.recording.rollups import rollup_rebuild
    from sessions.recording.storage import readings_write

    rig = rig_create(
        name=RIG, source=Rig.Source.EXTERNAL,
        sensors=[{"name": n, "sensor_type": t, "unit": u, "rate_hz": RATE_HZ} for n, t, u in SENSORS],
    )
    sensor_ids = [s.pk for s in sorted(rig.sensors.all(), key=lambda s: s.name)]  # f1, f2, f3, ft6
    scalars = [f"{50 + 30 * math.sin(i / 37) + (i * 7919 % 101) / 10:.3f}" for i in range(997)]
    objects = [
        json.dumps({"fx": round(math.sin(i / 11), 4), "fy": round(math.cos(i / 13), 4), "fz": round(30 + 10 * math.sin(i / 17), 4),
                    "tx": round(i % 7 / 10, 2), "ty": i % 5, "tz": -0.5}, separators=(",", ":"))
        for i in range(991)
    ]
    step_us = 1_000_000 // RATE_HZ
    started = time.monotonic()
    total = 0
    t0 = T_FIRST
    for name, seconds in SESSIONS:
        session = RecordingSession.objects.create(
            rig=rig, name=name, status=RecordingSession.Status.COMPLETED,
            started_at=datetime.fromtimestamp(t0, tz=UTC), stopped_at=datetime.fromtimestamp(t0 + seconds, tz=UTC),
            verdict=RecordingSession.Verdict.PASS,
        )
        seq = 0
        for chunk_start in range(0, seconds, CHUNK_SECONDS):
            rows = []
            for tick in range(chunk_start * RATE_HZ, min(seconds, chunk_start + CHUNK_SECONDS) * RATE_HZ):
                ts_us = t0 * 1_000_000 + tick * step_us
                for k, sensor_id in enumerate(sensor_ids):
                    seq += 1
                    # The four sensors sample a quarter of a period apart, as unsynchronised rigs do.
                    value = objects[tick % 991] if k == 3 else scalars[(tick + 250 * k) % 997]
                    rows.append((session.pk, sensor_id, seq, ts_us + k * (step_us // 4), value))
            with transaction.atomic():
                readings_write(rows)
        with transaction.atomic():
            rollup_rebuild(session_id=session.pk)
        RecordingSession.objects.filter(pk=session.pk).update(reading_count=seq)
        total += seq
        print(f"  {name}: {seq:,} readings ({total:,} in all, {time.monotonic() - started:.0f} s)", flush=True)
        t0 += seconds + 60
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    RecordingSession.objects.filter(rig=rig, name="bench-1m").update(description=COMPLETE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild even when complete")
    args = parser.parse_args()
    started = time.monotonic()
    reused = not args.rebuild and _complete(args.database_url)
    ids = ensure_dataset(args.database_url, rebuild=args.rebuild)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('recording_reading')), "
            "pg_size_pretty(pg_relation_size('reading_session_sensor_time')), "
            "pg_size_pretty(pg_total_relation_size('recording_readingrollup')), "
            "(SELECT count(*) FROM recording_readingrollup), (SELECT sum(reading_count) FROM recording_recordingsession)"
        )
        table, index, rollups, rollup_rows, readings = cursor.fetchone()
    print("machine:", json.dumps(_bench.machine()))
    print(f"dataset {'reused' if reused else 'built'} in {time.monotonic() - started:.1f} s: {readings:,} readings "
          f"(table {table}, index {index}), {rollup_rows:,} rollup rows ({rollups}); sessions {ids}")


if __name__ == "__main__":
    main()
