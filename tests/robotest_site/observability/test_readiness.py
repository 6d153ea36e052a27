"""`/ready` and `/health` over the same checks (robotest_site/observability/readiness.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.models import EngineHeartbeat

pytestmark = pytest.mark.django_db


def test_ready_when_the_database_and_layer_answer_and_no_worker_is_needed(client):
    response = client.get("/ready")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"database", "channel_layer", "worker"}
    assert body["checks"]["database"]["status"] == "up" and body["checks"]["channel_layer"]["status"] == "up"
    assert body["checks"]["worker"]["needed"] is False


def test_not_ready_while_a_simulated_session_records_and_no_worker_beats(client, start, sim_rig):
    start(sim_rig.name)
    EngineHeartbeat.objects.create(name="old:1", pid=1, beat_at=timezone.now() - timedelta(seconds=60), sessions=1)

    response = client.get("/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["failing"] == ["worker"]
    assert body["checks"]["worker"]["status"] == "down" and body["checks"]["worker"]["age_seconds"] >= 60
    # /health says the same thing its own way: alive, degraded.
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"


def test_ready_again_once_a_worker_beats(client, start, sim_rig):
    start(sim_rig.name)
    EngineHeartbeat.objects.create(name="w:1", pid=1, beat_at=timezone.now(), sessions=1)

    response = client.get("/ready")

    assert response.status_code == 200 and response.json()["checks"]["worker"]["name"] == "w:1"


def test_not_ready_and_unhealthy_when_the_database_is_unreachable(client, settings):
    from django.db import connection

    real = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"  # nothing listens there
    try:
        ready = client.get("/ready")
        health = client.get("/health")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real

    assert ready.status_code == 503 and "database" in ready.json()["failing"]
    assert ready.json()["checks"]["database"]["status"] == "down" and ready.json()["checks"]["database"]["error"]
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert set(health.json()) == {"status", "timestamp", "version", "services"}
