"""Writes of recording sessions: start, stop, complete, reset, a rig's pushed readings, an acknowledgement."""

import logging
import time
from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from sensors.models import Rig, Sensor
from sensors.rules import rules_snapshot
from sensors.simulators import has_simulator, rate_for
from sessions.live import events
from sessions.models import Reading, ReadingRollup, RecordingSession, ValidationResult
from sessions.reads.results import results_queryset
from sessions.reads.sessions import engine_alive, session_summary
from sessions.reads.stats import sensor_stats
from sessions.recording.ingest import batch_parse, batch_record, recorder_forget
from sessions.recording.pipeline import RecordResult, SessionNotRecording

logger = logging.getLogger(__name__)

# How long stop waits for a live engine to store a session's last readings.
STOP_WAIT_SECONDS = 15.0


class SessionConflict(Exception):
    """The request does not fit the session's state (already recording, nothing recording)."""


class AlreadyAcknowledged(Exception):
    """The result was acknowledged before; the first acknowledgement stands."""


class IngestRefused(Exception):
    """The session takes no pushed readings now: it records a simulated rig, or it does not record."""


def session_start(
    *, rig: Rig, name: str = "", description: str = "", user: AbstractBaseUser | None = None
) -> RecordingSession:
    """Start recording `rig`, with the rules and rates in force now; SessionConflict if it records already."""
    rates = {}
    if rig.source == Rig.Source.SIMULATED:
        rates = {
            s.name: rate_for(s.sensor_type, s.rate_hz) for s in rig.sensors.all() if has_simulator(s.sensor_type)
        }
    try:
        with transaction.atomic():
            session = RecordingSession.objects.create(
                rig=rig,
                name=name,
                description=description,
                operator=user if user is not None and user.is_authenticated else None,
                started_at=timezone.now(),
                rules=rules_snapshot(rig=rig),
                rates=rates,
            )
            transaction.on_commit(events.engine_wake)
            transaction.on_commit(partial(_publish_status, session.pk))
    except IntegrityError:
        raise SessionConflict(f"rig '{rig.name}' is already recording") from None
    return session


def session_stop(*, session: RecordingSession) -> RecordingSession:
    """Stop a recording session; returns once every reading up to now is stored and the session completed.

    A simulated rig's readings come from an engine, in this or another process: stop asks it to
    store everything up to the stop instant and complete the session, and waits. With no live
    engine (or an external rig, whose ingest requests are stored before they are acknowledged),
    nothing is buffered anywhere, and stop completes the session itself.
    """
    with transaction.atomic():
        # The row lock first, the instant after: a batch being stored now (stamped up to the
        # moment it was generated) commits before the stop instant is taken, and every later
        # batch finds the instant and leaves out what was stamped after it.
        recording = RecordingSession.objects.select_for_update().filter(
            pk=session.pk, status=RecordingSession.Status.RECORDING
        )
        requested = list(recording.values_list("stop_requested_at", flat=True))
        if not requested:
            raise SessionConflict(f"session {session.pk} is not recording")
        if requested[0] is None:
            recording.update(stop_requested_at=timezone.now())
    if session.rig.source == Rig.Source.SIMULATED and engine_alive():
        events.engine_wake()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        next_check = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            owner = RecordingSession.objects.filter(pk=session.pk, status=RecordingSession.Status.RECORDING).values_list(
                "engine", flat=True
            ).first()
            if owner is None:
                break
            if time.monotonic() >= next_check:
                # The engine may have died since (kill -9): then nothing holds readings; stop here.
                if not engine_alive(owner):
                    break
                next_check = time.monotonic() + 0.5
            time.sleep(0.02)
        else:
            logger.warning("no engine completed session %s in %.0f s; completing it here", session.pk, STOP_WAIT_SECONDS)
    return session_complete(session_id=session.pk)


def session_complete(*, session_id: int, publish: bool = True) -> RecordingSession:
    """Close a stopping session: its open results, per-sensor stats, verdict. Idempotent.

    `publish=False` leaves the system_status event to the caller (the engine sends it from its
    own event loop).
    """
    with transaction.atomic():
        session = RecordingSession.objects.select_for_update().select_related("rig").get(pk=session_id)
        if session.status != RecordingSession.Status.RECORDING:
            return session
        ValidationResult.objects.filter(session_id=session_id, is_open=True).update(is_open=False)
        stats = sensor_stats(session_id=session_id)
        session.status = RecordingSession.Status.COMPLETED
        session.stopped_at = session.stop_requested_at or timezone.now()
        session.summary_stats = stats
        session.verdict = _verdict(session_id, stats)
        session.save(update_fields=["status", "stopped_at", "summary_stats", "verdict"])
        if publish:
            transaction.on_commit(partial(_publish_status, session_id))
    return session


def session_reset(*, rig: Rig) -> RecordingSession | None:
    """Abort the rig's recording session, if any, and delete its readings; finished sessions stay."""
    with transaction.atomic():
        session = (
            RecordingSession.objects.select_for_update()
            .filter(rig=rig, status=RecordingSession.Status.RECORDING)
            .first()
        )
        if session is None:
            return None
        Reading.objects.filter(session=session).delete()
        ReadingRollup.objects.filter(session=session).delete()
        ValidationResult.objects.filter(session=session).delete()
        session.status = RecordingSession.Status.ABORTED
        session.stopped_at = timezone.now()
        session.reading_count = 0
        session.alert_count = 0
        session.save(update_fields=["status", "stopped_at", "reading_count", "alert_count"])
        transaction.on_commit(events.engine_wake)
        transaction.on_commit(partial(_publish_status, session.pk))
    return session


def readings_ingest(*, session: RecordingSession, data: object) -> RecordResult:
    """Check, validate and store one all-or-nothing batch of an external rig's readings, then publish it live.

    BatchError (every bad item named) or IngestRefused: nothing was stored.
    """
    if session.rig.source != Rig.Source.EXTERNAL:
        raise IngestRefused(
            f"session {session.pk} records simulated rig '{session.rig.name}': only external rigs take readings"
        )
    if session.status != RecordingSession.Status.RECORDING:
        recorder_forget(session.pk)
        raise IngestRefused(f"session {session.pk} is {session.status}, not recording")
    sensors = dict(Sensor.objects.filter(rig_id=session.rig_id).values_list("name", "id"))
    items = batch_parse(data, sensors=sensors)
    try:
        result = batch_record(session_id=session.pk, items=items)
    except SessionNotRecording:
        raise IngestRefused(f"session {session.pk} stopped recording; nothing was stored") from None
    events.publish_sync(session.pk, *events.batch_events(result))
    return result


def _verdict(session_id: int, stats: dict[str, dict]) -> str:
    if any(s["count"] == 0 for s in stats.values()):
        return RecordingSession.Verdict.ERROR
    statuses = set(ValidationResult.objects.filter(session_id=session_id).values_list("status", flat=True).distinct())
    if ValidationResult.Status.ERROR in statuses:
        return RecordingSession.Verdict.FAIL
    if ValidationResult.Status.WARNING in statuses:
        return RecordingSession.Verdict.WARNING
    return RecordingSession.Verdict.PASS


def _publish_status(session_id: int) -> None:
    session = RecordingSession.objects.select_related("rig").get(pk=session_id)
    events.publish_sync(session_id, events.status_event(session_summary(session)))


def result_acknowledge(*, result_id: int, user: AbstractBaseUser, comment: str = "") -> ValidationResult:
    """Record who acknowledged a result, when, and why; AlreadyAcknowledged if someone did already.

    The first acknowledgement is kept: a second one would rewrite who took responsibility.
    """
    with transaction.atomic():
        result = results_queryset().select_for_update(of=("self",)).get(pk=result_id)
        if result.acknowledged_at is not None:
            raise AlreadyAcknowledged(result)
        result.acknowledged_by = user
        result.acknowledged_at = timezone.now()
        result.acknowledge_comment = comment
        result.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledge_comment"])
    return result
