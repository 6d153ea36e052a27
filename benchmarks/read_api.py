"""Reads over HTTP on the 10,000,000-reading dataset (benchmarks/read_dataset.py), through a real daphne.

    .venv/bin/python benchmarks/read_api.py [--database-url URL] [--repeat 15] [--parts pages,explain,aggregates]

Starts `daphne robotest_site.asgi:application` on a free port against the dataset (built first if
missing) and times, with one keep-alive `requests` client and a staff token:
(a) a readings page, `GET /api/v1/sensors/readings?session=<bench-1m>&limit=100`, at the start, the
    middle and the end of the session (the `after` cursor of the reading at that rank, as a Link
    header gives it), then the page its Link names; the same with `sensor=ft6` and with a
    `start_time` at the middle; the CPU daphne spends per request (/proc/<pid>/stat) and the
    PostgreSQL connections it opens per request (pg_stat_database.sessions); EXPLAIN (ANALYZE,
    BUFFERS) of the page's queries at each depth. Target ≤ 20 ms each (issue 12).
(b) `GET /api/v1/sensors/readings/aggregated` over bench-1m with 1,000 buckets of one second:
    sensor_type=force (f1-f3: 750,000 numbers) and sensor=ft6&field=fz (250,000 objects) —
    beside the same aggregate run raw in SQL over the readings (date_bin … GROUP BY, through
    psycopg, in this process), in the same run. Targets ≤ 300 ms and ≤ 1.3× raw.
(c) the same with max_points=1000 over the session's first 250 s: 0.25-s buckets, which the
    endpoint computes from the readings (date_bin) as well.
Medians of --repeat requests, after one warm-up each; the 1-minute load average is printed with each
case, as the machine is shared. `--parts pages` keeps a run short.
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
from read_dataset import DEFAULT_URL, ensure_dataset

RAW_SQL = (
    "SELECT date_bin(%(interval)s, timestamp, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b, count(v), avg(v), min(v), max(v) "
    "FROM (SELECT timestamp, {number} AS v FROM recording_reading WHERE session_id = %(session)s "
    "AND sensor_id = ANY(%(sensors)s) AND timestamp >= %(start)s AND timestamp <= %(end)s) AS x "
    "WHERE v IS NOT NULL GROUP BY b ORDER BY b"
)
NUMBER = "CASE WHEN jsonb_typeof(value) = 'number' THEN (value)::float8 END"
FIELD_NUMBER = "CASE WHEN jsonb_typeof(value -> 'fz') = 'number' THEN (value -> 'fz')::float8 END"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--parts", default="pages,explain,aggregates", help="comma-separated subset to run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    sessions = ensure_dataset(args.database_url)
    facts = _bench.machine()
    print("machine:", json.dumps(facts))
    token = _bench.staff_token("bench-reader")
    port = _bench.free_port()
    server, log = _bench.start_daphne(args.database_url, port)
    base = f"http://127.0.0.1:{port}"
    print(f"daphne pid={server.pid} on {base} (log {log}); session bench-1m = {sessions['bench-1m']}", flush=True)
    results = {}
    try:
        _bench.wait_ready(base)
        import requests

        with requests.Session() as http:
            http.headers["Authorization"] = f"Token {token}"
            if "pages" in parts:
                results["pages"] = _pages(http, base, sessions["bench-1m"], args.repeat, server.pid)
            if "explain" in parts:
                results["explain"] = _explain(sessions["bench-1m"])
            if "aggregates" in parts:
                results["aggregates"] = _aggregates(http, base, args.database_url, sessions["bench-1m"], args.repeat)
    finally:
        _bench.stop_server(server)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": facts, "results": results}, indent=2, default=str))


def _timed(http, url: str, params: dict, repeat: int, *, best: list | None = None) -> tuple[float, object]:
    """Median milliseconds of `repeat` GETs (after one warm-up), and the last response; the fastest
    one appended to `best` (on a shared machine, the closest to what the request costs alone)."""
    answer = http.get(url, params=params, timeout=120)
    answer.raise_for_status()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        answer = http.get(url, params=params, timeout=120)
        times.append((time.perf_counter() - t) * 1000)
        answer.raise_for_status()
    if best is not None:
        best.append(min(times))
    return statistics.median(times), answer


def _db_sessions() -> int:
    """Connections PostgreSQL has accepted to this database so far (this process keeps its one)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cursor_at(session_id: int, rank: int, *, sensor: str | None = None) -> str | None:
    """The `after` position of the reading at `rank` (0-based) in (timestamp, id) order; None at 0."""
    if rank == 0:
        return None
    from sessions.models import Reading

    readings = Reading.objects.filter(session_id=session_id)
    if sensor:
        readings = readings.filter(sensor__name=sensor)
    row = readings.order_by("timestamp", "id").values_list("timestamp", "id")[rank - 1]
    return f"{round(row[0].timestamp() * 1_000_000)}.{row[1]}"


def _pages(http, base: str, session_id: int, repeat: int, pid: int) -> dict:
    from sessions.models import RecordingSession

    session = RecordingSession.objects.get(pk=session_id)
    total = session.reading_count
    middle_time = session.started_at.timestamp() + (session.stopped_at - session.started_at).total_seconds() / 2
    url = f"{base}/api/v1/sensors/readings"
    out = {}
    for label, rank in (("start", 0), ("middle", total // 2), ("end", total - 100)):
        params = {"session": session_id, "limit": 100}
        cursor = _cursor_at(session_id, rank)
        if cursor:
            params["after"] = cursor
        out[label] = _page_case(http, url, label, params, repeat, pid, rank=rank)
    ft6_total = session.readings.filter(sensor__name="ft6").count()
    out["ft6-middle"] = _page_case(
        http, url, "ft6 middle", {"session": session_id, "sensor": "ft6", "limit": 100,
                                  "after": _cursor_at(session_id, ft6_total // 2, sensor="ft6")}, repeat, pid)
    out["start_time-middle"] = _page_case(
        http, url, "start_time middle", {"session": session_id, "limit": 100, "start_time": middle_time}, repeat, pid)
    return out


def _page_case(http, url: str, label: str, params: dict, repeat: int, pid: int, *, rank: int | None = None) -> dict:
    """One page's median, the CPU daphne spent per request on it, and the median of the page its Link names."""
    cpu, sessions = _cpu_seconds(pid), _db_sessions()
    best = []
    ms, answer = _timed(http, url, params, repeat, best=best)
    cpu_ms = (_cpu_seconds(pid) - cpu) * 1000 / (repeat + 1)
    connects = (_db_sessions() - sessions) / (repeat + 1)
    rows = answer.json()
    link = answer.headers.get("Link", "")
    next_ms = None
    if link:
        next_url = link.split(">", 1)[0].lstrip("<")
        next_ms, _ = _timed(http, next_url, {}, repeat)
    load = os.getloadavg()[0]
    where = f"rank {rank:>9,}" if rank is not None else "         "
    following = "-" if next_ms is None else f"{next_ms:.1f} ms"
    print(f"(a) readings page, {label:17} ({where}): {ms:6.1f} ms median ({best[0]:.1f} fastest), {len(rows)} rows; "
          f"daphne CPU {cpu_ms:4.1f} ms and {connects:.2f} database connections a request; "
          f"its Link's page: {following}  (target <= 20 ms; load {load:.2f})", flush=True)
    return {"rank": rank, "ms": ms, "fastest_ms": best[0], "daphne_cpu_ms": cpu_ms, "connections_per_request": connects,
            "rows": len(rows), "next_ms": next_ms, "load": load, "first_seq": rows[0]["seq"] if rows else None}


def _explain(session_id: int) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the SQL a page runs at the start, middle and end, as the selector builds it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from robotest_site.api.params import timestamp
    from sessions.models import RecordingSession
    from sessions.reads.readings import readings_list

    total = RecordingSession.objects.get(pk=session_id).reading_count
    plans = {}
    for label, rank in (("start", 0), ("middle", total // 2), ("end", total - 100)):
        cursor = _cursor_at(session_id, rank)
        after = None
        if cursor:
            micros, pk = cursor.split(".")
            after = (timestamp(int(micros) / 1_000_000), int(pk))
        with CaptureQueriesContext(connection) as captured:
            readings_list(session_id=session_id, after=after, limit=100)
        with connection.cursor() as db:
            for query in captured.captured_queries:
                if "recording_reading" not in query["sql"]:
                    continue
                db.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                plan = [line for (line,) in db.fetchall()]
                plans[f"{label}: {query['sql'][:120]}"] = plan
                print(f"EXPLAIN (ANALYZE, BUFFERS) of the page query at the {label}:\n    " + "\n    ".join(plan),
                      flush=True)
    return plans


def _aggregates(http, base: str, database_url: str, session_id: int, repeat: int) -> list[dict]:
    import psycopg

    from sensors.models import Sensor
    from sessions.models import RecordingSession

    session = RecordingSession.objects.get(pk=session_id)
    start, end = session.started_at.timestamp(), session.stopped_at.timestamp() - 1e-6
    force = list(Sensor.objects.filter(rig_id=session.rig_id, sensor_type="force").values_list("id", flat=True))
    ft6 = list(Sensor.objects.filter(rig_id=session.rig_id, name="ft6").values_list("id", flat=True))
    cases = [
        ("1,000 x 1 s, sensor_type=force (750k numbers)", {"sensor_type": "force", "max_points": 1000}, force, NUMBER, 1.0, end),
        ("1,000 x 1 s, ft6 field=fz (250k objects)", {"sensor": "ft6", "field": "fz", "max_points": 1000}, ft6, FIELD_NUMBER, 1.0, end),
        ("1,000 x 0.25 s, sensor_type=force, first 250 s",
         {"sensor_type": "force", "max_points": 1000, "start_time": start, "end_time": start + 250 - 1e-6},
         force, NUMBER, 0.25, start + 250 - 1e-6),
    ]
    out = []
    with psycopg.connect(database_url) as conn:
        for label, query, sensor_ids, number, interval, case_end in cases:
            params = {"session": session_id, **query}
            api_ms, answer = _timed(http, f"{base}/api/v1/sensors/readings/aggregated", params, repeat)
            body = answer.json()
            sql = RAW_SQL.format(number=number)
            sql_params = {"interval": timedelta(seconds=interval), "session": session_id, "sensors": sensor_ids,
                          "start": datetime.fromtimestamp(start, tz=UTC), "end": datetime.fromtimestamp(case_end, tz=UTC)}
            conn.execute(sql, sql_params).fetchall()  # warm-up
            raw_times = []
            for _ in range(repeat):
                t = time.perf_counter()
                raw = conn.execute(sql, sql_params).fetchall()
                raw_times.append((time.perf_counter() - t) * 1000)
            raw_ms = statistics.median(raw_times)
            same = [(d["count"], d["min"], d["max"]) for d in body["data"]] == [(n, lo, hi) for _, n, _, lo, hi in raw]
            row = {"case": label, "api_ms": api_ms, "raw_sql_ms": raw_ms, "ratio": api_ms / raw_ms,
                   "buckets": len(body["data"]), "interval_seconds": body["interval_seconds"],
                   "readings": sum(d["count"] for d in body["data"]), "same_counts_min_max_as_raw": same}
            out.append(row)
            print(f"(b) aggregated {label}: api {api_ms:6.1f} ms, raw SQL {raw_ms:6.1f} ms, ratio {row['ratio']:.2f} "
                  f"({row['buckets']} buckets of {row['interval_seconds']} s, {row['readings']:,} readings, "
                  f"same as raw: {same})  (targets <= 300 ms, <= 1.3x)", flush=True)
    return out


if __name__ == "__main__":
    main()
