"""The seed's `/api/v1/sensors/readings/latest`: each sensor's newest reading in one session."""

import pytest

from sessions.models import RecordingSession
from tests.api.conftest import T0, assert_named, ft6_value, readings

pytestmark = pytest.mark.django_db


def latest(api, query: str = "") -> dict:
    response = api.get(f"/api/v1/sensors/readings/latest{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_latest_of_sim_without_any_session_names_its_sensors(staff_client, sim):
    body = latest(staff_client)

    assert body["latest_readings"] == {"camera": None, "force": None, "motor": None}
    assert body["total_readings"] == 0
    assert body["session_id"] is None
    assert isinstance(body["timestamp"], float)


def test_latest_gives_each_sensors_newest_reading(staff_client, ingest, bench_session):
    ingest(bench_session, readings("fz", [1.0, 2.0, 3.0]) + readings("ft6", [ft6_value(1), ft6_value(2)]))
    # Out of order across batches: the newest by time wins, not the last stored.
    assert ingest(bench_session, readings("fz", [0.5], t0=T0 - 10)).status_code == 201

    body = latest(staff_client, "?rig=bench")

    assert body["session_id"] == bench_session
    assert body["total_readings"] == 6
    got = body["latest_readings"]
    assert got["temp"] is None
    assert got["fz"].pop("seq") >= 1
    assert got["fz"] == {"timestamp": T0 + 0.2, "sensor_type": "force", "value": 3.0, "sensor": "fz", "session_id": bench_session}
    assert (got["ft6"]["value"], got["ft6"]["timestamp"]) == (ft6_value(2), T0 + 0.1)


def test_latest_matches_the_readings_endpoint(staff_client, ingest, bench_session):
    ingest(bench_session, readings("fz", [1.0, 2.0]) + readings("temp", [20.0]))

    got = latest(staff_client, f"?session={bench_session}")["latest_readings"]
    rows = staff_client.get(f"/api/v1/sessions/{bench_session}/readings/").json()

    assert got["fz"] == [r for r in rows if r["sensor"] == "fz"][-1]
    assert got["temp"] == [r for r in rows if r["sensor"] == "temp"][-1]


def test_latest_defaults_to_the_recording_session_then_the_most_recent(staff_client, start, ingest, bench):
    first = start("bench")["session_id"]
    ingest(first, readings("fz", [1.0]))
    staff_client.post("/api/v1/sessions/stop", {"session_id": first}, format="json")
    assert latest(staff_client, "?rig=bench")["session_id"] == first

    second = start("bench")["session_id"]
    # Even when an older session started later on paper, the recording one is chosen.
    RecordingSession.objects.filter(pk=first).update(started_at=RecordingSession.objects.get(pk=second).started_at)
    body = latest(staff_client, "?rig=bench")

    assert body["session_id"] == second
    assert body["latest_readings"]["fz"] is None and body["total_readings"] == 0


def test_latest_of_an_older_session_by_id(staff_client, start, ingest, bench):
    first = start("bench")["session_id"]
    ingest(first, readings("fz", [7.0]))
    staff_client.post("/api/v1/sessions/stop", {"session_id": first}, format="json")
    start("bench")

    body = latest(staff_client, f"?session={first}")

    assert (body["session_id"], body["rig"], body["latest_readings"]["fz"]["value"]) == (first, "bench", 7.0)


def test_latest_of_sim_is_its_recording_session(staff_client, start, sim):
    session_id = start()["session_id"]

    assert latest(staff_client)["session_id"] == session_id


@pytest.mark.parametrize(
    ("query", "name", "code"),
    [
        ("?session=abc", "session", 400),
        ("?session=0", "session", 400),
        ("?session=99999", "session", 404),
        ("?rig=nope", "rig", 404),
    ],
)
def test_a_bad_latest_parameter_is_named(staff_client, sim, query, name, code):
    response = staff_client.get(f"/api/v1/sensors/readings/latest{query}")

    assert_named(response, code, name)


def test_a_session_of_another_rig_than_named_is_a_400(staff_client, bench_session, sim):
    response = staff_client.get(f"/api/v1/sensors/readings/latest?session={bench_session}&rig=sim")

    assert_named(response, 400, "rig")


def test_latest_needs_a_user_unless_reads_are_public(anon_client, sim, settings):
    assert anon_client.get("/api/v1/sensors/readings/latest").status_code in (401, 403)

    settings.ROBOTEST_PUBLIC_READ = True

    assert anon_client.get("/api/v1/sensors/readings/latest").status_code == 200
