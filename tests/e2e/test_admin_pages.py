"""The admin site for review in a real browser, against `serve`: log in as the admin role, look, acknowledge."""

import os
import time

import pytest

from tests.e2e import harness
from tests.e2e.browser import new_page, serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "admin-pages-e2e-password"
SHOTS = os.environ.get("ROBOTEST_SHOTS")  # a directory: screenshots of each page, to look at


@pytest.fixture
def server(tmp_path, procs):
    # A member of the admin group, not a superuser: the group alone must open the admin site.
    api = harness.serve_embedded(procs, tmp_path, users={"reviewer": "admin"}, password=PASSWORD)
    sensors = [{"name": "fz", "sensor_type": "force", "unit": "N"}]
    assert api.post("/api/v1/rigs/", {"name": "bench", "source": "external", "sensors": sensors}).status_code == 201
    assert api.post("/api/v1/rules/", {"code": "grip", "sensor_type": "force", "warning_high": 50.0}).status_code == 201
    session = api.start(rig="bench", name="admin review run")["session_id"]
    now = time.time()
    batch = [{"sensor": "fz", "timestamp": now + i * 0.1, "value": v} for i, v in enumerate([10.0, 95.0, 96.0, 10.0])]
    assert api.post(f"/api/v1/sessions/{session}/readings/", batch).status_code == 201
    api.stop(session)
    api.session_id = session
    return api


def look(page, name: str) -> None:
    """No serious accessibility violation on the page; a screenshot when ROBOTEST_SHOTS names a directory."""
    violations = serious_violations(page, preload=False)
    assert not violations, f"{page.url}:\n" + "\n".join(violations)
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"admin-{name}.png"), full_page=True)


def test_an_admin_reviews_sessions_rigs_rules_and_acknowledges_results(browser, page_errors, server):
    base = server.base_url
    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "reviewer")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert "RoboTest administration" in page.text_content("#site-name")
    look(page, "index")

    page.goto(f"{base}/admin/recording/recordingsession/")
    row = page.locator("#result_list tbody tr", has_text="admin review run")
    assert row.locator("td.field-rig").text_content() == "bench"
    assert row.locator("td.field-verdict").text_content() == "Fail"
    assert row.locator("td.field-readings").text_content() == "4"
    assert row.locator(f'a[href="/sessions/{server.session_id}/"]').count() == 1
    look(page, "sessions")

    page.goto(f"{base}/admin/recording/recordingsession/{server.session_id}/change/")
    assert page.locator(".inline-group", has_text="force_threshold").count() == 1
    assert page.locator(f'a[href="/api/v1/sessions/{server.session_id}/export/mcap"]').count() == 1
    look(page, "session")

    for path, text, name in [("sensors/rig/", "bench", "rigs"), ("sensors/validationrule/", "grip", "rules")]:
        page.goto(f"{base}/admin/{path}")
        assert page.locator("#result_list", has_text=text).count() == 1
        look(page, name)

    results = server.get("/api/v1/results/", params={"session": server.session_id}).json()["results"]
    assert len(results) >= 2 and not any(r["acknowledged"] for r in results)
    page.goto(f"{base}/admin/recording/validationresult/")
    assert page.locator("#result_list tbody tr").count() == len(results)
    look(page, "results")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "acknowledge")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist .success")
    assert f"Acknowledged {len(results)} results." in page.text_content(".messagelist")
    assert page.locator("td.field-acknowledged", has_text="by reviewer").count() == len(results)
    look(page, "results-acknowledged")

    results = server.get("/api/v1/results/", params={"session": server.session_id}).json()["results"]
    assert {(r["acknowledged"], r["acknowledged_by"]) for r in results} == {(True, "reviewer")}
