"""Request ids and session ids on log lines; the JSON and text formats (robotest_site/observability/logs.py, middleware.py)."""

import asyncio
import io
import json
import logging
import re
import subprocess
import sys

import pytest

from robotest_site.observability import logs
from sessions.engine import Engine
from tests.e2e.harness import LOCAL, PRODUCTION, PYTHON, REPO, process_env, run_manage


@pytest.fixture
def json_lines():
    """Log lines as the production handler writes them (filter + JSON formatter), parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


@pytest.mark.django_db
def test_a_request_line_carries_the_callers_request_id_and_the_answer_echoes_it(staff_client, json_lines):
    response = staff_client.get("/api/v1/sessions/999999/", HTTP_X_REQUEST_ID="lb-7f3a.42")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "lb-7f3a.42"
    lines = [line for line in json_lines() if line["logger"] == "django.request"]
    assert lines and all(line["request_id"] == "lb-7f3a.42" for line in lines), lines
    assert lines[0]["level"] == "WARNING" and "/api/v1/sessions/999999/" in lines[0]["message"]
    assert lines[0]["status_code"] == 404  # what the caller passed in `extra` is kept


@pytest.mark.django_db
@pytest.mark.parametrize("incoming", ["", "two words", "x" * 200, "a\r\nSet-Cookie: x=1", "<script>"])
def test_an_unusable_request_id_is_replaced_by_a_fresh_one(client, json_lines, incoming):
    response = client.get("/no/such/page", HTTP_X_REQUEST_ID=incoming)

    rid = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert [line["request_id"] for line in json_lines() if line["logger"] == "django.request"] == [rid]


@pytest.mark.django_db
def test_each_request_gets_its_own_id_and_none_lingers_after_it(client, json_lines):
    first = client.get("/health")["X-Request-ID"]
    second = client.get("/health")["X-Request-ID"]
    logging.getLogger("after").warning("between requests")

    assert first != second
    assert json_lines()[-1]["request_id"] is None


def test_json_lines_hold_the_exception_and_the_session():
    token = logs.session_id.set(17)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.LogRecord("sessions.engine", logging.ERROR, __file__, 1, "runner of %s failed", (17,),
                                       exc_info=sys.exc_info())
        logs.ContextFilter().filter(record)
    finally:
        logs.session_id.reset(token)

    line = json.loads(logs.JsonFormatter().format(record))

    assert line["message"] == "runner of 17 failed" and line["session_id"] == 17 and line["request_id"] is None
    assert line["level"] == "ERROR" and "ValueError: boom" in line["exception"]
    assert "\n" not in logs.JsonFormatter().format(record)


def test_text_lines_name_the_request_and_keep_a_traceback_below():
    formatter = logs.TextFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    record.request_id, record.session_id = "r1", 5
    assert formatter.format(record) == "INFO x: hello [request=r1 session=5]"
    record.request_id = record.session_id = None
    assert formatter.format(record) == "INFO x: hello"


async def test_the_engines_database_calls_log_the_session_of_the_task_that_made_them(json_lines):
    engine = Engine(layer=object())

    def store():
        logging.getLogger("sessions.recording.pipeline").warning("stored")
        return logs.session_id.get()

    async def runner(session_id):
        logs.session_id.set(session_id)  # as SessionRunner._run does
        return await engine.db(store)

    try:
        got = await asyncio.gather(asyncio.create_task(runner(3)), asyncio.create_task(runner(4)))
    finally:
        engine._db.shutdown()
        engine._control.shutdown()

    assert got == [3, 4]
    assert sorted(line["session_id"] for line in json_lines() if line["message"] == "stored") == [3, 4]
    assert logs.session_id.get() is None  # the tasks' contexts, not the caller's


@pytest.mark.parametrize(("settings_module", "env", "expected"), [
    (LOCAL, {}, "text"), (PRODUCTION, {}, "json"), (LOCAL, {"ROBOTEST_LOG_FORMAT": "JSON"}, "json"),
    (PRODUCTION, {"ROBOTEST_LOG_FORMAT": "text"}, "text"),
])
def test_log_format_is_text_for_make_run_and_json_in_production(settings_module, env, expected):
    # Unset unless the case sets it: the pytest process's own environment must not decide.
    environment = process_env(settings=settings_module, database_url="postgres://postgres@127.0.0.1:5432/unused",
                              redis_url="redis://127.0.0.1:6379/15", **{"ROBOTEST_LOG_FORMAT": "", **env})
    result = run_manage(["shell", "-c", "from django.conf import settings; print(settings.ROBOTEST_LOG_FORMAT)"],
                        env=environment)
    assert result.stdout.strip().splitlines()[-1] == expected


def test_a_bad_log_format_stops_start_up_naming_the_variable(tmp_path):
    environment = process_env(settings=LOCAL, database_url=f"sqlite:///{tmp_path}/unused.sqlite3", ROBOTEST_LOG_FORMAT="yaml")
    result = subprocess.run([PYTHON, "manage.py", "check"], cwd=REPO, env=environment, capture_output=True, text=True)
    assert result.returncode != 0
    assert "ROBOTEST_LOG_FORMAT must be one of text, json, got 'yaml'" in result.stderr
