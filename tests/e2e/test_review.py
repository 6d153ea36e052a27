"""The session review pages in a real browser (Debian's Chromium under Playwright) against `serve` over SQLite.

One server for the module: an external rig's session with force violations (pushed over the ingest
API), then the pages are read, zoomed, downloaded from and acknowledged on as a user would.
Screenshots go to $REVIEW_SHOTS when it is set (light and dark, 1280×800 and 390×844).
"""

import csv
import io
import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader

from tests.e2e.browser import log_in, new_page, serious_violations
from tests.e2e.harness import serve_embedded

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "review-e2e-password"
USERS = {"olga": "operator", "vic": "viewer"}
RATE = 100.0  # Hz of the pushed force sensor
SECONDS = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_procs):
    directory = tmp_path_factory.mktemp("review")
    api = serve_embedded(module_procs, directory, users=USERS, password=PASSWORD)
    api.database_path = directory / "db.sqlite3"
    return api


def force_value(i: int) -> float:
    """A slow wave of about 40 N with a warning run (70 N) and an error run (90 N) in it."""
    if 800 <= i < 830:
        return 70.0
    if 4500 <= i < 4510:
        return 90.0 + i % 3
    return 40.0 + 10.0 * ((i % 400) / 400.0)


@pytest.fixture(scope="module")
def bench_session(server) -> dict:
    """A finished session of an external rig: force (scalar) and camera (objects), with force alerts."""
    response = server.post("/api/v1/rigs/", {
        "name": "review-bench", "source": "external",
        "sensors": [{"name": "force", "sensor_type": "force", "unit": "N"},
                    {"name": "cam", "sensor_type": "camera", "unit": ""}],
    })
    assert response.status_code == 201, response.text
    session_id = server.start(rig="review-bench", name="review e2e")["session_id"]
    t0 = time.time() - SECONDS - 5
    n = int(RATE * SECONDS)
    batch = [{"sensor": "force", "timestamp": t0 + i / RATE, "value": force_value(i)} for i in range(n)]
    batch += [{"sensor": "cam", "timestamp": t0 + i / 10, "value": {"image_id": i, "brightness": 100 + i % 50,
                                                                       "exposure": 0.5 + (i % 10) / 20}}
              for i in range(SECONDS * 10)]
    for chunk in range(0, len(batch), 2000):
        response = server.post(f"/api/v1/sessions/{session_id}/readings/", batch[chunk:chunk + 2000])
        assert response.status_code in (200, 201), response.text
    summary = server.stop(session_id)
    assert summary["validation_alerts"] >= 2 and summary["verdict"] == "fail"
    return summary


def shoot(page, name: str) -> None:
    directory = os.environ.get("REVIEW_SHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{directory}/{name}.png", full_page=True)


# Elements reaching past the window's right edge, except inside a box that scrolls on its own.
WIDER_THAN_WINDOW = """
[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !(e.parentElement && e.parentElement.closest('.table-wrap')))
  .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)
"""


def wait_ready(page) -> None:
    page.wait_for_function("() => window.robotestReview && window.robotestReview.ready === true", timeout=15_000)


def test_the_list_shows_the_session_with_its_verdict_and_filters_it(browser, page_errors, server, bench_session):
    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    log_in(page, server.base_url, "vic", PASSWORD, next_path="/sessions/")
    row = page.locator(f"tr[data-session='{bench_session['session_id']}']")

    assert row.locator(".badge.fail").inner_text() == "fail"
    assert row.locator("td").nth(7).inner_text() == f"{bench_session['total_readings']:,}"
    assert serious_violations(page) == []
    shoot(page, "list-light-1280")

    page.select_option("#id_verdict", "pass")
    page.click("form.review-filters button[type=submit]")
    page.wait_for_url("**/sessions/?*verdict=pass*")
    assert page.locator(f"tr[data-session='{bench_session['session_id']}']").count() == 0
    # A date input takes only dates; an edited address can carry anything.
    page.goto(f"{server.base_url}/sessions/?started_from=2020-02-01&started_to=not-a-date")
    assert page.locator("#id_started_to + .errorlist").inner_text() == "Enter a valid date."
    assert page.locator("#id_started_to").get_attribute("aria-invalid") == "true"
    assert serious_violations(page) == []


def test_the_session_page_draws_envelopes_zooms_to_raw_readings_and_resets(browser, page_errors, server, bench_session):
    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    log_in(page, server.base_url, "vic", PASSWORD, next_path="/sessions/")
    requests: list[str] = []
    page.on("request", lambda r: "/api/v1/sensors/readings" in r.url and requests.append(r.url))
    page.goto(f"{server.base_url}/sessions/{bench_session['session_id']}/")
    wait_ready(page)

    figures = page.locator("figure.review-chart")
    assert [(f.get_attribute("data-sensor"), f.get_attribute("data-field")) for f in figures.all()] == [
        ("cam", "brightness"), ("cam", "exposure"), ("force", "")]
    assert page.locator("figure.review-chart canvas").count() == 3
    assert len([u for u in requests if "/aggregated?" in u]) == 3  # one request per chart
    force = page.locator("figure[data-sensor='force']")
    whole = interval_shown(force.locator(".review-resolution").inner_text())
    plot = force.locator(".u-over")

    # A wide drag: still aggregated, at a finer interval, over the range chosen.
    requests.clear()
    drag(page, plot, 0.30, 0.70)
    page.wait_for_function("() => window.robotestReview.lastZoom && window.robotestReview.lastZoom.interval_seconds",
                           timeout=10_000)
    zoom = page.evaluate("window.robotestReview.lastZoom")
    assert any("/aggregated?" in u and "start_time=" in u for u in requests), requests
    assert zoom["drawn_at"] >= zoom["requested_at"]
    shown = interval_shown(force.locator(".review-resolution").inner_text())
    assert shown == pytest.approx(zoom["interval_seconds"], rel=0.01) and shown < whole
    assert page.locator("figure[data-sensor='force'] .review-reset").is_visible()

    # A narrow drag within it: few enough readings to draw each one.
    requests.clear()
    drag(page, plot, 0.45, 0.48)
    page.wait_for_function("() => window.robotestReview.lastZoom && window.robotestReview.lastZoom.raw === true",
                           timeout=10_000)
    assert any("/aggregated?" not in u and "start_time=" in u for u in requests), requests
    assert "readings, each drawn" in force.locator(".review-resolution").inner_text()
    shoot(page, "session-zoomed-light-1280")

    force.locator(".review-reset").click()
    assert not force.locator(".review-reset").is_visible()
    assert "intervals of" in force.locator(".review-resolution").inner_text()

    # From the keyboard: an alert's "Show on chart" zooms its chart to the run of readings.
    page.evaluate("window.robotestReview.lastZoom = null")
    button = page.locator("tr[data-result] button.review-show").last
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.robotestReview.lastZoom && window.robotestReview.lastZoom.raw === true",
                           timeout=10_000)
    zoom = page.evaluate("window.robotestReview.lastZoom")
    episode = float(button.get_attribute("data-from")), float(button.get_attribute("data-to"))
    assert zoom["start_time"] < episode[0] <= episode[1] < zoom["end_time"]
    assert page.evaluate("document.activeElement.closest('figure').dataset.sensor") == "force"
    assert serious_violations(page) == []


def interval_shown(text: str) -> float:
    """Seconds from a chart's "551 intervals of 108.9 ms" line."""
    match = re.fullmatch(r"[\d,]+ intervals of ([\d.]+) (ms|s)", text)
    assert match, text
    return float(match[1]) / (1000 if match[2] == "ms" else 1)


def drag(page, plot, start: float, end: float) -> None:
    """Drag across `plot` from `start` to `end` (fractions of its width), as a user selects a range."""
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * (start + end) / 2, y, steps=4)
    page.mouse.move(box["x"] + box["width"] * end, y, steps=4)
    page.mouse.up()


def test_every_download_link_gives_a_file_that_parses(browser, page_errors, server, bench_session):
    page = new_page(browser, page_errors)
    log_in(page, server.base_url, "vic", PASSWORD, next_path=f"/sessions/{bench_session['session_id']}/")
    links = {a.get_attribute("data-format"): a.get_attribute("href") for a in page.locator("a[data-format]").all()}
    files = {name: page.request.get(server.base_url + href) for name, href in links.items()}

    assert {name: r.status for name, r in files.items()} == dict.fromkeys(("csv", "csv-wide", "json", "mcap"), 200)
    long_rows = list(csv.DictReader(io.StringIO(files["csv"].text())))
    assert len(long_rows) == bench_session["total_readings"]
    wide = csv.DictReader(io.StringIO(files["csv-wide"].text()))
    wide_rows = list(wide)
    assert {"force", "cam.brightness", "cam.exposure"} <= set(wide.fieldnames)
    assert sum(1 for row in wide_rows if row["force"]) == sum(1 for row in long_rows if row["sensor"] == "force")
    record = json.loads(files["json"].body())
    assert record["session"]["id"] == bench_session["session_id"]
    assert record["readings"]["count"] == bench_session["total_readings"]
    assert len(record["validation_results"]) == bench_session["validation_alerts"]
    reader = make_reader(io.BytesIO(files["mcap"].body()))
    readings = sum(1 for _schema, channel, _message in reader.iter_messages() if channel.topic != "/alerts")
    assert readings == bench_session["total_readings"]


def test_an_operator_acknowledges_an_alert_on_the_page_and_a_viewer_cannot(browser, page_errors, server, bench_session):
    session_page = f"/sessions/{bench_session['session_id']}/"
    viewer = new_page(browser, page_errors)
    log_in(viewer, server.base_url, "vic", PASSWORD, next_path=session_page)
    assert viewer.locator("tr[data-result]").count() >= 2
    assert viewer.locator("form.review-ack-form, button:has-text('Acknowledge')").count() == 0

    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    log_in(page, server.base_url, "olga", PASSWORD, next_path=session_page)
    row = page.locator("tr[data-result]").first
    result_id = row.get_attribute("data-result")
    row.locator("input[name=comment]").fill("seen on the bench")
    row.locator("button", has_text="Acknowledge").click()
    page.wait_for_url(f"**{session_page}#alert-{result_id}")

    row = page.locator(f"tr#alert-{result_id}")
    assert row.locator(".ack-who").inner_text() == "olga"
    assert row.locator(".ack-comment").inner_text() == "seen on the bench"
    assert row.locator(".ack-when").inner_text().endswith("UTC")
    assert server.get(f"/api/v1/results/{result_id}/").json()["acknowledged_by"] == "olga"
    wait_ready(page)
    assert serious_violations(page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["1280", "390"])
def test_the_pages_fit_both_sizes_in_both_schemes(browser, page_errors, server, bench_session, scheme, size):
    page = new_page(browser, page_errors, viewport={"width": size[0], "height": size[1]}, color_scheme=scheme)
    log_in(page, server.base_url, "olga", PASSWORD, next_path="/sessions/")
    shoot(page, f"list-{scheme}-{size[0]}")
    page.goto(f"{server.base_url}/sessions/{bench_session['session_id']}/")
    wait_ready(page)
    # Nothing wider than the window but the tables, which scroll inside their own box.
    wide = page.evaluate(WIDER_THAN_WINDOW)
    assert wide == [], wide
    assert page.evaluate("document.documentElement.scrollWidth") <= size[0]
    for canvas in page.locator("figure.review-chart canvas").all():
        assert canvas.bounding_box()["width"] <= size[0]
    shoot(page, f"session-{scheme}-{size[0]}")
    if size[0] == 390 and scheme == "dark":
        assert serious_violations(page) == []


def test_a_missing_session_is_a_404_page(browser, page_errors, server):
    page_errors.expected_statuses.add(404)
    page = new_page(browser, page_errors)
    log_in(page, server.base_url, "vic", PASSWORD, next_path="/sessions/")
    response = page.goto(f"{server.base_url}/sessions/999999/")
    assert response.status == 404
    assert page.locator("h1").count() == 1
    # Chromium logs the 404 of the page itself as a console error: the one expected here.
    assert [e for e in page_errors.console if "999999" not in e] == []
    page_errors.console.clear()


def test_a_session_that_lost_readings_says_how_many_on_its_page(browser, page_errors, server, bench_session):
    session_id = server.start(rig="review-bench", name="lossy")["session_id"]
    now = time.time()
    response = server.post(f"/api/v1/sessions/{session_id}/readings/",
                           [{"sensor": "force", "timestamp": now + i / RATE, "value": 40.0} for i in range(50)])
    assert response.status_code == 201, response.text
    # What a worker does when its buffer overflowed while the database was away (sessions/engine.py).
    with sqlite3.connect(server.database_path) as db:
        db.execute("UPDATE recording_recordingsession SET lost_readings = 1234 WHERE id = ?", (session_id,))
    summary = server.stop(session_id)
    assert summary["lost_readings"] == 1234 and summary["verdict"] == "error"

    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    log_in(page, server.base_url, "vic", PASSWORD, next_path="/sessions/")
    page.goto(f"{server.base_url}/sessions/{session_id}/")
    wait_ready(page)
    lost = page.locator("#review-lost")
    assert lost.is_visible() and "1,234" in lost.inner_text() and "never stored" in lost.inner_text()
    assert "error" in page.locator("#review-verdict").inner_text()
    assert serious_violations(page) == []
    shoot(page, "session-lost-readings")
    # A session that lost nothing has no such line.
    page.goto(f"{server.base_url}/sessions/{bench_session['session_id']}/")
    wait_ready(page)
    assert page.locator("#review-lost").count() == 0


def test_a_recording_sessions_page_follows_the_live_feed(browser, page_errors, server, bench_session):
    session_id = server.start(rig="review-bench", name="live")["session_id"]
    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    log_in(page, server.base_url, "olga", PASSWORD, next_path=f"/sessions/{session_id}/")
    wait_ready(page)
    page.wait_for_function("() => document.getElementById('review-live').textContent.startsWith('Live')",
                           timeout=10_000)
    now = time.time()
    response = server.post(f"/api/v1/sessions/{session_id}/readings/", [
        {"sensor": "force", "timestamp": now + i / 100, "value": 95.0 if i == 5 else 20.0 + i} for i in range(50)
    ] + [{"sensor": "cam", "timestamp": now + i / 10, "value": {"image_id": i, "brightness": 120, "exposure": 0.9}}
         for i in range(5)])
    assert response.status_code in (200, 201), response.text

    force = page.locator("figure[data-sensor='force'] .review-resolution")
    page.wait_for_function(
        "() => document.querySelector(\"figure[data-sensor='force'] .review-resolution\").textContent.startsWith('live')",
        timeout=10_000,
    )
    assert int(force.inner_text().split()[1]) > 1
    # The camera's placeholder became a chart per numeric field as its first objects came in.
    page.wait_for_function("() => document.querySelectorAll(\"figure[data-sensor='cam'] canvas\").length === 2", timeout=10_000)
    cam = page.locator("figure[data-sensor='cam']").all()
    assert [f.get_attribute("data-field") for f in cam] == ["brightness", "exposure"]
    # The 95 N reading opened results while the page watched: counted in the header as they came.
    page.wait_for_function("() => Number(document.getElementById('review-alerts').textContent) > 0", timeout=10_000)
    summary = server.stop(session_id)
    page.wait_for_function("() => document.querySelector('#review-verdict .badge.fail') !== null", timeout=15_000)
    assert page.locator("#review-status").inner_text() == "completed"
    assert page.locator("#review-alerts").inner_text() == f"{summary['validation_alerts']:,}"
    assert page.locator("#review-readings").inner_text() == "55"
