"""The seed's session paths: start, stop, status, reset.

The sessions resource: `/api/v1/sessions/` list, detail, delete.
"""

from datetime import datetime

import pytest

from sensors.models import ValidationRule
from sessions.models import Reading, RecordingSession, ValidationResult
from tests.conftest import T0, ft6_value, reading_count, readings

pytestmark = pytest.mark.django_db


def stop(api, session_id=None):
    body = {} if session_id is None else {"session_id": session_id}
    return api.post("/api/v1/sessions/stop", body, format="json")


# --- start -----------------------------------------------------------------------------------


def test_start_without_a_body_records_the_simulated_rig(staff_client, sim_rig):
    response = staff_client.post("/api/v1/sessions/start")

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "recording"
    assert isinstance(body["session_id"], int)
    assert datetime.fromisoformat(body["started_at"]).tzinfo is not None
    assert body["duration_seconds"] == 0
    assert body["data_points"] == 0
    session = RecordingSession.objects.get(pk=body["session_id"])
    assert session.rig == sim_rig
    assert session.status == "recording"


def test_start_keeps_the_name_description_and_operator(staff_client, staff_user, sim_rig):
    response = staff_client.post(
        "/api/v1/sessions/start", {"name": "run 7", "description": "cold start"}, format="json"
    )

    session = RecordingSession.objects.get(pk=response.json()["session_id"])
    assert (session.name, session.description, session.operator) == ("run 7", "cold start", staff_user)


def test_start_with_a_rig_records_that_rig(staff_client, bench):
    response = staff_client.post("/api/v1/sessions/start", {"rig": "bench"}, format="json")

    assert response.status_code == 201
    assert RecordingSession.objects.get(pk=response.json()["session_id"]).rig == bench


def test_start_of_an_unknown_rig_is_a_404_naming_it(staff_client, sim_rig):
    response = staff_client.post("/api/v1/sessions/start", {"rig": "no-such-rig"}, format="json")

    assert response.status_code == 404
    assert "no-such-rig" in response.json()["detail"]
    assert not RecordingSession.objects.exists()


def test_a_second_start_on_a_recording_rig_is_a_400_with_a_message(staff_client, start, bench):
    first = start("bench")

    response = staff_client.post("/api/v1/sessions/start", {"rig": "bench"}, format="json")

    assert response.status_code == 400
    assert "bench" in response.json()["detail"]
    assert "recording" in response.json()["detail"]
    assert list(RecordingSession.objects.values_list("pk", flat=True)) == [first["session_id"]]


def test_two_rigs_record_at_the_same_time(start, bench, sim_rig):
    assert start("bench")["session_id"] != start()["session_id"]


# --- stop ------------------------------------------------------------------------------------


def test_stop_returns_the_started_session_id_and_a_summary(staff_client, start, sim_rig):
    started = start()

    response = stop(staff_client)

    assert response.status_code == 200
    body = response.json()
    assert body["session_id"] == started["session_id"]
    assert body["total_readings"] == 0
    assert isinstance(body["session_duration"], float)
    assert body["session_duration"] >= 0
    assert body["validation_alerts"] == 0
    assert set(body["summary_stats"]) == {"force", "motor", "camera"}
    # No engine runs in the tests: none of sim's sensors produced a reading.
    assert body["verdict"] == "error"
    assert RecordingSession.objects.get(pk=started["session_id"]).status == "completed"


def test_stop_of_a_session_by_id_stops_that_session(staff_client, start, bench, sim_rig):
    sim_session = start()["session_id"]
    bench_session = start("bench")["session_id"]

    response = stop(staff_client, bench_session)

    assert response.status_code == 200
    assert response.json()["session_id"] == bench_session
    assert RecordingSession.objects.get(pk=bench_session).status == "completed"
    assert RecordingSession.objects.get(pk=sim_session).status == "recording"


def test_stop_when_nothing_records_is_a_400_with_a_message(staff_client, sim_rig):
    response = stop(staff_client)

    assert response.status_code == 400
    assert "recording" in response.json()["detail"]


def test_stop_defaults_to_sim_even_when_another_rig_records(staff_client, start, bench, sim_rig):
    start("bench")

    response = stop(staff_client)

    assert response.status_code == 400
    assert "sim" in response.json()["detail"]


def test_stop_of_an_unknown_session_is_a_404(staff_client, sim_rig):
    response = stop(staff_client, 99999)

    assert response.status_code == 404
    assert "99999" in response.json()["detail"]


def test_a_second_stop_of_the_same_session_is_a_400(staff_client, start, sim_rig):
    session_id = start()["session_id"]
    stop(staff_client, session_id)

    response = stop(staff_client, session_id)

    assert response.status_code == 400
    assert str(session_id) in response.json()["detail"]


@pytest.mark.parametrize("session_id", ["abc", 0, -3, 1.5, None, [], {}])
def test_stop_with_a_bad_session_id_is_a_400_naming_it(staff_client, sim_rig, session_id):
    response = staff_client.post("/api/v1/sessions/stop", {"session_id": session_id}, format="json")

    assert response.status_code == 400
    assert "session_id" in response.json()["detail"]


def test_stop_counts_every_ingested_reading(staff_client, start, ingest, bench):
    session_id = start("bench")["session_id"]
    ingest(session_id, readings("fz", [10, 11, 12]) + readings("temp", [20.5, 21.5]))
    ingest(session_id, readings("ft6", [ft6_value(0)]))

    body = stop(staff_client, session_id).json()

    assert body["total_readings"] == 6
    stats = body["summary_stats"]
    assert stats["fz"]["count"] == 3
    assert (stats["fz"]["min"], stats["fz"]["max"], stats["fz"]["mean"]) == (10, 12, 11)
    assert stats["fz"]["first_timestamp"] == T0
    assert stats["temp"]["count"] == 2
    assert stats["ft6"]["count"] == 1
    # An object value has no scalar statistics.
    assert stats["ft6"]["min"] is None


def _session_with(start, ingest, batch):
    session_id = start("bench")["session_id"]
    response = ingest(session_id, batch)
    assert response.status_code == 201, response.content
    return session_id


def _every_sensor(fz_values):
    return readings("fz", fz_values) + readings("temp", [21.0]) + readings("ft6", [ft6_value(0)])


def test_verdict_is_error_when_a_sensor_produced_no_reading(staff_client, start, ingest, bench):
    session_id = _session_with(start, ingest, readings("fz", [10.0]) + readings("temp", [21.0]))

    assert stop(staff_client, session_id).json()["verdict"] == "error"


def test_verdict_is_fail_with_an_error_result(staff_client, start, ingest, bench):
    session_id = _session_with(start, ingest, _every_sensor([90.0, 91.0, 95.0]))

    body = stop(staff_client, session_id).json()

    assert body["verdict"] == "fail"
    assert body["validation_alerts"] == 1


def test_verdict_is_warning_with_only_warnings(staff_client, start, ingest, bench):
    session_id = _session_with(start, ingest, _every_sensor([60.0, 60.0, 70.0]))

    body = stop(staff_client, session_id).json()

    assert body["verdict"] == "warning"
    assert body["validation_alerts"] == 1


def test_verdict_is_pass_when_every_sensor_read_within_its_limits(staff_client, start, ingest, bench):
    session_id = _session_with(start, ingest, _every_sensor([10.0, 11.0, 12.0]))

    body = stop(staff_client, session_id).json()

    assert body["verdict"] == "pass"
    assert body["validation_alerts"] == 0


def test_stop_closes_the_open_results(staff_client, start, ingest, bench):
    session_id = _session_with(start, ingest, _every_sensor([90.0, 91.0]))
    assert ValidationResult.objects.get(session_id=session_id).is_open

    stop(staff_client, session_id)

    assert not ValidationResult.objects.get(session_id=session_id).is_open


# --- status ----------------------------------------------------------------------------------


def test_status_says_nothing_records_before_a_start(staff_client, sim_rig):
    response = staff_client.get("/api/v1/sessions/status")

    assert response.status_code == 200
    body = response.json()
    assert body["recording"] is False
    assert body["data_summary"]["total_readings"] == 0
    assert {"sensors_active", "validation_stats", "connected_clients"} <= set(body)


def test_status_shows_the_recording_session_and_its_counts(staff_client, start, ingest, bench):
    session_id = _session_with(start, ingest, readings("fz", [10.0, 95.0, 96.0, 10.0]))

    body = staff_client.get("/api/v1/sessions/status", {"rig": "bench"}).json()

    assert body["recording"] is True
    assert body["session_id"] == session_id
    assert sorted(body["sensors_active"]) == ["ft6", "fz", "temp"]
    assert body["data_summary"]["total_readings"] == 4
    # 95 and 96 are one error result; the jump from 10 to 96 is a spike (a warning).
    assert body["validation_stats"]["error"] == 1
    assert body["validation_stats"]["total"] == body["validation_stats"]["warning"] + 1


def test_status_of_sim_after_start_and_stop(staff_client, start, sim_rig):
    start()
    assert staff_client.get("/api/v1/sessions/status").json()["recording"] is True

    stop(staff_client)

    assert staff_client.get("/api/v1/sessions/status").json()["recording"] is False


def test_status_of_an_unknown_rig_is_a_404(staff_client, sim_rig):
    response = staff_client.get("/api/v1/sessions/status", {"rig": "nope"})

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


# --- reset -----------------------------------------------------------------------------------


def test_reset_aborts_the_recording_session_and_deletes_its_readings(staff_client, start, ingest, bench):
    session_id = _session_with(start, ingest, readings("fz", [10.0, 95.0]))

    response = staff_client.post("/api/v1/sessions/reset", {"rig": "bench"}, format="json")

    assert response.status_code == 200
    assert response.json()["session_id"] == session_id
    session = RecordingSession.objects.get(pk=session_id)
    assert session.status == "aborted"
    assert session.reading_count == 0
    assert not Reading.objects.filter(session_id=session_id).exists()
    assert not ValidationResult.objects.filter(session_id=session_id).exists()


def test_reset_leaves_a_completed_session_untouched(staff_client, start, ingest, bench):
    done = _session_with(start, ingest, readings("fz", [10.0, 11.0]))
    stop(staff_client, done)
    recording = _session_with(start, ingest, readings("fz", [12.0]))

    staff_client.post("/api/v1/sessions/reset", {"rig": "bench"}, format="json")

    assert RecordingSession.objects.get(pk=done).status == "completed"
    assert Reading.objects.filter(session_id=done).count() == 2
    assert reading_count(done) == 2
    assert RecordingSession.objects.get(pk=recording).status == "aborted"


def test_reset_with_nothing_recording_changes_nothing(staff_client, start, ingest, bench):
    done = _session_with(start, ingest, readings("fz", [10.0]))
    stop(staff_client, done)

    response = staff_client.post("/api/v1/sessions/reset", {"rig": "bench"}, format="json")

    assert response.status_code == 200
    assert response.json()["reset"] is False
    assert Reading.objects.filter(session_id=done).count() == 1


def test_reset_without_a_body_resets_sim(staff_client, start, sim_rig):
    session_id = start()["session_id"]

    response = staff_client.post("/api/v1/sessions/reset")

    assert response.status_code == 200
    assert RecordingSession.objects.get(pk=session_id).status == "aborted"


def test_a_rig_can_start_again_after_a_reset(staff_client, start, bench):
    start("bench")
    staff_client.post("/api/v1/sessions/reset", {"rig": "bench"}, format="json")

    assert start("bench")["status"] == "recording"


def test_reset_of_an_unknown_rig_is_a_404(staff_client, sim_rig):
    response = staff_client.post("/api/v1/sessions/reset", {"rig": "nope"}, format="json")

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


@pytest.fixture
def completed(staff_client, ingest, bench_session):
    """A completed session of the external rig with readings and an error result."""
    ingest(bench_session, readings("fz", [10.0, 90.0, 91.0, 10.0]))
    staff_client.post("/api/v1/sessions/stop", {"session_id": bench_session}, format="json")
    return bench_session


def test_sessions_list_newest_first(staff_client, completed, start, sim_rig):
    newer = start()["session_id"]

    response = staff_client.get("/api/v1/sessions/")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [newer, completed]
    done = rows[1]
    assert (done["rig"], done["status"], done["verdict"]) == ("bench", "completed", "error")
    assert done["reading_count"] == 4
    assert done["alert_count"] == 2  # the error band and the spike
    assert done["operator"] == "operator"


def test_session_detail_includes_the_rule_snapshot(staff_client, completed):
    response = staff_client.get(f"/api/v1/sessions/{completed}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == completed
    rules = {rule["code"]: rule for rule in body["rules"]}
    assert rules["force_threshold"]["error_high"] == 80.0
    assert rules["force_threshold"]["warning_high"] == 64.0
    assert {"force_spike", "motor_threshold"} <= set(rules)
    assert set(body["summary_stats"]) == {"fz", "temp", "ft6"}


def test_a_session_keeps_the_rules_it_started_with(staff_client, start, bench, settings):
    ValidationRule.objects.create(code="too_hot", sensor_type="temperature", warning_high=50.0)
    session_id = start("bench")["session_id"]
    ValidationRule.objects.create(code="too_cold", sensor_type="temperature", warning_low=0.0)
    settings.FORCE_THRESHOLD_HIGH = 200.0

    rules = {rule["code"]: rule for rule in staff_client.get(f"/api/v1/sessions/{session_id}/").json()["rules"]}

    assert rules["too_hot"]["warning_high"] == 50.0
    assert "too_cold" not in rules
    assert rules["force_threshold"]["error_high"] == 80.0


def test_an_unknown_session_detail_is_a_404(staff_client, bench):
    for path in ("/api/v1/sessions/99999/", "/api/v1/sessions/abc/", "/api/v1/sessions/99999999999999999999999/"):
        assert staff_client.get(path).status_code == 404, path


def test_staff_delete_a_completed_session_and_its_readings(staff_client, completed):
    response = staff_client.delete(f"/api/v1/sessions/{completed}/")

    assert response.status_code == 204
    assert not RecordingSession.objects.filter(pk=completed).exists()
    assert not Reading.objects.filter(session_id=completed).exists()
    assert not ValidationResult.objects.filter(session_id=completed).exists()
    assert staff_client.get(f"/api/v1/sessions/{completed}/").status_code == 404


def test_deleting_a_session_leaves_other_sessions_alone(staff_client, completed, start, ingest):
    other = start("bench")["session_id"]
    ingest(other, readings("fz", [1.0, 2.0], t0=1_800_000_000))

    staff_client.delete(f"/api/v1/sessions/{completed}/")

    assert Reading.objects.filter(session_id=other).count() == 2


def test_staff_delete_an_aborted_session(staff_client, bench_session):
    staff_client.post("/api/v1/sessions/reset", {"rig": "bench"}, format="json")

    assert staff_client.delete(f"/api/v1/sessions/{bench_session}/").status_code == 204


def test_deleting_a_recording_session_is_a_400(staff_client, ingest, bench_session):
    ingest(bench_session, readings("fz", [1.0]))

    response = staff_client.delete(f"/api/v1/sessions/{bench_session}/")

    assert response.status_code == 400
    assert "recording" in response.json()["detail"]
    assert Reading.objects.filter(session_id=bench_session).count() == 1


def test_a_user_who_is_not_staff_cannot_delete_a_session(plain_client, completed):
    response = plain_client.delete(f"/api/v1/sessions/{completed}/")

    assert response.status_code == 403
    assert Reading.objects.filter(session_id=completed).count() == 4


def test_anonymous_cannot_delete_a_session(anon_client, completed, settings):
    settings.ROBOTEST_PUBLIC_READ = True

    assert anon_client.delete(f"/api/v1/sessions/{completed}/").status_code in (401, 403)
    assert RecordingSession.objects.filter(pk=completed).exists()


def test_deleting_an_unknown_session_is_a_404(staff_client, bench):
    assert staff_client.delete("/api/v1/sessions/99999/").status_code == 404


def test_refusing_a_user_who_is_not_staff_says_why(plain_client, completed):
    response = plain_client.delete(f"/api/v1/sessions/{completed}/")

    assert response.status_code == 403
    assert "credentials were not provided" not in response.json()["detail"]
    assert "staff" in response.json()["detail"]
