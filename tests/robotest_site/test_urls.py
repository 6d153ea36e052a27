"""Schemathesis over /api/schema/: every operation, fuzzed in-process, answers within its schema.

Each operation of the schema is one test. Schemathesis generates requests from the schema (valid
ones and invalid ones), sends them with a staff token to the WSGI application in this process,
and checks each answer: no 5xx, a documented status code, a documented content type, a body and
headers that match the schema, every 4xx a JSON object whose `detail` is a message, and a 4xx
changed no row of the project's tables. Writes are fuzzed too (start, stop, reset, delete, ingest):
they only touch this test's database. Each request is also sent once more with the path's session id
or rig name replaced by one that exists, so the answers that carry data are checked, not only 404s.
The schema covers every route under /api/ (a test below says so).

Bounded and reproducible for CI: a fixed seed, deterministic generation, a few examples per
operation. For a deeper run (minutes), raise the examples and pick a seed:

    ROBOTEST_FUZZ_EXAMPLES=500 ROBOTEST_FUZZ_SEED=7 python -m pytest tests/robotest_site/test_urls.py -q

or run the CLI against a live server: `schemathesis run http://127.0.0.1:8000/api/schema/
-H "Authorization: Token <key>" --max-examples 500`.
"""

import os
import re

import pytest
import schemathesis
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from robotest_site.wsgi import application
from sensors.models import Rig
from sensors.services import rig_create
from sessions import services
from tests.conftest import BENCH_SENSORS, T0, ft6_value, readings

EXAMPLES = int(os.environ.get("ROBOTEST_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("ROBOTEST_FUZZ_SEED", "20261130"))


@schemathesis.check
def error_shape(ctx, response, case) -> bool | None:
    """Every 4xx is a JSON object with a non-empty `detail` message (docs/errors.md), documented or not."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not (isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"].strip()):
        raise AssertionError(f"a {response.status_code} not in the JSON error shape: {response.text[:200]!r}")
    return True


CHECKS = [
    not_a_server_error,
    error_shape,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # The token goes in every request's headers: no generated Authorization values.
        "generation": {
            "max-examples": EXAMPLES, "deterministic": True, "with-security-parameters": False, "database": "none",
        },
    }
)
schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)

# The data of every test: `sim` (from the migration) with a completed session, `bench` recording
# with readings of each kind of value (number, object), a staff token for every request.
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    # The CSV export streams an async generator (for daphne); WSGI reads it whole, which is fine here.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators"),
]


@pytest.fixture
def fuzz_data(django_user_model, sim_rig):
    user = django_user_model.objects.create_user("fuzzer", password="secret-pass-3", is_staff=True)
    token = Token.objects.create(user=user)
    done = services.session_start(rig=sim_rig, name="done", user=user)
    services.session_stop(session=done)
    bench = rig_create(name="bench", source=Rig.Source.EXTERNAL, description="", sensors=BENCH_SENSORS)
    recording = services.session_start(rig=bench, name="recording", user=None)
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    batch = readings("fz", [10.0, 95.0, 20.0]) + readings("ft6", [ft6_value(i) for i in range(3)], t0=T0 + 1)
    response = api.post(f"/api/v1/sessions/{recording.pk}/readings/", batch, format="json")
    assert response.status_code == 201, response.content
    return {"headers": {"Authorization": f"Token {token.key}"}, "session": recording.pk, "done": done.pk}


def _with_existing(case, data) -> bool:
    """Point the case's path at data that exists; False when its path names none."""
    path = dict(case.path_parameters or {})
    if "id" in path:
        path["id"] = data["done"] if case.method == "DELETE" else data["session"]
    elif "session_id" in path:
        path["session_id"] = data["session"]
    elif "name" in path:
        path["name"] = "bench"
    else:
        return False
    case.path_parameters = path
    return True


# Every table a request may write: a refused request (4xx) leaves all of them as they were.
WRITTEN = [("sensors", "Rig"), ("sensors", "Sensor"), ("sensors", "ValidationRule"), ("sensors", "RigToken"),
           ("recording", "RecordingSession"), ("recording", "Reading"), ("recording", "ValidationResult"),
           ("recording", "IngestKey"), ("recording", "ReadingRollup")]


def _rows() -> dict[str, list[tuple]]:
    return {name: list(apps.get_model(app, name).objects.order_by("pk").values_list()) for app, name in WRITTEN}


def _call(case, data) -> None:
    before = _rows()
    response = case.call_and_validate(headers=data["headers"], checks=CHECKS)
    if 400 <= response.status_code < 500:
        after = _rows()
        changed = sorted(name for name in before if before[name] != after[name])
        assert not changed, (
            f"{case.method} {case.formatted_path} answered {response.status_code} ({response.text[:200]}) "
            f"but changed {changed}"
        )


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=EXAMPLES, derandomize=True)
def test_api_answers_within_its_schema(case, fuzz_data):
    _call(case, fuzz_data)
    if _with_existing(case, fuzz_data):
        _call(case, fuzz_data)


def _routes(patterns, prefix: str = "") -> list[str]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found.extend(_routes(pattern.url_patterns, prefix + str(pattern.pattern)))
        elif isinstance(pattern, URLPattern):
            found.append(prefix + str(pattern.pattern))
    return found


def test_the_schema_covers_every_api_route():
    # The fuzzing above reaches only what the schema names: a route missing there goes unfuzzed.
    # Left out: DRF's `.json`-style format suffixes of each route, and the router's root (a list of links).
    documented = {re.sub(r"\{[^}]+\}", "{}", path) for path in schema.raw_schema["paths"]}
    routes = {
        "/" + re.sub(r"<[^>]+>|\(\?P<[^>]+>[^)]+\)", "{}", route).replace("^", "").replace("$", "")
        for route in _routes(get_resolver().url_patterns)
        if "format" not in route
    }
    api = {route for route in routes if route.startswith("/api/v1/") and route != "/api/v1/"}
    assert api and not api - documented, sorted(api - documented)
