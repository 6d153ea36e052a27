"""Embedded mode end to end: `manage.py serve` (daphne and the engine in one process) on SQLite."""

import time

import pytest

from tests.e2e.harness import (
    LOCAL,
    PYTHON,
    Api,
    SqliteDatabase,
    assert_exports_agree,
    assert_seq_contiguous,
    assert_summary_counts,
    create_token,
    free_port,
    process_env,
    run_manage,
    wait_healthy,
    wait_until,
    wait_worker_up,
)

pytestmark = pytest.mark.e2e

RECORD_SECONDS = 3.0


@pytest.fixture(scope="module")
def sqlite_database(tmp_path_factory):
    database = SqliteDatabase(tmp_path_factory.mktemp("embedded") / "db.sqlite3")
    env = process_env(settings=LOCAL, database_url=database.url)  # no REDIS_URL: the in-memory layer
    run_manage(["migrate", "--noinput", "-v", "0"], env=env)
    return database, create_token(env)


def test_serve_records_and_its_counts_and_exports_agree(sqlite_database, procs):
    sqlite_database, token = sqlite_database
    env = process_env(settings=LOCAL, database_url=sqlite_database.url)
    port = free_port()
    server = procs.start("serve", [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env)
    api = Api(f"http://127.0.0.1:{port}", token)
    health = wait_healthy(api, server)
    assert health["services"]["channel_layer"]["backend"] == "InMemoryChannelLayer"
    assert health["services"]["database"]["vendor"] == "sqlite"
    wait_worker_up(api, server)

    started = api.start(name="e2e embedded")
    session_id = started["session_id"]
    time.sleep(RECORD_SECONDS)
    summary = api.stop(session_id)
    assert summary["session_id"] == session_id
    assert summary["status"] == "completed"

    rows = sqlite_database.readings(session_id)
    assert_summary_counts(summary, rows)
    assert_seq_contiguous(rows, summary["total_readings"])
    readings, pages = api.readings(session_id, limit=100)
    assert pages > 1
    assert_exports_agree(session_id, rows, readings, api.csv_rows(session_id))

    assert server.stop() == 0, f"serve exited {server.returncode} on SIGTERM"


@pytest.fixture(scope="module")
def served(sqlite_database, module_procs):
    """`manage.py serve` without simulators: daphne answering for itself."""
    sqlite_database, token = sqlite_database
    env = process_env(settings=LOCAL, database_url=sqlite_database.url)
    port = free_port()
    server = module_procs.start(
        "serve-quiet", [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), "--no-simulators"],
        env=env,
    )
    api = Api(f"http://127.0.0.1:{port}", token)
    wait_healthy(api, server)
    return api, port, server


@pytest.mark.parametrize(
    "path",
    ["/api/v1/sessions/start", "/api/v1/sessions/stop", "/api/v1/sessions/reset", "/api/v1/results/1/acknowledge/",
     "/api/v1/sessions/1/readings/", "/api/v1/rigs/", "/api/v1/rules/"],
)
@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data; boundary=B", "multipart/form-data"],
    ids=["only-closing-boundary", "no-boundary"],
)
def test_daphne_leaves_a_malformed_multipart_to_django_which_answers_json(served, path, content_type):
    # Twisted parsed the form before daphne and answered a bare 400: no body, no content type.
    api, _, _ = served

    response = api.http.post(api.base_url + path, data=b"--B--\r\n", headers={"Content-Type": content_type}, timeout=10)

    assert response.headers.get("Content-Type") == "application/json", (response.status_code, response.content)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.json()["detail"]
    if content_type == "multipart/form-data" and response.status_code == 400:
        assert "multipart" in response.json()["detail"]


def test_a_websocket_handshake_on_a_path_with_no_route_is_a_404_and_a_warning(served):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    api, port, server = served

    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{port}/ws/nope", open_timeout=10)

    assert refused.value.response.status_code == 404
    assert api.health()["status"] == "healthy"
    wait_until(lambda: "no route for /ws/nope" in server.output(), timeout=5, what="the warning in the log")
    assert "WARNING sessions.live.routing" in server.output()
    assert "Traceback" not in server.output()
