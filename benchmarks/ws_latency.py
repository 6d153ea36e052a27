"""Live feed latency: a reading's `timestamp` to its arrival at a WebSocket client, across processes.

Production shape on one machine: `daphne robotest_site.asgi:application` (`--daphnes`, default 1)
and `manage.py run_simulators` on the benchmark database `robotest_wsbench` (dropped and migrated
first) and Redis database 10 (flushed), settings `robotest_site.settings.production`. A superuser
and its DRF token are made with `manage.py shell -c`. Clients are `websockets` connections with
`Authorization: Token …`, many per process, in `--client-procs` processes of this script.

Each repetition: fresh client processes connect (and subscribe with `{"batch": true}` in batch
scenarios), `POST /api/v1/sessions/start {"rig": "sim"}` records for `--seconds`, then
`POST /api/v1/sessions/stop` answers once the engine stored the last reading and completed the
session. Latency = time.time() when a frame arrives at the client − the reading's `timestamp`
(its scheduled sample time); readings due in the first `--warmup` seconds (the engine noticing
the session) are left out of the steady figures but counted everywhere else.

Where the time goes (`--probe`): a thread of this process joins the live group on the same Redis
layer, as one more listener, and notes when each `sensor.batch` event reaches it. "layer" latency
(timestamp → event read off Redis by a listener that does nothing else) is the engine's share:
waiting for the batch, the database transaction, the publish; the rest, up to the client, is
daphne's and the client's. The probe costs 15–20 % of a core at 10,000 readings/s, taken from the
same 2 cores, so the figures to quote come from runs without it.

Every frame is counted: each client must receive seqs 1..reading_count of the session, contiguous,
no duplicates, no `lag` frame. The first client of each process parses every reading (seq and
timestamp); the others check each frame's first and last seq and its reading count and match the
frame's hash against the frames the first client verified (a batch frame is the same text for
every client), which keeps the clients' CPU low enough not to starve the server on 2 cores. A
client that fell behind gets its queued batches joined into frames no other client gets: those
it keeps, and parses after the session (every seq, contiguous).

    .venv/bin/python benchmarks/ws_latency.py --scenarios seed,batch10,batch50 --repeat 3
    .venv/bin/python benchmarks/ws_latency.py --scenarios batch50 --repeat 1 --profile /tmp/wsprof

CPU of daphne, run_simulators, the client processes, Redis and PostgreSQL is read from
/proc/<pid>/stat over the steady window, as % of one core. Busy time of the machine that none of
them accounts for is "unaccounted": above `--max-unaccounted` (another session's tests or
benchmarks on the same 2 cores) the repetition is marked DISTURBED, left out of the medians and
run again, up to `--max-attempts`.

`--no-rules` stores a disabled rule for each default code (no validation frames), `--env` passes
settings to daphne and run_simulators, `--timeline PREFIX` writes each frame's arrival and oldest
reading, `--profile DIR` records daphne and run_simulators with `py-spy --nonblocking` over each
scenario's first repetition and prints summaries (benchmarks/profile_summary.py); py-spy takes CPU
of its own, so do not quote the latencies of a profiled run.
"""

import argparse
import array
import asyncio
import bisect
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench

PG_URL = "postgres://postgres@127.0.0.1:5432/robotest_wsbench"
REDIS_URL = "redis://127.0.0.1:6379/10"
SETTINGS = "robotest_site.settings.production"
LOG_DIR = Path("/tmp")
# Latency histogram bins: 10 µs.
BIN = 1e-5

SCENARIOS = {
    # The seed's rates, one client taking every reading as its own frame.
    "seed": {"rates": (10, 5, 1), "clients": 1, "batch": False, "seconds": 30.0, "target_p99": 0.020, "procs": 1},
    # ≈ 10,000 readings/s on the sim rig, batch frames.
    "batch10": {"rates": (8000, 1900, 100), "clients": 10, "batch": True, "seconds": 20.0, "target_p99": 0.050, "procs": 2},
    "batch50": {"rates": (8000, 1900, 100), "clients": 50, "batch": True, "seconds": 20.0, "target_p99": 0.500, "procs": 2},
}


# --- Client processes (no Django here) -----------------------------------------------------------

SEQ_KEY = b',"seq":'
SESSION_KEY = b'"session_id":'
DATA_PREFIX = b'{"type":"sensor_data'
SEQ_RE = re.compile(rb',"seq":(\d+)\}')
TS_RE = re.compile(rb'\{"timestamp":([^,]+),')


class Client:
    """One connection: notes each data frame's arrival, session, first seq, size and hash."""

    def __init__(self, index: int, audit: bool, auditor: "Client | None" = None) -> None:
        self.index = index
        self.audit = audit
        self.auditor = auditor or self
        # Frames the auditor had not verified when they came (a client that fell behind gets its
        # queued batches joined into frames of its own): kept until the auditor has the same
        # frame, else checked here once the session is over.
        self.pending: dict[int, bytes] = {}
        self.self_verified: dict[int, tuple[int, int, int]] = {}
        self.frames: list[tuple[float, int, int, int, int]] = []  # arrival, session, first seq, n, hash
        self.next_seq: dict[int, int] = {}
        self.anomalies: list[str] = []
        self.missing = 0
        self.duplicated = 0
        self.kinds: Counter = Counter()
        self.lag_dropped = 0
        self.completed: set[int] = set()
        self.bytes = 0
        self.closed: str | None = None
        # The auditor's view: every reading's timestamp by session and seq, and the frames it verified.
        self.ts: dict[int, array.array] = {}
        self.ts_extra: dict[tuple[int, int], float] = {}
        self.verified: dict[int, tuple[int, int, int]] = {}
        self.changed = asyncio.Event()
        self.ws = None
        self.task: asyncio.Task | None = None

    async def open(self, url: str, token: str, batch: bool) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            url, additional_headers={"Authorization": f"Token {token}"}, compression=None, max_size=None,
            ping_interval=None, open_timeout=60, close_timeout=5, proxy=None,
        )
        first = json.loads(await self.ws.recv())
        if first.get("type") != "connection_established":
            raise SystemExit(f"client {self.index}: expected connection_established, got {first}")
        if batch:
            await self.ws.send(json.dumps({"type": "subscribe", "data": {"batch": True}}))
            answer = json.loads(await self.ws.recv())
            if answer.get("type") != "subscription_confirmed":
                raise SystemExit(f"client {self.index}: expected subscription_confirmed, got {answer}")
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        recv = self.ws.recv
        try:
            while True:
                message = await recv(decode=False)
                arrival = time.time()
                self.bytes += len(message)
                if message.startswith(DATA_PREFIX):
                    self._data(arrival, message)
                else:
                    self._other(message)
        except ConnectionClosed as exc:
            self.closed = repr(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported, not raised in a reader task
            self.closed = f"reader failed: {exc!r}"
        self.changed.set()

    def _data(self, arrival: float, message: bytes) -> None:
        n = message.count(SEQ_KEY)
        i = message.find(SEQ_KEY)
        first = int(message[i + 7:message.index(b"}", i)])
        j = message.rfind(SEQ_KEY)
        last = int(message[j + 7:message.index(b"}", j)])
        k = message.rfind(SESSION_KEY, 0, j)
        session = int(message[k + 13:j])
        digest = hash(message)
        if self.audit:
            self._verify(session, first, n, digest, message)
        elif digest not in self.auditor.verified:
            self.pending[digest] = message
            if len(self.pending) > 200:
                self.pending = {d: m for d, m in self.pending.items() if d not in self.auditor.verified}
        expected = self.next_seq.get(session, 1)
        if last != first + n - 1:
            self.anomalies.append(f"frame seqs {first}..{last} hold {n} readings")
        if first > expected:
            self.missing += first - expected
            self.anomalies.append(f"session {session}: seqs {expected}..{first - 1} missing")
        elif first < expected:
            self.duplicated += min(n, expected - first)
            self.anomalies.append(f"session {session}: seq {first} again or out of order (expected {expected})")
        self.next_seq[session] = max(expected, last + 1)
        self.frames.append((arrival, session, first, n, digest))
        self.changed.set()

    def _verify(self, session: int, first: int, n: int, digest: int, message: bytes) -> None:
        seqs = [int(s) for s in SEQ_RE.findall(message)]
        stamps = [float(t) for t in TS_RE.findall(message)]
        if len(seqs) != n or len(stamps) != n or seqs != list(range(first, first + n)):
            self.anomalies.append(f"session {session}: frame from seq {first} is not {n} contiguous readings")
            return
        self.verified[digest] = (session, first, n)
        column = self.ts.setdefault(session, array.array("d"))
        if first == len(column) + 1:
            column.extend(stamps)
        else:
            for offset, stamp in enumerate(stamps):
                self.ts_extra[(session, first + offset)] = stamp

    def check_pending(self) -> None:
        """After the session: the frames only this client got, each a run of contiguous seqs."""
        for digest, message in self.pending.items():
            if digest in self.auditor.verified:
                continue
            seqs = [int(s) for s in SEQ_RE.findall(message)]
            session = int(message[message.rfind(SESSION_KEY) + 13:].split(b",", 1)[0])
            if seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))):
                self.self_verified[digest] = (session, seqs[0], len(seqs))
        self.pending.clear()

    def _other(self, message: bytes) -> None:
        kind = message[9:message.index(b'"', 9)].decode() if message.startswith(b'{"type":"') else "?"
        self.kinds[kind] += 1
        if kind == "lag":
            dropped = json.loads(message)["data"]["dropped"]
            self.lag_dropped += dropped
            self.anomalies.append(f"lag frame: {dropped} frames dropped by the server")
        elif kind == "system_status":
            data = json.loads(message)["data"]
            if data.get("status") == "completed" and data.get("session_id") is not None:
                self.completed.add(data["session_id"])
                self.changed.set()
        elif kind == "error":
            self.anomalies.append(f"error frame: {message[:200]!r}")

    def done(self, session: int) -> bool:
        # The completed status is published after the session's last readings: once it is here,
        # a reading not here yet was lost on the way.
        return self.closed is not None or session in self.completed


def _percentile(hist: Counter, fraction: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    wanted = fraction * total
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= wanted:
            return (key + 1) * BIN  # the bin's upper edge: never flatters
    return None


def _summary(hist: Counter, worst: float) -> dict:
    return {
        "n": sum(hist.values()),
        "p50": _percentile(hist, 0.50),
        "p99": _percentile(hist, 0.99),
        "p999": _percentile(hist, 0.999),
        "max": worst if hist else None,
    }


class Latencies:
    """Latencies counted in BIN-wide bins: all of them, and the steady ones (after the warm-up)."""

    def __init__(self) -> None:
        self.all, self.steady = Counter(), Counter()
        self.worst_all = self.worst_steady = 0.0

    def add(self, latency: float, *, steady: bool) -> None:
        key = int(latency / BIN) if latency > 0 else 0
        self.all[key] += 1
        self.worst_all = max(self.worst_all, latency)
        if steady:
            self.steady[key] += 1
            self.worst_steady = max(self.worst_steady, latency)


def _latencies(clients: list[Client], session: int, steady_from: float) -> dict:
    """Every reading's latency at every client, from the auditor's timestamps."""
    auditor = clients[0]
    column = auditor.ts.get(session, array.array("d"))
    first_steady = bisect.bisect_left(column, steady_from) + 1  # seq of the first steady reading
    overall = Latencies()
    per_client = []
    for client in clients:
        mine = Latencies()
        unverified = unknown_ts = 0
        for arrival, sess, first, n, digest in client.frames:
            if sess != session:
                continue
            if client is not auditor and (session, first, n) not in (
                auditor.verified.get(digest), client.self_verified.get(digest)
            ):
                unverified += 1
            for seq in range(first, first + n):
                if seq <= len(column):
                    stamp = column[seq - 1]
                else:
                    stamp = auditor.ts_extra.get((session, seq))
                    if stamp is None:
                        unknown_ts += 1
                        continue
                overall.add(arrival - stamp, steady=seq >= first_steady)
                mine.add(arrival - stamp, steady=seq >= first_steady)
        per_client.append(
            {
                "client": client.index,
                "received": sum(n for _, s, _, n, _ in client.frames if s == session),
                "frames": sum(1 for f in client.frames if f[1] == session),
                "last_seq": client.next_seq.get(session, 1) - 1,
                "missing": client.missing,
                "duplicated": client.duplicated,
                "lag_dropped": client.lag_dropped,
                "unverified_frames": unverified,
                "unknown_timestamp": unknown_ts,
                "completed_seen": session in client.completed,
                "closed": client.closed,
                "other_frames": dict(client.kinds),
                "bytes": client.bytes,
                "anomalies": client.anomalies[:5],
                "steady": _summary(mine.steady, mine.worst_steady),
            }
        )
    return {
        "first_steady_seq": first_steady,
        "steady_hist": dict(overall.steady),
        "all_hist": dict(overall.all),
        "worst_steady": overall.worst_steady,
        "worst_all": overall.worst_all,
        "clients": per_client,
    }


def _write_timeline(auditor: Client, session: int, path: str) -> None:
    """One line per data frame of the first client: arrival, oldest and newest reading's timestamp, readings."""
    column = auditor.ts.get(session, array.array("d"))
    with open(path, "w") as fh:
        for arrival, sess, first, n, _ in auditor.frames:
            if sess == session and first + n - 1 <= len(column):
                fh.write(f"{arrival:.6f} {column[first - 1]:.6f} {column[first + n - 2]:.6f} {n}\n")


async def _worker(spec: dict) -> None:
    auditor = Client(spec["first_index"], audit=True)
    clients = [auditor] + [Client(spec["first_index"] + i, audit=False, auditor=auditor) for i in range(1, spec["clients"])]
    # Connect in small waves: 50 handshakes at once would queue behind daphne's one sync thread
    # (token lookups) for no benefit.
    for start in range(0, len(clients), 10):
        await asyncio.gather(*(c.open(spec["url"], spec["token"], spec["batch"]) for c in clients[start:start + 10]))
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    command = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    session, count = command["session"], command["count"]
    deadline = time.monotonic() + command["timeout"]
    for client in clients:
        mine = deadline
        while not client.done(session) and time.monotonic() < mine:
            if client.next_seq.get(session, 1) > count:
                # Every reading is here: the status frame right behind them gets 2 s more.
                mine = min(mine, time.monotonic() + 2.0)
            client.changed.clear()
            try:
                await asyncio.wait_for(client.changed.wait(), timeout=max(mine - time.monotonic(), 0.01))
            except TimeoutError:
                pass
    for client in clients:
        if client.task is not None:
            client.task.cancel()
    await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
    for client in clients:
        client.check_pending()
    result = _latencies(clients, session, command["steady_from"])
    if spec.get("timeline"):
        _write_timeline(clients[0], session, spec["timeline"])
    print(json.dumps(result), flush=True)


# --- The controller ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="seed,batch10,batch50", help=f"comma list of {', '.join(SCENARIOS)}")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, help="recording time of each repetition (default: the scenario's)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="readings due in the session's first WARMUP s are left out of the steady figures")
    parser.add_argument("--clients", type=int, help="override the scenario's number of clients")
    parser.add_argument("--client-procs", type=int, help="client processes (default: 1 for one client, else 2)")
    parser.add_argument("--daphnes", type=int, default=1, help="daphne processes; clients are spread over them")
    parser.add_argument("--settings", default=SETTINGS, help="DJANGO_SETTINGS_MODULE of daphne and run_simulators")
    parser.add_argument("--rates", help="override the scenario's FORCE,MOTOR,CAMERA rates in Hz (e.g. 8100,1900,0.001)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of daphne and run_simulators (FORCE_THRESHOLD_HIGH=1000: no force alerts)")
    parser.add_argument("--no-rules", action="store_true",
                        help="store a disabled rule for each default code: no validation results, no validation frames")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="after the stop, how long clients may take to receive the session's last reading")
    parser.add_argument("--max-unaccounted", type=float, default=20.0,
                        help="a repetition during which other processes took more than this %% of a core is run again")
    parser.add_argument("--max-attempts", type=int, default=6, help="repetitions per scenario at most, disturbed included")
    parser.add_argument("--probe", action="store_true",
                        help="also time each reading's arrival on the Redis layer (costs CPU on the same cores)")
    parser.add_argument("--timeline", metavar="PREFIX",
                        help="write each data frame of each process's first client to PREFIX_<scenario>_<rep>_<process>.txt")
    parser.add_argument("--profile", metavar="DIR", help="py-spy daphne and run_simulators in each first repetition")
    parser.add_argument("--json", metavar="FILE", help="also write every repetition as JSON")
    parser.add_argument("--database-url", default=PG_URL, help="the benchmark's PostgreSQL database (dropped and migrated)")
    parser.add_argument("--redis-url", default=REDIS_URL, help="the benchmark's Redis database (flushed)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    globals().update(PG_URL=args.database_url, REDIS_URL=args.redis_url)
    if args.worker:
        asyncio.run(_worker(json.loads(args.worker)))
        return

    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}: choose from {', '.join(SCENARIOS)}")
    _bench.configure(PG_URL, fresh=True, redis_url=REDIS_URL)
    facts = _bench.machine()
    print("machine:", json.dumps(facts), flush=True)
    token = _superuser_token()
    if args.no_rules:
        _disable_default_rules()
    report = {"machine": facts, "args": {k: v for k, v in vars(args).items() if k != "worker"}, "scenarios": {}}
    for name in names:
        scenario = dict(SCENARIOS[name])
        if args.seconds:
            scenario["seconds"] = args.seconds
        if args.clients:
            scenario["clients"] = args.clients
        if args.rates:
            scenario["rates"] = tuple(float(r) for r in args.rates.split(","))
        scenario["procs"] = args.client_procs or (1 if scenario["clients"] == 1 else 2)
        reps = _run_scenario(name, scenario, args, token)
        report["scenarios"][name] = {"scenario": scenario, "reps": reps, "median": _print_median(name, scenario, reps)}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


def _superuser_token() -> str:
    code = (
        "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
        "U = get_user_model(); u = U.objects.filter(username='wsbench').first() or "
        "U.objects.create_superuser('wsbench', 'wsbench@example.com', 'wsbench-password'); "
        "print(Token.objects.get_or_create(user=u)[0].key)"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=_bench.ROOT, env=_env(SETTINGS, (10, 5, 1)),
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _disable_default_rules() -> None:
    """A disabled stored rule with a default's code removes that default from new sessions' snapshots."""
    from sensors.models import ValidationRule
    from sensors.rules import default_rules

    ValidationRule.objects.bulk_create(
        [ValidationRule(code=rule["code"], sensor_type=rule["sensor_type"], enabled=False) for rule in default_rules()]
    )


def _env(settings: str, rates: tuple) -> dict[str, str]:
    env = _bench.bench_env(PG_URL, REDIS_URL)
    force, motor, camera = rates
    env.update(
        DJANGO_SETTINGS_MODULE=settings,
        FORCE_SENSOR_HZ=str(force), MOTOR_SENSOR_HZ=str(motor), CAMERA_SENSOR_HZ=str(camera),
        ROBOTEST_HTTPS="false",  # plain HTTP on loopback, no redirect under the production settings
    )
    return env


def _run_scenario(name: str, scenario: dict, args, token: str) -> list[dict]:
    from sessions.reads.sessions import engine_alive

    _bench._flush_redis(REDIS_URL)
    env = _env(args.settings, scenario["rates"])
    env.update(item.split("=", 1) for item in args.env)
    servers = []
    for i in range(args.daphnes):
        port = _bench.free_port()
        log = LOG_DIR / f"wsbench_daphne_{name}_{i}.log"
        proc = subprocess.Popen(
            [str(_bench.ROOT / ".venv/bin/daphne"), "-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"],
            cwd=_bench.ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )
        servers.append({"proc": proc, "port": port, "log": log})
    sim_log = LOG_DIR / f"wsbench_sim_{name}.log"
    sim = subprocess.Popen(
        [sys.executable, "manage.py", "run_simulators"], cwd=_bench.ROOT, env=env,
        stdout=sim_log.open("w"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{servers[0]['port']}"
    print(
        f"\n== {name}: rates force/motor/camera {scenario['rates']} Hz, {scenario['clients']} client(s) in "
        f"{scenario['procs']} process(es), batch={scenario['batch']}, {scenario['seconds']:.0f} s, "
        f"{' '.join(args.env) + ', ' if args.env else ''}{'no rules, ' if args.no_rules else ''}"
        f"daphne pid(s) {[s['proc'].pid for s in servers]} (log {servers[0]['log']}), run_simulators pid {sim.pid} "
        f"(log {sim_log})",
        flush=True,
    )
    reps = []
    try:
        for server in servers:
            _bench.wait_ready(f"http://127.0.0.1:{server['port']}")
        deadline = time.monotonic() + 30
        while not engine_alive():
            if time.monotonic() > deadline or sim.poll() is not None:
                raise SystemExit(f"run_simulators did not beat within 30 s: see {sim_log}")
            time.sleep(0.2)
        # On a shared machine a repetition that ran beside something else is noted and run again,
        # up to --max-attempts in all.
        rep = 0
        while sum(not r["disturbed"] for r in reps) < args.repeat and rep < max(args.max_attempts, args.repeat):
            profile = Path(args.profile) if args.profile and rep == 0 else None
            row = _run_rep(name, scenario, args, token, base, servers, sim, sim_log, rep, profile)
            row["disturbed"] = row["cpu_percent"]["unaccounted"] > args.max_unaccounted
            reps.append(row)
            _print_rep(name, rep, row, scenario)
            rep += 1
    finally:
        for proc in [sim] + [s["proc"] for s in servers]:
            proc.send_signal(signal.SIGTERM)
        for proc in [sim] + [s["proc"] for s in servers]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return reps


def _run_rep(name, scenario, args, token, base, servers, sim, sim_log, rep, profile) -> dict:
    import requests

    from sessions.models import Reading, RecordingSession

    _bench.clear_readings()
    logs = [s["log"] for s in servers] + [sim_log]
    log_offsets = {log: log.stat().st_size for log in logs}
    headers = {"Authorization": f"Token {token}"}
    probe = LayerProbe() if args.probe else None
    if probe is not None:
        probe.start()
        probe.ready.wait(timeout=30)
    workers = _start_workers(name, scenario, token, servers, rep, args.timeline)
    spies = []
    try:
        answer = requests.post(f"{base}/api/v1/sessions/start", json={"rig": "sim"}, headers=headers, timeout=30)
        answer.raise_for_status()
        session_id = answer.json()["session_id"]
        if probe is not None:
            probe.session = session_id
        started = RecordingSession.objects.get(pk=session_id).started_at.timestamp()
        steady_from = started + args.warmup
        _sleep_until(steady_from)
        watched = {"daphne": [s["proc"].pid for s in servers], "run_simulators": [sim.pid],
                   "clients": [w.pid for w in workers], "this process (probe)": [os.getpid()]}
        spies = _start_spies(profile, name, servers, sim, scenario["seconds"] - args.warmup) if profile else []
        cpu_before = _cpu_snapshot(watched)
        _sleep_until(started + scenario["seconds"])
        cpu_after = _cpu_snapshot(watched)
        stop_sent = time.time()
        if probe is not None:
            probe.stopping.set()
        answer = requests.post(f"{base}/api/v1/sessions/stop", json={"session_id": session_id}, headers=headers,
                               timeout=120)
        answer.raise_for_status()
        stop_answered = time.time()
        session = RecordingSession.objects.get(pk=session_id)
        count = session.reading_count
        stored = Reading.objects.filter(session_id=session_id).count()
        command = json.dumps({"session": session_id, "count": count, "steady_from": steady_from,
                              "timeout": args.drain_timeout})
        results = []
        for worker in workers:
            worker.stdin.write(command + "\n")
            worker.stdin.flush()
        for worker in workers:
            line = worker.stdout.readline()
            if not line:
                raise SystemExit(f"a client process ended without a result: see {LOG_DIR}/wsbench_client_*.log")
            results.append(json.loads(line))
    finally:
        for worker in workers:
            # A client process still waiting for its command (the repetition failed) reads EOF and ends.
            worker.stdin.close()
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        for spy in spies:
            spy.wait(timeout=60)
    if profile:
        for label in ("daphne", "run_simulators"):
            path = profile / f"{name}_{label}.txt"
            if path.exists():
                print(f"-- py-spy {label} ({path})", flush=True)
                subprocess.run([sys.executable, str(Path(__file__).parent / "profile_summary.py"), str(path), "--top", "40"], check=False)
    layer = None
    if probe is not None:
        probe.join(timeout=30)
        layer = probe.summary(session_id, steady_from)
    steady = Counter()
    everything = Counter()
    clients = []
    for result in results:
        steady.update({int(k): v for k, v in result["steady_hist"].items()})
        everything.update({int(k): v for k, v in result["all_hist"].items()})
        clients.extend(result["clients"])
    duration = session.stopped_at.timestamp() - started
    cpu = _cpu_percent(cpu_before, cpu_after)
    log_lines = _new_log_lines(log_offsets)
    store_failures = _count_in(sim_log, log_offsets[sim_log], "could not store") + _count_in(
        sim_log, log_offsets[sim_log], "cannot be stored")
    lossless = all(
        c["received"] == count and c["last_seq"] == count and not c["missing"] and not c["duplicated"]
        and not c["lag_dropped"] and not c["unverified_frames"] and not c["unknown_timestamp"] and c["completed_seen"]
        for c in clients
    )
    return {
        "rep": rep,
        "session_id": session_id,
        "reading_count": count,
        "stored": stored,
        "rate": count / duration,
        "duration_s": duration,
        "stop_call_s": stop_answered - stop_sent,
        "steady": _summary(steady, max(r["worst_steady"] for r in results)),
        "all": _summary(everything, max(r["worst_all"] for r in results)),
        "layer": layer,
        "client_p99_range": [min(c["steady"]["p99"] or 0 for c in clients), max(c["steady"]["p99"] or 0 for c in clients)],
        "lossless": lossless and stored == count,
        "clients": clients,
        "frames_per_client_s": _bench.median([c["frames"] for c in clients]) / duration,
        "mb_per_s_all_clients": sum(c["bytes"] for c in clients) / duration / 1e6,
        "cpu_percent": cpu,
        "log_lines": log_lines,
        "store_failures": store_failures,
        "profiled": bool(profile),
    }


class LayerProbe(threading.Thread):
    """A listener of the live group on its own event loop: when each reading reaches the layer."""

    def __init__(self) -> None:
        super().__init__(name="layer-probe", daemon=True)
        self.events: list[tuple[float, int, int, list[float]]] = []  # arrival, session, first seq, timestamps
        self.session: int | None = None
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - reported with the results
            self.error = repr(exc)
            self.ready.set()

    async def _main(self) -> None:
        from channels_redis.core import RedisChannelLayer

        from sessions.live import events

        layer = RedisChannelLayer(hosts=[REDIS_URL], capacity=1000, expiry=10)
        channel = await layer.new_channel()
        await layer.group_add(events.LIVE_GROUP, channel)
        self.ready.set()
        try:
            while True:
                if self.stopping.is_set():
                    try:
                        message = await asyncio.wait_for(layer.receive(channel), timeout=10)
                    except TimeoutError:
                        self.error = "no completed status on the layer within 10 s of the stop"
                        return
                else:
                    message = await layer.receive(channel)
                arrival = time.time()
                if message["type"] == "sensor.batch":
                    stamps = [float(t) for t in TS_RE.findall(",".join(message["lines"]).encode())]
                    self.events.append((arrival, message["session_id"], message["first_seq"], stamps))
                elif (message["type"] == "system.status" and message.get("session_id") == self.session
                      and message["data"].get("status") == "completed"):
                    return
        finally:
            await layer.group_discard(events.LIVE_GROUP, channel)

    def summary(self, session: int, steady_from: float) -> dict:
        latencies = Latencies()
        seqs = 0
        for arrival, sess, first, stamps in self.events:
            if sess != session:
                continue
            seqs += len(stamps)
            for stamp in stamps:
                latencies.add(arrival - stamp, steady=stamp >= steady_from)
        batch = [len(s) for _, sess, _, s in self.events if sess == session]
        return {
            "readings": seqs,
            "events": len(batch),
            "median_event_readings": _bench.median(batch),
            "steady": _summary(latencies.steady, latencies.worst_steady),
            "all": _summary(latencies.all, latencies.worst_all),
            "error": self.error,
        }


def _start_workers(name: str, scenario: dict, token: str, servers: list[dict], rep: int, timeline: str | None) -> list:
    total, procs = scenario["clients"], scenario["procs"]
    workers = []
    first = 0
    for p in range(procs):
        count = total // procs + (1 if p < total % procs else 0)
        server = servers[p % len(servers)]
        spec = {"url": f"ws://127.0.0.1:{server['port']}/ws/sensor-data", "token": token, "clients": count,
                "batch": scenario["batch"], "first_index": first,
                "timeline": f"{timeline}_{name}_{rep}_{p}.txt" if timeline else None}
        first += count
        log = LOG_DIR / f"wsbench_client_{name}_{rep}_{p}.log"
        workers.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(spec)], cwd=_bench.ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"),
        ))
    for worker in workers:
        line = worker.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise SystemExit(f"a client process did not connect: see {LOG_DIR}/wsbench_client_{name}_{rep}_*.log")
    return workers


def _start_spies(profile: Path, name: str, servers: list[dict], sim, seconds: float) -> list:
    profile.mkdir(parents=True, exist_ok=True)
    spies = []
    for label, pid in (("daphne", servers[0]["proc"].pid), ("run_simulators", sim.pid)):
        spies.append(subprocess.Popen(
            [str(_bench.ROOT / ".venv/bin/py-spy"), "record", "--nonblocking", "--format", "raw", "--threads",
             "--rate", "200", "--duration", str(max(int(seconds), 1)), "-o", str(profile / f"{name}_{label}.txt"),
             "--pid", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
    return spies


def _sleep_until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)


# --- CPU, from /proc -------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _pids_named(comm: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _cpu_snapshot(watched: dict[str, list[int]]) -> dict:
    groups = {**watched, "redis": _pids_named("redis-server"), "postgres": _pids_named("postgres")}
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return {
        "time": time.monotonic(),
        "groups": {g: {pid: _ticks(pid) for pid in pids} for g, pids in groups.items()},
        "machine_busy": sum(fields) - fields[3] - fields[4],
        "machine_total": sum(fields),
    }


def _cpu_percent(before: dict, after: dict) -> dict:
    """Each group's CPU over the window as % of one core; the machine's busy share of all cores."""
    wall = after["time"] - before["time"]
    out = {}
    for group, pids in after["groups"].items():
        ticks = 0
        for pid, end in pids.items():
            if end is None:
                continue
            start = before["groups"].get(group, {}).get(pid)
            # A process (a postgres backend) born in the window counts from 0; one that died is lost.
            ticks += end - (start or 0)
        out[group] = 100.0 * ticks / _TICK / wall
    total = after["machine_total"] - before["machine_total"]
    out["machine_busy_of_all_cores"] = 100.0 * (after["machine_busy"] - before["machine_busy"]) / total if total else 0.0
    # Busy time of the machine no watched process accounts for: something else ran (another
    # benchmark, a test run) or, at a few %, the kernel and short-lived processes.
    out["unaccounted"] = out["machine_busy_of_all_cores"] * (os.cpu_count() or 1) - sum(out[g] for g in after["groups"])
    return out


def _count_in(log: Path, offset: int, text: str) -> int:
    with log.open(errors="replace") as fh:
        fh.seek(offset)
        return sum(text in line for line in fh)


def _new_log_lines(offsets: dict[Path, int]) -> dict[str, list[str]]:
    """Warnings, errors and channel-over-capacity lines the processes logged during the repetition."""
    found = {}
    for log, offset in offsets.items():
        with log.open(errors="replace") as fh:
            fh.seek(offset)
            lines = [line.rstrip() for line in fh if any(w in line for w in (" WARNING ", " ERROR ", "Traceback", "over capacity"))]
        if lines:
            found[log.name] = lines[:10] + ([f"... {len(lines) - 10} more"] if len(lines) > 10 else [])
    return found


# --- Output ------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f}"


def _print_rep(name: str, rep: int, row: dict, scenario: dict) -> None:
    s, a, cpu = row["steady"], row["all"], row["cpu_percent"]
    print(
        f"{name} rep={rep}{' (profiled)' if row['profiled'] else ''}: session {row['session_id']} "
        f"{row['reading_count']:,} readings ({row['rate']:,.0f}/s), stored {row['stored']:,}; "
        f"steady p50={_ms(s['p50'])} p99={_ms(s['p99'])} p99.9={_ms(s['p999'])} max={_ms(s['max'])} ms "
        f"(n={s['n']:,}, per-client p99 {_ms(row['client_p99_range'][0])}–{_ms(row['client_p99_range'][1])} ms); "
        f"all readings p99={_ms(a['p99'])} max={_ms(a['max'])} ms; lossless={row['lossless']}; "
        f"{_layer_text(row['layer'])}"
        f"{row['frames_per_client_s']:.0f} frames/s/client, {row['mb_per_s_all_clients']:.1f} MB/s to clients; "
        f"stop call {row['stop_call_s']:.2f} s",
        flush=True,
    )
    if row.get("disturbed"):
        print(f"   DISTURBED: other processes took {row['cpu_percent']['unaccounted']:.0f} % of a core during the "
              f"window; not counted in the median", flush=True)
    if row["store_failures"]:
        print(f"   STORE FAILED: run_simulators logged {row['store_failures']} batch(es) it could not store "
              f"(see its log)", flush=True)
    print(
        "   CPU % of one core: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items() if k != "machine_busy_of_all_cores")
        + f"; machine busy {cpu['machine_busy_of_all_cores']:.0f} % of {os.cpu_count()} cores",
        flush=True,
    )
    if not row["lossless"]:
        short = [c for c in row["clients"] if c["received"] != row["reading_count"] or c["anomalies"]
                 or c["unverified_frames"] or not c["completed_seen"]]
        if len(short) > 5:
            print(f"   {len(short)} of {len(row['clients'])} clients incomplete; the first 5:", flush=True)
        for c in short[:5]:
            print(f"   client {c['client']}: received {c['received']:,} last_seq {c['last_seq']:,} missing "
                  f"{c['missing']} dup {c['duplicated']} lag_dropped {c['lag_dropped']} unverified "
                  f"{c['unverified_frames']} completed_seen {c['completed_seen']} closed {c['closed']} "
                  f"{c['anomalies']}", flush=True)
    for log, lines in row["log_lines"].items():
        print(f"   {log}:", *(f"\n     {line}" for line in lines), flush=True)


def _layer_text(layer: dict | None) -> str:
    if layer is None:
        return ""
    return (
        f"on the layer: p50={_ms(layer['steady']['p50'])} p99={_ms(layer['steady']['p99'])} "
        f"max={_ms(layer['steady']['max'])} ms, {layer['events']} events of median "
        f"{layer['median_event_readings']:.0f} readings{' PROBE ' + layer['error'] if layer['error'] else ''}; "
    )


def _print_median(name: str, scenario: dict, reps: list[dict]) -> dict:
    quoted = [r for r in reps if not r["profiled"] and not r["disturbed"]]
    if not quoted:
        print(f"WARNING {name}: every repetition was disturbed by other processes (or profiled); medians of all",
              flush=True)
        quoted = reps
    median = {
        "reps": len(quoted),
        "p50": _bench.median([r["steady"]["p50"] for r in quoted]),
        "p99": _bench.median([r["steady"]["p99"] for r in quoted]),
        "max": max(r["steady"]["max"] for r in quoted),
        "all_p99": _bench.median([r["all"]["p99"] for r in quoted]),
        "layer_p50": _bench.median([r["layer"]["steady"]["p50"] for r in quoted if r["layer"]]),
        "layer_p99": _bench.median([r["layer"]["steady"]["p99"] for r in quoted if r["layer"]]),
        "rate": _bench.median([r["rate"] for r in quoted]),
        "lossless": all(r["lossless"] for r in quoted),
        "cpu_percent": {k: _bench.median([r["cpu_percent"][k] for r in quoted]) for k in quoted[0]["cpu_percent"]},
    }
    median["reps_with_store_failures"] = sum(bool(r["store_failures"]) for r in quoted)
    met = median["p99"] <= scenario["target_p99"] and median["lossless"] and not median["reps_with_store_failures"]
    print(
        f"MEDIAN {name} over {len(quoted)} undisturbed rep(s) of {len(reps)}: {median['rate']:,.0f} readings/s, steady p50={_ms(median['p50'])} ms "
        f"p99={_ms(median['p99'])} ms (target ≤ {_ms(scenario['target_p99'])} ms), max of max={_ms(median['max'])} ms, "
        f"all-readings p99={_ms(median['all_p99'])} ms, "
        + (f"on the layer p50={_ms(median['layer_p50'])} p99={_ms(median['layer_p99'])} ms, " if quoted[0]["layer"] else "")
        + f"every reading at every client: {median['lossless']}, "
        f"repetitions with store failures: {median['reps_with_store_failures']}; "
        f"daphne {median['cpu_percent']['daphne']:.0f} %, run_simulators {median['cpu_percent']['run_simulators']:.0f} %, "
        f"clients {median['cpu_percent']['clients']:.0f} % of one core -> target {'MET' if met else 'NOT MET'}",
        flush=True,
    )
    median["target_met"] = met
    return median


if __name__ == "__main__":
    main()
