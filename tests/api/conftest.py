"""Fixtures of the HTTP API tests: users, clients, an external rig, and helpers that drive it."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sensors.models import Rig
from sensors.services import rig_create
from sessions.models import Reading, RecordingSession

# A fixed, recent instant: readings of the tests are placed after it.
T0 = 1_700_000_000.0

BENCH_SENSORS = [
    {"name": "fz", "sensor_type": "force", "unit": "N"},
    {"name": "temp", "sensor_type": "temperature", "unit": "C"},
    {"name": "ft6", "sensor_type": "force_torque", "unit": ""},
]


@pytest.fixture(autouse=True)
def seed_thresholds(settings):
    """The seed's thresholds and read policy, whatever the environment says."""
    settings.FORCE_THRESHOLD_HIGH = 80.0
    settings.MOTOR_THRESHOLD = 55.0
    settings.MAX_DATA_POINTS = 10000
    settings.ROBOTEST_PUBLIC_READ = False
    return settings


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user("operator", password="secret-pass-1", is_staff=True)


@pytest.fixture
def staff_token(staff_user):
    return Token.objects.create(user=staff_user)


@pytest.fixture
def staff_client(staff_token):
    """An API client that sends the staff user's token."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {staff_token.key}")
    return api


@pytest.fixture
def plain_user(db, django_user_model):
    return django_user_model.objects.create_user("viewer", password="secret-pass-2")


@pytest.fixture
def plain_client(plain_user):
    """An API client with the token of a user who is not staff."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=plain_user).key}")
    return api


@pytest.fixture
def anon_client():
    """An API client without credentials."""
    return APIClient()


@pytest.fixture
def sim(db):
    return Rig.objects.get(name="sim")


@pytest.fixture
def bench(db):
    """An external rig with a force sensor, a temperature sensor and a 6-axis force/torque sensor."""
    return rig_create(name="bench", source=Rig.Source.EXTERNAL, description="test bench", sensors=BENCH_SENSORS)


def ft6_value(i: int) -> dict:
    return {"fx": 1.5 + i, "fy": -2.25, "fz": 30.0, "tx": 0.125, "ty": i, "tz": -0.5}


@pytest.fixture
def start(staff_client):
    """Start a session on a rig over the API; returns the start response body."""

    def start(rig: str | None = None, **body) -> dict:
        if rig is not None:
            body["rig"] = rig
        response = staff_client.post("/api/v1/sessions/start", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return start


@pytest.fixture
def ingest(staff_client):
    """POST a batch to a session's readings; returns the response."""

    def ingest(session_id: int, batch, *, api=None):
        return (api or staff_client).post(f"/api/v1/sessions/{session_id}/readings/", batch, format="json")

    return ingest


@pytest.fixture
def bench_session(bench, start):
    """A recording session of the external rig; its id."""
    return start("bench")["session_id"]


def readings(sensor: str, values, *, t0: float = T0, step: float = 0.1) -> list[dict]:
    """A batch of readings of one sensor, `step` seconds apart from `t0`."""
    return [{"sensor": sensor, "timestamp": t0 + i * step, "value": v} for i, v in enumerate(values)]


def stored(session_id: int) -> list[tuple]:
    """A session's stored readings as (sensor name, Unix seconds, value, seq), in seq order."""
    return [
        (r.sensor.name, r.timestamp.timestamp(), r.value, r.seq)
        for r in Reading.objects.filter(session_id=session_id).select_related("sensor").order_by("seq")
    ]


def reading_count(session_id: int) -> int:
    return RecordingSession.objects.get(pk=session_id).reading_count


def assert_named(response, code: int, name: str) -> None:
    """The request was refused with `code` and a message that names the parameter or field `name`."""
    assert response.status_code == code, response.content
    assert name in response.json()["detail"], response.json()
