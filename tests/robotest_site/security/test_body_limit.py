"""The request body limit on ingest (ROBOTEST_INGEST_MAX_BYTES): a larger body is a JSON 413 naming it.

In the test client and through a real daphne (which hands Django the whole body, spooled to a
temporary file: the limit is Django's, checked on Content-Length before the body is read, and on
the spooled size when a chunked body has none).
"""

import json

import pytest
import requests
from django.conf import settings

from sessions.models import Reading
from tests.conftest import T0, ft6_value
from tests.e2e.harness import DAPHNE, LOCAL, Api, SqliteDatabase, create_token, free_port, process_env, run_manage
from tests.e2e.harness import wait_healthy

MiB = 1024 * 1024


def ft6_batch(count: int) -> list[dict]:
    """The bulkiest batch a bench sends: 6-axis readings with a full timestamp."""
    return [{"sensor": "ft6", "timestamp": T0 + i * 0.001, "value": ft6_value(i)} for i in range(count)]


def test_the_default_limit_is_4_mib_and_every_body_django_reads_has_it():
    assert settings.ROBOTEST_INGEST_MAX_BYTES == 4 * MiB
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.ROBOTEST_INGEST_MAX_BYTES


@pytest.mark.django_db
def test_a_full_batch_of_10000_six_axis_readings_is_stored_under_the_default_limit(staff_client, bench_session):
    body = json.dumps(ft6_batch(10_000))
    # Headroom for longer sensor names and more digits: the batch is well under half the limit.
    assert len(body) < settings.ROBOTEST_INGEST_MAX_BYTES / 2
    response = staff_client.post(f"/api/v1/sessions/{bench_session}/readings/", body, content_type="application/json")
    assert response.status_code == 201, response.content[:300]
    assert Reading.objects.filter(session_id=bench_session).count() == 10_000


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_413_naming_the_limit_and_stores_nothing(staff_client, bench_session, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    body = json.dumps(ft6_batch(1000))
    response = staff_client.post(f"/api/v1/sessions/{bench_session}/readings/", body, content_type="application/json",
                                 HTTP_IDEMPOTENCY_KEY="big-one")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == (
        f"the request body ({len(body):,} bytes) is larger than the limit of 50,000 bytes "
        "(ROBOTEST_INGEST_MAX_BYTES): send it in smaller batches"
    )
    assert Reading.objects.filter(session_id=bench_session).count() == 0


# --- through daphne ---------------------------------------------------------------------------------

LIMIT = 20_000


@pytest.fixture(scope="module")
def daphne(tmp_path_factory, module_procs):
    database = SqliteDatabase(tmp_path_factory.mktemp("limit") / "db.sqlite3")
    env = process_env(settings=LOCAL, database_url=database.url, ROBOTEST_INGEST_MAX_BYTES=str(LIMIT))
    run_manage(["migrate", "--noinput", "-v", "0"], env=env)
    port = free_port()
    proc = module_procs.start("daphne", [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"],
                              env=env)
    api = Api(f"http://127.0.0.1:{port}", create_token(env))
    wait_healthy(api, proc)
    sensors = [{"name": "ft6", "sensor_type": "force_torque", "unit": ""}]
    assert api.post("/api/v1/rigs/", {"name": "bench", "source": "external", "sensors": sensors}).status_code == 201
    session_id = api.start(rig="bench")["session_id"]
    return api, session_id


def stored(api: Api, session_id: int) -> int:
    return api.get(f"/api/v1/sessions/{session_id}/").json()["reading_count"]


@pytest.mark.e2e
def test_daphne_answers_a_body_over_the_configured_limit_with_the_json_413(daphne):
    api, session_id = daphne
    under, over = json.dumps(ft6_batch(100)), json.dumps(ft6_batch(200))
    assert len(under) < LIMIT < len(over)
    url = f"{api.base_url}/api/v1/sessions/{session_id}/readings/"
    headers = {**api.http.headers, "Content-Type": "application/json"}

    refused = requests.post(url, data=over, headers=headers, timeout=10)
    assert refused.status_code == 413
    assert refused.headers["Content-Type"] == "application/json"
    assert f"larger than the limit of {LIMIT:,} bytes" in refused.json()["detail"]
    # Chunked, with no Content-Length: Django measures the spooled body when the view reads it (as
    # ingest does for an Idempotency-Key's digest).
    chunks = (over[i:i + 4096].encode() for i in range(0, len(over), 4096))
    chunked = requests.post(url, data=chunks, headers={**headers, "Idempotency-Key": "chunked"}, timeout=10)
    assert "Content-Length" not in chunked.request.headers
    assert chunked.status_code == 413, chunked.text
    assert f"larger than the limit of {LIMIT:,} bytes" in chunked.json()["detail"]
    assert stored(api, session_id) == 0

    accepted = requests.post(url, data=under, headers=headers, timeout=10)
    assert accepted.status_code == 201, accepted.text
    assert stored(api, session_id) == 100
