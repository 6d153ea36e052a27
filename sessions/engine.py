"""The simulator engine: runs the simulators of every recording session of every simulated rig.

One asyncio code path, two entry points: `manage.py serve` schedules `Engine.run` on daphne's
own loop (with the in-memory layer), `manage.py run_simulators` runs it in a process of its own
(through Redis). Each session has a runner task that takes the samples its simulators have due,
stores them through the pipeline and hands them to a publisher task. Flushes are paced: a
session's first readings are stored at once, later ones at most every FLUSH_MAX_WAIT (100 ms) or
as soon as FLUSH_TARGET readings are due at the session's rates, whichever is sooner. Batches so
depend on the session's rates, not on how busy the engine is or how many engines share the
sessions (a flush costs ~3 ms whatever its size: per reading, small batches are dear).

Faults (docs/operations.md "Faults"): a simulator's values depend on its session, sensor and
sample index only, so an engine that takes over a killed one's session simulates the gap from
the last stored sample on, and every sample is stored once. While the database is away a runner
keeps generating into a bounded buffer (ROBOTEST_ENGINE_BUFFER_SECONDS of the session's rates),
retries with backoff, and drops the oldest beyond the bound, counting them in the session's
`lost_readings` (its verdict is then error). A flush carries the engine's name: an engine that
lost its session (frozen past the heartbeat timeout) stores nothing more of it.
"""

import asyncio
import contextvars
import logging
import math
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

import psycopg
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, close_old_connections, connection
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from robotest_site.observability import logs, metrics
from sensors.models import Rig, Sensor
from sensors.simulators import has_simulator, rate_for, rng_for, session_seed_key, simulator_for, start_index
from sessions.live import events
from sessions.models import EngineHeartbeat, Reading, RecordingSession
from sessions.reads.sessions import session_summary
from sessions.recording.pipeline import SessionNotRecording, SessionRecorder, readings_record
from sessions.services import session_complete

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 1.0
# A flush that failed (the database went away) is retried after RETRY_SECONDS, doubling up to
# RETRY_MAX_SECONDS; the readings stay in the runner's buffer meanwhile.
RETRY_SECONDS = 0.25
RETRY_MAX_SECONDS = 1.0
# A fault goes on for a while: say so again at most this often, not on every retry.
REPEAT_LOG_SECONDS = 10.0
# Readings per flush at most (a transaction of about a fifth of a second on PostgreSQL).
MAX_FLUSH = 10_000
# Publishing never holds up recording: events wait here, and the oldest go when it is full.
PUBLISH_QUEUE = 256
# After a layer fault the wake-up listener tries again this often.
LISTEN_RETRY_SECONDS = 1.0
# Flush pacing (see the module's docstring): readings per flush aimed at, and the longest wait.
FLUSH_TARGET = 200
FLUSH_MAX_WAIT = 0.1
# A group nobody joins, sent to once at start (Engine._open_publishing).
WARM_UP_GROUP = "engine.warm-up"
# On shutdown a runner keeps trying to store what is due this long (the database may be away).
CLOSE_SECONDS = 4.0


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
        # Readings this engine dropped since it started (buffer full), for its heartbeat and /health.
        self.lost_readings = 0
        # When the database last failed this engine: until a heartbeat timeout after it answers
        # again, other engines' heartbeats may be stale for the same reason, and none is taken for dead.
        self._db_failed_at: float | None = None
        self._db_failing = False
        metrics.engine_buffer(self.buffered)

    def buffered(self) -> int:
        return sum(len(r.pending) for r in list(self.runners.values()))

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
        listeners = [asyncio.create_task(self._listen("channel layer", self._layer_wakes))]
        if connection.vendor == "postgresql":
            listeners.append(asyncio.create_task(self._listen("database", self._database_wakes)))
        stopper = asyncio.create_task(stop.wait())
        self._last_beat = 0.0
        woken = False
        logger.info("engine %s started", self.name)
        try:
            # The database thread's connection now, not in the first session's first step.
            await self.db(_connect)
        except DatabaseError as exc:
            self._database_failed(exc)
        await self._open_publishing()
        try:
            while not stop.is_set():
                # Cleared before the claim, not after it: a wake-up that comes while a claim runs
                # (whose snapshot may predate the new session's commit) gets another claim at once,
                # not one at the next poll (a session's first frame 0.5 s late, issue 12).
                self._wake.clear()
                try:
                    # Beat before claiming: other engines must see this one alive before it owns anything.
                    # Woken (a session started or stops), an engine that has beaten claims first: its
                    # heartbeat is at most a second old, and the claim is on the new session's way
                    # to its first frame.
                    if woken and self._last_beat:
                        await self._reconcile()
                        await self._beat_if_due()
                    else:
                        await self._beat_if_due()
                        await self._reconcile()
                    self._database_back()
                except DatabaseError as exc:
                    self._database_failed(exc)
                waker = asyncio.create_task(self._wake.wait())
                done, _ = await asyncio.wait(
                    {stopper, waker}, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                woken = waker in done
                waker.cancel()
        finally:
            for listener in listeners:
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

    async def _open_publishing(self) -> None:
        """Open the layer connection the publishers use, before the first session's first batch.

        A send to a group nobody joins: the layer reads the group's members (none) and sends
        nothing, but the connection it took stays in its pool for the first real publish.
        """
        try:
            await self.layer.group_send(WARM_UP_GROUP, {"type": "engine.warm_up"})
        except Exception:
            # Redis is away: the first publish connects, or finds it away, as it would anyway.
            logger.debug("could not open the channel layer's connection", exc_info=True)

    async def _beat_if_due(self) -> None:
        if time.monotonic() - self._last_beat >= HEARTBEAT_SECONDS:
            await self.control(_beat, self.name, len(self.runners), self.buffered(), self.lost_readings)
            self._last_beat = time.monotonic()

    async def _listen(self, source: str, wakes) -> None:
        """Wake the reconcile loop on each item of `wakes()` (a shortcut: the loop polls anyway).

        A fault (the database or Redis restarting, a read timeout under load) pauses these
        wake-ups only: said once, with its cause, and once when they are back.
        """
        failing_since = None
        while True:
            try:
                async for _ in wakes():
                    if failing_since is not None:
                        logger.warning("engine wake-ups from the %s back after %.1f s", source,
                                       time.monotonic() - failing_since)
                        failing_since = None
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.warning("engine wake-ups from the %s paused; polling every %.1f s", source,
                                   self.poll_seconds, exc_info=True)
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def _database_wakes(self):
        """PostgreSQL's NOTIFY of a start, stop or reset (events.engine_wake); once first, when listening.

        The web process sends it on its own database connection once the session is committed:
        no hop to the channel layer on the request's way, and the engine hears of it as soon as
        the row is visible. A connection of its own, outside Django's: it waits here for good.
        """
        listener = await psycopg.AsyncConnection.connect(**_listen_params(), autocommit=True)
        async with listener:
            await listener.execute(f"LISTEN {events.ENGINE_CHANNEL}")
            yield  # whatever was committed while nobody listened
            async for _ in listener.notifies():
                yield

    async def _layer_wakes(self):
        """The layer's `engine.wake` events (what web processes on SQLite send); once first, when listening."""
        channel = await self.layer.new_channel()
        await self.layer.group_add(events.ENGINE_GROUP, channel)
        yield
        while True:
            await self.layer.receive(channel)
            yield

    def _database_failed(self, exc: DatabaseError) -> None:
        self._db_failed_at = time.monotonic()
        if not self._db_failing:
            self._db_failing = True
            logger.error("engine %s cannot reach the database (%s); retrying, readings kept in its buffers",
                         self.name, _first_line(exc))

    def _database_back(self) -> None:
        if self._db_failing:
            self._db_failing = False
            logger.info("engine %s reaches the database again", self.name)

    async def _reconcile(self) -> None:
        # Right after the database came back, other engines have not beaten for the same reason.
        trust = self._db_failed_at is None or time.monotonic() - self._db_failed_at > settings.ROBOTEST_HEARTBEAT_TIMEOUT
        running = {pk for pk, runner in self.runners.items() if runner.task is not None and not runner.task.done()}
        sessions = await self.control(_claim_sessions, self.name, take_from_silent=trust, running=running)
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
        # The most readings `pending` holds (ROBOTEST_ENGINE_BUFFER_SECONDS at the session's rates).
        self.capacity = 0
        # Seconds between the starts of two flushes at least (set from the rates), and the last start.
        self.flush_interval = 0.0
        self.flushed_at = 0.0
        # Readings dropped (buffer full, or beyond the catch-up) not yet added to the session's count.
        self.unsaved_lost = 0
        self.dropped_since_log = 0
        self.last_drop_log = float("-inf")
        self.failing_since: float | None = None
        self.retry_delay = RETRY_SECONDS
        self.last_failure_log = 0.0
        self.stop_at: float | None = None
        self.closing = False
        self.closing_at = 0.0
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
        self.closing_at = time.monotonic()
        self._nudge.set()
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=CLOSE_SECONDS + 1.0)
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
                self._bound()
                if self.pending and not await self._flush():
                    if self.closing and time.monotonic() - self.closing_at > CLOSE_SECONDS:
                        logger.warning("engine stopping: %d readings of session %s not stored; the next engine "
                                       "simulates them again", len(self.pending), self.session_id)
                        return
                    await self._backoff()
                    continue
                if self.unsaved_lost and not await self._save_lost():
                    await self._backoff()
                    continue
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
        if "sensors" in self.info:  # read with the claim (a session new to this engine)
            sensors, last = self.info["sensors"], self.info["last"]
        else:
            sensors, last = await self.engine.db(_session_sensors, self.session_id, self.info["rig_id"])
        t0 = self.info["started_at"]
        # Simulate from the first sample not stored (a taken-over session's gap included), but
        # at most ROBOTEST_CATCH_UP_SECONDS back: what lies before is lost, and counted.
        end = time.time() if self.stop_at is None else min(time.time(), self.stop_at)
        earliest = end - settings.ROBOTEST_CATCH_UP_SECONDS
        seed = settings.ROBOTEST_SIMULATOR_SEED
        total_rate = 0.0
        for name, sensor_type, rate_hz in sensors:
            if not has_simulator(sensor_type):
                logger.warning("sensor %s of session %s (%s) has no simulator", name, self.session_id, sensor_type)
                continue
            rate = self.info["rates"].get(name) or rate_for(sensor_type, rate_hz)
            total_rate += rate
            first = round((last[name] - t0) * rate) + 1 if name in last else 0
            bound = start_index(rate_hz=rate, t0=t0, now=earliest)
            if bound > first:
                skipped = bound - first
                logger.error("session %s: sensor %s was not simulated for %.1f s, longer than the catch-up "
                             "(ROBOTEST_CATCH_UP_SECONDS=%g); %d readings lost", self.session_id, name,
                             skipped / rate, settings.ROBOTEST_CATCH_UP_SECONDS, skipped)
                self._lose(skipped, reason="catch_up")
                first = bound
            simulator = simulator_for(
                sensor_type, rate_hz=rate, t0=t0, rng=rng_for(seed, self.session_id, name), start_n=first,
                seed_key=session_seed_key(seed, session_id=self.session_id, sensor=name, started_at=t0),
            )
            self.simulators.append((name, simulator))
        self.capacity = max(1, math.ceil(total_rate * settings.ROBOTEST_ENGINE_BUFFER_SECONDS))
        self.flush_interval = min(FLUSH_MAX_WAIT, FLUSH_TARGET / total_rate) if total_rate else FLUSH_MAX_WAIT

    def _lose(self, count: int, *, reason: str) -> None:
        self.unsaved_lost += count
        self.engine.lost_readings += count
        metrics.readings_lost(reason, count)

    def _bound(self) -> None:
        """Keep at most `capacity` readings waiting: the oldest go first, counted and logged."""
        excess = len(self.pending) - self.capacity
        if excess <= 0:
            return
        del self.pending[:excess]
        self._lose(excess, reason="buffer_full")
        self.dropped_since_log += excess
        now = time.monotonic()
        if now - self.last_drop_log >= REPEAT_LOG_SECONDS:
            logger.error("session %s: the engine's buffer is full (%d readings, ROBOTEST_ENGINE_BUFFER_SECONDS=%g); "
                         "dropped the %d oldest", self.session_id, self.capacity,
                         settings.ROBOTEST_ENGINE_BUFFER_SECONDS, self.dropped_since_log)
            self.dropped_since_log = 0
            self.last_drop_log = now

    async def _flush(self) -> bool:
        """Store the oldest readings waiting (one transaction); False when the database refused them."""
        # A bounded flush: an engine that fell behind catches up in steps it can still stop between.
        batch, self.pending = self.pending[:MAX_FLUSH], self.pending[MAX_FLUSH:]
        self.flushed_at = time.time()
        try:
            result = await self.engine.db(
                readings_record, recorder=self.recorder, items=batch, until_stop=True, source="simulator",
                owner=self.engine.name,
            )
        except SessionNotRecording:
            raise
        except (DataError, IntegrityError):
            # Bad data, not a passing fault: retrying the same batch would stall the session for good.
            # (A ProgrammingError, say a release running before its migration, is kept and retried
            # like an outage: the buffer's bound and the lost-readings count still apply.)
            logger.exception("dropped %d readings of session %s that cannot be stored", len(batch), self.session_id)
            self._lose(len(batch), reason="unstorable")
            return True
        except DatabaseError as exc:
            # Nothing of the batch was stored (one transaction): back to the front of the buffer.
            self.pending[:0] = batch
            self._failed(exc)
            return False
        self._recovered()
        if result.lines:
            for event in events.batch_events(result):
                self._emit(event)
        return True

    async def _save_lost(self) -> bool:
        count = self.unsaved_lost
        try:
            await self.engine.db(_lost_add, self.session_id, count)
        except DatabaseError as exc:
            self._failed(exc)
            return False
        self.unsaved_lost -= count
        return True

    def _failed(self, exc: DatabaseError) -> None:
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
            self.last_failure_log = now
            logger.error("could not store the readings of session %s (%s); keeping up to %d in the buffer and "
                         "retrying", self.session_id, _first_line(exc), self.capacity)
        elif now - self.last_failure_log >= REPEAT_LOG_SECONDS:
            self.last_failure_log = now
            logger.warning("session %s: the database has refused readings for %.0f s (%s); %d buffered",
                           self.session_id, now - self.failing_since, _first_line(exc), len(self.pending))

    def _recovered(self) -> None:
        if self.failing_since is not None:
            logger.info("session %s: readings stored again after %.1f s", self.session_id,
                        time.monotonic() - self.failing_since)
            self.failing_since = None
        self.retry_delay = RETRY_SECONDS

    async def _backoff(self) -> None:
        await asyncio.sleep(self.retry_delay)
        self.retry_delay = min(self.retry_delay * 2, RETRY_MAX_SECONDS)

    async def _complete(self) -> None:
        session = await self.engine.db(session_complete, session_id=self.session_id, publish=False)
        summary = await self.engine.db(session_summary, session)
        self._emit(events.status_event(summary))
        await self._drain_events(timeout=1.0)
        self.finished = True
        logger.info("session %s completed: %s readings", self.session_id, session.reading_count)

    async def _sleep(self) -> None:
        upcoming = min((sim.next_time for _, sim in self.simulators), default=time.time() + self.engine.poll_seconds)
        upcoming = max(upcoming, self.flushed_at + self.flush_interval)
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _connect() -> None:
    connection.ensure_connection()


def _listen_params() -> dict:
    """psycopg's connection arguments for the default database, as Django would connect."""
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return params


def _close_connection() -> None:
    # Looked up in the database thread: `connection` resolves to the calling thread's connection.
    connection.close()


def _claim_sessions(name: str, *, take_from_silent: bool = True, running=frozenset()) -> dict[int, dict]:
    """Take this engine's share of the recording sessions no live engine runs; return all it runs.

    The share is the recording sessions divided by the live engines, rounded up: engines started
    together split the sessions evenly. `take_from_silent=False` (the database was just away)
    treats every engine with a heartbeat as alive, however old the heartbeat. A session not in
    `running` (the engine has no runner for it yet) comes with its sensors and where each
    stopped (`_session_sensors`), read in the same visit: a new session's way to its first frame.
    """
    recording = RecordingSession.objects.filter(
        status=RecordingSession.Status.RECORDING, rig__source=Rig.Source.SIMULATED
    )
    beats = EngineHeartbeat.objects.all()
    if take_from_silent:
        beats = beats.filter(beat_at__gte=timezone.now() - timedelta(seconds=settings.ROBOTEST_HEARTBEAT_TIMEOUT))
    alive = set(beats.values_list("name", flat=True)) | {name}
    owners = dict(recording.values_list("pk", "engine"))
    for owner in set(owners.values()) & alive:
        if owner and _died_here(owner):
            alive.discard(owner)
    mine = sum(1 for owner in owners.values() if owner == name)
    share = math.ceil(len(owners) / len(alive))
    free = sorted(pk for pk, owner in owners.items() if owner not in alive)[: max(0, share - mine)]
    if free:
        # `engine` is tested again in the UPDATE's own WHERE, which PostgreSQL re-checks on the
        # locked row: of two engines claiming one session at once, the second finds it taken.
        RecordingSession.objects.filter(pk__in=free).exclude(engine__in=alive).update(engine=name)
    rows = recording.filter(engine=name).values("id", "rig_id", "started_at", "stop_requested_at", "rates")
    claimed = {
        row["id"]: {
            **row,
            "started_at": row["started_at"].timestamp(),
            "stop_requested_at": row["stop_requested_at"].timestamp() if row["stop_requested_at"] else None,
        }
        for row in rows
    }
    for pk, info in claimed.items():
        if pk not in running:
            info["sensors"], info["last"] = _session_sensors(pk, info["rig_id"])
    return claimed


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
    # Killed but not yet reaped by its parent (a zombie): gone all the same.
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _session_sensors(session_id: int, rig_id: int) -> tuple[list[tuple], dict[str, float]]:
    """The rig's sensors, and when each last stored a reading in this session (to resume after it)."""
    # One statement: each sensor's last reading is one backward step of the (session, sensor,
    # timestamp) index.
    latest = Reading.objects.filter(session_id=session_id, sensor_id=OuterRef("pk")).order_by("-timestamp")
    rows = Sensor.objects.filter(rig_id=rig_id).annotate(last=Subquery(latest.values("timestamp")[:1]))
    sensors = list(rows.order_by("pk").values_list("name", "sensor_type", "rate_hz", "last"))
    last = {name: ts.timestamp() for name, _, _, ts in sensors if ts is not None}
    return [(name, sensor_type, rate_hz) for name, sensor_type, rate_hz, _ in sensors], last


def _beat(name: str, sessions: int, buffered: int, lost: int) -> None:
    EngineHeartbeat.objects.update_or_create(
        name=name,
        defaults={"pid": os.getpid(), "beat_at": timezone.now(), "sessions": sessions, "buffered": buffered,
                  "lost_readings": lost},
    )


def _lost_add(session_id: int, count: int) -> None:
    RecordingSession.objects.filter(pk=session_id).update(lost_readings=F("lost_readings") + count)


def _unbeat(name: str) -> None:
    EngineHeartbeat.objects.filter(name=name).delete()
