"""Observability end to end: real daphne + run_simulators on PostgreSQL and Redis, JSON logs.

One short recording; then the worker's `--metrics-port` and daphne's `/metrics` are scraped and
compared with the database, and the processes' JSON log lines are read back.
"""

import json
import time

import pytest
import requests

from tests.e2e.harness import DAPHNE, PRODUCTION, PYTHON, Api, free_port, process_env, wait_healthy, wait_worker_up
from tests.robotest_site.observability.test_metrics import parsed

pytestmark = pytest.mark.e2e

RECORD_SECONDS = 2.0


def scrape(url: str, **kwargs) -> dict[tuple[str, tuple], float]:
    response = requests.get(url, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return parsed(response.text)


def json_lines(text: str) -> list[dict]:
    """The JSON log lines of a process's output (each must parse: a broken one fails the test)."""
    return [json.loads(raw) for raw in text.splitlines() if raw.startswith("{")]


@pytest.fixture(scope="module")
def stack(module_procs, pg_database, redis_url, pg_token):
    env = process_env(settings=PRODUCTION, database_url=pg_database.url, redis_url=redis_url,
                      ROBOTEST_LOG_FORMAT="json", ROBOTEST_METRICS_TOKEN="scrape-me")
    port, metrics_port = free_port(), free_port()
    web = module_procs.start(
        "daphne", [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"], env=env
    )
    api = Api(f"http://127.0.0.1:{port}", pg_token)
    wait_healthy(api, web)
    worker = module_procs.start(
        "run_simulators", [PYTHON, "manage.py", "run_simulators", "--metrics-port", str(metrics_port)], env=env
    )
    wait_worker_up(api, worker, web)
    started = api.start(name="e2e metrics")
    time.sleep(RECORD_SECONDS)
    summary = api.stop(started["session_id"])
    yield {"api": api, "web": web, "worker": worker, "session": summary, "db": pg_database,
           "worker_metrics": f"http://127.0.0.1:{metrics_port}/metrics"}
    module_procs.stop_all()
    pg_database.execute("DELETE FROM recording_engineheartbeat")


def test_the_workers_stored_readings_counter_equals_the_databases_count(stack):
    session_id = stack["session"]["session_id"]
    stored = stack["db"].execute("SELECT count(*) FROM recording_reading WHERE session_id = %s", (session_id,))[0][0]
    assert stored == stack["session"]["total_readings"] > 0

    worker = scrape(stack["worker_metrics"])

    assert worker[("robotest_readings_stored_total", (("source", "simulator"),))] == stored
    flushes = worker[("robotest_flush_seconds_count", (("source", "simulator"),))]
    assert 1 <= flushes <= stored
    assert worker[("robotest_flush_batch_readings_sum", (("source", "simulator"),))] == stored
    assert worker[("robotest_engine_buffer_readings", ())] == 0  # the session is over: nothing waits
    assert sum(v for (name, _), v in worker.items() if name == "robotest_readings_lost_total") == 0


def test_the_web_metrics_show_the_installation_and_its_own_requests(stack):
    api = stack["api"]
    web = scrape(api.base_url + "/metrics")

    assert web[("robotest_sessions_recording", (("source", "simulated"),))] == 0
    ages = {dict(labels)["worker"]: v for (name, labels), v in web.items()
            if name == "robotest_worker_heartbeat_age_seconds"}
    assert [name.endswith(f":{stack['worker'].pid}") for name in ages] == [True]
    assert 0 <= next(iter(ages.values())) < 5
    # daphne stored nothing itself: the simulator's readings are the worker's counter, not this one's.
    assert web[("robotest_readings_stored_total", (("source", "simulator"),))] == 0
    assert web[("robotest_http_request_duration_seconds_count",
                (("method", "POST"), ("status", "2xx"), ("view", "session-start")))] == 1


def test_metrics_take_the_token_and_ready_says_ready_once_the_session_is_over(stack):
    url = stack["api"].base_url
    assert requests.get(url + "/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=10).status_code == 200
    ready = requests.get(url + "/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text


def test_a_requests_json_log_line_carries_its_x_request_id(stack):
    api = stack["api"]
    response = api.get("/api/v1/sessions/999999/", headers={"X-Request-ID": "e2e-obs-1"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "e2e-obs-1"

    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in json_lines(stack["web"].output()) if line.get("request_id") == "e2e-obs-1"]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines, stack["web"].tail()
    assert lines[0]["logger"] == "django.request" and "/api/v1/sessions/999999/" in lines[0]["message"]
    assert lines[0]["status_code"] == 404


def test_the_workers_session_lines_carry_the_session_id(stack):
    session_id = stack["session"]["session_id"]
    lines = json_lines(stack["worker"].output())

    completed = [line for line in lines if "completed" in line["message"]]
    assert completed and completed[0]["session_id"] == session_id, lines[-10:]
    engine = [line for line in lines if line["message"].startswith("engine ")]
    assert engine and all(line["session_id"] is None for line in engine)
