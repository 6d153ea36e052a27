"""The content security policy (django-csp) on the pages; the API docs' one exception.

The browser tests (tests/e2e/test_dashboard.py, test_review.py, test_admin_pages.py,
test_security_pages.py) prove the pages keep to it: a violation is a console error there.
"""

import base64
import hashlib

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, str]:
    parts = (part.strip() for part in response["Content-Security-Policy"].split(";"))
    return {name: value for name, _, value in (part.partition(" ") for part in parts if part)}


def admin_style_hash() -> str:
    """The CSP hash of templates/admin/base_site.html's <style> block, computed here independently."""
    text = (settings.BASE_DIR / "templates" / "admin" / "base_site.html").read_text()
    block = text[text.index("<style>") + len("<style>"):text.index("</style>")]
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"


def test_a_page_allows_only_this_site_and_no_framing():
    assert directives(Client().get("/login/")) == {
        "default-src": "'self'",
        "script-src": "'self'",
        # The admin's one <style> block, by its hash: no other inline style.
        "style-src": f"'self' {admin_style_hash()}",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }


def test_the_api_docs_load_their_script_from_the_site_and_only_add_inline_styles():
    page = Client().get("/api/docs/")
    policy = directives(page)
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self' 'unsafe-inline'"  # a hash beside it would switch 'unsafe-inline' off
    assert b"<script>" not in page.content
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content
