"""Worker and PostgreSQL faults, and two workers sharing one load: how long recovery takes, what it costs.

Production shape on one machine: one `daphne robotest_site.asgi:application` and real
`manage.py run_simulators` processes (settings `robotest_site.settings.production`, each worker
with `--metrics-port` on a free port), a Redis server of the script's own (tests/e2e/instances.py
PrivateRedis), and the readings read straight from PostgreSQL. Three subcommands:

- **takeover**: two workers, one session (the end-to-end rates 100 / 50 / 10 Hz). The owner is
  killed (`kill -9`): seconds from the kill to the survivor's claim (the session's `engine`
  column names it; polled every 20 ms) and to the first stored reading stamped after the kill.
  The frozen variant stops the owner (SIGSTOP) with the default ROBOTEST_HEARTBEAT_TIMEOUT (5 s):
  seconds from SIGSTOP to the claim, then SIGCONT. Own database `robotest_bf_takeover` on the
  shared server.
- **pg-restart**: one worker recording one session on a PostgreSQL server of the script's own
  (PrivatePostgres, database `robotest_bf_pg`). `pg_ctl restart -m fast`, then an outage of
  `--outage` seconds (stop, sleep, start): seconds from the server answering again to the first
  reading stamped after that, and to the worker's "readings stored again after X s" line (and
  its X); the peak of the worker's `robotest_engine_buffer_readings` gauge, scraped every 50 ms
  from before the fault to the recovery; the session's `lost_readings` (0 with the default 60 s
  buffer).
- **two-workers**: `--sessions` simulated rigs (the default `sim` and copies of it) recording
  `--seconds` at 1000 / 500 / 50 Hz, by one worker and by two on the shared PostgreSQL (own
  database `robotest_bf_two`), alternating one, two, one, two, … `--repeat` times each: worker
  CPU seconds (utime + stime of /proc/<pid>/stat, summed over the workers) per million readings
  stored, the same for the PostgreSQL backends of the database (pids from pg_stat_activity at the
  start and the end of the window), how the sessions and the stored readings split between the
  workers, the flushes and their mean size (group commit: a flush takes what came due during the
  one before), how far behind real time each session was just before its stop, and (over 3 s before
  the sessions start) what the idle workers cost in cores.

Every session is checked when stopped: each sample due from its start to its stop is stored
once (tests.e2e.harness.assert_simulated_exactly for the end-to-end rates, timestamps against
the simulators' schedule at other rates), seq 1..n, `lost_readings` 0. Each row carries the
load average when it was taken.

    .venv/bin/python benchmarks/faults.py takeover --repeat 3
    .venv/bin/python benchmarks/faults.py pg-restart --repeat 3 --outage 10
    .venv/bin/python benchmarks/faults.py two-workers --repeat 3 --seconds 20 --json /tmp/two.json

The databases are dropped at the end; the shared Redis is not used. Process logs:
/tmp/bfbench-<time>/.
"""

import argparse
import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import _bench
import psycopg
import requests

from tests.e2e.harness import (
    DAPHNE,
    LOCAL,
    PRODUCTION,
    PYTHON,
    Api,
    PostgresDatabase,
    Processes,
    assert_seq_contiguous,
    create_token,
    free_port,
    process_env,
    run_manage,
    wait_healthy,
    wait_until,
)
from tests.e2e.instances import PrivatePostgres, PrivateRedis
from tests.e2e.test_fault_worker import (
    assert_complete,
    create_simulated_rigs,
    engine_name,
    live_engines,
    session_engine,
)
from tests.e2e.test_worker import wait_for_readings

BUFFER_GAUGE = "robotest_engine_buffer_readings"
STORED_COUNTER = 'robotest_readings_stored_total{source="simulator"}'
FLUSH_COUNT = 'robotest_flush_batch_readings_count{source="simulator"}'
STORED_AGAIN = re.compile(r"readings stored again after ([0-9.]+) s")
HIGH_RATES = {"FORCE_SENSOR_HZ": "1000", "MOTOR_SENSOR_HZ": "500", "CAMERA_SENSOR_HZ": "50"}
TICK = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 3.0


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def scrape(port: int) -> dict[str, float]:
    """A worker's metrics (`name{labels}` → value), or {} when it does not answer."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except requests.RequestException:
        return {}
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def poll(predicate, *, timeout: float, interval: float) -> float | None:
    """Unix time at which `predicate()` first held, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.time()
        time.sleep(interval)
    return None


class Probe:
    """One connection of the script's own polling the database; reconnects after the server went away."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self.conn = None

    def one(self, query: str, params: tuple = ()):
        try:
            if self.conn is None or self.conn.closed:
                self.conn = self.db.connect()
            return self.conn.execute(query, params).fetchone()[0]
        except psycopg.Error:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None

    def stored_after(self, session_id: int, after: float) -> bool:
        return bool(self.one("SELECT EXISTS (SELECT 1 FROM recording_reading WHERE session_id = %s "
                             "AND timestamp > to_timestamp(%s))", (session_id, after)))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class GaugeSampler(threading.Thread):
    """Scrapes one gauge of a worker every `interval` seconds until stopped: [(unix time, value)]."""

    def __init__(self, port: int, name: str = BUFFER_GAUGE, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.port, self.name, self.interval = port, name, interval
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            value = scrape(self.port).get(self.name)
            if value is not None:
                self.samples.append((time.time(), value))
            self._halt.wait(self.interval)

    def finish(self) -> list[tuple[float, float]]:
        self._halt.set()
        self.join(timeout=5)
        return self.samples


class Stack:
    """daphne on one database, a private Redis, and workers started on demand (each with a metrics port)."""

    def __init__(self, exits: ExitStack, db: PostgresDatabase, logs: Path, **extra: str) -> None:
        self.db = db
        redis_server = PrivateRedis()
        redis_server.start()
        exits.callback(redis_server.destroy)
        self.env = process_env(settings=PRODUCTION, database_url=db.url, redis_url=redis_server.url, **extra)
        local = process_env(settings=LOCAL, database_url=db.url, **extra)
        run_manage(["migrate", "--noinput", "-v", "0"], env=local)
        token = create_token(local, "bfbench")
        self.procs = Processes(logs, owner="benchmarks/faults.py")
        exits.callback(self.procs.stop_all)
        port = free_port()
        self.web = self.procs.start(
            "daphne", [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"], env=self.env
        )
        self.api = Api(f"http://127.0.0.1:{port}", token)
        wait_healthy(self.api, self.web)

    def worker(self, **extra: str):
        port = free_port()
        proc = self.procs.start("run_simulators", [PYTHON, "manage.py", "run_simulators", "--metrics-port", str(port)],
                                env={**self.env, **extra})
        proc.metrics_port = port
        return proc

    def wait_live(self, *workers) -> None:
        wait_until(lambda: {engine_name(w) for w in workers} <= live_engines(self.db), timeout=30,
                   what="the workers' heartbeats", procs=(*workers, self.web))

    def recording(self, name: str, procs: tuple, *, rig: str | None = None, warm: float = 1.5) -> tuple[int, float]:
        """A started session that has stored `warm` seconds of every sensor: (id, started_at)."""
        session_id = self.api.start(name=name, **({"rig": rig} if rig else {}))["session_id"]
        t0 = self.db.session(session_id)["started_at"]
        wait_for_readings(self.db, session_id, after=t0 + warm, procs=procs)
        return session_id, t0

    def cleanup(self) -> None:
        """Between repetitions: no recording session and no heartbeat left over."""
        self.db.execute("UPDATE recording_recordingsession SET status = 'aborted', stopped_at = now() "
                        "WHERE status = 'recording'")
        self.db.execute("DELETE FROM recording_engineheartbeat")


def exact(db, summary: dict, t0: float) -> str:
    """'' when the stopped session (end-to-end rates) holds every due sample once; else why not."""
    try:
        assert_complete(db, summary, t0=t0)
    except AssertionError as exc:
        return str(exc).splitlines()[0][:300] or "assertion failed"
    return ""


def exact_at_rates(db, summary: dict, t0: float, rates: dict[str, float]) -> str:
    """The same check at other rates: per sensor, the stored timestamps are the schedule's, each once."""
    from sensors.simulators import simulator_for

    session_id = summary["session_id"]
    rows = db.readings(session_id)
    until = datetime.fromisoformat(summary["stopped_at"]).timestamp()
    try:
        assert summary["total_readings"] == len(rows), f"summary {summary['total_readings']} vs {len(rows)} stored"
        assert summary["lost_readings"] == 0, f"lost_readings {summary['lost_readings']}"
        assert_seq_contiguous(rows, len(rows))
        for sensor, rate in rates.items():
            due = simulator_for(sensor, rate_hz=rate, t0=t0, rng=random.Random(0)).due(until)
            stored = Counter(round(r.timestamp * 1e6) for r in rows if r.sensor == sensor)
            assert stored == Counter(round(ts * 1e6) for ts, _ in due), (
                f"{sensor}: {sum(stored.values())} stored, {len(due)} due, "
                f"{len(set(stored) - {round(ts * 1e6) for ts, _ in due})} never due, "
                f"{sum(1 for n in stored.values() if n > 1)} twice"
            )
    except AssertionError as exc:
        return str(exc).splitlines()[0][:300] or "assertion failed"
    return ""


def fresh_database(name: str, *, port: int = 5432) -> PostgresDatabase:
    PostgresDatabase(name, port=port).drop()
    return PostgresDatabase.create(name, port=port)


def medians(rows: list[dict], keys: list[str]) -> dict:
    return {k: _bench.median([r[k] for r in rows if r.get(k) is not None]) for k in keys}


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    print(f"\n{title}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


# --- takeover ---------------------------------------------------------------------------------


def takeover_rep(stack: Stack, rep: int, *, frozen: bool) -> dict:
    first, second = stack.worker(), stack.worker()
    probe = Probe(stack.db)
    try:
        stack.wait_live(first, second)
        session_id, t0 = stack.recording(f"bench takeover {rep}", (first, second), warm=2.0)
        by_name = {engine_name(p): p for p in (first, second)}
        victim = by_name.pop(session_engine(stack.db, session_id))
        (survivor,) = by_name.values()
        row = {"rep": rep, "variant": "SIGSTOP" if frozen else "kill -9", "load": load(), "session": session_id}
        faulted = time.time()
        victim.signal(signal.SIGSTOP if frozen else signal.SIGKILL)
        if not frozen:
            # Reaped at once, as a supervisor would: a zombie still answers kill(pid, 0), and the
            # survivor would wait for the heartbeat to expire instead.
            victim.wait(timeout=5.0)
        try:
            claimed = poll(lambda: probe.one("SELECT engine FROM recording_recordingsession WHERE id = %s",
                                             (session_id,)) == engine_name(survivor), timeout=20, interval=0.02)
            stored = poll(lambda: probe.stored_after(session_id, faulted), timeout=20, interval=0.02)
        finally:
            if frozen:
                victim.signal(signal.SIGCONT)
        row["claim_s"] = claimed - faulted if claimed else None
        row["first_reading_s"] = stored - faulted if stored else None
        if frozen:
            # The woken worker lets go of the session (its flushes carry its name): give it a beat or two.
            time.sleep(2.0)
        time.sleep(1.0)
        summary = stack.api.stop(session_id)
        row["readings"] = summary["total_readings"]
        row["lost"] = summary["lost_readings"]
        row["problem"] = exact(stack.db, summary, t0) or "exact"
        return row
    finally:
        probe.close()
        for worker in (first, second):
            worker.stop()
        stack.cleanup()


def cmd_takeover(args, exits: ExitStack, logs: Path) -> dict:
    db = fresh_database("robotest_bf_takeover")
    exits.callback(db.drop)
    stack = Stack(exits, db, logs)
    result = {}
    for frozen in (False, True):
        rows = []
        for rep in range(args.repeat):
            rows.append(takeover_rep(stack, rep, frozen=frozen))
            print(json.dumps(rows[-1]), flush=True)
        name = "sigstop" if frozen else "kill9"
        print_table(f"takeover, {name}", rows, ["rep", "load", "claim_s", "first_reading_s", "readings", "lost", "problem"])
        result[name] = {"runs": rows, "median": medians(rows, ["claim_s", "first_reading_s"])}
    return result


# --- pg-restart -------------------------------------------------------------------------------


def outage_rep(stack: Stack, server: PrivatePostgres, worker, rep: int, *, outage: float | None) -> dict:
    session_id, t0 = stack.recording(f"bench pg {rep}", (worker,))
    probe = Probe(stack.db)
    mark = len(worker.output())
    sampler = GaugeSampler(worker.metrics_port)
    sampler.start()
    lost_before = scrape(worker.metrics_port).get('robotest_readings_lost_total{reason="buffer_full"}', 0.0)
    row = {"rep": rep, "fault": "restart" if outage is None else f"outage {outage:g} s", "load": load(),
           "session": session_id}
    last = probe.one("SELECT extract(epoch FROM max(timestamp))::float8 FROM recording_reading WHERE session_id = %s",
                     (session_id,))
    began = time.time()
    try:
        if outage is None:
            server.restart()
        else:
            server.stop()
            time.sleep(outage)
            server.start()
    finally:
        back = time.time()
    row["fault_s"] = back - began
    stored = poll(lambda: probe.stored_after(session_id, back), timeout=30, interval=0.02)
    line = poll(lambda: STORED_AGAIN.search(worker.output()[mark:]), timeout=30, interval=0.02)
    time.sleep(0.3)
    samples = sampler.finish()
    probe.close()
    match = STORED_AGAIN.search(worker.output()[mark:])
    row["first_reading_s"] = stored - back if stored else None
    row["log_line_s"] = line - back if line else None
    row["log_says_s"] = float(match.group(1)) if match else None
    row["peak_buffer"] = int(max((v for t, v in samples if t >= began), default=0))
    row["scrapes"] = len(samples)
    row["lost_metric"] = scrape(worker.metrics_port).get('robotest_readings_lost_total{reason="buffer_full"}', 0.0) \
        - lost_before
    if stored:
        # Everything due from the last reading stored before the fault to the first stored after
        # it: what the worker owed at its recovery, buffered or (during a backoff) not yet generated.
        row["owed_at_recovery"] = stack.db.execute(
            "SELECT count(*) FROM recording_reading WHERE session_id = %s AND timestamp > to_timestamp(%s) "
            "AND timestamp <= to_timestamp(%s)", (session_id, last, stored))[0][0]
    summary = stack.api.stop(session_id)
    row["readings"] = summary["total_readings"]
    row["lost_readings"] = summary["lost_readings"]
    row["problem"] = exact(stack.db, summary, t0) or "exact"
    return row


def cmd_pg_restart(args, exits: ExitStack, logs: Path) -> dict:
    server = PrivatePostgres().init()
    exits.callback(server.destroy)
    server.start()
    db = server.database("robotest_bf_pg")
    stack = Stack(exits, db, logs)
    worker = stack.worker()
    stack.wait_live(worker)
    result = {}
    columns = ["rep", "load", "fault_s", "first_reading_s", "log_line_s", "log_says_s", "peak_buffer", "owed_at_recovery",
               "lost_readings",
               "readings", "problem"]
    for name, outage in (("restart", None), ("outage", args.outage)):
        rows = []
        for rep in range(args.repeat):
            rows.append(outage_rep(stack, server, worker, rep, outage=outage))
            print(json.dumps(rows[-1]), flush=True)
        print_table(f"pg-restart, {name}", rows, columns)
        result[name] = {"runs": rows, "median": medians(rows, ["fault_s", "first_reading_s", "log_line_s",
                                                               "log_says_s", "peak_buffer", "owed_at_recovery"])}
    return result


# --- two-workers ------------------------------------------------------------------------------


def backend_cpu(db: PostgresDatabase, probe: Probe) -> dict[int, float]:
    """CPU seconds of each backend connected to the database now (the probe's own left out)."""
    probe.one("SELECT 1")
    rows = probe.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                              (db.name,)).fetchall()
    return {pid: cpu_seconds(pid) for (pid,) in rows}


def load_rep(stack: Stack, rigs: list[str], rep: int, *, workers: int, seconds: float, rates: dict) -> dict:
    procs = [stack.worker(**HIGH_RATES) for _ in range(workers)]
    probe = Probe(stack.db)
    try:
        stack.wait_live(*procs)
        row = {"rep": rep, "workers": workers, "load": load()}
        idle = {p.pid: cpu_seconds(p.pid) for p in procs}
        time.sleep(IDLE_SECONDS)
        cpu0 = {p.pid: cpu_seconds(p.pid) for p in procs}
        # What the workers cost with nothing to record (heartbeat, claims, wake-ups): the fixed part.
        row["idle_cores"] = sum(cpu0[pid] - idle[pid] for pid in cpu0) / IDLE_SECONDS
        stored0 = {p.pid: scrape(p.metrics_port).get(STORED_COUNTER, 0.0) for p in procs}
        flushes0 = sum(scrape(p.metrics_port).get(FLUSH_COUNT, 0.0) for p in procs)
        pg0 = backend_cpu(stack.db, probe)
        began = time.time()
        ids = {}
        for rig in rigs:
            session_id = stack.api.start(name=f"bench load {rep}", rig=rig)["session_id"]
            ids[session_id] = stack.db.session(session_id)["started_at"]
        time.sleep(seconds)
        lag = {i: time.time() - probe.one("SELECT extract(epoch FROM max(timestamp))::float8 FROM recording_reading "
                                          "WHERE session_id = %s", (i,)) for i in ids}
        owners = Counter(session_engine(stack.db, i) for i in ids)
        summaries = [stack.api.stop(i) for i in ids]
        pg1 = backend_cpu(stack.db, probe)
        wall = time.time() - began
        cpu = {p.pid: cpu_seconds(p.pid) - cpu0[p.pid] for p in procs}
        stored = {p.pid: scrape(p.metrics_port).get(STORED_COUNTER, 0.0) - stored0[p.pid] for p in procs}
        flushes = sum(scrape(p.metrics_port).get(FLUSH_COUNT, 0.0) for p in procs) - flushes0
        readings = sum(s["total_readings"] for s in summaries)
        row.update(
            wall_s=wall,
            readings=readings,
            worker_cpu_s=sum(cpu.values()),
            cpu_per_million=sum(cpu.values()) / readings * 1e6,
            pg_cpu_s=sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items()),
            pg_backends=f"{len(pg0)}->{len(pg1)} ({len(set(pg0) - set(pg1))} gone)",
            sessions_split="/".join(str(owners.get(engine_name(p), 0)) for p in procs),
            readings_split="/".join(f"{stored[p.pid]:.0f}" for p in procs),
            cpu_split="/".join(f"{cpu[p.pid]:.2f}" for p in procs),
            max_lag_s=max(lag.values()),
            # Group commit: a flush takes what came due during the one before, so more, smaller
            # flushes where each engine's database thread serves fewer sessions.
            flushes=int(flushes),
            mean_batch=sum(stored.values()) / flushes if flushes else None,
        )
        row["pg_cpu_per_million"] = row["pg_cpu_s"] / readings * 1e6
        problems = [p for s in summaries if (p := exact_at_rates(stack.db, s, ids[s["session_id"]], rates))]
        row["problem"] = "; ".join(problems) or "exact"
        return row
    finally:
        probe.close()
        for proc in procs:
            proc.stop()
        stack.cleanup()


def cmd_two_workers(args, exits: ExitStack, logs: Path) -> dict:
    db = fresh_database("robotest_bf_two")
    exits.callback(db.drop)
    stack = Stack(exits, db, logs, **HIGH_RATES)
    extra = [f"bench-{i}" for i in range(1, args.sessions)]
    create_simulated_rigs(SimpleNamespace(db=db), extra)
    rigs = ["sim", *extra]
    rates = {"force": float(HIGH_RATES["FORCE_SENSOR_HZ"]), "motor": float(HIGH_RATES["MOTOR_SENSOR_HZ"]),
             "camera": float(HIGH_RATES["CAMERA_SENSOR_HZ"])}
    rows = []
    for rep in range(args.repeat):
        for workers in (1, 2):
            rows.append(load_rep(stack, rigs, rep, workers=workers, seconds=args.seconds, rates=rates))
            print(json.dumps(rows[-1]), flush=True)
    print_table("two-workers", rows, ["rep", "workers", "load", "idle_cores", "readings", "worker_cpu_s", "cpu_per_million",
                                      "pg_cpu_s", "pg_cpu_per_million", "sessions_split", "readings_split",
                                      "cpu_split", "flushes", "mean_batch", "max_lag_s", "problem"])
    keys = ["idle_cores", "worker_cpu_s", "cpu_per_million", "pg_cpu_s", "pg_cpu_per_million", "readings", "flushes", "mean_batch",
            "max_lag_s"]
    one = medians([r for r in rows if r["workers"] == 1], keys)
    two = medians([r for r in rows if r["workers"] == 2], keys)
    ratio = {k: two[k] / one[k] for k in ("cpu_per_million", "pg_cpu_per_million") if one[k]}
    print(f"\nmedians: one {json.dumps(one)}\n         two {json.dumps(two)}\nratio two/one {json.dumps(ratio)}")
    return {"runs": rows, "median_one": one, "median_two": two, "ratio_two_over_one": ratio}


COMMANDS = {"takeover": cmd_takeover, "pg-restart": cmd_pg_restart, "two-workers": cmd_two_workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--outage", type=float, default=10.0, help="pg-restart: seconds the server is stopped")
    parser.add_argument("--seconds", type=float, default=20.0, help="two-workers: seconds of each recording")
    parser.add_argument("--sessions", type=int, default=4, help="two-workers: simulated sessions recording at once")
    parser.add_argument("--json", metavar="FILE", help="also write the machine, arguments and every run as JSON")
    args = parser.parse_args()

    facts = _bench.machine()
    facts.pop("database", None)
    facts["postgresql"] = PostgresDatabase("postgres").execute("SHOW server_version")[0][0]
    print("machine:", json.dumps(facts), flush=True)
    logs = Path(f"/tmp/bfbench-{int(time.time())}-{args.command}")
    logs.mkdir(parents=True)
    print(f"process logs in {logs}", flush=True)
    with ExitStack() as exits:
        result = COMMANDS[args.command](args, exits, logs)
    facts["load_after"] = load()
    print("\nJSON:", json.dumps({"machine": facts, "args": vars(args), "result": result}), flush=True)
    _bench.save_json(args.json, facts, args, [result])


if __name__ == "__main__":
    main()
