"""The simulator engine in-process: the real Engine on this loop, PostgreSQL and the Redis layer."""

import asyncio
import json
import random

import psycopg
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from sensors.models import Rig, Sensor
from sensors.simulators import seed_key_for, simulator_for
from sessions.engine import FLUSH_MAX_WAIT, Engine, _listen_params
from sessions.live.events import LIVE_GROUP
from sessions.models import EngineHeartbeat, Reading, RecordingSession
from sessions.services import session_start, session_stop

# serialized_rollback: the data migration's `sim` rig survives the flush between tests.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _close_connection() -> None:
    connection.close()


@pytest.fixture(autouse=True)
async def close_shared_thread_connection():
    """The ORM's async calls share one thread; its connection must go before the test database does."""
    yield
    await sync_to_async(_close_connection)()


def _stop(session):
    """session_stop from a worker thread, which then closes its connection (the test database is dropped later)."""
    try:
        return session_stop(session=session)
    finally:
        connection.close()


@pytest.fixture
def fast_rates(settings):
    settings.FORCE_SENSOR_HZ = 200.0
    settings.MOTOR_SENSOR_HZ = 50.0
    settings.CAMERA_SENSOR_HZ = 10.0
    settings.ROBOTEST_SIMULATOR_SEED = 7


async def _collect(layer, channel, into: list, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            into.append(await asyncio.wait_for(layer.receive(channel), timeout=0.2))
        except TimeoutError:
            continue


async def test_engine_records_a_session_and_publishes_every_stored_batch_once(fast_rates):
    layer = get_channel_layer()
    await layer.flush()
    rig = await Rig.objects.aget(name="sim")
    session = await sync_to_async(session_start)(rig=rig, name="engine test")
    channel = await layer.new_channel()
    await layer.group_add(LIVE_GROUP, channel)
    events: list[dict] = []
    done = asyncio.Event()
    collector = asyncio.create_task(_collect(layer, channel, events, done))
    stop = asyncio.Event()
    engine_task = asyncio.create_task(Engine(layer=layer, poll_seconds=0.2).run(stop))

    await asyncio.sleep(2.0)
    assert await EngineHeartbeat.objects.acount() == 1
    stopped = await sync_to_async(_stop, thread_sensitive=False)(session)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(engine_task, timeout=5)
    done.set()
    await collector

    assert stopped.status == RecordingSession.Status.COMPLETED
    duration = (stopped.stopped_at - stopped.started_at).total_seconds()
    counts = {name: s["count"] for name, s in stopped.summary_stats.items()}
    for name, rate in (("force", 200), ("motor", 50), ("camera", 10)):
        assert counts[name] == pytest.approx(rate * duration, rel=0.1, abs=1.5), name
    assert stopped.reading_count == sum(counts.values()) == await Reading.objects.filter(session=session).acount()
    # Every stored reading went out once, in sequence order, and the last event is the status.
    batches = [e for e in events if e["type"] == "sensor.batch"]
    seqs = [json.loads(line)["seq"] for b in batches for line in b["lines"]]
    assert seqs == list(range(1, stopped.reading_count + 1))
    assert events[-1]["type"] == "system.status"
    assert events[-1]["data"]["verdict"] == stopped.verdict
    # Flushes are paced (FLUSH_MAX_WAIT, 50 ms at these 260 readings/s): one every sample would be 520+.
    assert len(batches) <= duration / FLUSH_MAX_WAIT + 5
    assert len(batches) >= duration / FLUSH_MAX_WAIT / 3, "batches are not held back longer than the pacing"
    # A clean exit removes the heartbeat: /health then says no worker.
    assert await EngineHeartbeat.objects.acount() == 0


async def test_engine_resumes_a_session_left_recording_and_simulates_the_downtime_as_it_would_have(fast_rates):
    layer = get_channel_layer()
    rig = await Rig.objects.aget(name="sim")
    session = await sync_to_async(session_start)(rig=rig)

    stop = asyncio.Event()
    task = asyncio.create_task(Engine(layer=layer, poll_seconds=0.2).run(stop))
    await asyncio.sleep(1.0)
    stop.set()
    await task
    first_run = await Reading.objects.filter(session=session).acount()
    assert first_run > 0

    await asyncio.sleep(3.0)  # the engine is down
    stop = asyncio.Event()
    task = asyncio.create_task(Engine(layer=layer, poll_seconds=0.2).run(stop))
    await asyncio.sleep(1.0)
    stop.set()
    await task

    t0 = session.started_at.timestamp()
    for name, rate in (("force", 200.0), ("motor", 50.0), ("camera", 10.0)):
        stored = [
            (ts.timestamp(), value) async for ts, value in Reading.objects.filter(session=session, sensor__name=name)
            .order_by("timestamp").values_list("timestamp", "value")
        ]
        # The downtime is simulated too, sample for sample what one engine running throughout
        # would have stored (an independent simulator from sample 0, same seed key).
        expected = simulator_for(
            name, rate_hz=rate, t0=t0, rng=random.Random(), seed_key=seed_key_for(7, session.pk, name)
        ).due(stored[-1][0] + 0.5 / rate)  # half a period on: the last stored sample, whatever its rounding
        assert len(stored) == len(expected) > rate * 4.5, name
        for (ts, value), (want_ts, want) in zip(stored, expected, strict=True):
            assert ts == pytest.approx(want_ts, abs=1e-6) and value == want, name
    seqs = [s async for s in Reading.objects.filter(session=session).order_by("seq").values_list("seq", flat=True)]
    assert seqs == list(range(1, len(seqs) + 1))
    refreshed = await RecordingSession.objects.aget(pk=session.pk)
    assert refreshed.status == RecordingSession.Status.RECORDING
    assert refreshed.lost_readings == 0


async def test_two_engines_share_the_sessions_and_never_record_one_twice(fast_rates):
    layer = get_channel_layer()
    rig = await Rig.objects.aget(name="sim")
    session = await sync_to_async(session_start)(rig=rig)
    stop = asyncio.Event()
    engines = [Engine(layer=layer, poll_seconds=0.2, name=f"test-engine-{i}") for i in range(2)]
    tasks = [asyncio.create_task(e.run(stop)) for e in engines]
    await asyncio.sleep(1.5)
    owners = [e.name for e in engines if session.pk in e.runners]
    stop.set()
    await asyncio.gather(*tasks)

    assert len(owners) == 1
    for sensor in ("force", "motor", "camera"):
        stamps = [
            ts async for ts in Reading.objects.filter(session=session, sensor__name=sensor).values_list("timestamp", flat=True)
        ]
        assert stamps and len(stamps) == len(set(stamps)), sensor


# --- Wake-ups: the engine hears of new sessions from the database's NOTIFY, no poll to fall back on ---

# Longer than any test: a session noticed at all was noticed through a wake-up.
NO_POLL = 3600.0


def _start(rig_name: str) -> int:
    try:
        return session_start(rig=Rig.objects.get(name=rig_name)).pk
    finally:
        connection.close()


def _simulated_rig(name: str) -> None:
    rig = Rig.objects.create(name=name, source=Rig.Source.SIMULATED)
    Sensor.objects.create(rig=rig, name="fz", sensor_type="force", rate_hz=50.0)


def _database() -> psycopg.Connection:
    return psycopg.connect(**_listen_params(), autocommit=True)


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def _recorded(session_id: int) -> bool:
    return await Reading.objects.filter(session_id=session_id).aexists()


async def test_a_session_started_while_the_engine_claims_is_claimed_at_once_not_at_the_next_poll():
    await RecordingSession.objects.filter(status="recording").aupdate(status="aborted")
    await sync_to_async(_simulated_rig)("wake-a")
    await sync_to_async(_simulated_rig)("wake-b")
    first = await sync_to_async(_start, thread_sensitive=False)("wake-a")
    stop = asyncio.Event()
    engine_task = None
    with _database() as locker, _database() as watcher:
        # The engine's claim of the first session waits on this row lock: the second session
        # starts (and notifies) while that claim, which did not see it, is still running.
        locker.execute("BEGIN")
        locker.execute("SELECT id FROM recording_recordingsession WHERE id = %s FOR UPDATE", [first])
        engine_task = asyncio.create_task(Engine(layer=get_channel_layer(), poll_seconds=NO_POLL).run(stop))
        try:
            await _until(lambda: asyncio.to_thread(
                lambda: watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0
            ), "the engine's claim waiting on the lock")
            second = await sync_to_async(_start, thread_sensitive=False)("wake-b")
            locker.execute("COMMIT")

            await _until(lambda: _recorded(first), "readings of the first session")
            await _until(lambda: _recorded(second), "readings of the second session")
        finally:
            if locker.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                locker.execute("ROLLBACK")
            stop.set()
            await asyncio.wait_for(engine_task, timeout=10)


async def test_an_idle_engine_records_a_session_as_soon_as_it_is_started():
    await RecordingSession.objects.filter(status="recording").aupdate(status="aborted")
    await sync_to_async(_simulated_rig)("wake-c")
    stop = asyncio.Event()
    engine_task = asyncio.create_task(Engine(layer=get_channel_layer(), poll_seconds=NO_POLL).run(stop))
    try:
        await asyncio.sleep(0.5)  # idle: its first claims found nothing
        session_id = await sync_to_async(_start, thread_sensitive=False)("wake-c")
        await _until(lambda: _recorded(session_id), "readings of the session")
    finally:
        stop.set()
        await asyncio.wait_for(engine_task, timeout=10)
