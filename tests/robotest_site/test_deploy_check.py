"""The production settings' security: `manage.py check --deploy` and what a client gets.

Each test runs a child process on `robotest_site.settings.production` with an environment of its
own (every variable the settings read is set; empty means unset), so neither pytest's settings nor
a developer's `.env` leak in. `check --deploy` needs no database: DATABASE_URL names one that
does not exist.
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "robotest_site" / "settings"
SETTINGS_VARIABLES = sorted(
    {
        name
        for module in ("base.py", "production.py")
        for name in re.findall(r'config\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', (SETTINGS / module).read_text())
    }
)
# What ROBOTEST_HTTPS=false gives up, each a warning of `check --deploy`: HSTS, the redirect,
# the session cookie's and the CSRF cookie's Secure flag. Left unsilenced on purpose.
PLAIN_HTTP_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}
YEAR = 31_536_000


def production_env(**overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_", "PYTEST_"))}
    env.update({name: "" for name in SETTINGS_VARIABLES})
    env.update(
        DJANGO_SETTINGS_MODULE="robotest_site.settings.production",
        DATABASE_URL="postgres://robotest@127.0.0.1:5432/robotest_no_such_database",
        REDIS_URL="redis://127.0.0.1:6379/0",
        # What `secrets.token_urlsafe(50)` makes: the kind of key .env.example asks for.
        SECRET_KEY=secrets.token_urlsafe(50),
    )
    env.update(overrides)
    return env


def manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=production_env(**overrides), capture_output=True, text=True, timeout=60,
    )


def check_deploy(**overrides: str) -> tuple[int, set[str], str]:
    """Runs `check --deploy --fail-level WARNING`: (exit status, the check ids it printed, output)."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", **overrides)
    output = result.stdout + result.stderr
    return result.returncode, set(re.findall(r"\(([a-z_.]+\.[WE]\d+)\)", output)), output


def test_check_deploy_prints_no_warning_with_the_https_defaults():
    status, ids, output = check_deploy()
    assert (status, ids) == (0, set()), output
    assert "System check identified no issues (0 silenced)." in output


def test_check_deploy_with_the_plain_http_switch_gives_exactly_the_expected_warnings():
    status, ids, output = check_deploy(ROBOTEST_HTTPS="false")
    assert status == 1, output
    assert ids == PLAIN_HTTP_WARNINGS, output
    assert "(0 silenced)" in output


def test_plain_http_warnings_do_not_fail_a_check_at_the_default_level():
    result = manage("check", "--deploy", ROBOTEST_HTTPS="false")
    assert result.returncode == 0, result.stderr
    assert set(re.findall(r"\((security\.W\d+)\)", result.stderr)) == PLAIN_HTTP_WARNINGS


def test_hsts_set_to_zero_is_the_only_warning():
    status, ids, output = check_deploy(ROBOTEST_HSTS_SECONDS="0")
    assert (status, ids) == (1, {"security.W004"}), output


def test_a_weak_secret_key_is_still_reported():
    status, ids, output = check_deploy(SECRET_KEY="short")
    assert (status, ids) == (1, {"security.W009"}), output


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"ROBOTEST_HTTPS": "maybe"}, "ROBOTEST_HTTPS must be true or false, got 'maybe'"),
        ({"ROBOTEST_HSTS_SECONDS": "a year"}, "ROBOTEST_HSTS_SECONDS must be a whole number"),
        ({"ROBOTEST_HSTS_SECONDS": "-1"}, "ROBOTEST_HSTS_SECONDS must be at least 0"),
        (
            {"ROBOTEST_HTTPS": "false", "ROBOTEST_HSTS_SECONDS": "300"},
            "ROBOTEST_HSTS_SECONDS=300 needs HTTPS, but ROBOTEST_HTTPS=false",
        ),
    ],
)
def test_a_malformed_or_contradictory_value_stops_start_up_naming_the_variable(overrides, named):
    result = manage("check", **overrides)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {named}" in result.stderr, result.stderr


# A child process answers requests through Django's test client on the production settings. The
# pages' static files are served from the finders here (the image has collected them at build
# time; tests/test_deploy_files.py covers that), nothing else is overridden.
CLIENT_SCRIPT = """
import json, django
django.setup()
from django.test import Client, override_settings

STATIC = {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
          "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
answers = {}
with override_settings(STORAGES=STATIC):
    client = Client()
    for name, path, headers in [
        ("plain", "/login/?next=/sessions/", {}),
        ("proxied", "/login/", {"X-Forwarded-Proto": "https"}),
        ("api", "/api/v1/sessions/", {}),
        ("health", "/health", {}),
    ]:
        response = client.get(path, headers=headers)
        answers[name] = {
            "status": response.status_code,
            "location": response.headers.get("Location"),
            "hsts": response.headers.get("Strict-Transport-Security"),
            "cookies": {key: bool(morsel["secure"]) for key, morsel in response.cookies.items()},
        }
print("ANSWERS=" + json.dumps(answers))
"""


def answers(**overrides: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT],
        cwd=ROOT, env=production_env(**overrides), capture_output=True, text=True, timeout=60,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("ANSWERS=")]
    assert result.returncode == 0 and lines, result.stderr
    return json.loads(lines[-1][len("ANSWERS="):])


def test_by_default_plain_http_is_redirected_and_https_gets_hsts_and_secure_cookies():
    got = answers()

    assert got["plain"]["status"] == 301
    assert got["plain"]["location"] == "https://testserver/login/?next=/sessions/"
    assert got["api"]["status"] == 301 and got["api"]["location"] == "https://testserver/api/v1/sessions/"
    assert got["proxied"]["status"] == 200
    assert got["proxied"]["hsts"] == f"max-age={YEAR}; includeSubDomains; preload"
    assert got["proxied"]["cookies"] == {"csrftoken": True}
    # Probes ask daphne over plain HTTP: answered (503 here: no database), not redirected.
    assert got["health"]["status"] in (200, 503) and got["health"]["location"] is None


def test_a_shorter_hsts_reaches_the_header():
    assert answers(ROBOTEST_HSTS_SECONDS="300")["proxied"]["hsts"] == "max-age=300; includeSubDomains; preload"


def test_the_plain_http_switch_serves_http_with_plain_cookies_and_no_hsts():
    got = answers(ROBOTEST_HTTPS="false")

    assert got["plain"]["status"] == 200 and got["plain"]["location"] is None
    assert got["plain"]["hsts"] is None
    assert got["plain"]["cookies"] == {"csrftoken": False}
    assert got["api"]["status"] in (401, 403)
