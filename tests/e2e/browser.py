"""Browser-test helpers: Debian's Chromium under Playwright, console and HTTP errors, axe-core.

A test module imports the fixtures it uses (`from tests.e2e.browser import browser, watched_page`)
and marks itself `pytest.mark.browser` (with `e2e`: it drives a real server). Under CI=true a
missing Chromium fails the test instead of skipping it: a skipped browser suite hides a broken page.
"""

import os
from dataclasses import dataclass, field

import pytest

CHROMIUM = "/usr/bin/chromium"
# The closed network refuses Chromium's background connections; these flags stop it trying.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SERIOUS = ("serious", "critical")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: under CI a browser test must run (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@dataclass
class PageErrors:
    """What a page said went wrong: console errors, uncaught exceptions, 4xx/5xx responses."""

    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def watch(self, page) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.console.append(f"{page.url}: {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"{page.url}: uncaught {exc}"))
        page.on("response", self._response)

    def _response(self, response) -> None:
        if response.status >= 400 and response.status not in self.expected_statuses:
            self.failed.append(f"{response.status} {response.request.method} {response.url}")

    def assert_clean(self) -> None:
        assert not self.console, "console errors:\n" + "\n".join(self.console)
        assert not self.failed, "failed requests:\n" + "\n".join(self.failed)


@pytest.fixture
def page_errors():
    errors = PageErrors()
    yield errors
    errors.assert_clean()


def new_page(browser, errors: PageErrors, **context_options):
    """A page in a fresh context (own cookies), watched for errors."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    errors.watch(page)
    return page


def log_in(page, base_url: str, username: str, password: str, *, next_path: str = "/") -> None:
    """Through the site's own login page."""
    page.goto(f"{base_url}/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")


def serious_violations(page, *, preload: bool = True) -> list[str]:
    """axe-core's serious and critical violations of the page as it is now, one line each.

    `preload=False` for Django admin pages: axe's CSS preload fetches the `@import url('widgets.css')` of
    Django's forms.css against the page's address (CSSImportRule.href is the text as written), a 404 of
    its own making; the preload serves one rule, css-orientation-lock.
    """
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"resultTypes": ["violations"], "preload": preload})
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in SERIOUS
    ]
