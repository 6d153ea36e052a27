"""One pipeline for every source: validate against the session's rule snapshot, store, publish.

Simulated readings (the engine) and ingested ones (the REST API) both go through
`readings_record`. It runs in one short transaction: take sequence positions from the session's
counter under its row lock, validate, COPY the batch, upsert the validation results it changed.
Publishing happens after commit, so a client never sees a reading the database does not hold.
"""

import gc
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
from django.db import connection, transaction
from django.db.models import F

from robotest_site.observability import metrics
from sensors.models import Sensor
from sensors.rules import Episode, Validator
from sessions.models import Reading, RecordingSession, ValidationResult
from sessions.recording import rollups, storage

logger = logging.getLogger(__name__)

# (sensor name, Unix seconds, value)
Item = tuple[str, float, object]


class SessionNotRecording(Exception):
    """The session is not (or no longer) recording: nothing was stored."""


@dataclass
class RecordResult:
    """What one stored batch changed: its readings as published, and the results it touched.

    Each reading is encoded to JSON once, here (`lines`, with its sensor's name beside it in
    `sensors`); every live client's frames are built from that text.
    """

    session_id: int
    first_seq: int
    last_seq: int
    lines: list[str]
    sensors: list[str]
    validation: list[dict]

    @property
    def accepted(self) -> int:
        return len(self.lines)

    @property
    def readings(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@dataclass
class SessionRecorder:
    """A process's view of one recording session: its sensors and its validation state.

    The state stays valid while this process is the session's only writer; `next_seq` tells when
    another writer came in between (or a batch failed), and then it is reloaded from the database.
    """

    session_id: int
    sensors: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (id, type)
    quoted: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (name, type) as JSON text
    validator: Validator | None = None
    next_seq: int = -1
    # The latest rollup cell of each series this writer knows of (rollups.rollups_write); None: unknown.
    rollup_edges: dict | None = None

    def reload(self, *, fresh: bool = False) -> None:
        """Read the session's sensors, rules and validation state. `fresh`: the next batch takes the
        session's first positions, so it has no readings, results or rollups yet to read."""
        self.rollup_edges = {} if fresh else None
        session = RecordingSession.objects.only("id", "rig_id", "rules", "reading_count").get(pk=self.session_id)
        rows = list(Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name", "sensor_type", "unit"))
        self.sensors = {name: (pk, sensor_type) for pk, name, sensor_type, _ in rows}
        self.quoted = {name: (json.dumps(name), json.dumps(sensor_type)) for _, name, sensor_type, _ in rows}
        self.validator = Validator(
            session.rules,
            {name: sensor_type for _, name, sensor_type, _ in rows},
            units={name: unit for _, name, _, unit in rows},
        )
        by_id = {pk: name for name, (pk, _) in self.sensors.items()}
        open_episodes = [] if fresh else [
            r.episode(sensor=by_id[r.sensor_id], sensor_type=self.sensors[by_id[r.sensor_id]][1])
            for r in ValidationResult.objects.filter(session_id=self.session_id, is_open=True)
        ]
        recent = {}
        lag = self.validator.max_lag()
        if lag and not fresh:
            for name, (pk, _) in self.sensors.items():
                values = list(
                    Reading.objects.filter(session_id=self.session_id, sensor_id=pk)
                    .order_by("-timestamp")
                    .values_list("value", flat=True)[:lag]
                )
                recent[name] = values[::-1]
        self.validator.restore(open_episodes=open_episodes, recent=recent)


def readings_record(
    *, recorder: SessionRecorder, items: Sequence[Item], until_stop: bool = False, source: str = "ingest",
    owner: str | None = None,
) -> RecordResult:
    """Validate and store one batch of a recording session, all or nothing.

    Items must name sensors of the session's rig (the callers check). Raises SessionNotRecording
    when the session has stopped recording, or is stopping and `until_stop` is false (ingest);
    nothing is stored then. With `until_stop` (the engine), readings stamped after the stop
    instant are left out: a recorder that heard of the stop late still ends the session on time.
    `source` (simulator or ingest) labels the batch in the metrics, counted once it is committed.
    An `owner` (an engine's name) stores only while the session is still that engine's: one that
    lost it (its heartbeat expired and another engine took over) raises SessionNotRecording.
    """
    started = time.perf_counter()
    try:
        with transaction.atomic():
            stop_at = _lock_session(recorder.session_id, owner)
            if stop_at is not None:
                if not until_stop:
                    raise SessionNotRecording(f"session {recorder.session_id} is stopping")
                items = [item for item in items if item[1] <= stop_at]
            items = sorted(items, key=_BY_TIME)
            count = len(items)
            last_seq = _take_positions(recorder.session_id, count)
            first_seq = last_seq - count + 1
            if recorder.next_seq != first_seq or recorder.validator is None:
                recorder.reload(fresh=first_seq == 1)
            with _collector_paused():
                result = _store(recorder, items, first_seq)
            recorder.next_seq = last_seq + 1
            # Counted when the outermost transaction commits: a keyed ingest batch runs this block as a
            # savepoint of its own transaction, which may still roll back (sessions.services).
            transaction.on_commit(lambda: metrics.flush_done(source, count, time.perf_counter() - started))
        return result
    except BaseException:
        # The validator has seen readings that were not stored: reload before the next batch.
        recorder.next_seq = -1
        raise


_NAME, _BY_TIME, _VALUE = itemgetter(0), itemgetter(1), itemgetter(2)


def _lock_session(session_id: int, owner: str | None) -> float | None:
    """Lock the session's row (writers of one session take turns); its stop instant, if stopping."""
    row = (
        RecordingSession.objects.select_for_update()
        .filter(pk=session_id, status=RecordingSession.Status.RECORDING)
        .values_list("stop_requested_at", "engine")
    )
    found = list(row)
    if not found:
        raise SessionNotRecording(f"session {session_id} is not recording")
    stop_at, engine = found[0]
    if owner is not None and engine != owner:
        raise SessionNotRecording(f"session {session_id} is recorded by engine {engine!r} now, not {owner!r}")
    return stop_at.timestamp() if stop_at is not None else None


def _take_positions(session_id: int, count: int) -> int:
    table = RecordingSession._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET reading_count = reading_count + %s WHERE id = %s RETURNING reading_count",
            [count, session_id],
        )
        return cursor.fetchone()[0]


def _store(recorder: SessionRecorder, items: Sequence[Item], first_seq: int) -> RecordResult:
    """COPY the batch, then validate it, sum its rollups and write its live lines while the database takes it in."""
    session_id = recorder.session_id
    if not items:
        validation = results_save(recorder=recorder, episodes=recorder.validator.take_changes())
        return RecordResult(session_id, first_seq, first_seq - 1, [], [], validation)
    count = len(items)
    names = list(map(_NAME, items))
    stamps = list(map(_BY_TIME, items))
    values = list(map(_VALUE, items))
    ids = {name: pk for name, (pk, _) in recorder.sensors.items()}
    sensor_ids = np.fromiter(map(ids.__getitem__, names), dtype=np.int64, count=count)
    micros = storage.unix_micros(stamps)
    texts = storage.value_texts(values)
    with storage.readings_streamed(
        session_id=session_id, sensor_ids=sensor_ids, first_seq=first_seq, micros=micros, texts=texts
    ):
        recorder.validator.feed_batch(names, stamps, values)
        cells = rollups.rollup_columns(sensor_ids, micros, values)
        lines = _lines(recorder, names, micros, texts, first_seq)
    recorder.rollup_edges = rollups.rollups_write(session_id, cells, edges=recorder.rollup_edges)
    validation = results_save(recorder=recorder, episodes=recorder.validator.take_changes())
    return RecordResult(session_id, first_seq, first_seq + count - 1, lines, names, validation)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a batch is worked on (it makes no cycles).

    A spiky batch allocates an episode or two per ten readings; every 700 allocations the collector
    would walk all young objects, the batch's lists of ten thousand values among them, again and
    again within one batch.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _lines(recorder: SessionRecorder, names: Sequence[str], micros: np.ndarray, texts: list[str],
           first_seq: int) -> list[str]:
    """Each reading's live JSON, from a template per sensor; the timestamp exactly as stored (µs)."""
    session_id = recorder.session_id
    templates = {
        name: (f'{{"timestamp":%r,"sensor_type":{quoted_type.replace("%", "%%")},"value":%s,'
               f'"sensor":{quoted_name.replace("%", "%%")},"session_id":{session_id},"seq":%d}}')
        for name, (quoted_name, quoted_type) in recorder.quoted.items()
    }
    seconds = (micros / 1_000_000).tolist()
    seqs = range(first_seq, first_seq + len(texts))
    return [templates[name] % (t, text, seq) for name, t, text, seq in zip(names, seconds, texts, seqs, strict=True)]


def results_save(*, recorder: SessionRecorder, episodes: list[Episode]) -> list[dict]:
    """Insert the episodes opened, update the ones grown or closed; returns them as JSON-safe dicts.

    An episode opened and closed within one batch is inserted once, in its final state.
    """
    if not episodes:
        return []
    sensors = recorder.sensors
    new = [e for e in episodes if e.result_id is None]
    old = [e for e in episodes if e.result_id is not None]
    if new:
        ids = storage.results_insert(
            recorder.session_id,
            [
                (sensors[e.sensor][0], e.rule, e.status, e.message[:_MESSAGE_MAX], e.first_timestamp,
                 e.last_timestamp, e.count, e.peak, e.details, e.is_open)
                for e in new
            ],
        )
        for episode, pk in zip(new, ids, strict=True):
            episode.result_id = pk
        RecordingSession.objects.filter(pk=recorder.session_id).update(alert_count=F("alert_count") + len(new))
    if old:
        storage.results_update(
            [
                (e.result_id, e.status, e.message[:_MESSAGE_MAX], e.last_timestamp, e.count, e.peak, e.details,
                 e.is_open)
                for e in old
            ]
        )
    return [e.as_json(session_id=recorder.session_id) for e in episodes]


_MESSAGE_MAX = ValidationResult._meta.get_field("message").max_length
