"""Who may read and write; the public root and health check."""

import pytest
from rest_framework.test import APIClient

from sessions.models import EngineHeartbeat, RecordingSession

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
