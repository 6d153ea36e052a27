"""The simulator engine: runs the simulators of every recording session of every simulated rig.

One asyncio code path, two entry points: `manage.py serve` schedules `Engine.run` on daphne's
own loop (with the in-memory layer), `manage.py run_simulators` runs it in a process of its own
(through Redis). Each session has a runner task that takes the samples its simulators have due,
stores them through the pipeline and hands them to a publisher task. Group commit: a runner
flushes as soon as its previous flush is done, so at low rates each reading is stored and
published at once and at high rates batches grow by themselves.
"""

import asyncio
import contextvars
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, ProgrammingError, close_old_connections, connection
from django.utils import timezone

from robotest_site.observability import logs, metrics
from sensors.models import Rig, Sensor
from sensors.simulators import has_simulator, rate_for, rng_for, simulator_for, start_index
from sessions.live import events
from sessions.models import EngineHeartbeat, Reading, RecordingSession
from sessions.reads.sessions import session_summary
from sessions.recording.pipeline import SessionNotRecording, SessionRecorder, readings_record
from sessions.services import session_complete

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 1.0
# A session noticed late (or resumed) catches up at most this much of its schedule: after a
# crash the time the engine was down stays a gap rather than a burst of invented readings.
CATCH_UP_SECONDS = 2.0
# A flush that failed (the database went away) is retried after this long, readings kept.
RETRY_SECONDS = 1.0
# Readings per flush at most (a transaction of about a fifth of a second on PostgreSQL).
MAX_FLUSH = 10_000
# Publishing never holds up recording: events wait here, and the oldest go when it is full.
PUBLISH_QUEUE = 256


class Engine:
    """Keeps one runner per recording session of a simulated rig, and a heartbeat."""

    def __init__(self, *, layer=None, poll_seconds: float = POLL_SECONDS, name: str | None = None) -> None:
        self.layer = layer if layer is not None else get_channel_layer()
        self.poll_seconds = poll_seconds
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.runners: dict[int, SessionRunner] = {}
        # One thread of our own for the database: it keeps its connection between flushes, and
        # keeps the engine off the thread that Channels and sync views share.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-db")
        # Heartbeat and session claims get a thread of their own: behind a long flush they would
        # miss the heartbeat timeout and notice a stop late.
        self._control = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-control")
        self._wake = asyncio.Event()
        metrics.engine_buffer(lambda: sum(len(r.pending) for r in list(self.runners.values())))

    async def db(self, fn, /, *args, **kwargs):
        """Run `fn` in the engine's database thread (in the caller's context: its log lines name the session)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._db, partial(contextvars.copy_context().run, _db_call, fn, *args, **kwargs)
        )

    async def control(self, fn, /, *args, **kwargs):
        """Run `fn` in the engine's control thread (heartbeat, claims)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._control, partial(_db_call, fn, *args, **kwargs)
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then flush every session and return."""
        listener = asyncio.create_task(self._listen())
        stopper = asyncio.create_task(stop.wait())
        last_beat = 0.0
        logger.info("engine %s started", self.name)
        try:
            while not stop.is_set():
                try:
                    # Beat before claiming: other engines must see this one alive before it owns anything.
                    if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                        await self.control(_beat, self.name, len(self.runners))
                        last_beat = time.monotonic()
                    await self._reconcile()
                except DatabaseError:
                    logger.exception("engine could not reach the database; retrying")
                self._wake.clear()
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait({stopper, waker}, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
        finally:
            listener.cancel()
            stopper.cancel()
            await asyncio.gather(*(r.close() for r in self.runners.values()), return_exceptions=True)
            try:
                await self.control(_unbeat, self.name)
            except DatabaseError:
                logger.warning("could not remove the heartbeat of %s", self.name)
            await self.db(_close_connection)
            await self.control(_close_connection)
            self._db.shutdown(wait=True)
            self._control.shutdown(wait=True)
            logger.info("engine %s stopped", self.name)

    async def _listen(self) -> None:
        """Wake the reconcile loop when the API starts or stops a session (a shortcut; it polls anyway)."""
        while True:
            try:
                channel = await self.layer.new_channel()
                await self.layer.group_add(events.ENGINE_GROUP, channel)
                while True:
                    await self.layer.receive(channel)
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A layer fault (Redis restarting, a read timeout under load) pauses wake-ups only.
                logger.warning("engine wake-ups paused; polling every %.1f s", self.poll_seconds, exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)

    async def _reconcile(self) -> None:
        sessions = await self.control(_claim_sessions, self.name)
        for session_id in list(self.runners):
            if session_id not in sessions:
                # Aborted, deleted or completed by someone else: what it still holds is not wanted.
                self.runners.pop(session_id).abandon()
        for session_id, info in sessions.items():
            runner = self.runners.get(session_id)
            if runner is None or runner.task.done():
                runner = self.runners[session_id] = SessionRunner(self, info)
                runner.start()
            if info["stop_requested_at"] is not None:
                runner.request_stop(info["stop_requested_at"])
        for session_id, runner in list(self.runners.items()):
            if runner.task.done() and runner.finished:
                del self.runners[session_id]


class SessionRunner:
    """Generates, stores and publishes one session's simulated readings."""

    def __init__(self, engine: Engine, info: dict) -> None:
        self.engine = engine
        self.session_id = info["id"]
        self.info = info
        self.recorder = SessionRecorder(self.session_id)
        self.simulators: list = []
        self.pending: list = []
        self.stop_at: float | None = None
        self.closing = False
        self.finished = False
        self._nudge = asyncio.Event()
        self._events: asyncio.Queue = asyncio.Queue(maxsize=PUBLISH_QUEUE)
        self.dropped_events = 0
        self.task: asyncio.Task | None = None
        self._publisher: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"session-{self.session_id}")
        self._publisher = asyncio.create_task(self._publish_loop(), name=f"publish-{self.session_id}")

    def request_stop(self, stop_at: float) -> None:
        if self.stop_at is None:
            self.stop_at = stop_at
            self._nudge.set()

    async def close(self) -> None:
        """Engine shutdown: store what is due, leave the session recording for the next engine."""
        self.closing = True
        self._nudge.set()
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=4.0)
        await self._drain_events(timeout=0.5)

    def abandon(self) -> None:
        for task in (self.task, self._publisher):
            if task is not None:
                task.cancel()

    async def _run(self) -> None:
        logs.session_id.set(self.session_id)  # this task's own context: every line it logs names the session
        try:
            await self._build_simulators()
            while True:
                horizon = time.time()
                if self.stop_at is not None:
                    horizon = min(horizon, self.stop_at)
                for name, sim in self.simulators:
                    for ts, value in sim.due(horizon):
                        self.pending.append((name, ts, value))
                if self.pending:
                    await self._flush()
                if self.stop_at is not None and horizon >= self.stop_at and not self.pending:
                    await self._complete()
                    return
                if self.closing and not self.pending:
                    return
                await self._sleep()
        except SessionNotRecording:
            logger.info("session %s no longer records; its runner ends", self.session_id)
            self.finished = True
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("runner of session %s failed; it restarts at the next poll", self.session_id)
        finally:
            if self._publisher is not None and not self._publisher.done():
                await self._drain_events(timeout=0.5)

    async def _build_simulators(self) -> None:
        sensors, last = await self.engine.db(_session_sensors, self.session_id, self.info["rig_id"])
        t0 = self.info["started_at"]
        now = time.time()
        seed = settings.ROBOTEST_SIMULATOR_SEED
        for name, sensor_type, rate_hz in sensors:
            if not has_simulator(sensor_type):
                logger.warning("sensor %s of session %s (%s) has no simulator", name, self.session_id, sensor_type)
                continue
            rate = self.info["rates"].get(name) or rate_for(sensor_type, rate_hz)
            first = start_index(rate_hz=rate, t0=t0, now=now - CATCH_UP_SECONDS)
            if name in last:
                first = max(first, round((last[name] - t0) * rate) + 1)
            rng = rng_for(seed, self.session_id, name)
            self.simulators.append((name, simulator_for(sensor_type, rate_hz=rate, t0=t0, rng=rng, start_n=first)))

    async def _flush(self) -> None:
        # A bounded flush: an engine that fell behind catches up in steps it can still stop between.
        batch, self.pending = self.pending[:MAX_FLUSH], self.pending[MAX_FLUSH:]
        while True:
            try:
                result = await self.engine.db(
                    readings_record, recorder=self.recorder, items=batch, until_stop=True, source="simulator"
                )
                break
            except SessionNotRecording:
                raise
            except (DataError, IntegrityError, ProgrammingError):
                # Not a passing fault: retrying the same batch would stall the session for good.
                logger.exception("dropped %d readings of session %s that cannot be stored", len(batch), self.session_id)
                metrics.readings_lost("unstorable", len(batch))
                return
            except DatabaseError:
                logger.exception("could not store %d readings of session %s; retrying", len(batch), self.session_id)
                # The same bounded batch again: the runner waits on this flush, so nothing new fell
                # due meanwhile, and what was left over (self.pending) goes in the next flushes.
                await asyncio.sleep(RETRY_SECONDS)
        if result.lines:
            for event in events.batch_events(result):
                self._emit(event)

    async def _complete(self) -> None:
        session = await self.engine.db(session_complete, session_id=self.session_id, publish=False)
        summary = await self.engine.db(session_summary, session)
        self._emit(events.status_event(summary))
        await self._drain_events(timeout=1.0)
        self.finished = True
        logger.info("session %s completed: %s readings", self.session_id, session.reading_count)

    async def _sleep(self) -> None:
        upcoming = min((sim.next_time for _, sim in self.simulators), default=time.time() + self.engine.poll_seconds)
        if self.stop_at is not None:
            upcoming = min(upcoming, self.stop_at)
        delay = upcoming - time.time()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        self._nudge.clear()
        try:
            await asyncio.wait_for(self._nudge.wait(), timeout=min(delay, self.engine.poll_seconds))
        except TimeoutError:
            pass

    def _emit(self, event: dict) -> None:
        if self._events.full():
            self._events.get_nowait()
            self.dropped_events += 1
        self._events.put_nowait(event)

    async def _publish_loop(self) -> None:
        logs.session_id.set(self.session_id)
        layer = self.engine.layer
        while True:
            event = await self._events.get()
            await events.publish(layer, self.session_id, event)
            self._events.task_done()

    async def _drain_events(self, *, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._events.join(), timeout=timeout)
        except TimeoutError:
            logger.warning("session %s: %d live events not sent", self.session_id, self._events.qsize())
        if self._publisher is not None:
            self._publisher.cancel()


def _db_call(fn, /, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        # A broken connection is not reused: the next call reconnects.
        close_old_connections()
        connection.close()
        raise


def _close_connection() -> None:
    # Looked up in the database thread: `connection` resolves to the calling thread's connection.
    connection.close()


def _claim_sessions(name: str) -> dict[int, dict]:
    """Take the recording sessions no live engine runs, and return all this engine runs."""
    recording = RecordingSession.objects.filter(
        status=RecordingSession.Status.RECORDING, rig__source=Rig.Source.SIMULATED
    )
    horizon = timezone.now() - timedelta(seconds=settings.ROBOTEST_HEARTBEAT_TIMEOUT)
    alive = set(EngineHeartbeat.objects.filter(beat_at__gte=horizon).values_list("name", flat=True))
    alive |= {name}
    for owner in set(recording.exclude(engine="").values_list("engine", flat=True)) & alive:
        if _died_here(owner):
            alive.discard(owner)
    free = list(recording.exclude(engine__in=alive).values_list("pk", flat=True))
    # `engine` is tested again in the UPDATE's own WHERE, which PostgreSQL re-checks on the locked
    # row: of two engines claiming one session at once, the second finds it taken.
    RecordingSession.objects.filter(pk__in=free).exclude(engine__in=alive).update(engine=name)
    rows = recording.filter(engine=name).values("id", "rig_id", "started_at", "stop_requested_at", "rates")
    return {
        row["id"]: {
            **row,
            "started_at": row["started_at"].timestamp(),
            "stop_requested_at": row["stop_requested_at"].timestamp() if row["stop_requested_at"] else None,
        }
        for row in rows
    }


def _died_here(owner: str) -> bool:
    """An engine of this host whose process is gone (killed, then restarted at once) owns nothing."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _session_sensors(session_id: int, rig_id: int) -> tuple[list[tuple], dict[str, float]]:
    """The rig's sensors, and when each last stored a reading in this session (to resume after it)."""
    sensors = list(Sensor.objects.filter(rig_id=rig_id).values_list("id", "name", "sensor_type", "rate_hz"))
    last = {}
    for pk, name, _, _ in sensors:
        ts = (
            Reading.objects.filter(session_id=session_id, sensor_id=pk)
            .order_by("-timestamp")
            .values_list("timestamp", flat=True)
            .first()
        )
        if ts is not None:
            last[name] = ts.timestamp()
    return [(name, sensor_type, rate_hz) for _, name, sensor_type, rate_hz in sensors], last


def _beat(name: str, sessions: int) -> None:
    EngineHeartbeat.objects.update_or_create(
        name=name, defaults={"pid": os.getpid(), "beat_at": timezone.now(), "sessions": sessions}
    )


def _unbeat(name: str) -> None:
    EngineHeartbeat.objects.filter(name=name).delete()
