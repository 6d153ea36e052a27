"""The end-to-end harness: real processes on free ports, a real HTTP client, direct database reads.

The fixtures in `conftest.py` build on these; the test modules use the helpers at the bottom.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis
import requests
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DAPHNE = str(Path(sys.executable).with_name("daphne"))

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# The unit tests use Redis DB 14; the end-to-end processes talk through 13.
REDIS_URL = "redis://127.0.0.1:6379/13"
SECRET_KEY = "e2e-secret-key-not-for-production"

LOCAL = "robotest_site.settings.local"
PRODUCTION = "robotest_site.settings.production"

# High enough that a few seconds give meaningful counts (the defaults are 10 / 5 / 1 Hz).
RATES = {"force": 100.0, "motor": 50.0, "camera": 10.0}
RATE_ENV = {"FORCE_SENSOR_HZ": "100", "MOTOR_SENSOR_HZ": "50", "CAMERA_SENSOR_HZ": "10"}

# Every variable the settings read. Each is set (empty means unset), so neither the pytest
# process's environment (the test settings fill in DATABASE_URL and REDIS_URL) nor a
# developer's `.env` (read with setdefault) leaks into the processes under test.
APP_VARIABLES = (
    "PROJECT_NAME", "VERSION", "DEBUG", "HOST", "PORT", "FORCE_SENSOR_HZ", "MOTOR_SENSOR_HZ",
    "CAMERA_SENSOR_HZ", "FORCE_THRESHOLD_HIGH", "MOTOR_THRESHOLD", "MAX_DATA_POINTS",
    "DATA_EXPORT_PATH", "ALLOWED_HOSTS", "SECRET_KEY", "DATABASE_URL", "REDIS_URL",
    "CSRF_TRUSTED_ORIGINS", "ROBOTEST_ADMIN_PASSWORD", "ROBOTEST_PUBLIC_READ",
    "ROBOTEST_SIMULATOR_SEED", "ROBOTEST_HEARTBEAT_TIMEOUT", "ROBOTEST_HTTPS", "ROBOTEST_HSTS_SECONDS",
    "ROBOTEST_ENGINE_BUFFER_SECONDS", "ROBOTEST_CATCH_UP_SECONDS", "ROBOTEST_DB_CONNECT_TIMEOUT",
    "ROBOTEST_DB_STATEMENT_TIMEOUT", "ROBOTEST_DB_POOL_MIN", "ROBOTEST_DB_POOL_MAX",
)

CSV_COLUMNS = ["timestamp", "sensor_type", "value", "datetime", "session_time", "session_id", "sensor"]


# Databases `claim_redis_db` may hand out: not 12 (benchmarks), 13 (REDIS_URL), 14 (unit tests).
PRIVATE_REDIS_DBS = range(1, 12)
_CLAIM_KEY = "robotest:e2e:claim"


def claim_redis_db(*, ttl: int = 1800) -> tuple[str, str]:
    """An empty Redis database claimed for one test module: (its URL, the claim's token).

    DB 13 is shared by every end-to-end module of every pytest run on this machine, and each
    module flushes it: a module that watches the live feed takes a database of its own. The
    claim is a key set only if absent, so two runs never take the same database.
    """
    token = f"{os.getpid()}:{time.time()}"
    for db in PRIVATE_REDIS_DBS:
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        try:
            if not client.set(_CLAIM_KEY, token, nx=True, ex=ttl):
                continue
            if client.dbsize() == 1:
                return f"redis://127.0.0.1:6379/{db}", token
            client.delete(_CLAIM_KEY)  # someone else's keys live here
        finally:
            client.close()
    raise AssertionError(f"no empty Redis database among {list(PRIVATE_REDIS_DBS)} to claim")


def release_redis_db(url: str, token: str) -> None:
    """Empty a database `claim_redis_db` handed out, if the claim is still this one's."""
    client = redis.Redis.from_url(url)
    try:
        if client.get(_CLAIM_KEY) == token.encode():
            client.flushdb()
    finally:
        client.close()


def process_env(*, settings: str, database_url: str, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a process under test: explicit settings, database and channel layer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update({name: "" for name in APP_VARIABLES})
    env.update(
        DJANGO_SETTINGS_MODULE=settings,
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url or "",
        # The processes answer plain HTTP on loopback: no redirect to https under the production settings.
        ROBOTEST_HTTPS="false",
        PYTHONUNBUFFERED="1",
        **RATE_ENV,
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_manage(args: list[str], *, env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run `manage.py ARGS` to completion; a failure shows the command's output."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{tail(result.stdout)}\n--- stderr ---\n{tail(result.stderr)}"
        )
    return result


def create_users(env: dict[str, str], roles: dict[str, str], *, password: str) -> None:
    """Users with `password`, each in its role's group ({username: "viewer" | "operator" | "admin"})."""
    script = "from django.contrib.auth.models import Group, User\n" + "".join(
        f"u, _ = User.objects.get_or_create(username={name!r}); u.set_password({password!r}); u.save(); "
        f"u.groups.add(Group.objects.get(name={role!r}))\n"
        for name, role in roles.items()
    )
    run_manage(["shell", "-c", script], env=env)


def serve_embedded(procs, directory: Path, *, users: dict[str, str] | None = None, password: str = "",
                   **env_extra: str) -> Api:
    """`manage.py serve` over a fresh SQLite database in `directory`, as `make run` starts it, answering /health.

    Returns the API client of a superuser's token; `users` ({name: role}) get `password`.
    """
    database = SqliteDatabase(directory / "db.sqlite3")
    env = process_env(settings=LOCAL, database_url=database.url, **env_extra)
    run_manage(["migrate", "--noinput", "-v", "0"], env=env)
    token = create_token(env)
    if users:
        create_users(env, users, password=password)
    port = free_port()
    proc = procs.start("serve", [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env)
    api = Api(f"http://127.0.0.1:{port}", token)
    wait_healthy(api, proc)
    return api


def create_token(env: dict[str, str], username: str = "e2e-admin") -> str:
    """A superuser and its DRF token, made by a real `manage.py shell`; returns the key."""
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        f"user, _ = get_user_model().objects.get_or_create(username={username!r}, "
        "defaults={'is_staff': True, 'is_superuser': True})\n"
        "print('TOKEN=' + Token.objects.get_or_create(user=user)[0].key)\n"
    )
    out = run_manage(["shell", "-c", script], env=env).stdout
    keys = [line[len("TOKEN="):] for line in out.splitlines() if line.startswith("TOKEN=")]
    assert keys, f"no token in the output of manage.py shell:\n{out}"
    return keys[-1].strip()


class Proc:
    """A process under test: output to a log file; stopped with SIGTERM, killed if it lingers."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], log: Path, owner: str) -> None:
        self.name = name
        self.args = args
        self.log_path = log
        self.owner = owner
        self._log = open(log, "wb")
        # A session of its own: a Ctrl-C on pytest reaches pytest, and the teardown stops these.
        self.popen = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started_at = time.time()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()
        return self.popen.returncode

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return tail(self.output(), lines)

    def describe(self) -> str:
        state = "running" if self.alive() else f"exited {self.returncode}"
        return f"{self.name} (pid {self.pid}, {state}, log {self.log_path})"


class Processes:
    """Every process one fixture scope started; the conftest stops them and shows their output on failure."""

    all: list[Proc] = []

    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = directory
        self.owner = owner
        self.procs: list[Proc] = []

    def start(self, name: str, args: list[str], *, env: dict[str, str]) -> Proc:
        log = self.directory / f"{len(self.procs):02d}-{name}.log"
        proc = Proc(name, args, env=env, log=log, owner=self.owner)
        self.procs.append(proc)
        Processes.all.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


class Api:
    """A real HTTP client of one web process, authenticated with a DRF token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.get(self.base_url + path, **kwargs)

    def post(self, path: str, body: dict | None = None, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.post(self.base_url + path, json=body or {}, **kwargs)

    def health(self) -> dict:
        return self.get("/health", timeout=5).json()

    def start(self, **body) -> dict:
        response = self.post("/api/v1/sessions/start", body)
        assert response.status_code == 201, response.text
        return response.json()

    def stop(self, session_id: int | None = None, **kwargs) -> dict:
        response = self.post("/api/v1/sessions/stop", {"session_id": session_id} if session_id else {}, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def readings(self, session_id: int, *, limit: int) -> tuple[list[dict], int]:
        """Every reading of a session through the readings endpoint, following `Link: rel="next"`."""
        url = f"{self.base_url}/api/v1/sensors/readings?session={session_id}&limit={limit}"
        readings: list[dict] = []
        pages = 0
        while url:
            response = self.http.get(url, timeout=30)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page) <= limit
            readings.extend(page)
            pages += 1
            assert pages < 10_000, "the Link header never ends"
            url = response.links.get("next", {}).get("url")
        return readings, pages

    def csv_rows(self, session_id: int) -> list[dict]:
        response = self.get("/api/v1/sessions/export/csv", params={"session": session_id})
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/csv")
        reader = csv.DictReader(io.StringIO(response.content.decode()))
        assert reader.fieldnames == CSV_COLUMNS
        return list(reader)


def wait_until(predicate, *, timeout: float, interval: float = 0.1, what: str, procs: tuple[Proc, ...] = ()):
    """Poll `predicate` until it returns something truthy; fail after `timeout` or if a process dies."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (requests.RequestException, ValueError, psycopg.Error) as exc:
            last_error = exc
        for proc in procs:
            if not proc.alive():
                raise AssertionError(f"{proc.describe()} exited while waiting for {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval)


def wait_healthy(api: Api, proc: Proc, *, timeout: float = 30.0) -> dict:
    """Wait until the web process answers `/health` with 200 (healthy or degraded)."""

    def ready():
        response = api.get("/health", timeout=2)
        return response.json() if response.status_code == 200 else None

    return wait_until(ready, timeout=timeout, what=f"GET /health of {proc.name}", procs=(proc,))


def wait_worker_up(api: Api, engine: Proc, *others: Proc, timeout: float = 30.0) -> float:
    """Wait until `/health` shows the heartbeat of `engine`'s own process; returns when it was seen.

    The pid matters: a worker killed with -9 leaves a heartbeat that looks alive for a few seconds.
    """

    def up():
        worker = api.health()["services"]["worker"]
        return worker["status"] == "up" and worker.get("name", "").endswith(f":{engine.pid}")

    wait_until(up, timeout=timeout, what=f"the heartbeat of {engine.name} in /health", procs=(engine, *others))
    return time.time()


@dataclass(frozen=True)
class Row:
    """A stored reading, read straight from the database."""

    sensor: str
    seq: int
    timestamp: float
    value: object


class Database:
    """Direct reads of the database the processes share (no Django in the test process)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def readings(self, session_id: int) -> list[Row]:
        raise NotImplementedError

    def session(self, session_id: int) -> dict:
        raise NotImplementedError

    def counts(self, session_id: int) -> dict[str, int]:
        return dict(Counter(row.sensor for row in self.readings(session_id)))


_READINGS_SQL = (
    "SELECT s.name, r.seq, r.timestamp, r.value FROM recording_reading r "
    "JOIN sensors_sensor s ON s.id = r.sensor_id WHERE r.session_id = {p} ORDER BY r.timestamp, r.id"
)
_SESSION_SQL = (
    "SELECT status, reading_count, started_at, stopped_at, verdict FROM recording_recordingsession WHERE id = {p}"
)


class PostgresDatabase(Database):
    def __init__(self, name: str, *, port: int = 5432) -> None:
        super().__init__(f"postgres://postgres@127.0.0.1:{port}/{name}")
        self.name = name
        self.port = port

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/{self.name}", autocommit=True, connect_timeout=5)

    def execute(self, query: str, params: tuple = ()) -> list[tuple]:
        with self.connect() as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def readings(self, session_id: int) -> list[Row]:
        rows = self.execute(_READINGS_SQL.format(p="%s"), (session_id,))
        return [Row(name, seq, ts.timestamp(), value) for name, seq, ts, value in rows]

    def session(self, session_id: int) -> dict:
        (row,) = self.execute(_SESSION_SQL.format(p="%s"), (session_id,))
        return _session_dict(row, lambda dt: dt.timestamp() if dt else None)

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls, name: str, *, port: int = 5432) -> PostgresDatabase:
        database = cls(name, port=port)
        with psycopg.connect(database.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return database

    def drop(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            # A process killed with -9 may leave a backend behind for a moment.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(self.name)))


class SqliteDatabase(Database):
    def __init__(self, path: Path) -> None:
        super().__init__(f"sqlite:///{path}")
        self.path = path

    def _fetch(self, query: str, params: tuple) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=20)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def readings(self, session_id: int) -> list[Row]:
        rows = self._fetch(_READINGS_SQL.format(p="?"), (session_id,))
        return [Row(name, seq, _sqlite_time(ts), json.loads(value)) for name, seq, ts, value in rows]

    def session(self, session_id: int) -> dict:
        (row,) = self._fetch(_SESSION_SQL.format(p="?"), (session_id,))
        return _session_dict(row, lambda text: _sqlite_time(text) if text else None)


def _sqlite_time(text: str) -> float:
    # Django's SQLite backend stores naive UTC text.
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _session_dict(row: tuple, to_unix) -> dict:
    status, reading_count, started_at, stopped_at, verdict = row
    return {
        "status": status,
        "reading_count": reading_count,
        "started_at": to_unix(started_at),
        "stopped_at": to_unix(stopped_at),
        "verdict": verdict,
    }


# --- Checks shared by the test modules ------------------------------------------------------


def assert_rate(count: int, rate: float, seconds: float, *, sensor: str, tolerance: float = 0.10) -> None:
    expected = rate * seconds
    assert abs(count - expected) <= tolerance * expected, (
        f"{sensor}: {count} readings in {seconds:.3f} s at {rate:g} Hz, expected {expected:.1f} ± {tolerance:.0%}"
    )


def by_sensor(rows: list[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row.sensor, []).append(row)
    for readings in grouped.values():
        readings.sort(key=lambda r: r.timestamp)
    return grouped


def schedule_steps(rows: list[Row], rate: float) -> list[int]:
    """For consecutive readings of one sensor, how many sample periods apart each pair is (1 = adjacent)."""
    period = 1.0 / rate
    steps = []
    for a, b in zip(rows, rows[1:]):
        step = (b.timestamp - a.timestamp) / period
        # Timestamps are `t0 + n / rate` to the microsecond: always within a hair of a whole number.
        assert abs(step - round(step)) < 0.01, f"{a.sensor}: {a.timestamp!r} -> {b.timestamp!r} is off the schedule"
        steps.append(round(step))
    return steps


def assert_seq_contiguous(rows: list[Row], reading_count: int) -> None:
    seqs = sorted(row.seq for row in rows)
    assert seqs == list(range(1, reading_count + 1)), (
        f"seq is not 1..{reading_count}: {len(seqs)} readings, "
        f"missing {sorted(set(range(1, reading_count + 1)) - set(seqs))[:10]}, "
        f"duplicates {[s for s, n in Counter(seqs).items() if n > 1][:10]}"
    )


def assert_simulated_exactly(rows: list[Row], *, session_id: int, t0: float, until: float, seed: int | None = None) -> None:
    """Every sensor stored exactly the samples due from the start to `until`, with the values an
    independent simulation of the session gives: nothing missing, nothing twice, nothing invented."""
    from sensors.simulators import session_seed_key, simulator_for

    grouped = by_sensor(rows)
    for sensor, rate in RATES.items():
        key = session_seed_key(seed, session_id=session_id, sensor=sensor, started_at=t0)
        expected = simulator_for(sensor, rate_hz=rate, t0=t0, rng=random.Random(), seed_key=key).due(until)
        stored = grouped.get(sensor, [])
        stored_us = Counter(round(row.timestamp * 1_000_000) for row in stored)
        expected_us = Counter(round(ts * 1_000_000) for ts, _ in expected)
        assert stored_us == expected_us, (
            f"{sensor}: {len(stored)} stored, {len(expected)} due from the start to {until:.6f}; "
            f"{_diff(stored_us, expected_us)}"
        )
        wrong = [(row.timestamp, row.value, value) for row, (_, value) in zip(stored, expected, strict=True)
                 if row.value != value]
        assert not wrong, f"{sensor}: {len(wrong)} values differ from the simulation, first {wrong[:3]}"


def reading_key(sensor: str, timestamp: float, value: object) -> tuple:
    """A reading as a comparable key: numbers as floats, objects as sorted JSON."""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    else:
        value = float(value)
    return sensor, float(timestamp), value


def csv_key(row: dict) -> tuple:
    raw = row["value"]
    value = json.loads(raw) if raw.startswith(("{", "[")) else float(raw)
    return reading_key(row["sensor"], float(row["timestamp"]), value)


def assert_summary_counts(summary: dict, rows: list[Row]) -> None:
    """The stop summary's per-sensor counts follow the rates, and match the stored readings one for one."""
    duration = summary["session_duration"]
    stats = summary["summary_stats"]
    assert set(stats) == set(RATES), stats
    for sensor, rate in RATES.items():
        assert_rate(stats[sensor]["count"], rate, duration, sensor=sensor)
    stored = Counter(row.sensor for row in rows)
    assert {s: stats[s]["count"] for s in RATES} == {s: stored[s] for s in RATES}
    assert summary["total_readings"] == len(rows) == sum(stats[s]["count"] for s in RATES)


def assert_exports_agree(session_id: int, rows: list[Row], api_readings: list[dict], csv_rows: list[dict]) -> None:
    """The database, the readings endpoint and the CSV export hold the same readings, row for row."""
    assert len(api_readings) == len(rows), "readings endpoint vs database"
    assert len(csv_rows) == len(rows), "CSV export vs database"
    db_keys = Counter(reading_key(r.sensor, r.timestamp, r.value) for r in rows)
    api_keys = Counter(reading_key(r["sensor"], r["timestamp"], r["value"]) for r in api_readings)
    csv_keys = Counter(csv_key(r) for r in csv_rows)
    assert api_keys == db_keys, f"readings endpoint differs from the database: {_diff(api_keys, db_keys)}"
    assert csv_keys == db_keys, f"CSV export differs from the database: {_diff(csv_keys, db_keys)}"
    # Both in timestamp order, as the contract says.
    assert [r["timestamp"] for r in api_readings] == sorted(r["timestamp"] for r in api_readings)
    assert [float(r["timestamp"]) for r in csv_rows] == sorted(float(r["timestamp"]) for r in csv_rows)
    for r in api_readings:
        assert r["session_id"] == session_id and r["sensor_type"] == r["sensor"], r
    for r in csv_rows:
        assert int(r["session_id"]) == session_id and r["sensor_type"] == r["sensor"], r
        iso = datetime.fromisoformat(r["datetime"])
        assert iso.tzinfo is not None and abs(iso.timestamp() - float(r["timestamp"])) < 1e-6, r


def _diff(a: Counter, b: Counter) -> str:
    return f"only in the first {list((a - b).items())[:5]}, only in the second {list((b - a).items())[:5]}"


class ProductionStack:
    """daphne and run_simulators on one PostgreSQL database and one Redis, started on demand."""

    def __init__(self, procs: Processes, *, database: PostgresDatabase, redis_url: str, token: str) -> None:
        self.procs = procs
        self.db = database
        self.token = token
        self.env = process_env(settings=PRODUCTION, database_url=database.url, redis_url=redis_url)
        self.web = None
        self.api: Api | None = None

    def start_web(self, procs: Processes | None = None) -> Api:
        port = free_port()
        self.web = (procs or self.procs).start(
            "daphne", [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"], env=self.env
        )
        self.api = Api(f"http://127.0.0.1:{port}", self.token)
        wait_healthy(self.api, self.web)
        return self.api

    def start_worker(self, procs: Processes | None = None, **settings: str):
        """A run_simulators process; `settings` (ROBOTEST_…="…") are added to its environment."""
        return (procs or self.procs).start(
            "run_simulators", [PYTHON, "manage.py", "run_simulators"], env={**self.env, **settings}
        )

    def wait_worker_up(self, worker) -> float:
        return wait_worker_up(self.api, worker, self.web)

    def cleanup(self) -> None:
        """After the processes stopped: leave no recording session and no heartbeat to the next test."""
        self.db.execute(
            "UPDATE recording_recordingsession SET status = 'aborted', stopped_at = now() WHERE status = 'recording'"
        )
        self.db.execute("DELETE FROM recording_engineheartbeat")
