"""Schemathesis over /api/schema/: every operation, fuzzed in-process, answers within its schema.

Each operation of the schema is one test. Schemathesis generates requests from the schema (valid
ones and invalid ones), sends them with a staff token to the WSGI application in this process,
and checks each answer: no 5xx, a documented status code, a documented content type, a body and
headers that match the schema. Writes are fuzzed too (start, stop, reset, delete, ingest): they
only touch this test's database. Each request is also sent once more with the path's session id
or rig name replaced by one that exists, so the answers that carry data are checked, not only 404s.

Bounded and reproducible for CI: a fixed seed, deterministic generation, a few examples per
operation. For a deeper run (minutes), raise the examples and pick a seed:

    ROBOTEST_FUZZ_EXAMPLES=500 ROBOTEST_FUZZ_SEED=7 python -m pytest tests/robotest_site/test_urls.py -q

or run the CLI against a live server: `schemathesis run http://127.0.0.1:8000/api/schema/
-H "Authorization: Token <key>" --max-examples 500`.
"""

import os

import pytest
import schemathesis
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
CHECKS = [
    not_a_server_error,
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


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=EXAMPLES, derandomize=True)
def test_api_answers_within_its_schema(case, fuzz_data):
    case.call_and_validate(headers=fuzz_data["headers"], checks=CHECKS)
    if _with_existing(case, fuzz_data):
        case.call_and_validate(headers=fuzz_data["headers"], checks=CHECKS)
