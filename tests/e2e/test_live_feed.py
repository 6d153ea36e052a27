"""The live feed end to end: real WebSocket clients of `/ws/sensor-data` on real processes.

Two daphne processes and one run_simulators share the module's PostgreSQL database and Redis
database (one of its own, not DB 13 which every other end-to-end module shares);
the clients are the `websockets` library's, talking to the processes over TCP. A slow client
gets a daphne of its own with high rates, and the embedded `serve` is checked last.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import socket
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from itertools import pairwise

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.harness import (
    DAPHNE,
    LOCAL,
    PYTHON,
    RATES,
    Api,
    Proc,
    Processes,
    Row,
    SqliteDatabase,
    assert_rate,
    create_token,
    free_port,
    process_env,
    reading_key,
    run_manage,
    wait_healthy,
    wait_until,
    wait_worker_up,
)

pytestmark = pytest.mark.e2e

RECORD_SECONDS = 3.0
READING_FIELDS = {"timestamp", "sensor_type", "value", "sensor", "session_id", "seq"}
# The slow-client test: rates high enough that a client that stops reading fills the kernel's
# buffers and daphne's within seconds (the sim rig has only three sensors). The camera takes one
# frame, at the start: its brightness results (int peaks) in a batch with force results (float
# peaks) stall the recording (test_an_ingested_batch_opening_an_int_and_a_float_result...).
FAST_RATES = {"force": 2000.0, "motor": 1000.0}
FAST_RATE_ENV = {"FORCE_SENSOR_HZ": "2000", "MOTOR_SENSOR_HZ": "1000", "CAMERA_SENSOR_HZ": "0.02"}
SLOW_SECONDS = 10.0


# --- Processes ---------------------------------------------------------------------------------


@dataclass
class Web:
    """One daphne (or serve) process and how to reach it."""

    proc: Proc
    port: int
    api: Api

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/sensor-data"


def launch_daphne(procs: Processes, env: dict[str, str], token: str, name: str = "daphne") -> Web:
    """Start daphne on a free port; `wait_healthy` it before use."""
    port = free_port()
    proc = procs.start(name, [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"], env=env)
    return Web(proc, port, Api(f"http://127.0.0.1:{port}", token))


@pytest.fixture(scope="module")
def redis_url(private_redis_url) -> str:
    """This module's processes talk through a Redis database of their own: the frames the
    clients get are checked one by one, and another run's processes on DB 13 would add theirs
    (and flush the groups)."""
    return private_redis_url


@dataclass
class Cluster:
    """Two daphne processes and one run_simulators on one PostgreSQL database and one Redis."""

    a: Web
    b: Web
    worker: Proc
    production: object

    @property
    def db(self):
        return self.production.db

    @property
    def token(self) -> str:
        return self.production.token


@pytest.fixture(scope="module")
def cluster(production, module_procs) -> Cluster:
    a = launch_daphne(module_procs, production.env, production.token, "daphne-a")
    b = launch_daphne(module_procs, production.env, production.token, "daphne-b")
    worker = production.start_worker()
    for web in (a, b):
        wait_healthy(web.api, web.proc)
    wait_worker_up(a.api, worker, a.proc, b.proc)
    return Cluster(a, b, worker, production)


# --- Clients -----------------------------------------------------------------------------------


def ws_connect(web: Web, *, token: str | None = None, origin: str | None = None, **kwargs):
    """A `websockets` client of `/ws/sensor-data`, with a token in the Authorization header."""
    headers = {"Authorization": f"Token {token}"} if token else None
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 2)
    return connect(
        web.ws_url, additional_headers=headers, origin=origin, proxy=None, compression=None, **kwargs
    )


class Feed:
    """One open client: a task reads every frame as it arrives and notes when it arrived."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[tuple[float, dict]] = []
        self.closed: ConnectionClosed | None = None
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> Feed:
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                self.frames.append((time.time(), json.loads(text)))
                self._arrived.set()
        except ConnectionClosed as exc:
            self.closed = exc
        self._arrived.set()

    async def send(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))

    async def wait_for(self, predicate, *, timeout: float, what: str, start: int = 0) -> int:
        """The index of the first frame from `start` on that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.frames):
                if predicate(self.frames[index][1]):
                    return index
                index += 1
            if self._task is not None and self._task.done():
                raise AssertionError(f"connection closed ({self.closed!r}) while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout:.0f} s; last frames: {self.types()[-10:]}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=remaining)
            except TimeoutError:
                pass

    async def wait_type(self, kind: str, *, timeout: float = 10.0, start: int = 0) -> dict:
        index = await self.wait_for(
            lambda f: f.get("type") == kind, timeout=timeout, what=f"a {kind} frame", start=start
        )
        return self.frames[index][1]

    async def wait_completed(self, session_id: int, *, timeout: float = 30.0) -> int:
        return await self.wait_for(
            lambda f: f.get("type") == "system_status"
            and f["data"].get("session_id") == session_id
            and f["data"].get("status") == "completed",
            timeout=timeout,
            what=f"the system_status of session {session_id} completed",
        )

    def types(self) -> list[str]:
        return [frame.get("type") for _, frame in self.frames]

    def of_type(self, kind: str, upto: int | None = None) -> list[dict]:
        return [frame for _, frame in self.frames[:upto] if frame.get("type") == kind]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def open_feed(stack: AsyncExitStack, web: Web, token: str, **kwargs) -> Feed:
    """Connect, start reading, and wait for connection_established."""
    ws = await stack.enter_async_context(ws_connect(web, token=token, **kwargs))
    feed = Feed(ws).start()
    stack.push_async_callback(feed.stop)
    frame = await feed.wait_type("connection_established")
    assert set(frame) == {"type", "data"} and isinstance(frame["data"]["timestamp"], float), frame
    return feed


async def closed_with(ws, *, timeout: float = 10.0) -> tuple[list[dict], int | None]:
    """Read until the server closes; the frames it sent first and its close code."""
    frames = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=timeout)))
    except ConnectionClosed as exc:
        return frames, exc.rcvd.code if exc.rcvd is not None else None


def assert_reading_shape(reading: dict, session_id: int) -> None:
    assert set(reading) == READING_FIELDS, reading
    assert reading["session_id"] == session_id, reading
    assert isinstance(reading["timestamp"], float) and isinstance(reading["seq"], int), reading
    assert reading["sensor_type"] == reading["sensor"] and reading["sensor"] in RATES, reading
    if reading["sensor"] == "camera":
        assert set(reading["value"]) == {"image_id", "resolution", "brightness", "exposure"}, reading
    else:
        assert isinstance(reading["value"], int | float), reading


def single_readings(feed: Feed, session_id: int, upto: int | None = None) -> list[dict]:
    """The readings of `sensor_data` frames, each checked against the contract's shape."""
    readings = []
    for frame in feed.of_type("sensor_data", upto):
        assert set(frame) == {"type", "data"}, frame
        assert_reading_shape(frame["data"], session_id)
        readings.append(frame["data"])
    return readings


def micro_key(sensor: str, timestamp: float, value: object) -> tuple:
    """A reading as a comparable key, its timestamp to the microsecond the database keeps.

    To the microsecond: a live frame's timestamp may be off by a fraction of one (see
    test_a_live_reading_carries_the_timestamp_the_database_stored).
    """
    sensor, timestamp, value = reading_key(sensor, timestamp, value)
    return sensor, round(timestamp * 1_000_000), value


def assert_same_readings(readings: list[dict], rows_by_seq: dict[int, Row], what: str) -> None:
    for reading in readings:
        row = rows_by_seq[reading["seq"]]
        assert micro_key(reading["sensor"], reading["timestamp"], reading["value"]) == micro_key(
            row.sensor, row.timestamp, row.value
        ), f"{what}: seq {reading['seq']} differs from the database: {reading} vs {row}"


def seq_gaps(seqs: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in pairwise(seqs) if b != a + 1]


def stored_rows(db, session_id: int) -> dict[int, Row]:
    return {row.seq: row for row in db.readings(session_id)}


def in_thread(fn, *args, **kwargs):
    """A blocking call (HTTP, SQL) off the event loop, so the clients keep reading meanwhile."""
    return asyncio.to_thread(fn, *args, **kwargs)


# --- Access ------------------------------------------------------------------------------------


async def test_a_client_without_credentials_gets_an_error_frame_and_close_4401(cluster):
    async with ws_connect(cluster.a) as ws:
        frames, code = await closed_with(ws)
    assert code == 4401
    assert [f["type"] for f in frames] == ["error"], frames
    assert "authentication" in frames[0]["message"] and frames[0]["code"] == 4401, frames


async def test_a_foreign_origin_is_closed_with_4403_even_with_a_valid_token(cluster):
    async with ws_connect(cluster.a, token=cluster.token, origin="http://evil.example") as ws:
        frames, code = await closed_with(ws)
    assert code == 4403
    assert [f["type"] for f in frames] == ["error"] and "evil.example" in frames[0]["message"], frames


async def test_the_servers_own_origin_with_a_token_is_accepted(cluster):
    web = cluster.a
    async with ws_connect(web, token=cluster.token, origin=web.origin) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert frame["type"] == "connection_established", frame
        await ws.send(json.dumps({"type": "ping", "timestamp": 12.5}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=10)) == {"type": "pong", "timestamp": 12.5}
    # A token in the query string (for browsers, which cannot set headers) does as well.
    async with connect(f"{web.ws_url}?token={cluster.token}", origin=web.origin, proxy=None, open_timeout=10) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=10))["type"] == "connection_established"


# --- Presence ----------------------------------------------------------------------------------


def live_counts(web: Web) -> tuple[int, int]:
    """Connected clients as `/health` and `/api/v1/sensors/status` of one process show them."""
    health = web.api.health()["services"]["live_feed"]
    response = web.api.get("/api/v1/sensors/status", timeout=5)
    assert response.status_code == 200, response.text
    return health["connected_clients"], response.json()["system"]["connected_clients"]


def wait_counts(cluster: Cluster, expected: int) -> None:
    """Both endpoints of both processes show `expected` clients (each writes its count every ~2 s)."""

    def shown():
        return all(live_counts(web) == (expected, expected) for web in (cluster.a, cluster.b))

    procs = (cluster.a.proc, cluster.b.proc)
    try:
        wait_until(shown, timeout=12, interval=0.25, what=f"{expected} connected clients", procs=procs)
    except AssertionError as exc:
        rows = cluster.db.execute("SELECT name, clients, beat_at, now() FROM recording_liveserver")
        raise AssertionError(
            f"{exc}; shown (health, status): a {live_counts(cluster.a)}, b {live_counts(cluster.b)}; "
            f"rows {rows}; pids a {cluster.a.proc.pid}, b {cluster.b.proc.pid}"
        ) from None


async def test_connected_clients_are_summed_across_both_daphne_processes(cluster):
    await in_thread(wait_counts, cluster, 0)
    async with AsyncExitStack() as stack:
        for web in (cluster.a, cluster.b, cluster.b):
            await open_feed(stack, web, cluster.token)
        await in_thread(wait_counts, cluster, 3)
        health = await in_thread(cluster.a.api.health)
        assert health["status"] == "healthy", health
        assert health["services"]["live_feed"]["server_processes"] >= 2, health
    await in_thread(wait_counts, cluster, 0)


async def test_health_stays_healthy_while_a_client_is_connected(cluster):
    async with AsyncExitStack() as stack:
        await open_feed(stack, cluster.b, cluster.token)
        await asyncio.sleep(0.5)
        response = await in_thread(cluster.b.api.get, "/health", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["services"]["channel_layer"]["status"] == "up", response.text


# --- Across processes --------------------------------------------------------------------------


@dataclass
class LiveRecording:
    """One session of about three seconds as three clients saw it, and as the database holds it."""

    session_id: int
    summary: dict
    rows: dict[int, Row]
    singles: dict[str, tuple[Feed, int]]  # client -> its feed, the index of its completed system_status
    batch: Feed
    confirmed_at: int
    batch_end: int
    results: dict[int, tuple]  # the session's stored validation results: id -> (status, count, peak)


async def record_live(cluster: Cluster) -> LiveRecording:
    async with AsyncExitStack() as stack:
        on_a = await open_feed(stack, cluster.a, cluster.token)
        on_b = await open_feed(stack, cluster.b, cluster.token)
        batch = await open_feed(stack, cluster.b, cluster.token)

        # The worker waits while the batch client subscribes to the new session, so that its first
        # reading follows the subscription (a switch while readings flow repeats some: see
        # test_switching_subscriptions_neither_repeats_nor_skips_a_reading). It catches up after.
        cluster.worker.signal(signal.SIGSTOP)
        try:
            started = await in_thread(cluster.a.api.start, name="e2e live feed")
            session_id = started["session_id"]
            await batch.send({"type": "subscribe", "data": {"session": session_id, "batch": True}})
            confirmed_at = await batch.wait_for(
                lambda f: f["type"] == "subscription_confirmed", timeout=10, what="subscription_confirmed"
            )
        finally:
            cluster.worker.signal(signal.SIGCONT)
        await asyncio.sleep(RECORD_SECONDS)
        # Stopped through the other process than the one that started it.
        summary = await in_thread(cluster.b.api.stop, session_id)
        ends = [await feed.wait_completed(session_id) for feed in (on_a, on_b, batch)]
    results = cluster.db.execute(
        "SELECT id, status, count, peak FROM recording_validationresult WHERE session_id = %s", (session_id,)
    )
    return LiveRecording(
        session_id=session_id,
        summary=summary,
        rows=stored_rows(cluster.db, session_id),
        singles={"client of daphne a": (on_a, ends[0]), "client of daphne b": (on_b, ends[1])},
        batch=batch,
        confirmed_at=confirmed_at,
        batch_end=ends[2],
        results={pk: (status, count, peak) for pk, status, count, peak in results},
    )


@pytest.fixture(scope="module")
def live(cluster) -> LiveRecording:
    return asyncio.run(record_live(cluster))


def test_the_recording_behind_the_feed_is_complete(live, cluster):
    total = live.summary["total_readings"]
    assert live.summary["session_id"] == live.session_id and live.summary["status"] == "completed"
    assert total == len(live.rows) == cluster.db.session(live.session_id)["reading_count"]
    assert sorted(live.rows) == list(range(1, total + 1))
    stats, duration = live.summary["summary_stats"], live.summary["session_duration"]
    for sensor, rate in RATES.items():
        assert_rate(stats[sensor]["count"], rate, duration, sensor=sensor)


def test_clients_of_two_daphne_processes_get_every_reading_in_seq_order(live):
    total = live.summary["total_readings"]
    for name, (feed, end) in live.singles.items():
        seqs = [r["seq"] for r in single_readings(feed, live.session_id, end)]
        assert seqs == list(range(1, total + 1)), (
            f"{name}: {len(seqs)} reading frames for {total} stored readings, gaps {seq_gaps(seqs)[:5]}, "
            f"duplicates {[s for s, n in Counter(seqs).items() if n > 1][:5]}"
        )
        expected = {"connection_established", "sensor_data", "validation", "system_status"}
        assert set(feed.types()[: end + 1]) <= expected, f"{name}: {Counter(feed.types())}"


def test_reading_frames_carry_the_stored_readings(live):
    for name, (feed, end) in live.singles.items():
        assert_same_readings(single_readings(feed, live.session_id, end), live.rows, name)


def test_validation_frames_follow_the_stored_results(live):
    assert live.results, "no validation result in the session: nothing to compare"
    for name, (feed, end) in live.singles.items():
        latest = {}
        for frame in feed.of_type("validation", end):
            result = frame["data"]
            assert set(frame) == {"type", "data"} and result["session_id"] == live.session_id, frame
            assert result["status"] in ("warning", "error") and result["sensor"] in RATES, frame
            latest[result["id"]] = result
        # Every result the session stored was announced, and its last frame has its final state.
        assert set(latest) == set(live.results), f"{name}: frames for {sorted(latest)}, stored {sorted(live.results)}"
        for pk, result in latest.items():
            assert (result["status"], result["count"], result["peak"]) == live.results[pk], (
                f"{name}: result {pk}: last frame {result}, stored {live.results[pk]}"
            )


def test_each_client_gets_the_system_status_of_the_start_and_of_the_stop(live):
    for name, (feed, end) in live.singles.items():
        statuses = [
            f["data"] for f in feed.of_type("system_status", end + 1) if f["data"]["session_id"] == live.session_id
        ]
        assert [s["status"] for s in statuses] == ["recording", "completed"], f"{name}: {statuses}"
        assert statuses[-1]["total_readings"] == live.summary["total_readings"]
        assert statuses[-1]["verdict"] == live.summary["verdict"]


def test_a_batch_subscriber_gets_sensor_data_batch_frames_with_the_same_readings(live):
    batch, total = live.batch, live.summary["total_readings"]
    assert batch.frames[live.confirmed_at][1]["data"] == {
        "session": live.session_id, "sensors": None, "batch": True, "max_hz": None
    }
    frames = batch.of_type("sensor_data_batch", live.batch_end)
    assert frames, f"no sensor_data_batch frame: {Counter(batch.types())}"
    after = batch.types()[live.confirmed_at:live.batch_end]
    assert "sensor_data" not in after, "single frames after a batch subscription"
    readings = []
    for frame in frames:
        assert set(frame) == {"type", "session_id", "data"} and frame["session_id"] == live.session_id, frame
        assert isinstance(frame["data"], list) and frame["data"], frame
        for reading in frame["data"]:
            assert_reading_shape(reading, live.session_id)
        readings.extend(frame["data"])
    assert len(frames) < len(readings), "batch mode sent one frame per reading"
    seqs = [r["seq"] for r in readings]
    assert seqs == list(range(1, total + 1)), (
        f"batch client: {len(seqs)} readings for {total}, gaps {seq_gaps(seqs)[:5]}, "
        f"duplicates {[s for s, n in Counter(seqs).items() if n > 1][:5]}"
    )
    assert_same_readings(readings, live.rows, "batch client")


# --- Known faults ------------------------------------------------------------------------------


async def test_switching_subscriptions_neither_repeats_nor_skips_a_reading(cluster):
    async with AsyncExitStack() as stack:
        feed = await open_feed(stack, cluster.b, cluster.token)
        session_id = (await in_thread(cluster.a.api.start, name="e2e resubscribe"))["session_id"]
        try:
            await feed.wait_type("sensor_data")
            # A dashboard switching between "everything" and one session, while readings flow.
            for i in range(100):
                await feed.send({"type": "subscribe", "data": {"session": session_id if i % 2 == 0 else None}})
                await asyncio.sleep(0.01)
        finally:
            summary = await in_thread(cluster.a.api.stop, session_id)
        end = await feed.wait_completed(session_id)
    seqs = [f["data"]["seq"] for f in feed.of_type("sensor_data", end)]
    repeated = sorted(s for s, n in Counter(seqs).items() if n > 1)
    missing = sorted(set(range(1, summary["total_readings"] + 1)) - set(seqs))
    assert not repeated and not missing, (
        f"repeated {len(repeated)} {repeated[:8]}, missing {len(missing)} {missing[:8]}"
    )


@pytest.fixture(scope="module")
def external_rig(cluster) -> str:
    """An external rig with a force and a motor sensor (the default rules apply by sensor type)."""
    name = f"ext-{secrets.token_hex(3)}"
    response = cluster.a.api.post("/api/v1/rigs/", {
        "name": name, "source": "external",
        "sensors": [{"name": "force", "sensor_type": "force", "unit": "N"},
                    {"name": "motor", "sensor_type": "motor", "unit": "RPM"}],
    })
    assert response.status_code == 201, response.text
    return name


async def ingest_into_a_watched_session(cluster: Cluster, rig: str, batch: list[dict]):
    """Start a session of `rig`, push `batch` while a client watches it; (feed, response, rest readings)."""
    api = cluster.a.api
    session_id = (await in_thread(api.start, rig=rig))["session_id"]
    try:
        async with AsyncExitStack() as stack:
            feed = await open_feed(stack, cluster.b, cluster.token)
            await feed.send({"type": "subscribe", "data": {"session": session_id}})
            await feed.wait_type("subscription_confirmed")
            response = await in_thread(api.post, f"/api/v1/sessions/{session_id}/readings/", batch)
            if response.status_code == 201:
                await feed.wait_for(
                    lambda f: len(feed.of_type("sensor_data")) >= len(batch), timeout=10, what="the ingested readings"
                )
            rest = await in_thread(api.get, "/api/v1/sensors/readings", params={"session": session_id})
    finally:
        await in_thread(api.stop, session_id)
    return feed, response, rest.json()


async def test_a_live_reading_carries_the_timestamp_the_database_stored(cluster, external_rig):
    # Between two microseconds; simulated readings (t0 + n / rate) land there in some sessions.
    ts = float(int(time.time())) + 0.1234567
    feed, response, rest = await ingest_into_a_watched_session(
        cluster, external_rig, [{"sensor": "force", "timestamp": ts, "value": 1.5}]
    )
    assert response.status_code == 201, response.text
    (frame,) = feed.of_type("sensor_data")
    assert rest[0]["timestamp"] == round(ts, 6)
    assert frame["data"]["timestamp"] == rest[0]["timestamp"], (frame, rest)


async def test_an_ingested_batch_opening_an_int_and_a_float_result_reaches_the_feed(cluster, external_rig):
    now = time.time()
    # Force 95 N (an int in JSON) is above the error threshold, motor 60.5 above the warning one.
    batch = [{"sensor": "force", "timestamp": now, "value": 95}, {"sensor": "motor", "timestamp": now, "value": 60.5}]
    feed, response, rest = await ingest_into_a_watched_session(cluster, external_rig, batch)
    assert response.status_code == 201, f"{response.status_code}: {response.text[:300]}"
    assert [f["data"]["seq"] for f in feed.of_type("sensor_data")] == [1, 2]
    assert sorted(f["data"]["status"] for f in feed.of_type("validation")) == ["error", "warning"]
    assert len(rest) == 2


# --- A slow client -----------------------------------------------------------------------------


def small_socket(port: int) -> socket.socket:
    """A connected socket whose receive buffer is as small as the kernel allows (a few KB)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def test_a_slow_client_gets_a_lag_frame_and_slows_neither_the_recording_nor_other_clients(cluster, procs):
    env = {**cluster.production.env, **FAST_RATE_ENV}
    web = launch_daphne(procs, env, cluster.token, "daphne-fast")
    await in_thread(wait_healthy, web.api, web.proc)
    dropped_before = (await in_thread(web.api.health))["services"]["live_feed"]["dropped_frames"]

    async with AsyncExitStack() as stack:
        healthy = await open_feed(stack, web, cluster.token)
        # The slow client reads its first frame, then nothing: `max_queue=1` makes the library
        # stop reading the socket, and the small receive buffer makes the kernel's side fill fast.
        slow = await stack.enter_async_context(
            ws_connect(web, token=cluster.token, sock=small_socket(web.port), max_queue=1, ping_interval=None)
        )
        assert json.loads(await asyncio.wait_for(slow.recv(), timeout=10))["type"] == "connection_established"

        started_at = time.time()
        session_id = (await in_thread(web.api.start, name="e2e slow client"))["session_id"]
        await asyncio.sleep(SLOW_SECONDS)
        # The stall lasts until the healthy client has had a reading after SLOW_SECONDS: frames come
        # a flush at a time, and one due then must not fall after the slow client resumes.
        await healthy.wait_for(lambda f: f["type"] == "sensor_data", timeout=5, what="a reading after the stall",
                               start=len(healthy.frames))

        health = await in_thread(web.api.health)
        dropped = health["services"]["live_feed"]["dropped_frames"] - dropped_before
        assert dropped > 0, f"the server dropped no frame for a client that read nothing for {SLOW_SECONDS:.0f} s"

        # The slow client resumes: first what the kernel and daphne still held, then the lag frame.
        resumed_at = time.time()
        resumed = Feed(slow).start()
        stack.push_async_callback(resumed.stop)
        lag_at = await resumed.wait_for(lambda f: f["type"] == "lag", timeout=20, what="a lag frame")
        lag = resumed.frames[lag_at][1]
        after = await resumed.wait_for(
            lambda f: f["type"] == "sensor_data", timeout=10, what="a reading after the lag frame", start=lag_at + 1
        )
        summary = await in_thread(web.api.stop, session_id)
        end = await healthy.wait_completed(session_id)

    assert set(lag) == {"type", "data"} and lag["data"]["dropped"] > 0, lag
    before = [f["data"]["seq"] for f in resumed.of_type("sensor_data", lag_at)]
    assert seq_gaps(before) == [], "the slow client lost frames before it was told"
    next_seq = resumed.frames[after][1]["data"]["seq"]
    last_seq = before[-1] if before else 0
    # The dropped frames were readings (and perhaps a few validation frames): the next reading
    # skips at least one and at most the dropped count.
    assert last_seq + 1 < next_seq <= last_seq + 1 + lag["data"]["dropped"], (last_seq, next_seq, lag)

    # The healthy client of the same daphne got every reading, and promptly while the other stalled.
    readings = single_readings(healthy, session_id, end)
    total = summary["total_readings"]
    seqs = [r["seq"] for r in readings]
    assert seqs == list(range(1, total + 1)), f"healthy client: {len(seqs)} of {total}, gaps {seq_gaps(seqs)[:5]}"
    arrivals = [t for t, f in healthy.frames[:end] if f.get("type") == "sensor_data"]
    # Until the slow client resumed: from then on this process also reads its backlog, and the
    # arrival times measure the client more than the server.
    stalled = [(t, r) for t, r in zip(arrivals, readings, strict=True) if t < resumed_at]
    latencies = [t - r["timestamp"] for t, r in stalled]
    p99 = percentile(latencies, 0.99)
    assert p99 < 1.0, f"healthy client: p99 latency {p99:.3f} s, max {max(latencies):.3f} s"
    times = [started_at] + [t for t, _ in stalled]
    silence = max(b - a for a, b in pairwise(times))
    assert silence < 1.0, f"healthy client: no reading for {silence:.2f} s while the other client stalled"
    assert stalled[-1][0] - started_at >= SLOW_SECONDS

    # Recording kept its pace.
    for sensor, rate in FAST_RATES.items():
        assert_rate(summary["summary_stats"][sensor]["count"], rate, summary["session_duration"], sensor=sensor)
    assert summary["summary_stats"]["camera"]["count"] == 1
    assert cluster.db.session(session_id)["reading_count"] == total


# --- Embedded ----------------------------------------------------------------------------------


async def test_serve_streams_the_same_frames_through_the_in_memory_layer(tmp_path, procs):
    database = SqliteDatabase(tmp_path / "db.sqlite3")
    env = process_env(settings=LOCAL, database_url=database.url)  # no REDIS_URL: the in-memory layer
    await in_thread(run_manage, ["migrate", "--noinput", "-v", "0"], env=env)
    token = await in_thread(create_token, env)
    port = free_port()
    proc = procs.start("serve", [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env)
    web = Web(proc, port, Api(f"http://127.0.0.1:{port}", token))
    await in_thread(wait_healthy, web.api, proc)
    await in_thread(wait_worker_up, web.api, proc)

    async with AsyncExitStack() as stack:
        feed = await open_feed(stack, web, token)
        session_id = (await in_thread(web.api.start, name="e2e live feed embedded"))["session_id"]
        await asyncio.sleep(2.0)
        summary = await in_thread(web.api.stop, session_id)
        end = await feed.wait_completed(session_id)

    rows = {row.seq: row for row in database.readings(session_id)}
    total = summary["total_readings"]
    assert total == len(rows) > 0
    readings = single_readings(feed, session_id, end)
    seqs = [r["seq"] for r in readings]
    assert seqs == list(range(1, total + 1)), (
        f"{len(seqs)} reading frames for {total} readings, gaps {seq_gaps(seqs)[:5]}"
    )
    assert_same_readings(readings, rows, "serve client")
    assert feed.frames[end][1]["data"]["total_readings"] == total


