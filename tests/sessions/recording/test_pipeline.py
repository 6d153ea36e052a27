"""`sessions.recording.pipeline.readings_record`: numbering, storage, validation episodes, recorder state."""

import json

import pytest

from sensors.models import Rig, ValidationRule
from sensors.services import rig_create
from sessions.models import Reading, RecordingSession, ValidationResult
from sessions.recording.pipeline import SessionNotRecording, SessionRecorder, readings_record
from sessions.services import session_complete, session_start
from tests.conftest import T0

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def seed_thresholds(settings):
    settings.FORCE_THRESHOLD_HIGH = 80.0
    settings.MOTOR_THRESHOLD = 55.0


@pytest.fixture
def bench(db):
    return rig_create(
        name="bench",
        source=Rig.Source.EXTERNAL,
        sensors=[
            {"name": "fz", "sensor_type": "force", "unit": "N"},
            {"name": "temp", "sensor_type": "temperature", "unit": "C"},
            {"name": "ft6", "sensor_type": "force_torque", "unit": ""},
        ],
    )


@pytest.fixture
def session(bench):
    return session_start(rig=bench)


def items(sensor, values, *, t0=T0, step=0.1):
    return [(sensor, t0 + i * step, value) for i, value in enumerate(values)]


def record(recorder, batch):
    return readings_record(recorder=recorder, items=batch)


def stored(session):
    return list(
        Reading.objects.filter(session=session).order_by("seq").values_list("sensor__name", "seq", "value")
    )


def results(session):
    return list(ValidationResult.objects.filter(session=session).order_by("id"))


# --- numbering and storage -------------------------------------------------------------------


def test_seq_numbers_start_at_1_and_stay_contiguous_across_batches(session):
    recorder = SessionRecorder(session.pk)

    first = record(recorder, items("fz", [1.0, 2.0, 3.0]))
    second = record(recorder, items("temp", [4.0, 5.0], t0=T0 + 1))

    assert (first.first_seq, first.last_seq, first.accepted) == (1, 3, 3)
    assert (second.first_seq, second.last_seq, second.accepted) == (4, 5, 2)
    assert [seq for _, seq, _ in stored(session)] == [1, 2, 3, 4, 5]
    session.refresh_from_db()
    assert session.reading_count == 5


def test_a_batch_is_numbered_in_time_order(session):
    recorder = SessionRecorder(session.pk)

    result = record(recorder, [("fz", T0 + 2, 3.0), ("fz", T0, 1.0), ("temp", T0 + 1, 2.0)])

    assert [(r["seq"], r["value"]) for r in result.readings] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert [value for _, _, value in stored(session)] == [1.0, 2.0, 3.0]


def test_the_result_carries_the_readings_as_published(session):
    result = record(SessionRecorder(session.pk), items("fz", [1.5]))

    assert result.readings == [
        {"timestamp": T0, "sensor_type": "force", "value": 1.5, "sensor": "fz", "session_id": session.pk, "seq": 1}
    ]


def test_timestamps_are_stored_to_the_microsecond(session):
    record(SessionRecorder(session.pk), [("temp", T0 + 0.123456, 1.0)])

    assert Reading.objects.get(session=session).timestamp.timestamp() == T0 + 0.123456


@pytest.mark.parametrize(
    "value",
    [0, 7, -42, 2**53 + 1, 2**63 - 1, 0.1, -2.5, 1.0, 1e-7, 123456.789012, {"fx": 1.5, "fy": -2, "fz": 0.0,
     "tx": 1e-3, "ty": 7, "tz": -0.5}, {"nested": {"list": [1, 2.5, "three", None, True]}, "label": "ü€"}],
    ids=repr,
)
def test_a_value_survives_the_json_round_trip(session, value):
    record(SessionRecorder(session.pk), [("ft6", T0, value)])

    back = Reading.objects.get(session=session).value

    assert back == value
    assert type(back) is type(value)


def test_ints_stay_ints_and_floats_stay_floats(session):
    record(SessionRecorder(session.pk), [("temp", T0, 3), ("temp", T0 + 1, 3.0)])

    values = [value for _, _, value in stored(session)]

    assert [type(v) for v in values] == [int, float]


# --- validation episodes ---------------------------------------------------------------------


def test_a_violation_is_saved_as_an_open_result(session):
    result = record(SessionRecorder(session.pk), items("fz", [10.0, 95.0]))

    [saved] = results(session)
    assert (saved.rule, saved.status, saved.count, saved.peak, saved.is_open) == ("force_threshold", "error", 1, 95.0, True)
    assert saved.sensor.name == "fz"
    assert saved.first_timestamp.timestamp() == T0 + 0.1
    assert [(r["id"], r["status"], r["open"]) for r in result.validation] == [(saved.pk, "error", True)]


def test_a_result_grows_across_batches_and_closes_on_a_passing_reading(session):
    recorder = SessionRecorder(session.pk)
    record(recorder, items("fz", [85.0]))
    record(recorder, items("fz", [97.0, 90.0], t0=T0 + 1))

    [growing] = results(session)
    assert (growing.count, growing.peak, growing.is_open) == (3, 97.0, True)
    assert growing.last_timestamp.timestamp() == T0 + 1.1

    closing = record(recorder, items("fz", [85.0, 20.0], t0=T0 + 2, step=0.001))

    [closed] = [r for r in results(session) if r.rule == "force_threshold"]
    assert closed.pk == growing.pk
    assert (closed.count, closed.peak, closed.is_open) == (4, 97.0, False)
    assert [(r["id"], r["open"]) for r in closing.validation if r["rule"] == "force_threshold"] == [(closed.pk, False)]


def test_a_warning_result_becomes_an_error_when_it_reaches_the_error_band(session):
    recorder = SessionRecorder(session.pk)
    record(recorder, items("fz", [70.0]))
    record(recorder, items("fz", [85.0], t0=T0 + 1))

    [saved] = results(session)
    assert (saved.status, saved.peak, saved.count) == ("error", 85.0, 2)


def test_an_unchanged_batch_reports_no_results(session):
    recorder = SessionRecorder(session.pk)
    record(recorder, items("fz", [95.0, 10.0, 10.0, 10.0]))

    assert record(recorder, items("fz", [10.0, 11.0], t0=T0 + 1)).validation == []


def test_validation_follows_the_rule_snapshot_of_the_session(bench):
    ValidationRule.objects.create(code="too_hot", sensor_type="temperature", warning_high=50.0)
    session = session_start(rig=bench)
    # Rules changed after the start do not apply to the session.
    ValidationRule.objects.create(code="too_cold", sensor_type="temperature", warning_low=0.0)
    ValidationRule.objects.create(code="force_threshold", sensor_type="force", error_high=1000.0)

    record(SessionRecorder(session.pk), items("temp", [60.0, -10.0]) + items("fz", [95.0], t0=T0 + 5))

    assert {(r.rule, r.status, r.sensor.name) for r in results(session)} == {
        ("too_hot", "warning", "temp"),
        ("force_threshold", "error", "fz"),
    }


def test_alert_count_counts_each_result_once(session):
    recorder = SessionRecorder(session.pk)
    record(recorder, items("fz", [95.0, 96.0]))   # one error result, growing
    record(recorder, items("fz", [97.0], t0=T0 + 1))
    record(recorder, items("fz", [10.0], t0=T0 + 2))  # closes it (and is a spike: a warning)
    record(recorder, items("fz", [95.0], t0=T0 + 3, step=0))  # a second error result

    session.refresh_from_db()
    assert session.alert_count == len(results(session)) == 3
    assert sorted(r.status for r in results(session)) == ["error", "error", "warning"]


# --- recorder state --------------------------------------------------------------------------


def test_a_stale_recorder_reloads_and_continues_the_open_result(session):
    a = SessionRecorder(session.pk)
    b = SessionRecorder(session.pk)

    record(a, items("fz", [95.0]))
    record(b, items("fz", [96.0], t0=T0 + 1))      # b writes in between: a's state is stale
    result = record(a, items("fz", [97.0, 20.0], t0=T0 + 2, step=0.001))

    threshold = [r for r in results(session) if r.rule == "force_threshold"]
    assert len(threshold) == 1
    assert (threshold[0].count, threshold[0].peak, threshold[0].is_open) == (3, 97.0, False)
    assert (result.first_seq, result.last_seq) == (3, 4)
    assert [seq for _, seq, _ in stored(session)] == [1, 2, 3, 4]
    session.refresh_from_db()
    assert session.alert_count == len(results(session))


def test_a_stale_recorder_sees_the_other_writers_readings_for_a_spike(session):
    a = SessionRecorder(session.pk)
    b = SessionRecorder(session.pk)

    record(a, items("fz", [0.0, 0.0]))
    record(b, items("fz", [60.0], t0=T0 + 1))        # 60 over two readings before it: a spike
    record(a, items("fz", [60.0], t0=T0 + 2))        # still 60 over the reading two before

    spikes = [r for r in results(session) if r.rule == "force_spike"]
    assert len(spikes) == 1
    assert (spikes[0].status, spikes[0].count, spikes[0].is_open) == ("warning", 2, True)


def test_a_recorder_reloads_after_a_failed_batch(session):
    recorder = SessionRecorder(session.pk)
    record(recorder, items("fz", [95.0]))

    with pytest.raises(KeyError):
        record(recorder, items("fz", [96.0], t0=T0 + 1) + items("nope", [1.0], t0=T0 + 2))
    record(recorder, items("fz", [97.0], t0=T0 + 3))

    [saved] = results(session)
    assert (saved.count, saved.peak) == (2, 97.0)
    assert [value for _, _, value in stored(session)] == [95.0, 97.0]


def test_recording_into_a_completed_session_raises_and_stores_nothing(session):
    recorder = SessionRecorder(session.pk)
    record(recorder, items("fz", [1.0]))
    session_complete(session_id=session.pk, publish=False)

    with pytest.raises(SessionNotRecording):
        record(recorder, items("fz", [2.0], t0=T0 + 1))

    session.refresh_from_db()
    assert session.reading_count == 1
    assert [value for _, _, value in stored(session)] == [1.0]


def test_recording_into_an_aborted_session_raises(session):
    RecordingSession.objects.filter(pk=session.pk).update(status=RecordingSession.Status.ABORTED)

    with pytest.raises(SessionNotRecording):
        record(SessionRecorder(session.pk), items("fz", [2.0]))

    assert not Reading.objects.filter(session=session).exists()


# --- the stop instant ------------------------------------------------------------------------


def _request_stop(session, at):
    from datetime import UTC, datetime

    RecordingSession.objects.filter(pk=session.pk).update(stop_requested_at=datetime.fromtimestamp(at, tz=UTC))


def test_a_recorder_that_hears_of_the_stop_late_stores_nothing_stamped_after_it(session):
    recorder = SessionRecorder(session.pk)
    _request_stop(session, T0 + 0.45)

    result = readings_record(recorder=recorder, items=items("fz", [1.0] * 10), until_stop=True)

    assert result.accepted == 5
    assert [seq for _, seq, _ in stored(session)] == [1, 2, 3, 4, 5]
    assert RecordingSession.objects.get(pk=session.pk).reading_count == 5


def test_ingest_into_a_stopping_session_is_refused_and_stores_nothing(session):
    _request_stop(session, T0 + 100)

    with pytest.raises(SessionNotRecording):
        record(SessionRecorder(session.pk), items("fz", [1.0, 2.0]))

    assert stored(session) == []
    assert RecordingSession.objects.get(pk=session.pk).reading_count == 0


def test_a_large_batch_is_published_as_several_events_in_sequence_order(session):
    from sessions.live.events import batch_events

    result = record(SessionRecorder(session.pk), items("fz", [1.0] * 4500, step=0.001))
    events = batch_events(result)

    assert [len(e["lines"]) for e in events] == [2000, 2000, 500]
    assert all(len(e["sensors"]) == len(e["lines"]) for e in events)
    assert [(e["first_seq"], e["last_seq"]) for e in events] == [(1, 2000), (2001, 4000), (4001, 4500)]
    assert [json.loads(line)["seq"] for e in events for line in e["lines"]] == list(range(1, 4501))


def test_each_published_result_id_is_the_row_stored_for_it_in_a_batch_of_thousands(session):
    # 1,500 separate threshold episodes in one batch (past SQLite's 1,000 results a statement):
    # the id each published result names must be the stored row with its own timestamps and peak.
    values = [0.0 if i % 2 else 81.0 + i / 1000 for i in range(3000)]
    result = record(SessionRecorder(session.pk), items("fz", values, step=0.001))

    published = [r for r in result.validation if r["rule"] == "force_threshold"]
    assert len(published) == 1500
    rows = {r.pk: r for r in ValidationResult.objects.filter(session=session, rule="force_threshold")}
    assert sorted(rows) == sorted(r["id"] for r in published)
    for shown in published:
        row = rows[shown["id"]]
        assert row.first_timestamp.timestamp() == pytest.approx(shown["first_timestamp"], abs=1e-6)
        assert (row.peak, row.count, row.status, row.message, row.is_open) == (
            shown["peak"], shown["count"], shown["status"], shown["message"], shown["open"]
        )
