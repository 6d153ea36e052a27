"""Reads of the resources and of the seed's latest/validation paths over a large readings table.

Fills its own PostgreSQL database `robotest_res_bench` (created and filled when empty or with
`--fresh`; Redis db 7) with `--sessions` sessions of `--per-session` readings each on the `sim`
rig (force, motor: numbers; camera: objects), 1 ms apart; the newest session is left recording.
Readings are generated in SQL (`INSERT … SELECT generate_series`), then `VACUUM ANALYZE`.
Each session also gets `--results` validation results.

Then, in process through Django's test client (middleware, DRF, JSON rendering included),
the median of `--repeat` requests of:

* `GET /api/v1/sensors/readings/latest` (default: the recording session) and `?session=` the oldest;
  the plan of one per-sensor query (EXPLAIN ANALYZE) is printed: it must be a backward index scan;
* `GET /api/v1/sessions/{id}/` of the recording session: the first request (per-sensor statistics
  from one GROUP BY over all its readings, shown beside that GROUP BY run raw) and later ones (only
  the readings stored since: sessions.reads.stats), and of a completed one (statistics stored at stop);
* `GET /api/v1/sessions/?rig=sim`, `/api/v1/results/?session=…&status=error`,
  `/api/v1/sensors/validation?session=…`, `/api/v1/sensors/validation`.

    .venv/bin/python benchmarks/read_resources.py                      # 10 x 1,000,000 readings
    .venv/bin/python benchmarks/read_resources.py --sessions 2 --per-session 100000 --fresh
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

DB_URL = "postgres://postgres@127.0.0.1:5432/robotest_res_bench"
REDIS_URL = "redis://127.0.0.1:6379/7"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--per-session", type=int, default=1_000_000)
    parser.add_argument("--results", type=int, default=2_000, help="validation results per session")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--fresh", action="store_true", help="drop and refill the database")
    args = parser.parse_args()

    import os

    os.environ["ROBOTEST_PUBLIC_READ"] = "true"  # the timed requests need no login
    fresh = args.fresh or not _exists()
    _bench.configure(DB_URL, fresh=fresh, redis_url=REDIS_URL)
    from sessions.models import Reading

    if fresh or not Reading.objects.exists():
        fill(args.sessions, args.per_session, args.results)
    print(_bench.machine())
    measure(args.repeat)


def _exists() -> bool:
    import psycopg

    try:
        with psycopg.connect(DB_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def fill(sessions: int, per_session: int, results: int) -> None:
    from datetime import UTC, datetime, timedelta

    from django.db import connection

    from sensors.models import Rig
    from sessions.models import Reading, RecordingSession, ValidationResult

    sim = Rig.objects.get(name="sim")
    sensors = dict(sim.sensors.values_list("name", "id"))
    started = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(sessions):
        start = base + timedelta(days=n)
        last = n == sessions - 1
        session = RecordingSession.objects.create(
            rig=sim, name=f"bench {n}", started_at=start, reading_count=per_session,
            status=RecordingSession.Status.RECORDING if last else RecordingSession.Status.COMPLETED,
            stopped_at=None if last else start + timedelta(milliseconds=per_session),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {Reading._meta.db_table} (session_id, sensor_id, seq, timestamp, value)
                SELECT %s, CASE i %% 3 WHEN 0 THEN %s WHEN 1 THEN %s ELSE %s END, i,
                       %s + i * interval '1 millisecond',
                       CASE WHEN i %% 3 = 2 THEN jsonb_build_object('brightness', i %% 256, 'exposure', 1.0)
                            ELSE to_jsonb(((i::bigint * 7919) %% 2000) / 10.0 - 50) END
                FROM generate_series(1, %s) AS i
                """,
                [session.pk, sensors["force"], sensors["motor"], sensors["camera"], start, per_session],
            )
            cursor.execute(
                f"""
                INSERT INTO {ValidationResult._meta.db_table}
                    (session_id, sensor_id, rule, status, message, first_timestamp, last_timestamp, count, peak,
                     details, is_open, acknowledge_comment)
                SELECT %s, %s, 'force_threshold', CASE WHEN i %% 4 = 0 THEN 'error' ELSE 'warning' END,
                       'force above limit', %s + i * interval '400 milliseconds',
                       %s + i * interval '400 milliseconds' + interval '5 milliseconds', 5, 90.0,
                       '{{}}'::jsonb, false, ''
                FROM generate_series(1, %s) AS i
                """,
                [session.pk, sensors["force"], start, start, results],
            )
        if not last:
            from sessions.reads.stats import sensor_stats

            RecordingSession.objects.filter(pk=session.pk).update(summary_stats=sensor_stats(session_id=session.pk))
        print(f"session {session.pk}: {per_session:,} readings ({time.perf_counter() - started:.0f} s)", flush=True)
    connection.close()
    import psycopg

    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)


def timed(client, path: str, repeat: int) -> tuple[float, object]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        response = client.get(path, HTTP_ACCEPT="application/json")
        times.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
    return _bench.median(times), response.json()


def raw_ms(sql: str, params: list, repeat: int) -> float:
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for _ in range(repeat):
            t = time.perf_counter()
            cursor.execute(sql, params)
            cursor.fetchall()
            times.append((time.perf_counter() - t) * 1000)
    return _bench.median(times)


def measure(repeat: int) -> None:
    from django.db import connection
    from django.test import Client

    from sessions.models import Reading, RecordingSession

    client = Client()
    recording = RecordingSession.objects.get(status="recording", rig__name="sim")
    oldest = RecordingSession.objects.order_by("started_at").first()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {Reading._meta.db_table}")
        total = cursor.fetchone()[0]
    print(f"readings in the table: {total:,}; recording session {recording.pk}: {recording.reading_count:,}")

    client.get("/api/v1/sessions/?page_size=1")  # warm-up: imports, URL resolver, first connection
    rows = []
    ms, body = timed(client, "/api/v1/sensors/readings/latest", repeat)
    rows.append(("latest (recording session)", ms))
    assert body["session_id"] == recording.pk and all(body["latest_readings"].values()), body
    ms, _ = timed(client, f"/api/v1/sensors/readings/latest?session={oldest.pk}", repeat)
    rows.append(("latest ?session=oldest", ms))

    sensor_id = Reading.objects.filter(session=recording).values_list("sensor_id", flat=True).first()
    query = (
        Reading.objects.filter(session_id=recording.pk, sensor_id=sensor_id)
        .order_by("-timestamp", "-seq").values("timestamp", "value", "seq", "session_id", "sensor_id")[:1]
    )
    plan = query.explain(analyze=True)
    print("plan of one per-sensor latest query:\n  " + plan.replace("\n", "\n  "))
    assert "Seq Scan" not in plan, "latest reads the readings table in full"

    first_ms, _ = timed(client, f"/api/v1/sessions/{recording.pk}/", 1)
    rows.append((f"session detail, recording ({recording.reading_count:,} readings), first request", first_ms))
    sql, params = _stats_sql(recording.pk)
    rows.append(("  one GROUP BY over all its readings, raw SQL", raw_ms(sql, params, repeat)))
    ms, _ = timed(client, f"/api/v1/sessions/{recording.pk}/", repeat)
    rows.append(("session detail, recording, later requests (stats: what is new)", ms))
    newest = Reading.objects.filter(session=recording).order_by("-id").values_list("id", flat=True).first()
    plan = Reading.objects.filter(session_id=recording.pk, id__gt=newest - 1000).values("sensor_id").explain()
    print("plan of the live statistics' query for the readings since the last request:\n  " + plan.replace("\n", "\n  "))
    ms, _ = timed(client, f"/api/v1/sessions/{oldest.pk}/", repeat)
    rows.append(("session detail, completed (stats stored)", ms))
    ms, _ = timed(client, "/api/v1/sessions/?rig=sim", repeat)
    rows.append(("sessions list ?rig=sim", ms))
    ms, _ = timed(client, f"/api/v1/results/?session={recording.pk}&status=error", repeat)
    rows.append(("results ?session=&status=error (page of 50)", ms))
    ms, _ = timed(client, f"/api/v1/sensors/validation?session={recording.pk}", repeat)
    rows.append(("validation ?session= (limit 50)", ms))
    ms, _ = timed(client, "/api/v1/sensors/validation", repeat)
    rows.append(("validation, every session (limit 50)", ms))
    print(f"\nmedian of {repeat} requests")
    for name, value in rows:
        print(f"  {name:<62} {value:8.1f} ms")


def _stats_sql(session_id: int) -> tuple[str, list]:
    from django.db.models import Avg, Count, Max, Min

    from sessions.models import Reading
    from sessions.recording.expressions import JsonNumber

    qs = (
        Reading.objects.filter(session_id=session_id).values("sensor_id")
        .annotate(count=Count("id"), first=Min("timestamp"), last=Max("timestamp"), min=Min(JsonNumber("value")),
                  max=Max(JsonNumber("value")), mean=Avg(JsonNumber("value")))
    )
    sql, params = qs.query.sql_with_params()
    return sql, list(params)


if __name__ == "__main__":
    main()
