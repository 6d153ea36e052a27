"""A session's start to its first frame on a WebSocket client, for the first sessions of fresh workers.

Production shape on one machine: one `daphne robotest_site.asgi:application` and
`manage.py run_simulators`, settings `robotest_site.settings.production`, PostgreSQL
(`--database-url`, dropped and migrated first) and Redis (`--redis-url`, flushed). daphne runs
through the whole benchmark; each repetition starts a fresh run_simulators, waits until its
heartbeat is in the database and `--settle` seconds more, and then records `--sessions` sessions
of the `sim` rig one after the other with a `websockets` client connected (a fresh one per
repetition, subscribed to every session, one frame per reading):

    start sent --(POST /api/v1/sessions/start)--> answered --> first `sensor_data` frame of the session

"start → frame" is `time.time()` when the frame arrives minus when the start request was sent;
"reading → frame" is the arrival minus the first reading's sample time (its `timestamp`, the
session's `started_at`). Each session is stopped over the API before the next starts. The worker
is stopped with SIGTERM at the end of the repetition. Session 1 of each repetition is the first
session of a worker; the later ones are the warm case. Medians over the repetitions.

`--trace` runs the worker under benchmarks/first_frame_trace.py, which logs when the engine's steps
happen (wake-up, claim, simulators built, flush, publish) so the first session's time can be
split; tracing costs a little, so quote the figures of a run without it.

    .venv/bin/python benchmarks/first_frame.py --repeat 5
    .venv/bin/python benchmarks/first_frame.py --repeat 3 --trace
"""

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench

PG_URL = "postgres://postgres@127.0.0.1:5432/robotest_firstframe"
REDIS_URL = "redis://127.0.0.1:6379/10"
SETTINGS = "robotest_site.settings.production"
LOG_DIR = Path("/tmp")


def _env(pg_url: str, redis_url: str) -> dict[str, str]:
    env = _bench.bench_env(pg_url, redis_url)
    env.update(DJANGO_SETTINGS_MODULE=SETTINGS, ROBOTEST_HTTPS="false")
    return env


async def _session(base: str, ws_url: str, token: str, timeout: float) -> dict:
    """Start a session with a client connected, time its first frame, stop it."""
    import requests
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Token {token}"}
    loop = asyncio.get_running_loop()
    async with connect(ws_url, additional_headers=headers, compression=None, max_size=None, ping_interval=None,
                       proxy=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection_established", hello
        sent = time.time()
        answer = await loop.run_in_executor(None, lambda: requests.post(
            f"{base}/api/v1/sessions/start", json={"rig": "sim"}, headers=headers, timeout=30))
        answered = time.time()
        answer.raise_for_status()
        session_id = answer.json()["session_id"]
        first = None
        deadline = time.monotonic() + timeout
        while first is None:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(deadline - time.monotonic(), 0.01)))
            if message["type"] == "sensor_data" and message["data"]["session_id"] == session_id:
                first = (time.time(), message["data"])
        arrival, reading = first
    stop = await loop.run_in_executor(None, lambda: requests.post(
        f"{base}/api/v1/sessions/stop", json={"session_id": session_id}, headers=headers, timeout=60))
    stop.raise_for_status()
    return {
        "session_id": session_id,
        "sent": sent,
        "arrival": arrival,
        "start_call": answered - sent,
        "start_to_frame": arrival - sent,
        "answer_to_frame": arrival - answered,
        "reading_to_frame": arrival - reading["timestamp"],
        "first_seq": reading["seq"],
    }


def _daphne_up(env: dict, trace: bool, rep: int) -> tuple[subprocess.Popen, str, str]:
    port = _bench.free_port()
    log = LOG_DIR / f"firstframe_daphne_{rep}.log"
    daphne_args = ["-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"]
    daphne = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("first_frame_trace.py")), "daphne", *daphne_args] if trace
        else [str(_bench.ROOT / ".venv/bin/daphne"), *daphne_args],
        cwd=_bench.ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    _bench.wait_ready(base)
    return daphne, base, f"ws://127.0.0.1:{port}/ws/sensor-data"


def _worker_up(env: dict, trace: bool, log: Path) -> subprocess.Popen:
    from sessions.models import EngineHeartbeat

    args = [sys.executable, str(Path(__file__).with_name("first_frame_trace.py"))] if trace else \
        [sys.executable, "manage.py", "run_simulators"]
    proc = subprocess.Popen(args, cwd=_bench.ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not EngineHeartbeat.objects.filter(pid=proc.pid).exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"run_simulators did not beat within 60 s: see {log}")
        time.sleep(0.05)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="fresh workers")
    parser.add_argument("--sessions", type=int, default=3, help="sessions per worker, one after the other")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between the worker's first heartbeat and the first start")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between a stop and the next start")
    parser.add_argument("--timeout", type=float, default=10.0, help="the longest wait for a first frame")
    parser.add_argument("--fresh-daphne", action="store_true", help="a fresh daphne for each repetition too")
    parser.add_argument("--database-url", default=PG_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--trace", action="store_true", help="log the engine's steps (benchmarks/first_frame_trace.py)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    _bench.configure(args.database_url, fresh=True, redis_url=args.redis_url)
    facts = _bench.machine()
    print("machine:", json.dumps(facts), flush=True)
    token = _bench.staff_token("firstframe")
    env = _env(args.database_url, args.redis_url)
    daphne = None
    rows = []
    try:
        for rep in range(args.repeat):
            if daphne is None or args.fresh_daphne:
                if daphne is not None:
                    _bench.stop_server(daphne)
                daphne, base, ws_url = _daphne_up(env, args.trace, rep)
            log = LOG_DIR / f"firstframe_worker_{rep}.log"
            worker = _worker_up(env, args.trace, log)
            try:
                time.sleep(args.settle)
                for index in range(args.sessions):
                    row = asyncio.run(_session(base, ws_url, token, args.timeout))
                    row.update(rep=rep, index=index, worker_log=str(log))
                    rows.append(row)
                    print(f"rep {rep} session {index + 1} (#{row['session_id']}): start → frame "
                          f"{row['start_to_frame'] * 1000:.1f} ms (start call {row['start_call'] * 1000:.1f}, "
                          f"answer → frame {row['answer_to_frame'] * 1000:.1f}, reading → frame "
                          f"{row['reading_to_frame'] * 1000:.1f} ms, first seq {row['first_seq']})", flush=True)
                    time.sleep(args.gap)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=20)
    finally:
        if daphne is not None:
            _bench.stop_server(daphne)
    print()
    print("| session of a fresh worker | start → first frame, median (all) | start call | answer → frame | reading → frame |")
    print("| --- | --- | --- | --- | --- |")
    for index in range(args.sessions):
        mine = [r for r in rows if r["index"] == index]

        def ms(key, mine=mine):
            return f"{_bench.median([r[key] for r in mine]) * 1000:.1f}"

        every = ", ".join(f"{r['start_to_frame'] * 1000:.0f}" for r in mine)
        print(f"| {index + 1} | **{ms('start_to_frame')} ms** ({every}) | {ms('start_call')} | "
              f"{ms('answer_to_frame')} | {ms('reading_to_frame')} |")
    _bench.save_json(args.json, facts, args, rows)


if __name__ == "__main__":
    main()
