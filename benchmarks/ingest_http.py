"""Ingest throughput over HTTP, as a real rig pushes: batches of readings to a real daphne process.

Starts `daphne robotest_site.asgi:application` on a free port against the benchmark database
(robotest_bench, dropped and migrated first) and the Redis layer (redis://127.0.0.1:6379/12),
creates a staff user with a token and one external rig per client (force sensors), starts a
session per rig with `POST /api/v1/sessions/start`, then POSTs pre-serialized JSON batches to
`/api/v1/sessions/{id}/readings/` with `requests` (one keep-alive session per client), first from
one client, then from several at once. Reports readings/s (overall, and the median of each batch's
own rate) and checks each session's reading_count against what was sent; then, in the same
repetition, writes the same rows by the database's own bulk insert (binary COPY, a transaction a
batch, as pipeline_throughput.py's raw side) and reports ingest / raw.

    .venv/bin/python benchmarks/ingest_http.py --clients 1,2 --batches 30 --repeat 3
    .venv/bin/python benchmarks/ingest_http.py --clients 1 --repeat 1 --profile /tmp/ingest.txt

`--profile FILE` records the daphne process with py-spy during the first one-client run and
prints a summary (benchmarks/profile_summary.py).
"""

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench

SQLITE_URL = f"sqlite:///{tempfile.gettempdir()}/robotest_bench_ingest.sqlite3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("pg", "sqlite"), default="pg")
    parser.add_argument("--sensors", type=int, default=10, help="force sensors per rig")
    parser.add_argument("--batch", type=int, default=10_000, help="readings per POST (the API takes at most 10,000)")
    parser.add_argument("--batches", type=int, default=30, help="POSTs per client")
    parser.add_argument("--clients", default="1,2", help="comma list: concurrent clients, one rig each")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variant", default="as-is",
                        help="serve with a candidate change installed (benchmarks/variants.py)")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the server during the first one-client run")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    url = _bench.PG_URL if args.db == "pg" else SQLITE_URL
    _bench.configure(url, fresh=True)
    facts = _bench.machine()
    print("machine:", json.dumps(facts))
    token = _bench.staff_token("bench")
    port = _bench.free_port()
    server, log = _bench.start_daphne(url, port, variant=args.variant)
    base = f"http://127.0.0.1:{port}"
    print(f"daphne pid={server.pid} on {base} (log {log}) variant={args.variant} sensors={args.sensors} "
          f"batch={args.batch} batches/client={args.batches}", flush=True)
    results = []
    try:
        _bench.wait_ready(base)
        profiled = False
        for rep in range(args.repeat):
            for clients in [int(c) for c in args.clients.split(",")]:
                _bench.clear_readings()
                profile = args.profile if (args.profile and not profiled and clients == 1) else None
                row = _run(base, token, args, rep, clients, server.pid, profile)
                profiled = profiled or profile is not None
                results.append(row)
                print(
                    f"rep={rep} clients={clients} readings={row['sent']:,} wall={row['wall_s']:.2f}s "
                    f"overall={_bench.fmt_rate(row['overall_rate'])}/s "
                    f"batch median={_bench.fmt_rate(row['batch_rate_median'])}/s "
                    f"latency median={row['latency_median'] * 1000:.0f} ms p95={row['latency_p95'] * 1000:.0f} ms "
                    f"raw={_bench.fmt_rate(row['raw_rate'])}/s ratio={row['overall_rate'] / row['raw_rate']:.0%} "
                    f"counts_ok={row['counts_ok']}",
                    flush=True,
                )
        for clients in [int(c) for c in args.clients.split(",")]:
            mine = [r for r in results if r["clients"] == clients]
            print(
                f"MEDIAN clients={clients}: overall {_bench.fmt_rate(_bench.median([r['overall_rate'] for r in mine]))}/s, "
                f"batch median {_bench.fmt_rate(_bench.median([r['batch_rate_median'] for r in mine]))}/s, "
                f"raw {_bench.fmt_rate(_bench.median([r['raw_rate'] for r in mine]))}/s, "
                f"ratio {_bench.median([r['overall_rate'] / r['raw_rate'] for r in mine]):.0%}, "
                f"all counts ok: {all(r['counts_ok'] for r in mine)}",
                flush=True,
            )
    finally:
        _bench.stop_server(server)
    _bench.save_json(args.json, facts, args, results)


def _bodies(sensors: list[str], batches: int, batch: int, t0: float, seed: str) -> list[bytes]:
    """Pre-serialized batches: each sensor's next readings at 1 kHz, force-like values with spikes."""
    import random

    from sensors.simulators import ForceSimulator

    per_sensor = batch // len(sensors)
    sims = {name: ForceSimulator(rate_hz=1000.0, t0=t0, rng=random.Random(f"{seed}:{name}")) for name in sensors}
    out = []
    for k in range(batches):
        # Half a period short of the next batch's first sample: exact at any t0.
        horizon = t0 + ((k + 1) * per_sensor - 0.5) / 1000.0
        items = []
        for name, sim in sims.items():
            items.extend({"sensor": name, "timestamp": ts, "value": value} for ts, value in sim.due(horizon))
        out.append(json.dumps(items).encode())
    return out


def _run(base: str, token: str, args, rep: int, clients: int, server_pid: int, profile: str | None) -> dict:
    import requests

    from sensors.services import rig_create
    from sessions.models import RecordingSession

    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    names = [f"s{i:02d}" for i in range(args.sensors)]
    plans = []
    for c in range(clients):
        rig = rig_create(
            name=f"bench-ingest-{rep}-{clients}-{c}-{time.strftime('%H%M%S')}",
            sensors=[{"name": n, "sensor_type": "force", "unit": "N"} for n in names],
        )
        answer = requests.post(f"{base}/api/v1/sessions/start", json={"rig": rig.name}, headers=headers, timeout=30)
        answer.raise_for_status()
        session_id = answer.json()["session_id"]
        bodies = _bodies(names, args.batches, args.batch, time.time(), f"{rep}:{c}")
        sent = sum(body.count(b'"sensor"') for body in bodies)
        plans.append({"session_id": session_id, "bodies": bodies, "sent": sent, "latencies": [], "errors": []})

    def client(plan, barrier):
        with requests.Session() as http:
            http.headers.update(headers)
            url = f"{base}/api/v1/sessions/{plan['session_id']}/readings/"
            http.get(f"{base}/health", timeout=30)  # open the keep-alive connection before the clock
            barrier.wait()
            for body in plan["bodies"]:
                t = time.perf_counter()
                answer = http.post(url, data=body, timeout=300)
                plan["latencies"].append(time.perf_counter() - t)
                if answer.status_code != 201:
                    plan["errors"].append((answer.status_code, answer.text[:300]))

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=client, args=(plan, barrier)) for plan in plans]
    for thread in threads:
        thread.start()
    spy = None
    if profile:
        spy = subprocess.Popen(
            [str(_bench.ROOT / ".venv/bin/py-spy"), "record", "--format", "raw", "--threads", "--rate", "250",
             "-o", profile, "--pid", str(server_pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
        subprocess.run([sys.executable, str(Path(__file__).parent / "profile_summary.py"), profile, "--top", "45"], check=False)

    counts_ok = True
    for plan in plans:
        for status, text in plan["errors"][:3]:
            print(f"  session {plan['session_id']}: HTTP {status} {text}")
        detail = requests.get(f"{base}/api/v1/sessions/{plan['session_id']}/", headers=headers, timeout=30).json()
        stored = _stored(plan["session_id"])
        plan["reading_count"] = detail.get("reading_count")
        counts_ok = counts_ok and not plan["errors"] and detail.get("reading_count") == stored == plan["sent"]
        RecordingSession.objects.filter(pk=plan["session_id"]).update(status=RecordingSession.Status.COMPLETED)
    latencies = [lat for plan in plans for lat in plan["latencies"]]
    sent = sum(plan["sent"] for plan in plans)
    lat_sorted = sorted(latencies)
    raw_s = _raw(plans)
    return {
        "raw_s": raw_s,
        "raw_rate": sent / raw_s,
        "rep": rep,
        "clients": clients,
        "sent": sent,
        "wall_s": wall,
        "overall_rate": sent / wall,
        "batch_rate_median": statistics.median(args.batch / lat for lat in latencies),
        "latency_median": statistics.median(latencies),
        "latency_p95": lat_sorted[int(0.95 * (len(lat_sorted) - 1))],
        "reading_counts": [plan["reading_count"] for plan in plans],
        "counts_ok": counts_ok,
    }


def _raw(plans: list[dict]) -> float:
    """The same rows by the database's own bulk insert (binary COPY, or executemany on SQLite), a
    transaction a batch, into the emptied table, as pipeline_throughput.py's raw side: seconds."""
    from pipeline_throughput import _run_raw

    from sensors.models import Sensor
    from sessions.models import RecordingSession

    seconds = 0.0
    for plan in plans:
        rig_id = RecordingSession.objects.values_list("rig_id", flat=True).get(pk=plan["session_id"])
        sensor_ids = dict(Sensor.objects.filter(rig_id=rig_id).values_list("name", "id"))
        batches = [[(r["sensor"], r["timestamp"], r["value"]) for r in json.loads(body)] for body in plan["bodies"]]
        _bench.clear_readings()
        seconds += _run_raw(plan["session_id"], batches, sensor_ids)
    return seconds


def _stored(session_id: int) -> int:
    from sessions.models import Reading

    return Reading.objects.filter(session_id=session_id).count()


if __name__ == "__main__":
    main()
