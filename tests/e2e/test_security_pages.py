"""Security as a browser meets it, against `serve`: the content security policy, the lock-out page, the API docs.

A CSP violation is a console error in Chromium, so `page_errors` proves each page keeps to the policy.
"""

import os

import pytest
import requests

from tests.e2e import harness
from tests.e2e.browser import new_page, serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "security-pages-e2e-password"
SHOTS = os.environ.get("ROBOTEST_SHOTS")


@pytest.fixture(scope="module")
def site(tmp_path_factory, module_procs):
    return harness.serve_embedded(module_procs, tmp_path_factory.mktemp("security"), users={"olga": "operator"},
                                  password=PASSWORD, ROBOTEST_LOGIN_FAILURES="2", ROBOTEST_LOGIN_COOLOFF="10m")


def policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in header.split(";")) if part}


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"security-{name}.png"), full_page=True)


def test_the_pages_send_the_policy(site):
    for path in ["/login/", "/admin/login/"]:
        directives = policy(requests.get(site.base_url + path, timeout=10))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"].startswith("'self' 'sha256-")  # the admin's one <style> block
        assert directives["img-src"] == "'self' data:"
        assert directives["connect-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"


def test_a_locked_out_user_sees_the_locked_page_even_with_the_right_password(browser, page_errors, site):
    page_errors.expected_statuses.add(429)
    page = new_page(browser, page_errors, viewport={"width": 390, "height": 844})
    for password in ["wrong-1", "wrong-2", PASSWORD]:  # the second failure locks; then the right one
        page.goto(f"{site.base_url}/login/")
        page.fill("#id_username", "olga")
        page.fill("#id_password", password)
        page.click("main button[type=submit]")
        page.wait_for_load_state()
        if password == "wrong-1":
            assert "Please enter a correct username and password" in page.text_content("main")
    assert page.text_content("h1") == "Login locked"
    text = page.text_content("main")
    assert "after 2 failed attempts" in text and "0:10:00" in text
    assert page.get_by_role("link", name="try again").get_attribute("href") == "/login/"
    assert not serious_violations(page)
    shot(page, "locked-out")
    # Chromium logs each 429 document as a console error; the lock-out's two are the expected ones.
    locked = [line for line in page_errors.console if "status of 429" in line]
    assert len(locked) == 2
    page_errors.console[:] = [line for line in page_errors.console if line not in locked]


def test_the_api_docs_load_under_the_policy(browser, page_errors, site):
    directives = policy(requests.get(site.base_url + "/api/docs/", timeout=10))
    assert directives["script-src"] == "'self'"  # the docs' own script comes from ?script, not inline
    page = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    page.goto(f"{site.base_url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "RoboTest API" in page.text_content(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-tag-section")
    shot(page, "api-docs")
