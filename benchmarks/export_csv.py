"""CSV export over HTTP beside a bare `COPY (SELECT …) TO STDOUT` of the same rows, and daphne's memory.

Against a PostgreSQL database (created and migrated if missing, never dropped): sessions of
100,000 and 1,000,000 readings, from `benchmarks/read_dataset.py` when it is there, else filled
here by binary COPY (a 16-reading cycle like the `sim` rig's: 10 force, 5 motor, 1 camera object)
and reused on the next run; `--session-100k/--session-1m` name existing sessions instead.
Starts a real `daphne` on a free port and, for each session and repetition:

- `export SQL`: the long CSV's own COPY (the seed's CSV text, written by the database) read with
  psycopg in this process, once per repetition;
- for each of `--kinds` (csv, wide, mcap): `bare`, a `COPY (SELECT * FROM readings WHERE
  session_id = … ORDER BY timestamp, id) TO STDOUT` read the same way, rows/s, then the export
  (`GET /api/v1/sessions/{id}/export/csv`, `…/export/csv?layout=wide`, `…/export/mcap`)
  downloaded with `requests`: readings/s and the ratio to that bare COPY (issue 12's goals:
  long CSV ≥ 70 %, wide CSV and MCAP ≥ 50 %);
- daphne's RSS: sampled every 10 ms during the download (peak minus the RSS before it), and VmHWM;
- `--profile DIR`: py-spy samples daphne during each kind's first 1M download (raw stacks, for
  benchmarks/profile_summary.py).

`--others json` also downloads those exports once per session (readings/s and RSS).

    python benchmarks/export_csv.py
    python benchmarks/export_csv.py --repeat 5 --kinds csv,wide,mcap --session-1m 42 --others json
"""

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/robotest_exp_bench"
REDIS_URL = "redis://127.0.0.1:6379/6"
RIG = "bench-export"
SIZES = {"bench-100k": 100_000, "bench-1m": 1_000_000}
PATHS = {"csv": "export/csv", "wide": "export/csv?layout=wide", "json": "export/json", "mcap": "export/mcap"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--session-100k", type=int, help="an existing session to use as the 100k one")
    parser.add_argument("--session-1m", type=int, help="an existing session to use as the 1M one")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default="csv", help="exports timed in every repetition: csv,wide,mcap")
    parser.add_argument("--others", default="", help="also time these exports once each: wide,json,mcap")
    parser.add_argument("--profile", metavar="DIR", help="py-spy daphne (raw stacks) during each kind's first 1M download")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--redis-url", default=REDIS_URL, help="the Redis database daphne uses (flushed first)")
    args = parser.parse_args()

    _ensure_database(args.database_url)
    _bench.configure(args.database_url, fresh=False, redis_url=args.redis_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from sessions.models import RecordingSession

    kinds = args.kinds.split(",")
    facts = _bench.machine()
    print("machine:", json.dumps(facts), flush=True)
    sessions = _sessions(args)
    token = _bench.staff_token("bench-export")
    port = _bench.free_port()
    server, log = _bench.start_daphne(args.database_url, port, redis_url=args.redis_url)
    base = f"http://127.0.0.1:{port}"
    print(f"daphne pid={server.pid} on {base} (log {log}); sessions {sessions}", flush=True)
    results = []
    try:
        _bench.wait_ready(base)
        print(f"daphne RSS at rest: {_status(server.pid)['VmRSS'] / 1024:.1f} MB", flush=True)
        for name, session_id in sessions.items():
            readings = RecordingSession.objects.get(pk=session_id).reading_count
            for rep in range(args.repeat):
                sql = _export_sql(session_id)
                print(f"{name} rep={rep} export-sql={_bench.fmt_rate(sql['sql_rate'])} rows/s", flush=True)
                for kind in kinds:
                    # The bare COPY just before each download: on shared cores the load moves within a repetition.
                    bare = _bare(session_id)
                    profile = args.profile and rep == 0 and name == "bench-1m"
                    spy = _py_spy(server.pid, f"{args.profile}/{kind}.txt") if profile else None
                    row = {"session": name, "session_id": session_id, "rep": rep, "kind": kind, **bare, **sql}
                    row.update(_http(base, token, session_id, server.pid, PATHS[kind]))
                    if spy:
                        _py_spy_stop(spy)
                    # Per reading of the session: a wide row holds several, an MCAP file has no lines.
                    row["http_rate"] = readings / row["http_s"]
                    row["ratio"] = row["http_rate"] / row["bare_rate"]
                    results.append(row)
                    print(
                        f"  {kind}: bare {_bench.fmt_rate(bare['bare_rate'])} rows/s, "
                        f"export {_bench.fmt_rate(row['http_rate'])} readings/s ({row['http_mb']:.1f} MB in "
                        f"{row['http_s']:.2f} s, first byte {row['first_byte_s'] * 1000:.0f} ms) "
                        f"ratio={row['ratio']:.0%} rss before={row['rss_before_mb']:.1f} MB "
                        f"peak={row['rss_peak_mb']:.1f} MB (+{row['rss_peak_mb'] - row['rss_before_mb']:.1f}) "
                        f"hwm={row['hwm_mb']:.1f} MB",
                        flush=True,
                    )
        if args.others:
            _others(base, token, sessions, server.pid, args.others.split(","))
        for name in sessions:
            for kind in kinds:
                mine = [r for r in results if r["session"] == name and r["kind"] == kind]
                ratios = ", ".join(f"{r['ratio']:.0%}" for r in mine)
                print(
                    f"MEDIAN {name} {kind}: bare {_bench.fmt_rate(_bench.median([r['bare_rate'] for r in mine]))}/s, "
                    f"export SQL {_bench.fmt_rate(_bench.median([r['sql_rate'] for r in mine]))}/s, "
                    f"http {_bench.fmt_rate(_bench.median([r['http_rate'] for r in mine]))} readings/s, "
                    f"ratio {_bench.median([r['ratio'] for r in mine]):.0%} "
                    f"({ratios}), "
                    f"daphne peak RSS {max(r['rss_peak_mb'] for r in mine):.1f} MB "
                    f"(+{max(r['rss_peak_mb'] - r['rss_before_mb'] for r in mine):.1f} MB over its RSS before)",
                    flush=True,
                )
    finally:
        _bench.stop_server(server)
    _bench.save_json(args.json, facts, args, results)


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _sessions(args) -> dict[str, int]:
    given = {"bench-100k": args.session_100k, "bench-1m": args.session_1m}
    if all(given.values()):
        return given
    try:
        import read_dataset  # another benchmark's shared dataset, when it is there
    except ImportError:
        read_dataset = None
    if read_dataset is not None:
        found = read_dataset.ensure_dataset(args.database_url)
        return {name: given[name] or found[name] for name in SIZES}
    return {name: given[name] or _fill(name, size) for name, size in SIZES.items()}


def _fill(name: str, size: int) -> int:
    """A completed session of `size` readings on the rig RIG (reused when it is already there)."""
    import random
    from datetime import UTC, datetime

    from django.db import transaction

    from sensors.models import Rig
    from sensors.services import rig_create
    from sessions.models import RecordingSession
    from sessions.recording import storage

    rig = Rig.objects.filter(name=RIG).first() or rig_create(
        name=RIG,
        sensors=[
            {"name": "force", "sensor_type": "force", "unit": "N"},
            {"name": "motor", "sensor_type": "motor", "unit": "RPM"},
            {"name": "camera", "sensor_type": "camera", "unit": ""},
        ],
    )
    existing = RecordingSession.objects.filter(rig=rig, name=name, reading_count=size).first()
    if existing:
        return existing.pk
    ids = dict(rig.sensors.values_list("name", "id"))
    cycle = ["force"] * 10 + ["motor"] * 5 + ["camera"]
    rng = random.Random(name)
    t0_us = 1_750_000_000_000_000
    started = time.perf_counter()
    with transaction.atomic():
        session = RecordingSession.objects.create(
            rig=rig, name=name, status=RecordingSession.Status.COMPLETED, reading_count=size,
            started_at=datetime.fromtimestamp(t0_us / 1e6, tz=UTC),
            stopped_at=datetime.fromtimestamp((t0_us + size * 1000) / 1e6, tz=UTC), verdict="pass",
        )
        for start in range(0, size, 100_000):
            rows = []
            for i in range(start, min(size, start + 100_000)):
                sensor = cycle[i % 16]
                if sensor == "camera":
                    value = storage.value_json({"image_id": i, "resolution": "640x480",
                                                "brightness": rng.randint(0, 255), "exposure": rng.uniform(0.1, 2.0)})
                elif sensor == "force":
                    value = storage.value_json(round(rng.gauss(50, 10), 3))
                else:
                    value = storage.value_json(round(rng.uniform(-60, 60), 2))
                # 1 kHz, with the microseconds a real clock has
                rows.append((session.pk, ids[sensor], i + 1, t0_us + i * 1000 + rng.randint(0, 999), value))
            storage.readings_write(rows)
    print(f"filled {name}: {size:,} readings in {time.perf_counter() - started:.1f} s", flush=True)
    return session.pk


def _copy_rows(sql: str, params: dict | None = None, *, setup: tuple[str, ...] = (), newlines: bool = False
               ) -> tuple[int, float]:
    """Rows (or newlines in its bytes) and seconds of a COPY TO STDOUT read with psycopg, on a fresh connection."""
    import psycopg
    from django.db import connection

    keep = ("dbname", "user", "host", "port", "password")
    conninfo = {k: v for k, v in connection.get_connection_params().items() if k in keep}
    with psycopg.connect(**conninfo, cursor_factory=psycopg.ClientCursor) as conn:
        rows = 0
        started = time.perf_counter()
        for statement in setup:
            conn.execute(statement)
        with conn.cursor().copy(sql, params) as copy:
            for data in copy:
                rows += bytes(data).count(b"\n") if newlines else 1
        return rows, time.perf_counter() - started


def _bare(session_id: int) -> dict:
    from sessions.models import Reading

    rows, seconds = _copy_rows(
        f"COPY (SELECT * FROM {Reading._meta.db_table} WHERE session_id = {int(session_id)} "
        f"ORDER BY timestamp, id) TO STDOUT"
    )
    return {"rows": rows, "bare_s": seconds, "bare_rate": rows / seconds}


def _export_sql(session_id: int) -> dict:
    from sessions.exports.csv import csv_copy
    from sessions.models import RecordingSession

    stream = csv_copy(RecordingSession.objects.select_related("rig").get(pk=session_id))
    # Its rows are blocks of lines (binary COPY, no header): count the lines; its settings in its transaction.
    lines, seconds = _copy_rows(stream.sql, stream.params, setup=stream.setup, newlines=True)
    return {"sql_rows": lines, "sql_s": seconds, "sql_rate": lines / seconds}


def _py_spy(pid: int, path: str):
    """py-spy sampling daphne's threads into `path` (raw stacks, benchmarks/profile_summary.py reads them)."""
    import subprocess

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [str(_bench.ROOT / ".venv/bin/py-spy"), "record", "--format", "raw", "--threads", "--pid", str(pid),
         "--rate", "200", "-o", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches before the download starts
    return spy


def _py_spy_stop(spy) -> None:
    import signal

    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _http(base: str, token: str, session_id: int, pid: int, path: str = "export/csv") -> dict:
    """Download one export, counting its lines, while sampling daphne's RSS."""
    import requests

    before = _status(pid)["VmRSS"]
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _status(pid)["VmRSS"])
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    size = newlines = 0
    first = None
    started = time.perf_counter()
    with requests.get(f"{base}/api/v1/sessions/{session_id}/{path}", headers={"Authorization": f"Token {token}"},
                      stream=True, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_content(chunk_size=1 << 16):
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk)
            newlines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    status = _status(pid)
    rows = newlines - 1
    return {
        "http_rows": rows, "http_s": seconds, "http_rate": rows / seconds, "http_mb": size / 1e6,
        "first_byte_s": first or seconds, "rss_before_mb": before / 1024, "rss_peak_mb": peak[0] / 1024,
        "hwm_mb": status["VmHWM"] / 1024,
    }


def _others(base: str, token: str, sessions: dict[str, int], pid: int, kinds: list[str]) -> None:
    """The other exports, once each: readings/s of the session and daphne's RSS while they stream."""
    from sessions.models import RecordingSession

    for name, session_id in sessions.items():
        readings = RecordingSession.objects.get(pk=session_id).reading_count
        for kind in kinds:
            row = _http(base, token, session_id, pid, PATHS[kind])
            print(
                f"{name} {kind}: {row['http_mb']:.1f} MB in {row['http_s']:.1f} s = "
                f"{_bench.fmt_rate(readings / row['http_s'])} readings/s, rss before={row['rss_before_mb']:.1f} MB "
                f"peak={row['rss_peak_mb']:.1f} MB (+{row['rss_peak_mb'] - row['rss_before_mb']:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
