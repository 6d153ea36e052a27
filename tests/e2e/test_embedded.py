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
