"""The suite's shared fixtures and factories: one place for each (README "Code map", tests/).

Sections: constants and factories; settings; users, tokens and API clients; rigs and sessions over
the API; the live feed through the real ASGI stack (channels' communicators, the Redis layer);
end-to-end processes (daphne, run_simulators, serve) with their own databases, see
tests/e2e/harness.py.
"""

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers, get_channel_layer
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.db import connection
from rest_framework.test import APIClient

from robotest_site.asgi import application
from sensors.models import Rig
from sensors.services import rig_create
from sessions.live import events, presence
from sessions.recording.pipeline import RecordResult, SessionRecorder, readings_record
from sessions.services import session_start
from tests.e2e.harness import (
    LOCAL,
    REDIS_URL,
    Api,
    PostgresDatabase,
    Processes,
    ProductionStack,
    claim_redis_db,
    create_token,
    process_env,
    release_redis_db,
    run_manage,
)

# The browser tests' fixtures (Chromium, page errors): tests/e2e/browser.py.
pytest_plugins = ["tests.e2e.browser"]

# --- constants and factories ----------------------------------------------------------------------

# A fixed, recent instant: the tests' readings are placed after it.
T0 = 1_700_000_000.0

# The external test rig `bench`: a force sensor, a temperature sensor, a 6-axis force/torque sensor.
BENCH_SENSORS = [
    {"name": "fz", "sensor_type": "force", "unit": "N"},
    {"name": "temp", "sensor_type": "temperature", "unit": "C"},
    {"name": "ft6", "sensor_type": "force_torque", "unit": ""},
]

WS_PATH = "/ws/sensor-data"
HOST = "testserver"


def ft6_value(i: int) -> dict:
    """The i-th reading of the force/torque sensor `ft6`: an object of six numbers."""
    return {"fx": 1.5 + i, "fy": -2.25, "fz": 30.0, "tx": 0.125, "ty": i, "tz": -0.5}


def readings(sensor: str, values, *, t0: float = T0, step: float = 0.1) -> list[dict]:
    """A batch of readings of one sensor as the ingest endpoint takes it, `step` seconds apart from `t0`."""
    return [{"sensor": sensor, "timestamp": t0 + i * step, "value": v} for i, v in enumerate(values)]


def items(sensor: str, values, *, t0: float = T0, step: float = 0.01) -> list[tuple[str, float, object]]:
    """The same as the pipeline's items: (sensor, Unix seconds, value)."""
    return [(sensor, t0 + i * step, value) for i, value in enumerate(values)]


def line(seq: int, sensor: str, ts: float, value, *, session_id: int = 7, sensor_type: str = "force") -> str:
    """A reading as the pipeline encodes it for the live feed (one JSON line)."""
    return json.dumps(
        {"timestamp": ts, "sensor_type": sensor_type, "value": value, "sensor": sensor, "session_id": session_id,
         "seq": seq},
        separators=(",", ":"),
    )


def stored(session_id: int) -> list[tuple]:
    """A session's stored readings as (sensor name, Unix seconds, value, seq), in seq order."""
    from sessions.models import Reading

    return [
        (r.sensor.name, r.timestamp.timestamp(), r.value, r.seq)
        for r in Reading.objects.filter(session_id=session_id).select_related("sensor").order_by("seq")
    ]


def reading_count(session_id: int) -> int:
    from sessions.models import RecordingSession

    return RecordingSession.objects.get(pk=session_id).reading_count


def assert_named(response, code: int, name: str) -> None:
    """The request was refused with `code` and a message that names the parameter or field `name`."""
    assert response.status_code == code, response.content
    assert name in response.json()["detail"], response.json()


def bench_create(name: str = "bench", sensors: list[dict] = BENCH_SENSORS) -> Rig:
    """An external rig (default `bench` with BENCH_SENSORS)."""
    return rig_create(name=name, source=Rig.Source.EXTERNAL, description="test bench", sensors=sensors)


def user_with_token(username: str, *, is_staff: bool = False, is_active: bool = True):
    """A user and the key of their DRF token."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(username, password="secret-pass-1", is_staff=is_staff,
                                                is_active=is_active)
    return user, Token.objects.create(user=user).key


# --- settings -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def seed_settings(settings):
    """The seed's thresholds and read policy (reads need credentials), whatever the environment says."""
    settings.FORCE_THRESHOLD_HIGH = 80.0
    settings.MOTOR_THRESHOLD = 55.0
    settings.MAX_DATA_POINTS = 10000
    settings.ROBOTEST_PUBLIC_READ = False
    settings.CSRF_TRUSTED_ORIGINS = []
    return settings


# --- users, tokens and API clients ----------------------------------------------------------------


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user("operator", password="secret-pass-1", is_staff=True)


def _token_key(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user).key


def _token_client(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


@pytest.fixture
def staff_token(staff_user) -> str:
    """The key of the staff user's DRF token."""
    return _token_key(staff_user)


@pytest.fixture
def staff_client(staff_token):
    """An API client that sends the staff user's token."""
    return _token_client(staff_token)


@pytest.fixture
def plain_user(db, django_user_model):
    return django_user_model.objects.create_user("viewer", password="secret-pass-2")


@pytest.fixture
def token(plain_user) -> str:
    """The key of the DRF token of a user who is not staff."""
    return _token_key(plain_user)


@pytest.fixture
def plain_client(token):
    """An API client with the token of a user who is not staff."""
    return _token_client(token)


@pytest.fixture
def anon_client():
    """An API client without credentials."""
    return APIClient()


def _session_cookie(username: str) -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_user(username, password="secret-pass-3")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
async def session_cookie():
    """A `Cookie` header value carrying a logged-in user's Django session."""
    key = await sync_to_async(_session_cookie)("browser-user")
    return f"sessionid={key}"


# --- rigs and sessions over the API ---------------------------------------------------------------


@pytest.fixture
def sim_rig(db):
    """The simulated rig every installation has (made by a migration)."""
    from sensors.models import DEFAULT_RIG

    return Rig.objects.get(name=DEFAULT_RIG)


@pytest.fixture
def bench(db):
    """The external rig `bench` with BENCH_SENSORS."""
    return bench_create()


@pytest.fixture
def start(staff_client):
    """Start a session on a rig over the API; returns the start response body."""

    def start(rig: str | None = None, **body) -> dict:
        if rig is not None:
            body["rig"] = rig
        response = staff_client.post("/api/v1/sessions/start", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return start


@pytest.fixture
def ingest(staff_client):
    """POST a batch to a session's readings; returns the response."""

    def ingest(session_id: int, batch, *, api=None):
        return (api or staff_client).post(f"/api/v1/sessions/{session_id}/readings/", batch, format="json")

    return ingest


@pytest.fixture
def bench_session(bench, start):
    """A recording session of the external rig; its id."""
    return start("bench")["session_id"]


# --- the live feed through the real ASGI stack ----------------------------------------------------
# Every live test talks to `robotest_site.asgi.application` (AuthMiddlewareStack + WebSocketAccess +
# URLRouter) through channels' communicators, with `pytestmark = pytest.mark.usefixtures("live_layer")`.
# Frames are read straight from the communicator's output queue: `receive_output` cancels the
# consumer when it times out, which would hide the very "the connection stays open" the tests check.


def _close_connection() -> None:
    connection.close()


@pytest.fixture
async def live_layer():
    """A clean Redis layer for the test (the live tests use it, `pytestmark`); afterwards the shared ORM thread lets go of the test database.

    The layer object is made anew: each test runs on its own event loop, and a RedisChannelLayer
    remembers the loop its receivers wait on (and their buffers): a receive abandoned when a
    test's loop closed must not make the next test's receives fail or wait.
    """
    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
    layer = get_channel_layer()
    await layer.flush()
    # Pool a few connections now. With redis-py 8 a channel-layer `receive` cancelled while it
    # opens a new connection is not cancelled: it carries on into its 5 s BZPOPMIN. A consumer
    # disconnected during its first receive (every rejected handshake) then takes 5 s to end.
    await asyncio.gather(*(layer.group_discard("warm-up", f"warm-up.{i}") for i in range(12)))
    yield layer
    # The presence heartbeat writes from the shared thread every 2 s: stop it first, so nothing
    # reopens that thread's connection after it is closed.
    beat = presence._beat
    if beat is not None and not beat.done():
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    await sync_to_async(_close_connection)()


def auth(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Token {key}".encode())]


class LiveClient:
    """A WebsocketCommunicator with readers that never cancel the consumer on a timeout."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.closed = False

    async def next(self, timeout: float = 5.0) -> dict:
        """The next message the server sent (a decoded frame, or the `websocket.close` message)."""
        try:
            message = await asyncio.wait_for(self.communicator.output_queue.get(), timeout)
        except TimeoutError:
            self._raise_if_stopped()
            raise
        if message["type"] == "websocket.send":
            return json.loads(message["text"])
        return message

    def _raise_if_stopped(self) -> None:
        """Raise the consumer's exception (once: the test has seen it, teardown need not) if it ended."""
        future = self.communicator.future
        if future.done():
            self.closed = True
            future.result()
            raise AssertionError("the consumer has stopped")

    async def frame(self, timeout: float = 5.0) -> dict:
        message = await self.next(timeout)
        assert "type" in message and message["type"] != "websocket.close", f"expected a frame, got {message}"
        return message

    async def frame_of(self, kind: str, timeout: float = 5.0) -> dict:
        """The next frame of type `kind`, skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.next(max(deadline - loop.time(), 0.01))
            if message.get("type") == kind:
                return message
            assert message.get("type") != "websocket.close", f"closed while waiting for {kind}: {message}"

    async def collect(self, done, timeout: float = 10.0) -> list[dict]:
        """Frames until `done(frames)` is true; fails after `timeout`."""
        frames: list[dict] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done(frames):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"gave up after {timeout} s with {len(frames)} frames: {frames[-5:]}")
            try:
                frames.append(await self.frame(min(remaining, 1.0)))
            except TimeoutError:
                continue
        return frames

    async def quiet(self, seconds: float = 0.3) -> list[dict]:
        """Every frame that arrives until none has come for `seconds`."""
        frames: list[dict] = []
        while True:
            try:
                frames.append(await self.frame(seconds))
            except TimeoutError:
                return frames

    async def send(self, message) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self._raise_if_stopped()
        await self.communicator.send_to(text_data=text)

    async def ask(self, message, kind: str) -> dict:
        await self.send(message)
        return await self.frame_of(kind)

    async def subscribe(self, **data) -> dict:
        confirmed = await self.ask({"type": "subscribe", "data": data}, "subscription_confirmed")
        return confirmed["data"]

    async def assert_open(self) -> None:
        """The connection still answers: a ping gets its pong."""
        pong = await self.ask({"type": "ping", "timestamp": 4242.5}, "pong")
        assert pong == {"type": "pong", "timestamp": 4242.5}

    async def disconnect(self) -> None:
        if not self.closed:
            self.closed = True
            await self.communicator.disconnect(timeout=5)


@pytest.fixture
async def ws():
    """Opens WebSocket connections to the real stack; every one is disconnected at the end.

    `await ws(...)` returns a LiveClient whose connection was accepted and, unless
    `established=False`, whose `connection_established` frame has been read.
    """
    opened: list[LiveClient] = []

    async def open_(path: str = WS_PATH, headers=(), *, established: bool = True) -> LiveClient:
        communicator = WebsocketCommunicator(application, path, headers=list(headers))
        client = LiveClient(communicator)
        opened.append(client)
        accepted, _ = await communicator.connect(timeout=5)
        assert accepted, "the handshake was refused outright"
        if established:
            first = await client.frame()
            assert first["type"] == "connection_established", first
        return client

    yield open_
    failures = []
    for client in opened:
        try:
            await client.disconnect()
        except Exception as exc:  # noqa: BLE001 (a consumer that died unseen: raised after the rest close)
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
async def live(ws, token):
    """An authenticated client with no subscription, past its `connection_established`."""
    return await ws(headers=auth(token))


@dataclass
class Recording:
    """A recording session of an external rig; `record` stores readings and publishes them."""

    session_id: int
    rig: str
    recorder: SessionRecorder

    async def record(self, items) -> RecordResult:
        """readings_record, then every event of events.batch_events published, as ingest does."""
        result = await sync_to_async(readings_record)(recorder=self.recorder, items=items)
        layer = get_channel_layer()
        for event in events.batch_events(result):
            await events.publish(layer, self.session_id, event)
        return result


def _start(rig_name: str, sensors: list[dict]) -> int:
    rig = rig_create(name=rig_name, source=Rig.Source.EXTERNAL, sensors=sensors)
    return session_start(rig=rig, name=f"{rig_name} run").pk


@pytest.fixture
async def recording():
    """`await recording("bench")`: an external rig with BENCH_SENSORS and a session recording it."""

    async def start(rig_name: str = "bench", sensors: list[dict] = BENCH_SENSORS) -> Recording:
        session_id = await sync_to_async(_start)(rig_name, sensors)
        return Recording(session_id, rig_name, SessionRecorder(session_id))

    return start


async def http(method: str, path: str, *, body=None, headers=()) -> tuple[int, object]:
    """One request through the real ASGI application; (status, decoded JSON body)."""
    raw = b"" if body is None else json.dumps(body).encode()
    all_headers = [(b"host", HOST.encode()), (b"content-type", b"application/json"),
                   (b"content-length", str(len(raw)).encode()), *headers]
    communicator = HttpCommunicator(application, method, path, body=raw, headers=all_headers)
    response = await communicator.get_response(timeout=10)
    # Let Django finish the request (request_finished closes the request thread's connection).
    await communicator.wait(timeout=10)
    return response["status"], json.loads(response["body"] or b"null")


async def ingest_over_asgi(session_id: int, key: str, readings: list[dict]) -> dict:
    """POST a batch to the ingest endpoint; it validates, stores and publishes it."""
    status, body = await http("POST", f"/api/v1/sessions/{session_id}/readings/", body=readings, headers=auth(key))
    assert status == 201, body
    return body


# --- end-to-end: real processes on free ports (tests/e2e/harness.py) ------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and call.when in ("setup", "call"):
        module = item.nodeid.split("::")[0]
        for proc in Processes.all:
            if proc.owner in (item.nodeid, module):
                report.sections.append((f"e2e: {proc.describe()}, last lines", proc.tail()))
    return report


@pytest.fixture(scope="module")
def module_procs(request, tmp_path_factory):
    """Processes that live as long as the test module."""
    procs = Processes(tmp_path_factory.mktemp("procs"), owner=request.node.nodeid)
    yield procs
    procs.stop_all()


@pytest.fixture
def procs(request, tmp_path):
    """Processes that live as long as the test."""
    procs = Processes(tmp_path, owner=request.node.nodeid)
    yield procs
    procs.stop_all()


@pytest.fixture(scope="module")
def redis_url():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="module")
def private_redis_url():
    """A Redis database of the module's own, emptied at its end (see `claim_redis_db`).

    A module that watches the live feed overrides `redis_url` with it.
    """
    url, token = claim_redis_db()
    try:
        yield url
    finally:
        release_redis_db(url, token)


@pytest.fixture(scope="module")
def pg_database():
    """A fresh, migrated PostgreSQL database for the module; dropped at its end."""
    database = PostgresDatabase.create(f"robotest_e2e_{secrets.token_hex(4)}")
    try:
        run_manage(["migrate", "--noinput", "-v", "0"], env=process_env(settings=LOCAL, database_url=database.url))
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="module")
def pg_token(pg_database):
    return create_token(process_env(settings=LOCAL, database_url=pg_database.url))


@pytest.fixture(scope="module")
def production(module_procs, pg_database, redis_url, pg_token):
    """A production stack whose processes may live as long as the module."""
    stack = ProductionStack(module_procs, database=pg_database, redis_url=redis_url, token=pg_token)
    yield stack
    module_procs.stop_all()
    stack.cleanup()


@pytest.fixture(scope="module")
def web(production) -> Api:
    """One daphne for the module."""
    return production.start_web()


@pytest.fixture
def workers(production, procs):
    """Starts run_simulators processes that live as long as the test; the session they leave is aborted."""

    class Workers:
        def start(self):
            return production.start_worker(procs)

    yield Workers()
    procs.stop_all()
    production.cleanup()
