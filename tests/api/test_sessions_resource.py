"""The sessions resource: `/api/v1/sessions/` list, detail, delete."""

import pytest

from sensors.models import ValidationRule
from sessions.models import Reading, RecordingSession, ValidationResult
from tests.api.conftest import readings

pytestmark = pytest.mark.django_db


@pytest.fixture
def completed(staff_client, ingest, bench_session):
    """A completed session of the external rig with readings and an error result."""
    ingest(bench_session, readings("fz", [10.0, 90.0, 91.0, 10.0]))
    staff_client.post("/api/v1/sessions/stop", {"session_id": bench_session}, format="json")
    return bench_session


def test_sessions_list_newest_first(staff_client, completed, start, sim):
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
