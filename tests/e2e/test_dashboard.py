"""The live dashboard in a real browser: Debian's Chromium driven by Playwright, against `serve` over SQLite.

One server for the module (the restart test stops it and starts it again on the same port and
database). The simulated rig runs at 10/5/2 Hz, below the page's `max_hz` of 20, so the charts
hold every reading and can be compared with the REST API seq by seq.
"""

import json
import re
import signal
import time

import pytest

from tests.e2e.browser import log_in, new_page, serious_violations
from tests.e2e.harness import (
    LOCAL,
    PYTHON,
    Api,
    SqliteDatabase,
    create_token,
    create_users,
    free_port,
    process_env,
    run_manage,
    wait_healthy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "dashboard-e2e-password"
USERS = {"olga": "operator", "vic": "viewer"}
RATES = {"FORCE_SENSOR_HZ": "10", "MOTOR_SENSOR_HZ": "5", "CAMERA_SENSOR_HZ": "2"}
SIM_CHARTS = {"force", "motor", "camera.brightness", "camera.exposure"}


class Site:
    """The module's server: its API client (a superuser's token) and how to restart it."""

    def __init__(self, procs, env: dict, port: int, token: str) -> None:
        self.procs, self.env, self.port = procs, env, port
        self.api = Api(f"http://127.0.0.1:{port}", token)
        self.proc = None

    @property
    def base_url(self) -> str:
        return self.api.base_url

    def start(self) -> None:
        self.proc = self.procs.start(
            "serve", [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)], env=self.env
        )
        wait_healthy(self.api, self.proc)

    def stop_recordings(self) -> None:
        for rig in self.api.get("/api/v1/rigs/").json()["results"]:
            status = self.api.get("/api/v1/sessions/status", params={"rig": rig["name"]}).json()
            if status["recording"]:
                self.api.stop(status["session_id"])


@pytest.fixture(scope="module")
def site(tmp_path_factory, module_procs):
    database = SqliteDatabase(tmp_path_factory.mktemp("dashboard") / "db.sqlite3")
    env = process_env(settings=LOCAL, database_url=database.url, **RATES)
    run_manage(["migrate", "--noinput", "-v", "0"], env=env)
    token = create_token(env)
    create_users(env, USERS, password=PASSWORD)
    site = Site(module_procs, env, free_port(), token)
    site.start()
    return site


@pytest.fixture
def server(site):
    """The site with nothing recording before and after the test."""
    site.stop_recordings()
    yield site
    site.stop_recordings()


def logged_in_page(browser, page_errors, server, username: str, path: str = "/", **context):
    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800}, **context)
    log_in(page, server.base_url, username, PASSWORD, next_path=path)
    wait_text(page, "#connection", "live")
    return page


def wait_text(page, selector: str, pattern: str, timeout: float = 15_000) -> None:
    """Until the element's text matches the regular expression `pattern`."""
    page.wait_for_function(
        "([s, p]) => { const el = document.querySelector(s); return el && new RegExp(p).test(el.textContent); }",
        arg=[selector, pattern], timeout=timeout,
    )


def points(page) -> dict[str, int]:
    return page.evaluate("window.robotestDashboard.points()")


def chart_seqs(page) -> dict[str, list[int]]:
    return page.evaluate("window.robotestDashboard.seqs()")


def wait_points(page, keys, minimum: int, timeout: float = 15_000) -> None:
    page.wait_for_function(
        "([keys, n]) => { const p = window.robotestDashboard.points(); return keys.every((k) => (p[k] || 0) >= n); }",
        arg=[sorted(keys), minimum], timeout=timeout,
    )


def rest_readings(server, session_id: int) -> list[dict]:
    readings, _pages = server.api.readings(session_id, limit=500)
    return readings


def test_a_logged_in_engineer_starts_watches_and_stops_a_session_in_the_dashboard(browser, page_errors, server):
    page = logged_in_page(browser, page_errors, server, "olga")
    assert page.locator("#rig option").all_inner_texts() == ["sim (simulated)"]
    page.select_option("#rig", "sim")
    page.fill("#session-name", "from the page")
    page.fill("#session-description", "e2e run")
    page.click("#start")
    wait_text(page, "#session", r"^recording · session \d+$")
    session_id = int(re.search(r"\d+", page.text_content("#session")).group())
    detail = server.api.get(f"/api/v1/sessions/{session_id}/").json()
    assert (detail["name"], detail["description"], detail["operator"]) == ("from the page", "e2e run", "olga")

    # A chart per sensor and numeric field (the camera's brightness and exposure), gaining points.
    wait_points(page, SIM_CHARTS, 3)
    first = points(page)
    assert set(first) == SIM_CHARTS
    wait_points(page, ["force"], first["force"] + 10)
    keys = page.eval_on_selector_all("#charts figure.chart", "els => els.map(e => e.dataset.key)")
    assert keys == ["camera.brightness", "camera.exposure", "force", "motor"]  # the rig's sensor order
    # The rule snapshot's limits (FORCE_THRESHOLD_HIGH 80: warning at 64, error at 80), as lines and in the page.
    assert page.get_attribute("figure[data-key=force]", "data-limits") == "warning:64,error:80"
    assert page.get_attribute("figure[data-key=motor]", "data-limits") == "warning:-55,warning:55"
    assert page.text_content("figure[data-key=force] figcaption") == "force (N)"
    # Tiles: the last value with its unit, a rate and a status word.
    wait_text(page, ".dash-tile[data-sensor=force] .dash-tile-value", r" N$")
    wait_text(page, ".dash-tile[data-sensor=force] .dash-tile-status", r"^(ok|warning|error)$")
    # 10 Hz, counted by the server over the session so far: early on, readings still on their way to the
    # database make it read low on a loaded machine, so wait for the rate rather than take its first value.
    page.wait_for_function(
        "() => { const t = document.querySelector('.dash-tile[data-sensor=force] .dash-tile-rate').textContent;"
        " const m = /^(\\d+(?:\\.\\d+)?) readings\\/s$/.exec(t); return m && +m[1] >= 5 && +m[1] <= 12; }",
        timeout=20_000,
    )

    # Hovering a chart shows the time and the value under the cursor (uPlot's legend).
    plot = page.locator("figure[data-key=force] .u-over")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    plot.hover(position={"x": box["width"] - 30, "y": box["height"] / 2})
    wait_text(page, "figure[data-key=force] .u-legend .u-series:nth-child(1) .u-value", r"^\d\d:\d\d:\d\d\.\d{3}$")
    wait_text(page, "figure[data-key=force] .u-legend .u-series:nth-child(2) .u-value", r"^-?\d+(\.\d+)? N$")

    # The window selector narrows the time axis; pause stops scrolling while data keeps coming.
    page.click("[data-window='10']")
    page.wait_for_function(
        "() => { const [a, b] = window.robotestDashboard.xRange('force'); return Math.abs(b - a - 10) < 1e-6; }"
    )
    page.click("#pause")
    assert page.get_attribute("#pause", "aria-pressed") == "true" and page.is_visible("#paused")
    frozen = page.evaluate("window.robotestDashboard.xRange('force')")
    held = points(page)["force"]
    page.wait_for_timeout(1500)
    assert points(page)["force"] >= held + 8  # still arriving
    assert page.evaluate("window.robotestDashboard.xRange('force')") == frozen
    page.click("#pause")
    page.wait_for_function("(x) => window.robotestDashboard.xRange('force')[1] > x", arg=frozen[1])

    # The seed's force spikes (5 % of readings) open alerts: newest first, severity as a word.
    page.wait_for_selector("#alerts tr", timeout=20_000)
    ids = [int(i) for i in page.eval_on_selector_all("#alerts tr", "els => els.map(e => e.dataset.result)")]
    assert ids == sorted(ids, reverse=True)
    assert re.match(r"^(warning|error)", page.text_content("#alerts tr .badge"))
    assert serious_violations(page) == []

    page.click("#stop")
    wait_text(page, "#session", rf"session {session_id} completed · verdict (pass|warning|fail|error)$")
    summary = server.api.get(f"/api/v1/sessions/{session_id}/").json()
    assert summary["status"] == "completed" and summary["reading_count"] > 0
    assert page.text_content("#session").endswith("verdict " + summary["verdict"])
    assert page.is_enabled("#start") and not page.is_enabled("#stop")


def test_reset_waits_for_a_confirmation_that_the_keyboard_can_give_or_refuse(browser, page_errors, server):
    session_id = server.api.start(rig="sim", name="to reset")["session_id"]
    page = logged_in_page(browser, page_errors, server, "olga")
    wait_text(page, "#session", rf"^recording · session {session_id}$")
    wait_points(page, ["force"], 3)

    page.focus("#reset")
    page.keyboard.press("Enter")
    assert page.is_visible("#reset-dialog")
    assert f"session {session_id}" in page.text_content("#reset-text")
    page.keyboard.press("Escape")  # refused: nothing happens
    assert not page.is_visible("#reset-dialog")
    assert page.evaluate("document.activeElement.id") == "reset"
    page.wait_for_timeout(300)
    assert server.api.get(f"/api/v1/sessions/{session_id}/").json()["status"] == "recording"

    page.keyboard.press("Enter")
    page.focus("#reset-confirm")
    page.keyboard.press("Enter")
    wait_text(page, "#session", rf"session {session_id} aborted")
    assert server.api.get(f"/api/v1/sessions/{session_id}/").json()["status"] == "aborted"
    assert points(page) == {}  # its readings are gone, and so are its charts


def test_an_external_rigs_violation_is_charted_alerted_and_acknowledged(browser, page_errors, server):
    response = server.api.post("/api/v1/rigs/", {
        "name": "press", "source": "external",
        "sensors": [{"name": "load", "sensor_type": "force", "unit": "N"}, {"name": "cam", "sensor_type": "camera"}],
    })
    assert response.status_code == 201, response.text
    page = logged_in_page(browser, page_errors, server, "olga")
    assert page.locator("#rig option").all_inner_texts() == ["press (external)", "sim (simulated)"]
    page.select_option("#rig", "press")
    assert page.url.endswith("/?rig=press")
    assert page.eval_on_selector_all(".dash-tile", "els => els.map(e => e.dataset.sensor)") == ["cam", "load"]
    page.click("#start")
    wait_text(page, "#session", r"^recording · session \d+$")
    session_id = int(re.search(r"\d+", page.text_content("#session")).group())
    page.wait_for_function("() => (window.robotestDashboard.session() || {}).rules")

    t0 = time.time()
    batch = [{"sensor": "load", "timestamp": t0 + i * 0.2, "value": v} for i, v in enumerate([12.0, 20.5, 96.25])]
    batch += [{"sensor": "cam", "timestamp": t0 + 0.1, "value": {"image_id": 7, "brightness": 120, "exposure": 0.5}}]
    response = server.api.post(f"/api/v1/sessions/{session_id}/readings/", batch)
    assert response.status_code in (200, 201), response.text

    # The reading above the error limit (80 N), also a jump of 84 N (the spike rule, > 50 N over two readings):
    # alerts in the feed, episodes on the load chart.
    page.wait_for_selector("#alerts tr[data-status=error]")
    page.wait_for_selector("#alerts tr[data-status=warning]")
    listed = server.api.get("/api/v1/results/", params={"session": session_id}).json()["results"]
    results = {r["rule"]: r for r in listed}
    assert set(results) == {"force_threshold", "force_spike"}
    result = results["force_threshold"]
    assert (result["status"], result["peak"], result["count"]) == ("error", 96.25, 1)
    row = page.locator(f"#alerts tr[data-result='{result['id']}']")
    assert row.locator(".badge").text_content().startswith("error")
    assert row.locator("td.num").all_text_contents() == ["1", "96.25"]
    wait_points(page, ["load", "cam.brightness", "cam.exposure"], 1)
    wait_points(page, ["load"], 3)
    assert points(page) == {"load": 3, "cam.brightness": 1, "cam.exposure": 1}
    episodes = page.evaluate("window.robotestDashboard.episodes()")
    assert sorted(episodes["load"]) == sorted(r["id"] for r in results.values())
    assert page.get_attribute("figure[data-key=load]", "data-episodes") == "2"
    assert page.get_attribute("figure[data-key=load]", "data-limits") == "warning:64,error:80"
    wait_text(page, ".dash-tile[data-sensor=load] .dash-tile-status", "^error$")
    wait_text(page, ".dash-tile[data-sensor=load] .dash-tile-value", "^96.25 N$")
    wait_text(page, ".dash-tile[data-sensor=cam] .dash-tile-value", "^brightness 120 · exposure 0.5$")
    # The open episode grows while the keyboard is on its Acknowledge button: the focus stays there.
    row.get_by_role("button", name=re.compile("^Acknowledge error")).focus()
    response = server.api.post(f"/api/v1/sessions/{session_id}/readings/",
                               [{"sensor": "load", "timestamp": t0 + 0.6, "value": 90.5}])
    assert response.status_code in (200, 201), response.text
    wait_text(page, f"#alerts tr[data-result='{result['id']}'] td.num", "^2$")
    assert page.evaluate("document.activeElement.closest('tr').dataset.result") == str(result["id"])

    # Back in range (and steady, which ends the spike episodes): the episodes close, the tile says so.
    response = server.api.post(f"/api/v1/sessions/{session_id}/readings/",
                               [{"sensor": "load", "timestamp": t0 + 0.8 + i * 0.2, "value": v}
                                for i, v in enumerate([15.0, 16.0, 15.5])])
    assert response.status_code in (200, 201), response.text
    wait_text(page, ".dash-tile[data-sensor=load] .dash-tile-status", "^ok$")
    wait_text(page, ".dash-tile[data-sensor=load] .dash-tile-value", "^15.5 N$")
    wait_text(page, f"#alerts tr[data-result='{result['id']}'] .badge", "^error$")  # no longer open
    wait_points(page, ["load"], 7)

    row.get_by_role("button", name=re.compile("^Acknowledge")).click()
    assert page.is_visible("#ack-dialog")
    page.fill("#ack-comment", "loose fixture, re-clamped")
    page.click("#ack-confirm")
    wait_text(page, f"#alerts tr[data-result='{result['id']}'] .dash-ack", r"acknowledged by olga at \d\d:\d\d:\d\d")
    assert "“loose fixture, re-clamped”" in row.locator(".dash-ack").text_content()
    stored = server.api.get(f"/api/v1/results/{result['id']}/").json()
    assert (stored["acknowledged_by"], stored["acknowledge_comment"]) == ("olga", "loose fixture, re-clamped")

    # Opened afresh on the recording session, the page loads the session's results with their acknowledgement.
    page.reload()
    wait_text(page, "#connection", "^live$")
    wait_text(page, f"#alerts tr[data-result='{result['id']}'] .dash-ack", r"acknowledged by olga")
    assert row.get_by_role("button").count() == 0
    wait_points(page, ["load"], 7)
    assert points(page)["load"] == 7  # the history, from the record
    assert serious_violations(page) == []

    page.click("#stop")
    wait_text(page, "#session", rf"session {session_id} completed · verdict fail$")


def test_a_viewer_sees_no_controls(browser, page_errors, server):
    session_id = server.api.start(rig="sim")["session_id"]
    page = logged_in_page(browser, page_errors, server, "vic")
    wait_text(page, "#session", rf"^recording · session {session_id}$")
    page.wait_for_selector("#alerts tr", timeout=20_000)
    for control in ("#start", "#stop", "#reset", "#session-form", "#ack-dialog", "#alerts button"):
        assert page.locator(control).count() == 0, control
    # A rig made after the page was rendered joins the picker when a session starts on it.
    response = server.api.post("/api/v1/rigs/", {"name": "late", "source": "external",
                                                 "sensors": [{"name": "fz", "sensor_type": "force", "unit": "N"}]})
    assert response.status_code == 201, response.text
    server.api.start(rig="late")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#rig option')].some(o => o.textContent === 'late (external) · recording')"
    )
    assert page.locator("#rig option").all_inner_texts()[0] == "late (external) · recording"
    assert "not acknowledged" in page.text_content("#alerts tr .dash-ack")
    wait_points(page, SIM_CHARTS, 2)
    assert serious_violations(page) == []
    # Dark mode and a phone's width, switched on a live page: the charts are rebuilt with their points.
    held = points(page)
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.querySelector('figure[data-key=force] .uplot').offsetWidth < 390")
    assert all(points(page)[key] >= n for key, n in held.items())
    assert serious_violations(page) == []


def test_the_dashboard_reconnects_and_backfills_after_a_server_restart(browser, page_errors, server):
    session_id = server.api.start(rig="sim", name="restart")["session_id"]
    page = logged_in_page(browser, page_errors, server, "olga")
    wait_points(page, SIM_CHARTS, 3)

    page.wait_for_function("() => window.robotestDashboard.syncing() === 0")
    backfilled = page.evaluate("window.robotestDashboard.backfilled()")
    server.proc.signal(signal.SIGTERM)
    assert server.proc.wait(20) is not None
    wait_text(page, "#connection", "^reconnecting")
    time.sleep(1.5)  # readings the restarted engine catches up on, and backoff retries that fail
    server.start()
    wait_text(page, "#connection", "^live$", timeout=20_000)
    before = points(page)["force"]
    wait_points(page, ["force"], before + 10)
    # What was stored while the page was away (the engine's catch-up, the reconnection delay) came over REST.
    assert page.evaluate("window.robotestDashboard.backfilled()") > backfilled

    server.api.stop(session_id)
    wait_text(page, "#session", rf"session {session_id} completed")
    page.wait_for_function("() => window.robotestDashboard.syncing() === 0")
    page.wait_for_timeout(500)
    stored = rest_readings(server, session_id)
    charts = chart_seqs(page)
    for key, sensor in (("force", "force"), ("motor", "motor"), ("camera.brightness", "camera"),
                        ("camera.exposure", "camera")):
        expected = sorted(r["seq"] for r in stored if r["sensor"] == sensor)
        assert sorted(charts[key]) == expected, key
    assert sum(len(charts[k]) for k in ("force", "motor", "camera.brightness")) == len(stored)
    # The outage itself: Chromium reports each refused reconnection attempt; nothing else may go wrong.
    page_errors.console[:] = [e for e in page_errors.console if "ERR_CONNECTION_REFUSED" not in e]


def test_readings_a_lag_frame_names_are_fetched_from_the_record(browser, page_errors, server):
    """The channel layer lost frames on their way: the server says which seqs; the page reads them over REST."""
    session_id = server.api.start(rig="sim", name="lag")["session_id"]
    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    dropped: list[int] = []
    state = {"to_drop": 0, "told": False}

    def between(ws):
        feed = ws.connect_to_server()
        ws.on_message(feed.send)

        def from_server(message):
            frame = json.loads(message)
            if frame["type"] == "sensor_data_batch" and state["to_drop"]:
                state["to_drop"] -= 1
                dropped.extend(r["seq"] for r in frame["data"])
                return
            if dropped and not state["told"]:
                state["told"] = True
                ws.send(json.dumps({"type": "lag", "data": {
                    "session_id": session_id, "missed_readings": len(dropped), "from_seq": min(dropped),
                    "to_seq": max(dropped), "source": "channel_layer"}}))
            ws.send(message)

        feed.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/sensor-data$"), between)
    ranges = []
    page.on("request", lambda r: "after_seq" in r.url and "sensor=" not in r.url and ranges.append(r.url))
    log_in(page, server.base_url, "olga", PASSWORD)
    wait_text(page, "#connection", "^live$")
    wait_points(page, SIM_CHARTS, 3)
    page.wait_for_function("() => window.robotestDashboard.syncing() === 0")
    state["to_drop"] = 2
    wait_text(page, "#lag", r"readings missed on the way", timeout=10_000)
    assert dropped
    assert any(f"after_seq={min(dropped) - 1}" in url for url in ranges)

    server.api.stop(session_id)
    wait_text(page, "#session", rf"session {session_id} completed")
    page.wait_for_function("() => window.robotestDashboard.syncing() === 0")
    page.wait_for_timeout(300)
    charts = chart_seqs(page)
    stored = rest_readings(server, session_id)
    for key, sensor in (("force", "force"), ("motor", "motor"), ("camera.brightness", "camera")):
        assert sorted(charts[key]) == sorted(r["seq"] for r in stored if r["sensor"] == sensor), key
    shown = {seq for seqs in charts.values() for seq in seqs}
    assert set(dropped) <= shown


def test_the_dashboard_asks_an_anonymous_visitor_to_log_in(browser, page_errors, server):
    page = new_page(browser, page_errors)
    page.goto(f"{server.base_url}/")
    wait_text(page, "#connection", "^log in to watch$", timeout=10_000)
    assert page.locator("#start").count() == 0
    assert page.get_attribute("#login-prompt a", "href") == "/login/?next=/"
    assert serious_violations(page) == []
