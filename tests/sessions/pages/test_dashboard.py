"""The dashboard view (`/` for a browser): what it renders for each kind of visitor, before any script runs."""

import json

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from sessions.models import RecordingSession
from sessions.services import session_start
from tests.conftest import bench_create, user_with_token

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html"}


def _client(role: str | None) -> Client:
    client = Client()
    if role is not None:
        user, _ = user_with_token(f"{role}-user")
        if role != "groupless":
            user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
    return client


def _page(client: Client, path: str = "/") -> tuple[str, dict]:
    response = client.get(path, **HTML)
    assert response.status_code == 200
    html = response.content.decode()
    start = html.index('<script id="dashboard-config" type="application/json">') + len(
        '<script id="dashboard-config" type="application/json">'
    )
    return html, json.loads(html[start:html.index("</script>", start)])


def test_every_rig_is_in_the_picker_with_its_sensors_and_recording_session():
    bench = bench_create()
    session = session_start(rig=bench, name="run 1")
    html, config = _page(_client("operator"))
    rigs = {rig["name"]: rig for rig in config["rigs"]}
    assert set(rigs) == {"sim", "bench"}
    assert '<option value="bench"' in html and '<option value="sim"' in html
    assert [s["name"] for s in rigs["bench"]["sensors"]] == ["ft6", "fz", "temp"]
    assert rigs["bench"]["sensors"][1] == {"name": "fz", "sensor_type": "force", "unit": "N"}
    assert rigs["bench"]["session"]["id"] == session.pk
    assert rigs["bench"]["session"]["status"] == "recording"
    # The rule snapshot rides along, so the charts draw their limits without a request.
    assert rigs["bench"]["session"]["rules"] == session.rules and session.rules
    assert rigs["sim"]["session"] is None
    # The recording rig is the one shown when `sim` does not record; its state is in the first paint.
    assert config["rig"] == "bench"
    assert f"recording · session {session.pk}" in html


def test_rig_parameter_picks_the_rig_and_a_finished_session_shows_its_verdict():
    bench = bench_create()
    session = session_start(rig=bench)
    RecordingSession.objects.filter(pk=session.pk).update(status="completed", verdict="warning")
    html, config = _page(_client("operator"), "/?rig=bench")
    assert config["rig"] == "bench"
    assert f"not recording · session {session.pk} completed · verdict warning" in html
    assert config["rigs"][0]["session"]["rules"] == []  # only a recording session's limits are drawn


@pytest.mark.parametrize("role", ["operator", "admin", "groupless"])
def test_an_operator_gets_start_stop_reset_and_acknowledge(role):
    html, config = _page(_client(role))
    for control in ('id="start"', 'id="stop"', 'id="reset"', 'id="reset-dialog"', 'id="ack-dialog"'):
        assert control in html
    assert config["can_operate"] is True


def test_a_viewer_gets_no_controls():
    bench_create()
    html, config = _page(_client("viewer"))
    for control in ('id="start"', 'id="stop"', 'id="reset"', 'id="session-form"', 'id="ack-dialog"'):
        assert control not in html
    assert config["can_operate"] is False
    assert {rig["name"] for rig in config["rigs"]} == {"sim", "bench"}  # a viewer still watches every rig


def test_an_anonymous_visitor_is_asked_to_log_in_and_sees_no_rig():
    bench_create()
    html, config = _page(Client())
    assert 'id="login-prompt"' in html and "/login/?next=/" in html
    assert 'id="start"' not in html
    assert config["rigs"] == [] and config["logged_in"] is False


@override_settings(ROBOTEST_PUBLIC_READ=True)
def test_with_public_reads_an_anonymous_visitor_watches_but_cannot_operate():
    html, config = _page(Client())
    assert [rig["name"] for rig in config["rigs"]] == ["sim"]
    assert 'id="start"' not in html and config["can_operate"] is False


def _recording_rigs(first: int, last: int) -> None:
    for n in range(first, last):
        session_start(rig=bench_create(f"bench-{n}", [{"name": "fz", "sensor_type": "force", "unit": "N"}]))


def test_the_page_reads_as_many_queries_for_twelve_recording_rigs_as_for_four(django_assert_num_queries):
    client = _client("operator")
    _recording_rigs(0, 4)
    with CaptureQueriesContext(connection) as four:
        _page(client)
    _recording_rigs(4, 12)
    with django_assert_num_queries(len(four.captured_queries)):
        _, config = _page(client)
    assert len(config["rigs"]) == 13 and all(r["session"] for r in config["rigs"] if r["name"] != "sim")
