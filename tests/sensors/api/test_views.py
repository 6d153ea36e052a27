"""The rigs resource: `/api/v1/rigs/`."""

import pytest

from sensors.models import Rig

pytestmark = pytest.mark.django_db

SENSORS = [
    {"name": "fx", "sensor_type": "force", "unit": "N"},
    {"name": "cam", "sensor_type": "camera", "unit": ""},
    {"name": "hum", "sensor_type": "humidity", "unit": "%"},
]


def create(api, **body):
    return api.post("/api/v1/rigs/", {"name": "press", "source": "external", "sensors": SENSORS, **body}, format="json")


def test_staff_create_an_external_rig_with_its_sensors(staff_client, sim_rig):
    response = create(staff_client)

    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["source"]) == ("press", "external")
    assert sorted((s["name"], s["sensor_type"], s["unit"]) for s in body["sensors"]) == [
        ("cam", "camera", ""), ("fx", "force", "N"), ("hum", "humidity", "%")
    ]
    rig = Rig.objects.get(name="press")
    assert rig.source == "external"
    assert rig.sensors.count() == 3


def test_a_created_rig_records_and_takes_readings(staff_client, start, ingest, sim_rig):
    create(staff_client)
    session_id = start("press")["session_id"]

    response = ingest(session_id, [{"sensor": "hum", "timestamp": 1_700_000_000, "value": 45.5}])

    assert response.status_code == 201


def test_source_defaults_to_external(staff_client, sim_rig):
    response = staff_client.post("/api/v1/rigs/", {"name": "press", "sensors": SENSORS}, format="json")

    assert response.status_code == 201
    assert Rig.objects.get(name="press").source == "external"


def test_a_user_who_is_not_staff_cannot_create_a_rig(plain_client, sim_rig):
    response = create(plain_client)

    assert response.status_code == 403
    assert not Rig.objects.filter(name="press").exists()


def test_anonymous_cannot_create_a_rig(anon_client, sim_rig):
    assert create(anon_client).status_code in (401, 403)
    assert not Rig.objects.filter(name="press").exists()


def test_duplicate_sensor_names_are_a_400(staff_client, sim_rig):
    response = create(staff_client, sensors=[*SENSORS, {"name": "fx", "sensor_type": "force", "unit": "N"}])

    assert response.status_code == 400
    assert "sensors" in response.json()["detail"]
    assert "fx" in response.json()["detail"]
    assert not Rig.objects.filter(name="press").exists()


def test_a_simulated_rig_cannot_be_created_over_the_api(staff_client, sim_rig):
    response = create(staff_client, source="simulated")

    assert response.status_code == 400
    assert "source" in response.json()["detail"]
    assert not Rig.objects.filter(name="press").exists()


def test_a_rig_name_already_taken_is_a_400(staff_client, sim_rig):
    response = create(staff_client, name="sim")

    assert response.status_code == 400
    assert "name" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sensors": []}, "sensors"),
        ({"sensors": "fx"}, "sensors"),
        ({"name": "has space"}, "name"),
        ({"name": ""}, "name"),
        ({"source": "magic"}, "source"),
        ({"sensors": [{"name": "a"}]}, "sensors"),
        ({"sensors": [{"name": "bad name", "sensor_type": "x"}]}, "sensors"),
        ({"sensors": [{"name": "a", "sensor_type": "x", "rate_hz": "fast"}]}, "sensors"),
    ],
)
def test_a_bad_rig_is_a_400_naming_the_field(staff_client, sim_rig, body, field):
    response = create(staff_client, **body)

    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert field in response.json()["errors"]
    assert not Rig.objects.filter(name="press").exists()


def test_rigs_list_includes_sim_with_its_sensors(staff_client, sim_rig):
    response = staff_client.get("/api/v1/rigs/")

    assert response.status_code == 200
    rigs = {rig["name"]: rig for rig in response.json()["results"]}
    assert rigs["sim"]["source"] == "simulated"
    assert sorted(s["name"] for s in rigs["sim"]["sensors"]) == ["camera", "force", "motor"]


def test_rig_detail_by_name(staff_client, sim_rig):
    response = staff_client.get("/api/v1/rigs/sim/")

    assert response.status_code == 200
    assert response.json()["name"] == "sim"
    assert {s["name"]: s["unit"] for s in response.json()["sensors"]} == {"force": "N", "motor": "RPM", "camera": ""}


def test_an_unknown_rig_is_a_404(staff_client, sim_rig):
    assert staff_client.get("/api/v1/rigs/nope/").status_code == 404


# --- known bugs ------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_that_is_not_positive_is_a_400_naming_it(staff_client, sim_rig, rate):
    staff_client.raise_request_exception = False

    response = create(staff_client, sensors=[{"name": "a", "sensor_type": "x", "rate_hz": rate}])

    assert response.status_code == 400
    assert "rate_hz" in response.json()["detail"]


def test_the_message_of_a_bad_sensor_is_readable(staff_client, sim_rig):
    response = create(staff_client, sensors=[{"name": "bad name", "sensor_type": "x"}])

    assert response.status_code == 400
    assert "ErrorDetail" not in response.json()["detail"]
