"""Ingest through daphne while PostgreSQL goes away and comes back (issue 11): 503, retry, nothing lost or doubled.

A production daphne on a PostgreSQL server of this module's own (tests/e2e/instances.py): a rig
pushes batches with an `Idempotency-Key` each; the server is stopped; every batch is answered at
once with a JSON 503 and `Retry-After` (never a 500, never a hang), /health says unhealthy, daphne
lives on; the server starts again and the rig resends each refused batch with its key. In the end
the database holds every acknowledged reading exactly once.

Also here: a batch sent with chunked transfer encoding (no Content-Length), as daphne hands it on.
"""

import json
import secrets

import pytest
import requests

from tests.e2e.harness import (
    LOCAL,
    ProductionStack,
    assert_seq_contiguous,
    create_token,
    process_env,
    run_manage,
    wait_until,
)
from tests.e2e.instances import PrivatePostgres

pytestmark = pytest.mark.e2e

T0 = 1_700_000_000.0
RIG = {
    "name": "fault-bench", "source": "external",
    "sensors": [{"name": "fz", "sensor_type": "force", "unit": "N"}, {"name": "temp", "sensor_type": "temperature"}],
}


@pytest.fixture(scope="module")
def postgres():
    with PrivatePostgres.started() as server:
        yield server


@pytest.fixture(scope="module")
def stack(module_procs, postgres, private_redis_url):
    database = postgres.database(f"robotest_fault_ingest_{secrets.token_hex(3)}")
    env = process_env(settings=LOCAL, database_url=database.url)
    run_manage(["migrate", "--noinput", "-v", "0"], env=env)
    stack = ProductionStack(module_procs, database=database, redis_url=private_redis_url, token=create_token(env))
    stack.start_web()
    yield stack
    module_procs.stop_all()


@pytest.fixture(scope="module")
def session_id(stack) -> int:
    response = stack.api.post("/api/v1/rigs/", RIG)
    assert response.status_code == 201, response.text
    return stack.api.start(rig=RIG["name"])["session_id"]


def batch(n: int) -> list[dict]:
    """The n-th batch of the rig: 50 readings, times and values that name the batch."""
    t0 = T0 + n
    return [{"sensor": "fz" if i % 2 else "temp", "timestamp": t0 + i * 0.01, "value": n * 1000 + i} for i in range(50)]


def send(stack, session_id: int, n: int) -> requests.Response:
    # A timeout well under the test's: a request that hangs while the database is down fails here.
    return stack.api.http.post(
        f"{stack.api.base_url}/api/v1/sessions/{session_id}/readings/", data=json.dumps(batch(n)),
        headers={"Content-Type": "application/json", "Idempotency-Key": f"batch-{n:04d}"}, timeout=10,
    )


def test_ingest_answers_503_while_postgresql_is_down_and_a_retry_with_the_key_stores_each_batch_once(
    stack, postgres, session_id
):
    acknowledged: dict[int, dict] = {}
    for n in range(5):
        response = send(stack, session_id, n)
        assert response.status_code == 201, response.text
        acknowledged[n] = response.json()

    postgres.stop()
    try:
        refused = []
        for n in range(5, 10):
            response = send(stack, session_id, n)
            assert response.status_code == 503, (response.status_code, response.text[:300])
            assert response.headers["Content-Type"] == "application/json"
            assert response.json() == {"detail": "the database is unavailable; retry in 5 s"}
            assert response.headers["Retry-After"] == "5"
            refused.append(n)
        health = stack.api.get("/health", timeout=10)
        assert (health.status_code, health.json()["status"]) == (503, "unhealthy")
        assert health.json()["services"]["database"]["status"] == "down"
        assert stack.web.alive()
    finally:
        postgres.start()

    # The rig resends each refused batch with its key until it is taken (the first may still meet
    # a connection that died with the server); then one it had an answer for, which is replayed.
    first = wait_until(lambda: (r := send(stack, session_id, refused[0])).status_code == 201 and r,
                       timeout=30, what="the first refused batch to be taken", procs=(stack.web,))
    acknowledged[refused[0]] = first.json()
    for n in refused[1:]:
        response = send(stack, session_id, n)
        assert response.status_code == 201, response.text
        acknowledged[n] = response.json()
    replay = send(stack, session_id, 2)
    assert (replay.status_code, replay.json(), replay.headers["Idempotent-Replayed"]) == (201, acknowledged[2], "true")

    rows = stack.db.readings(session_id)
    assert sum(a["accepted"] for a in acknowledged.values()) == len(rows) == 10 * 50
    assert sorted((r.sensor, round(r.timestamp, 6), r.value) for r in rows) == sorted(
        (item["sensor"], round(item["timestamp"], 6), item["value"]) for n in range(10) for item in batch(n)
    )
    assert_seq_contiguous(rows, stack.db.session(session_id)["reading_count"])
    assert stack.web.alive()


def _chunks(body: bytes, size: int = 1000):
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_a_batch_sent_chunked_without_content_length_is_stored(stack, session_id):
    items = [{"sensor": "temp", "timestamp": T0 + 100 + i * 0.01, "value": i} for i in range(300)]
    before = len(stack.db.readings(session_id))

    # A generator body: requests sends it with Transfer-Encoding: chunked and no Content-Length.
    response = stack.api.http.post(
        f"{stack.api.base_url}/api/v1/sessions/{session_id}/readings/", data=_chunks(json.dumps(items).encode()),
        headers={"Content-Type": "application/json"}, timeout=10,
    )

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == 300
    assert len(stack.db.readings(session_id)) == before + 300


def test_a_chunked_batch_over_the_size_limit_is_a_413_naming_it_and_stores_nothing(stack, session_id):
    item = {"sensor": "temp", "timestamp": T0 + 200, "value": {"note": "x" * 1000}}
    body = json.dumps([item] * 4500).encode()  # over the default 4 MiB
    before = len(stack.db.readings(session_id))

    response = stack.api.http.post(
        f"{stack.api.base_url}/api/v1/sessions/{session_id}/readings/", data=_chunks(body, 64 * 1024),
        headers={"Content-Type": "application/json"}, timeout=30,
    )

    assert response.status_code == 413, response.text[:300]
    assert "ROBOTEST_INGEST_MAX_BYTES" in response.json()["detail"]
    assert len(stack.db.readings(session_id)) == before
