"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against `serve`."""

import pytest

from tests.e2e.harness import (
    LOCAL,
    PYTHON,
    Api,
    SqliteDatabase,
    create_token,
    free_port,
    process_env,
    run_manage,
    wait_healthy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "dashboard-e2e-password"


@pytest.fixture
def server(tmp_path, procs):
    database = SqliteDatabase(tmp_path / "db.sqlite3")
    env = process_env(settings=LOCAL, database_url=database.url, FORCE_SENSOR_HZ="50")
    run_manage(["migrate", "--noinput", "-v", "0"], env=env)
    token = create_token(env, username="viewer")
    run_manage(
        ["shell", "-c", f"from django.contrib.auth.models import User; u = User.objects.get(username='viewer'); "
                        f"u.set_password({PASSWORD!r}); u.save()"],
        env=env,
    )
    port = free_port()
    proc = procs.start("serve", [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env)
    api = Api(f"http://127.0.0.1:{port}", token)
    wait_healthy(api, proc)
    return api


def test_a_logged_in_engineer_starts_watches_and_stops_a_session_in_the_dashboard(browser, server):
    page = browser.new_page()
    page.goto(f"{server.base_url}/login/?next=/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.base_url}/")
    page.wait_for_function("document.getElementById('connection').textContent === 'live'", timeout=10_000)

    page.click("#start")
    page.wait_for_function(
        "document.getElementById('session').textContent.startsWith('recording')", timeout=10_000
    )
    # Live readings draw one chart per sensor, and the seed's force spikes show up as alerts.
    page.wait_for_function("document.querySelectorAll('.chart').length === 3", timeout=10_000)
    page.wait_for_function("document.querySelectorAll('#alerts tr').length > 0", timeout=15_000)
    assert set(page.eval_on_selector_all(".chart", "els => els.map(e => e.dataset.sensor)")) == {"force", "motor", "camera"}

    page.click("#stop")
    page.wait_for_function("document.getElementById('session').textContent.includes('completed')", timeout=15_000)
    sessions = server.get("/api/v1/sessions/").json()["results"]
    assert sessions[0]["status"] == "completed" and sessions[0]["reading_count"] > 0


def test_the_dashboard_asks_an_anonymous_visitor_to_log_in(browser, server):
    page = browser.new_page()
    page.goto(f"{server.base_url}/")
    page.wait_for_function("document.getElementById('connection').textContent === 'log in to watch'", timeout=10_000)
    assert page.locator("#start").count() == 0
