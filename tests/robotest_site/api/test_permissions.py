"""Who may read and write; the public root and health check."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from sensors.models import Rig, ValidationRule
from sessions.models import EngineHeartbeat, Reading, RecordingSession, ValidationResult
from tests.conftest import T0, readings, user_with_token

pytestmark = pytest.mark.django_db

READ_PATHS = [
    "/api/v1/sensors/readings",
    "/api/v1/sessions/status",
    "/api/v1/sessions/",
    "/api/v1/rigs/",
    "/api/v1/rigs/sim/",
]


@pytest.mark.parametrize("path", READ_PATHS)
def test_reads_need_credentials(anon_client, sim_rig, path):
    response = anon_client.get(path)

    assert response.status_code in (401, 403)
    assert response.json()["detail"]


@pytest.mark.parametrize("path", READ_PATHS)
def test_reads_are_open_with_a_token(staff_client, sim_rig, path):
    assert staff_client.get(path).status_code == 200


@pytest.mark.parametrize("path", READ_PATHS)
def test_reads_are_public_with_robotest_public_read(anon_client, sim_rig, settings, path):
    settings.ROBOTEST_PUBLIC_READ = True

    assert anon_client.get(path).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/sessions/start", {}),
        ("/api/v1/sessions/stop", {}),
        ("/api/v1/sessions/reset", {}),
        ("/api/v1/rigs/", {"name": "x", "sensors": [{"name": "a", "sensor_type": "t"}]}),
    ],
)
def test_writes_need_credentials_even_when_reads_are_public(anon_client, sim_rig, settings, path, body):
    settings.ROBOTEST_PUBLIC_READ = True

    response = anon_client.post(path, body, format="json")

    assert response.status_code in (401, 403)
    assert not RecordingSession.objects.exists()


def test_a_user_who_is_not_staff_may_start_and_stop(plain_client, sim_rig):
    assert plain_client.post("/api/v1/sessions/start").status_code == 201
    assert plain_client.post("/api/v1/sessions/stop").status_code == 200


def test_a_bad_token_is_refused(sim_rig):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = api.get("/api/v1/sessions/")

    assert response.status_code in (401, 403)


def test_a_logged_in_session_post_without_csrf_token_is_a_403(staff_user, sim_rig):
    api = APIClient(enforce_csrf_checks=True)
    assert api.login(username="operator", password="secret-pass-1")

    response = api.post("/api/v1/sessions/start", {}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not RecordingSession.objects.exists()


def test_a_logged_in_session_post_with_the_csrf_token_is_accepted(staff_user, sim_rig):
    api = APIClient(enforce_csrf_checks=True)
    assert api.login(username="operator", password="secret-pass-1")
    secret = "a" * 32
    api.cookies["csrftoken"] = secret

    response = api.post("/api/v1/sessions/start", {}, format="json", HTTP_X_CSRFTOKEN=secret)

    assert response.status_code == 201


def test_a_logged_in_session_reads_without_csrf(staff_user, sim_rig):
    api = APIClient(enforce_csrf_checks=True)
    api.login(username="operator", password="secret-pass-1")

    assert api.get("/api/v1/sessions/").status_code == 200


def test_a_token_post_needs_no_csrf_token(staff_token, sim_rig):
    api = APIClient(enforce_csrf_checks=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {staff_token}")

    assert api.post("/api/v1/sessions/start", {}, format="json").status_code == 201


# --- public: the root and the health check ---------------------------------------------------


def test_root_answers_api_clients_with_json(anon_client):
    response = anon_client.get("/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"message", "version", "status"}
    assert body["status"] == "running"
    assert body["version"] == "1.0.0"


def test_root_answers_a_browser_with_the_dashboard(anon_client):
    response = anon_client.get("/", HTTP_ACCEPT="text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"<html" in response.content
    assert b"Robotic Testing System" in response.content


def test_health_is_public_and_reports_each_service(anon_client, db):
    response = anon_client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] in ("healthy", "degraded")
    assert isinstance(body["timestamp"], float)
    assert {"database", "channel_layer", "worker"} <= set(body["services"])
    assert body["services"]["database"]["status"] == "up"
    assert body["services"]["channel_layer"]["status"] == "up"


def test_health_is_degraded_while_sim_records_with_no_worker(anon_client, start):
    EngineHeartbeat.objects.all().delete()
    start()

    body = anon_client.get("/health").json()

    assert body["services"]["worker"]["status"] == "down"
    assert body["status"] == "degraded"


# --- roles: a viewer reads, an operator and a groupless user write, staff-only writes need staff or admin -----


def role_client(username: str, *groups: str) -> APIClient:
    user, key = user_with_token(username)
    user.groups.add(*Group.objects.filter(name__in=groups))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


@pytest.fixture
def world(staff_client, ingest, start, bench):
    """A completed bench session with two alerts, a recording one with readings, and a stored rule."""
    done = start("bench")["session_id"]
    assert ingest(done, readings("fz", [10.0, 90.0, 91.0, 10.0])).status_code == 201
    assert staff_client.post("/api/v1/sessions/stop", {"session_id": done}, format="json").status_code == 200
    recording = start("bench")["session_id"]
    assert ingest(recording, readings("fz", [1.0, 2.0], t0=T0 + 100)).status_code == 201
    rule = ValidationRule.objects.create(code="temp_high", sensor_type="temperature", warning_high=50.0)
    result = ValidationResult.objects.filter(session_id=done).order_by("pk").first()
    return {"done": done, "recording": recording, "result": result.pk, "rule": rule.pk}


def database_state() -> tuple:
    """Everything a write could change, to compare before and after a refused one."""
    return (
        list(RecordingSession.objects.order_by("pk").values()),
        list(Reading.objects.order_by("pk").values_list("pk", "session_id", "seq")),
        list(ValidationResult.objects.order_by("pk").values()),
        list(Rig.objects.order_by("pk").values_list("name", flat=True)),
        list(ValidationRule.objects.order_by("pk").values()),
    )


WRITES = {
    "start": lambda w: ("post", "/api/v1/sessions/start", {"rig": "sim"}),
    "stop": lambda w: ("post", "/api/v1/sessions/stop", {"session_id": w["recording"]}),
    "reset": lambda w: ("post", "/api/v1/sessions/reset", {"rig": "bench"}),
    "ingest": lambda w: ("post", f"/api/v1/sessions/{w['recording']}/readings/", readings("fz", [3.0], t0=T0 + 200)),
    "acknowledge": lambda w: ("post", f"/api/v1/results/{w['result']}/acknowledge/", {"comment": "seen"}),
    "create rig": lambda w: ("post", "/api/v1/rigs/", {"name": "x", "sensors": [{"name": "a", "sensor_type": "t"}]}),
    "create rule": lambda w: ("post", "/api/v1/rules/", {"code": "c", "sensor_type": "force", "warning_high": 1.0}),
    "change rule": lambda w: ("patch", f"/api/v1/rules/{w['rule']}/", {"warning_high": 60.0}),
    "delete rule": lambda w: ("delete", f"/api/v1/rules/{w['rule']}/", None),
    "delete session": lambda w: ("delete", f"/api/v1/sessions/{w['done']}/", None),
}


def send(api: APIClient, write, world):
    method, path, body = write(world)
    return getattr(api, method)(path, body, format="json")


@pytest.mark.parametrize("name", list(WRITES))
def test_a_viewer_is_refused_every_write_with_a_403_naming_the_role_and_nothing_changes(sim_rig, world, name):
    viewer = role_client("watcher", "viewer")
    before = database_state()

    response = send(viewer, WRITES[name], world)

    assert response.status_code == 403, response.content
    assert response["Content-Type"].startswith("application/json")
    assert "viewer" in response.json()["detail"]
    assert database_state() == before


def test_a_viewer_still_reads(world):
    viewer = role_client("watcher", "viewer")

    for path in [*READ_PATHS, f"/api/v1/sessions/{world['done']}/", f"/api/v1/sessions/{world['recording']}/readings/",
                 "/api/v1/results/", "/api/v1/rules/", f"/api/v1/sessions/{world['done']}/export/json"]:
        assert viewer.get(path).status_code == 200, path


@pytest.mark.parametrize("groups", [("operator",), (), ("viewer", "operator")], ids=["operator", "groupless", "both"])
def test_an_operator_and_a_user_in_no_role_group_start_stop_reset_ingest_and_acknowledge(sim_rig, world, groups):
    api = role_client("worker", *groups)

    assert send(api, WRITES["ingest"], world).status_code == 201
    assert send(api, WRITES["acknowledge"], world).status_code == 200
    assert send(api, WRITES["reset"], world).json()["reset"] is True
    assert send(api, WRITES["start"], world).status_code == 201
    assert api.post("/api/v1/sessions/stop", {}, format="json").status_code == 200

    result = ValidationResult.objects.get(pk=world["result"])
    assert result.acknowledged_by.username == "worker" and result.acknowledge_comment == "seen"
    assert RecordingSession.objects.get(pk=world["recording"]).status == RecordingSession.Status.ABORTED
    assert not Reading.objects.filter(session_id=world["recording"]).exists()
    assert RecordingSession.objects.get(rig__name="sim").status == RecordingSession.Status.COMPLETED


@pytest.mark.parametrize("name", ["create rig", "create rule", "change rule", "delete rule", "delete session"])
def test_an_operator_is_refused_the_staff_writes(sim_rig, world, name):
    operator = role_client("worker", "operator")
    before = database_state()

    response = send(operator, WRITES[name], world)

    assert response.status_code == 403
    assert "staff" in response.json()["detail"]
    assert database_state() == before


@pytest.mark.parametrize(("name", "status"), [("create rig", 201), ("create rule", 201), ("change rule", 200),
                                              ("delete session", 204), ("delete rule", 204)])
def test_the_admin_role_does_the_staff_writes(sim_rig, world, name, status):
    assert send(role_client("boss", "admin"), WRITES[name], world).status_code == status
