"""Writes of recording sessions: start, stop, complete, reset, a rig's pushed readings, an acknowledgement."""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from sensors.models import Rig, Sensor
from sensors.rules import rules_snapshot
from sensors.simulators import has_simulator, rate_for
from sessions.live import events
from sessions.models import IngestKey, Reading, ReadingRollup, RecordingSession, ValidationResult
from sessions.reads.results import results_queryset
from sessions.reads.sessions import engine_alive, session_summary
from sessions.reads.stats import sensor_stats
from sessions.recording.ingest import batch_answer, batch_parse, batch_record, recorder_forget
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


class IngestKeyReused(Exception):
    """The batch's Idempotency-Key came with another body to this session within INGEST_KEY_TTL."""


# How long an ingest batch's Idempotency-Key answers its retries (docs/errors.md).
INGEST_KEY_TTL = timedelta(hours=24)
# Expired keys a keyed batch deletes in its own transaction, oldest first: more than the one it
# adds, so the table holds about a day of keys even where prune_readings never runs.
_KEYS_PRUNED_PER_BATCH = 20


@dataclass(frozen=True)
class IngestAnswer:
    """What an ingest request answers; `replayed` when it is the stored answer to an earlier request."""

    status: int
    body: dict
    replayed: bool = False


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
        session.verdict = _verdict(session, stats)
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


def readings_ingest(*, session: RecordingSession, data: object, key: str = "", digest: str = "") -> IngestAnswer:
    """Check, validate and store one all-or-nothing batch of an external rig's readings, then publish it live.

    BatchError (every bad item named) or IngestRefused: nothing was stored. With an Idempotency-Key
    (`key`, and `digest` the SHA-256 of the request's body; ask `ingest_replay` first), the key and
    the answer are stored in the batch's transaction. A request that stored the same key meanwhile
    wins: this one stores nothing and gets its answer (or IngestKeyReused).
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
    also = partial(_key_save, session_id=session.pk, key=key, digest=digest) if key else None
    try:
        result = batch_record(session_id=session.pk, items=items, also=also)
    except SessionNotRecording:
        raise IngestRefused(f"session {session.pk} stopped recording; nothing was stored") from None
    except IntegrityError:
        # A request with the same key committed its batch while this one was storing it: this
        # one's key insert met that key (waiting for its commit if need be) and rolled it all back.
        first = ingest_replay(session=session, key=key, digest=digest) if key else None
        if first is None:
            raise
        return first
    events.publish_sync(session.pk, *events.batch_events(result))
    return IngestAnswer(201, batch_answer(result))


def ingest_replay(*, session: RecordingSession, key: str, digest: str) -> IngestAnswer | None:
    """The answer a batch with this Idempotency-Key got within INGEST_KEY_TTL, to send again; None if
    there is none; IngestKeyReused if that batch's body had another digest. A rejected batch kept no
    key: its retry is judged afresh."""
    found = (
        IngestKey.objects.filter(session_id=session.pk, key=key, created_at__gte=timezone.now() - INGEST_KEY_TTL)
        .values("digest", "status", "answer")
        .first()
    )
    if found is None:
        return None
    if found["digest"] != digest:
        raise IngestKeyReused(
            f"Idempotency-Key {key!r} was sent with another batch to session {session.pk} in the last "
            f"{INGEST_KEY_TTL.total_seconds() / 3600:.0f} h: send a new key with a new batch"
        )
    return IngestAnswer(found["status"], found["answer"], replayed=True)


def _key_save(result: RecordResult, *, session_id: int, key: str, digest: str) -> None:
    """Store the key with its batch's answer (in the batch's transaction), and drop a few expired keys."""
    now = timezone.now()
    cutoff = now - INGEST_KEY_TTL
    # This key's own expired use, if any (the unique constraint holds for expired keys too); then
    # the oldest few expired keys of any session. Each statement is a short index scan (one DELETE
    # with an OR would read every expired key). SKIP LOCKED: batches of two sessions never wait
    # for (or deadlock over) the same old keys.
    IngestKey.objects.filter(session_id=session_id, key=key, created_at__lt=cutoff).delete()
    oldest = list(
        IngestKey.objects.select_for_update(skip_locked=True)
        .filter(created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("id", flat=True)[:_KEYS_PRUNED_PER_BATCH]
    )
    if oldest:
        IngestKey.objects.filter(id__in=oldest).delete()
    IngestKey.objects.create(
        session_id=session_id, key=key, digest=digest, status=201, answer=batch_answer(result), created_at=now
    )


@dataclass
class PruneReport:
    """What prune_readings removed (or, in a dry run, would remove)."""

    sessions: int = 0
    readings: int = 0
    rollups: int = 0
    results: int = 0
    keys: int = 0


# Rows deleted per transaction: each holds its row locks for well under a second.
PRUNE_CHUNK = 50_000


def readings_prune(
    *, older_than: timedelta, dry_run: bool = False, chunk: int = PRUNE_CHUNK, now: datetime | None = None
) -> PruneReport:
    """Delete the readings, rollups and results of finished sessions that ended more than `older_than`
    ago and are not flagged `keep`; and the expired Idempotency-Keys.

    Session by session, in that order (a reader never finds results without their readings), each
    table in chunks of `chunk` rows by id range, one short transaction each. The session row stays
    (its counters, statistics and verdict are the record) and gets `pruned_at`. A recording session
    is never touched. `dry_run` counts the same rows and deletes nothing.
    """
    now = now or timezone.now()
    cutoff = now - older_than
    report = PruneReport()
    for session_id in list(_prunable(cutoff).order_by("pk").values_list("pk", flat=True)):
        if dry_run:
            report.sessions += 1
            report.readings += Reading.objects.filter(session_id=session_id).count()
            report.rollups += ReadingRollup.objects.filter(session_id=session_id).count()
            report.results += ValidationResult.objects.filter(session_id=session_id).count()
        elif _session_prune(session_id, cutoff, chunk, report):
            report.sessions += 1
    expired = IngestKey.objects.filter(created_at__lt=now - INGEST_KEY_TTL)
    report.keys = expired.count() if dry_run else expired.delete()[0]
    return report


def _prunable(cutoff: datetime) -> models.QuerySet:
    """Finished, unkept, not yet pruned sessions that stopped (or, never stopped, started) before `cutoff`."""
    return (
        RecordingSession.objects.exclude(status=RecordingSession.Status.RECORDING)
        .filter(keep=False, pruned_at__isnull=True)
        .alias(ended=Coalesce("stopped_at", "started_at"))
        .filter(ended__lt=cutoff)
    )


def _session_prune(session_id: int, cutoff: datetime, chunk: int, report: PruneReport) -> bool:
    """Prune one session, unless it was kept since it was chosen; whether it was pruned."""
    with transaction.atomic():
        if not _prunable(cutoff).select_for_update().filter(pk=session_id).exists():
            return False
    report.readings += _delete_by_id_range(Reading, session_id, chunk)
    report.rollups += _delete_by_id_range(ReadingRollup, session_id, chunk)
    with transaction.atomic():
        _, deleted = ValidationResult.objects.filter(session_id=session_id).delete()
        report.results += deleted.get(ValidationResult._meta.label, 0)
        RecordingSession.objects.filter(pk=session_id).update(pruned_at=timezone.now())
    logger.info("pruned session %s", session_id)
    return True


def _delete_by_id_range(model: type[models.Model], session_id: int, chunk: int) -> int:
    """Delete a session's rows of `model`, `chunk` ids at a time, each range in its own transaction."""
    # `id + 0`: PostgreSQL would answer MIN/MAX(id) by walking the primary key from either end
    # through every other session's rows; this reads the session's own rows through its index.
    bounds = model.objects.filter(session_id=session_id).aggregate(
        low=models.Min(models.F("id") + 0), high=models.Max(models.F("id") + 0)
    )
    if bounds["low"] is None:
        return 0
    removed = 0
    for start in range(bounds["low"], bounds["high"] + 1, chunk):
        with transaction.atomic():
            _, deleted = model.objects.filter(session_id=session_id, id__gte=start, id__lt=start + chunk).delete()
            removed += deleted.get(model._meta.label, 0)
    return removed


def _verdict(session: RecordingSession, stats: dict[str, dict]) -> str:
    # A sensor that produced nothing, or readings that were due and never stored: the record is incomplete.
    if any(s["count"] == 0 for s in stats.values()) or session.lost_readings > 0:
        return RecordingSession.Verdict.ERROR
    statuses = set(ValidationResult.objects.filter(session_id=session.pk).values_list("status", flat=True).distinct())
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
