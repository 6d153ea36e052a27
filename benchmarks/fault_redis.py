"""Redis stopped under a recording session: how soon the live stream resumes, and what the outage costs.

Production shape on one machine: one `daphne robotest_site.asgi:application` and one
`manage.py run_simulators` (settings `robotest_site.settings.production`, the sim rig at the
end-to-end rates 100 / 50 / 10 Hz) on a fresh PostgreSQL database `robotest_hr_bench` (dropped
and created again, on the shared server) and a Redis server of the script's own on a free port
(tests/e2e/instances.py PrivateRedis, no persistence). One `websockets` client holds one
connection for every repetition, unsubscribed (every session), as a dashboard does.

Each repetition starts a session, waits for its first reading frame, then measures:
- **before**: `--outage` seconds with Redis up (the baseline);
- **outage**: Redis stopped (SIGTERM) for `--outage` seconds, then started again on the same port;
- **resume**: from Redis answering PING (polled every 50 ms by PrivateRedis.start, so up to 50 ms
  late) to the first `sensor_data` frame of the session at the client, and to the `lag` frame;
- CPU of daphne and run_simulators (utime + stime from /proc/<pid>/stat, as cores) before and
  during the outage, and the log lines each wrote from the stop until the session stopped;
- the `lag` frame's `missed_readings`, checked against the database: the frames the client got
  plus the lag's range are seqs 1..reading_count, each once.

    .venv/bin/python benchmarks/fault_redis.py --repeat 3
    .venv/bin/python benchmarks/fault_redis.py --repeat 1 --outage 30

Nothing but its own database (dropped at the end) and Redis server is touched; the machine's shared Redis is
not used. Process logs: /tmp/hrbench-<time>/.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import _bench

from tests.e2e.harness import (
    LOCAL,
    PRODUCTION,
    PostgresDatabase,
    Processes,
    create_token,
    process_env,
    run_manage,
    wait_healthy,
    wait_worker_up,
)
from tests.e2e.instances import PrivateRedis
from tests.e2e.test_fault_redis import Watch
from tests.e2e.test_live_feed import launch_daphne, open_feed

DATABASE = "robotest_hr_bench"


async def repetition(web, worker, redis_server, feed, rep: int, args) -> dict:
    """One session through one outage; the figures of the repetition."""
    procs = (web.proc, worker)
    session_id = (await asyncio.to_thread(web.api.start, name=f"bench redis down {rep}"))["session_id"]

    def is_reading(frame: dict) -> bool:
        return frame.get("type") == "sensor_data" and frame["data"]["session_id"] == session_id

    def is_lag(frame: dict) -> bool:
        return frame.get("type") == "lag" and frame["data"].get("session_id") == session_id

    await feed.wait_for(is_reading, timeout=30, what="the session's first reading frame", start=len(feed.frames))
    baseline = Watch(*procs)
    await asyncio.sleep(args.outage)
    stopping = Watch(*procs)
    await asyncio.to_thread(redis_server.stop)
    stopped_at = len(feed.frames)
    await asyncio.sleep(args.outage)
    starting = Watch(*procs)
    await asyncio.to_thread(redis_server.start)
    answered = time.time()
    back = await feed.wait_for(is_reading, timeout=60, what="a reading frame after Redis returned",
                               start=len(feed.frames))
    lag_at = await feed.wait_for(is_lag, timeout=30, what="a lag frame", start=stopped_at)
    await asyncio.sleep(1.0)
    summary = await asyncio.to_thread(web.api.stop, session_id)
    end = await feed.wait_completed(session_id)
    recovered = Watch(*procs)

    lags = [f["data"] for _, f in feed.frames[stopped_at:end] if is_lag(f)]
    seqs = [f["data"]["seq"] for _, f in feed.frames[:end] if is_reading(f)]
    covered = sorted(seqs + [s for lag in lags for s in range(lag["from_seq"], lag["to_seq"] + 1)])
    before, outage, after = stopping.since(baseline), starting.since(stopping), recovered.since(starting)
    return {
        "session": session_id,
        "resume_s": feed.frames[back][0] - answered,
        "lag_frame_s": feed.frames[lag_at][0] - answered,
        "lag_frames": len(lags),
        "missed_readings": sum(lag["missed_readings"] for lag in lags),
        "total_readings": summary["total_readings"],
        "frames_plus_lag_exact": covered == list(range(1, summary["total_readings"] + 1)),
        "cores": {name: {"before": before[name]["cores"], "outage": outage[name]["cores"]} for name in before},
        "log_lines": {name: outage[name]["lines"] + after[name]["lines"] for name in outage},
    }


def print_rep(rep: int, row: dict) -> None:
    cores = ", ".join(f"{name} {c['before']:.3f} -> {c['outage']:.3f}" for name, c in row["cores"].items())
    print(
        f"rep {rep}: resume {row['resume_s']:.3f} s, lag frame {row['lag_frame_s']:.3f} s, "
        f"{row['lag_frames']} lag frame(s) naming {row['missed_readings']} of {row['total_readings']} readings "
        f"(frames + lag exact: {row['frames_plus_lag_exact']}); cores before -> during: {cores}; "
        f"log lines from the stop: {row['log_lines']}",
        flush=True,
    )


def print_median(reps: list[dict]) -> dict:
    def med(key):
        return statistics.median(key(r) for r in reps)

    names = list(reps[0]["cores"])
    result = {
        "resume_s": med(lambda r: r["resume_s"]),
        "lag_frame_s": med(lambda r: r["lag_frame_s"]),
        "missed_readings": med(lambda r: r["missed_readings"]),
        "cores": {n: {k: med(lambda r, n=n, k=k: r["cores"][n][k]) for k in ("before", "outage")} for n in names},
        "log_lines": {n: med(lambda r, n=n: r["log_lines"][n]) for n in names},
        "all_exact": all(r["frames_plus_lag_exact"] and r["lag_frames"] == 1 for r in reps),
    }
    print(f"median of {len(reps)}: {json.dumps(result)}", flush=True)
    return result


async def run(args, web, worker, redis_server, token: str) -> list[dict]:
    reps = []
    async with AsyncExitStack() as stack:
        feed = await open_feed(stack, web, token)
        for rep in range(args.repeat):
            row = await repetition(web, worker, redis_server, feed, rep, args)
            print_rep(rep, row)
            reps.append(row)
        assert feed.closed is None, f"the server closed the connection: {feed.closed!r}"
    return reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds Redis is down (and of the baseline)")
    parser.add_argument("--json", metavar="FILE", help="also write every repetition as JSON")
    args = parser.parse_args()

    database = PostgresDatabase(DATABASE)
    database.drop()
    database = PostgresDatabase.create(DATABASE)
    facts = _bench.machine()  # Django is not set up in this process: ask PostgreSQL itself
    facts.pop("database", None)
    facts["postgresql"] = database.execute("SHOW server_version")[0][0]
    print("machine:", json.dumps(facts), flush=True)
    run_manage(["migrate", "--noinput", "-v", "0"], env=process_env(settings=LOCAL, database_url=database.url))
    token = create_token(process_env(settings=LOCAL, database_url=database.url), "hrbench")
    redis_server = PrivateRedis()
    redis_server.start()
    logs = Path(f"/tmp/hrbench-{int(time.time())}")
    logs.mkdir()
    procs = Processes(logs, owner="benchmarks/fault_redis.py")
    try:
        env = process_env(settings=PRODUCTION, database_url=database.url, redis_url=redis_server.url)
        web = launch_daphne(procs, env, token)
        worker = procs.start("run_simulators", [sys.executable, "manage.py", "run_simulators"], env=env)
        wait_healthy(web.api, web.proc)
        wait_worker_up(web.api, worker, web.proc)
        print(f"== Redis on {redis_server.port} stopped for {args.outage:g} s per repetition; daphne pid "
              f"{web.proc.pid}, run_simulators pid {worker.pid}; logs in {logs}", flush=True)
        reps = asyncio.run(run(args, web, worker, redis_server, token))
        result = print_median(reps)
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "reps": reps, "median": result}, indent=2))
    finally:
        procs.stop_all()
        redis_server.destroy()
        database.drop()


if __name__ == "__main__":
    main()
