"""Aggregates at every bucket width: 250,000 readings of one sensor in 1,000 buckets, from the rollups and raw.

    .venv/bin/python benchmarks/aggregates.py [--repeat 5] [--database-url URL] [--rebuild]

One external rig `aggbench` with one force sensor per bucket width W (10 ms, 100 ms, 250 ms, 1 s,
10 s, 1 min), each recorded in its own completed session: 250,000 readings evenly spread over
1,000 x W (25 kHz for 10 ms ... 4.2 Hz for a minute), from a start that is a whole minute. Readings
go in by binary COPY, their rollups by sessions.recording.rollups.rollup_rebuild (the pipeline's
sums, computed by the database). The database is built once and reused while complete.

Per width, in the same run: `GET /api/v1/sensors/readings/aggregated?sensor=…&session=…&max_points=1000`
over the session's range (in-process, Django's test client, as a staff user), and the same buckets
raw: `readings_aggregate(source="raw")` (date_bin over the readings). Median of --repeat each; the
two answers must agree on every bucket's start, count, min and max.
"""

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/robotest_aggbench"
RIG = "aggbench"
READINGS = 250_000
BUCKETS = 1_000
WIDTHS_US = [10_000, 100_000, 250_000, 1_000_000, 10_000_000, 60_000_000]
T_FIRST = 1_750_000_020  # a whole minute (2025-06-15)
COMPLETE = "aggregates benchmark dataset v1: complete"
CHUNK = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the dataset even when complete")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    os.environ["ALLOWED_HOSTS"] = "testserver"
    sessions = _ensure_dataset(args.database_url, rebuild=args.rebuild)
    logging.getLogger("axes").setLevel(logging.WARNING)  # a line per login of the test client
    facts = _bench.machine()
    print("machine:", json.dumps(facts))
    results = [_measure(width, sessions[width], args.repeat) for width in WIDTHS_US]
    _bench.save_json(args.json, facts, args, results)


def _name(width_us: int) -> str:
    return f"w{width_us}us"


def _ensure_dataset(database_url: str, *, rebuild: bool) -> dict[int, tuple[int, int]]:
    """Width → (session id, sensor id), the dataset built first if needed."""
    fresh = rebuild or not _complete(database_url)
    _bench.configure(database_url, fresh=fresh)
    from django.core.management import call_command

    from sessions.models import RecordingSession

    if fresh:
        _fill()
    else:
        call_command("migrate", verbosity=0, interactive=False)
    found = dict(
        RecordingSession.objects.filter(rig__name=RIG).values_list("name", "pk")
    )
    from sensors.models import Sensor

    sensors = dict(Sensor.objects.filter(rig__name=RIG).values_list("name", "pk"))
    return {w: (found[_name(w)], sensors[_name(w)]) for w in WIDTHS_US}


def _complete(database_url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT description FROM recording_recordingsession WHERE name = %s", [_name(WIDTHS_US[-1])]
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

    values = [f"{50 + 30 * math.sin(i / 37) + (i * 7919 % 101) / 10:.3f}" for i in range(997)]
    one_per_width = [{"name": _name(w), "sensor_type": "force", "unit": "N"} for w in WIDTHS_US]
    rig = rig_create(name=RIG, source=Rig.Source.EXTERNAL, sensors=one_per_width)
    sensors = {s.name: s.pk for s in rig.sensors.all()}
    started = time.monotonic()
    t0 = T_FIRST
    for width in WIDTHS_US:
        span_us = BUCKETS * width
        seconds = span_us // 1_000_000 or 1
        session = RecordingSession.objects.create(
            rig=rig, name=_name(width), status=RecordingSession.Status.COMPLETED,
            started_at=datetime.fromtimestamp(t0, tz=UTC), stopped_at=datetime.fromtimestamp(t0 + seconds, tz=UTC),
            verdict=RecordingSession.Verdict.PASS,
        )
        sensor_id = sensors[_name(width)]
        for first in range(0, READINGS, CHUNK):
            rows = [
                (session.pk, sensor_id, i + 1, t0 * 1_000_000 + i * span_us // READINGS, values[i % 997])
                for i in range(first, min(READINGS, first + CHUNK))
            ]
            with transaction.atomic():
                readings_write(rows)
        with transaction.atomic():
            rollup_rebuild(session_id=session.pk)
        RecordingSession.objects.filter(pk=session.pk).update(reading_count=READINGS)
        print(f"  {_name(width)}: {READINGS:,} readings over {span_us / 1e6:g} s ({time.monotonic() - started:.0f} s)", flush=True)
        # The next session starts on a whole minute after this one.
        t0 += -(-(seconds + 60) // 60) * 60
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    RecordingSession.objects.filter(name=_name(WIDTHS_US[-1])).update(description=COMPLETE)


def _measure(width_us: int, ids: tuple[int, int], repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from sessions.models import RecordingSession
    from sessions.reads.aggregates import readings_aggregate

    session_id, sensor_id = ids
    session = RecordingSession.objects.get(pk=session_id)
    start = session.started_at.timestamp()
    start_us = round(start * 1_000_000)
    stop_us = start_us + BUCKETS * width_us
    user, _ = get_user_model().objects.get_or_create(username="aggbench", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    query = {"sensor": _name(width_us), "session": session_id, "max_points": BUCKETS,
             "start_time": start_us / 1e6, "end_time": (stop_us - 1) / 1e6}

    def api():
        response = client.get("/api/v1/sensors/readings/aggregated", query)
        assert response.status_code == 200, response.content[:300]
        return response.json()

    def raw():
        return readings_aggregate(sensor_ids=[sensor_id], session_id=session_id, start_us=start_us, stop_us=stop_us,
                                  interval_us=width_us, source="raw")

    api_ms, body = _timed(api, repeat)
    raw_ms, buckets = _timed(raw, repeat)
    got = [(d["interval_start"], d["count"], d["min"], d["max"]) for d in body["data"]]
    want = [(b.start, b.count, b.min, b.max) for b in buckets]
    row = {"width_s": width_us / 1e6, "api_ms": api_ms, "raw_ms": raw_ms, "buckets": len(got),
           "interval_seconds": body["interval_seconds"], "readings": sum(d["count"] for d in body["data"]), "same": got == want}
    print(f"1,000 x {width_us / 1e6:g} s: api {api_ms:6.1f} ms, raw date_bin {raw_ms:6.1f} ms "
          f"({row['buckets']} buckets of {row['interval_seconds']} s, {row['readings']:,} readings, "
          f"same as raw: {row['same']})", flush=True)
    return row


def _timed(call, repeat: int) -> tuple[float, object]:
    call()  # warm: plans, caches
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - began) * 1000)
    return _bench.median(times), answer


if __name__ == "__main__":
    main()
