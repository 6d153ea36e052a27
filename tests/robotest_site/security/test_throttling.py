"""API rate limits: ingest per user, anonymous use and failed credentials per address (429 + Retry-After).

Each test sets low rates and comes from its own address and users, so the counts (kept in Redis,
shared by every process) start at zero.
"""

import io
import secrets

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from rest_framework.test import APIClient

from sessions.models import Reading
from tests.conftest import readings, user_with_token

pytestmark = pytest.mark.django_db

GENEROUS = "100000/min"


@pytest.fixture
def rates(settings):
    def set_rates(*, ingest=GENEROUS, anon=GENEROUS, auth_failure=GENEROUS):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"ingest": ingest, "anon": anon, "auth_failure": auth_failure},
        }

    return set_rates


def client(token: str | None = None) -> APIClient:
    """A client from an address no other test uses."""
    api = APIClient(REMOTE_ADDR=f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}")
    if token:
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


def assert_throttled(response, limit_text: str) -> int:
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/json"
    wait = int(response["Retry-After"])
    assert 1 <= wait <= 60
    detail = response.json()["detail"]
    assert detail.startswith(limit_text), detail
    assert f"Expected available in {wait} second" in detail
    return wait


def test_without_redis_the_counts_are_per_process_and_with_it_shared():
    # The suite runs with REDIS_URL: every daphne process shares the throttles' counts.
    assert django_settings.CACHES["default"]["BACKEND"] == "robotest_site.cache.SharedPoolRedisCache"
    assert django_settings.CACHES["default"]["LOCATION"] == django_settings.REDIS_URL


def test_ingest_over_the_rate_is_a_429_naming_the_limit_and_stores_nothing(rates, bench_session):
    rates(ingest="3/min")
    _, key = user_with_token("rig-writer")
    rig = client(key)
    url = f"/api/v1/sessions/{bench_session}/readings/"
    for batch in range(3):
        response = rig.post(url, readings("fz", [1.0, 2.0], t0=1_700_000_000 + batch), format="json")
        assert response.status_code == 201, response.content
    assert_throttled(rig.post(url, readings("fz", [3.0], t0=1_700_000_100), format="json"),
                     "too many ingest requests per user or rig: the limit is 3/min.")
    assert Reading.objects.filter(session_id=bench_session).count() == 6
    # Reading back is not ingest; another user's rig has its own count.
    assert rig.get(url).status_code == 200
    _, other = user_with_token("other-rig")
    assert client(other).post(url, readings("fz", [4.0], t0=1_700_000_200), format="json").status_code == 201


def test_a_rig_token_s_ingest_is_counted_per_rig_not_as_anonymous_use(rates, bench_session):
    rates(ingest="2/min", anon="1/min")
    out = io.StringIO()
    call_command("create_rig_token", "bench", "--name", "plc-1", stdout=out, stderr=io.StringIO())
    rig = client(out.getvalue().strip())
    url = f"/api/v1/sessions/{bench_session}/readings/"
    statuses = [rig.post(url, readings("fz", [1.0], t0=1_700_000_000 + i), format="json").status_code for i in range(3)]
    assert statuses == [201, 201, 429]
    assert Reading.objects.filter(session_id=bench_session).count() == 2


def test_failed_credentials_from_one_address_are_refused_past_the_rate_even_the_right_token(rates, staff_token):
    rates(auth_failure="3/min")
    attacker = client()
    for _ in range(3):
        attacker.credentials(HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
        assert attacker.get("/api/v1/sessions/").status_code in (401, 403)
    attacker.credentials(HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
    assert_throttled(attacker.get("/api/v1/sessions/"),
                     "too many requests with missing or wrong credentials from this address: the limit is 3/min.")
    # A guess that hits cannot be told from a miss; the same token from elsewhere works.
    attacker.credentials(HTTP_AUTHORIZATION=f"Token {staff_token}")
    assert attacker.get("/api/v1/sessions/").status_code == 429
    assert client(staff_token).get("/api/v1/sessions/").status_code == 200


def test_requests_without_credentials_count_as_failures(rates):
    rates(auth_failure="2/min")
    anonymous = client()
    statuses = [anonymous.post("/api/v1/sessions/start", {}, format="json").status_code for _ in range(3)]
    assert statuses[:2] in ([401, 401], [403, 403]) and statuses[2] == 429


def test_anonymous_use_of_the_public_reads_is_limited_per_address(rates, settings):
    settings.ROBOTEST_PUBLIC_READ = True
    rates(anon="2/min")
    anonymous = client()
    assert anonymous.get("/api/v1/sessions/").status_code == 200
    assert anonymous.get("/api/v1/sessions/").status_code == 200
    assert_throttled(anonymous.get("/api/v1/sessions/"),
                     "too many anonymous API requests from this address: the limit is 2/min.")
    assert client().get("/api/v1/sessions/").status_code == 200
