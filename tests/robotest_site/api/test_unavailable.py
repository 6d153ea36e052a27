"""A database that cannot be reached is a 503 with Retry-After, never a 500 (robotest_site/api/unavailable.py).

No mock: the test's own connection is pointed at a port nobody listens on (refused, as while
PostgreSQL restarts), or made to time out on a row lock another connection holds (an error in
the middle of the ingest transaction). tests/e2e/test_fault_ingest.py stops a real server under daphne.
"""

import json

import psycopg
import pytest
from django.db import connection

from sessions.models import IngestKey, Reading, RecordingSession
from tests.conftest import readings, stored
from tests.e2e.harness import free_port

pytestmark = [
    # Committed rows (another connection locks one); serialized_rollback keeps the migrations' `sim`
    # rig and groups for the tests after these.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="points the PostgreSQL connection elsewhere"),
]

BATCH = readings("fz", [10.0, 95.0, 12.5]) + readings("temp", [21.0], t0=1_700_000_000.05)


@pytest.fixture
def reconnect_with():
    """`reconnect_with(PORT=…)`: the test's connection, closed and reopened with other settings; put back after."""
    saved = {key: connection.settings_dict[key] for key in ("PORT", "OPTIONS")}

    def reconnect(**changes):
        connection.close()
        connection.settings_dict.update(changes)

    yield reconnect
    connection.close()
    connection.settings_dict.update(saved)


@pytest.fixture
def database_down(reconnect_with):
    reconnect_with(PORT=str(free_port()))


def ingest(client, session_id: int, key: str = "batch-1"):
    return client.post(f"/api/v1/sessions/{session_id}/readings/", data=json.dumps(BATCH),
                       content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


def _assert_json_503(response) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "the database is unavailable; retry in 5 s"}
    assert response["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/sessions/"), ("get", "/api/v1/sensors/readings"), ("post", "/api/v1/sessions/start"),
     ("get", "/api/v1/sessions/status")],
)
def test_an_api_request_while_the_database_refuses_connections_is_a_json_503_with_retry_after(
    staff_client, database_down, method, path
):
    response = getattr(staff_client, method)(path, format="json")

    _assert_json_503(response)


def test_retry_after_follows_the_setting(staff_client, settings, database_down):
    settings.ROBOTEST_RETRY_AFTER_SECONDS = 30

    response = staff_client.get("/api/v1/sessions/")

    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert response.json()["detail"] == "the database is unavailable; retry in 30 s"


def test_a_page_while_the_database_refuses_connections_is_a_plain_503_page(client, staff_user, reconnect_with):
    client.force_login(staff_user)
    reconnect_with(PORT=str(free_port()))

    response = client.get("/sessions/")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"] == "5"
    assert b"Temporarily unavailable" in response.content
    assert b"Try again in 5 seconds" in response.content


def test_health_answers_unhealthy_while_the_database_refuses_connections(client, database_down):
    response = client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["services"]["database"]["status"]) == ("unhealthy", "down")


def test_an_ingest_batch_refused_while_the_database_is_down_is_stored_once_when_sent_again(
    staff_client, bench_session, reconnect_with
):
    port = connection.settings_dict["PORT"]
    reconnect_with(PORT=str(free_port()))
    _assert_json_503(ingest(staff_client, bench_session))

    reconnect_with(PORT=port)
    retried = ingest(staff_client, bench_session)

    assert retried.status_code == 201, retried.content
    assert retried.json()["accepted"] == len(BATCH)
    assert [(name, value) for name, _, value, _ in stored(bench_session)] == [
        ("fz", 10.0), ("temp", 21.0), ("fz", 95.0), ("fz", 12.5)
    ]


def test_a_database_error_in_the_middle_of_an_ingest_transaction_is_a_503_and_stores_nothing(
    staff_client, bench_session, reconnect_with
):
    # Another connection holds the session's row lock; this one gives up waiting for it after
    # 200 ms (LockNotAvailable, an OperationalError) once the batch's transaction has begun.
    options = connection.settings_dict["OPTIONS"]
    database = connection.settings_dict["NAME"]
    other = psycopg.connect(host="127.0.0.1", port=connection.settings_dict["PORT"], user="postgres", dbname=database)
    try:
        other.execute("SELECT 1 FROM recording_recordingsession WHERE id = %s FOR UPDATE", [bench_session])
        reconnect_with(OPTIONS={**options, "options": "-c lock_timeout=200"})

        response = ingest(staff_client, bench_session)
    finally:
        other.rollback()
        other.close()

    _assert_json_503(response)
    assert Reading.objects.filter(session_id=bench_session).count() == 0
    assert RecordingSession.objects.get(pk=bench_session).reading_count == 0
    assert not IngestKey.objects.filter(session_id=bench_session).exists()
    retried = ingest(staff_client, bench_session)
    assert (retried.status_code, retried.json()["first_seq"], retried.json()["last_seq"]) == (201, 1, len(BATCH))
    assert Reading.objects.filter(session_id=bench_session).count() == len(BATCH)
