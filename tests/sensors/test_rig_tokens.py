"""Rig tokens (sensors.models.RigToken): a rig's key ingests into its own rig's sessions, nothing else."""

import hashlib
import io
import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from sensors.models import RigToken
from sessions.models import RecordingSession, ValidationResult
from tests.conftest import T0, auth, bench_create, reading_count, readings
from tests.sensors.test_admin import admin_client  # noqa: F401 (a fixture: a user of the admin role, logged in)

pytestmark = pytest.mark.django_db

KEY = re.compile(r"rig_[0-9a-f]{40}")
TOKENS = "/admin/sensors/rigtoken/"


def rig_client(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


def readings_path(session_id: int) -> str:
    return f"/api/v1/sessions/{session_id}/readings/"


@pytest.fixture
def sessions(bench, start):
    """Recording sessions of two external rigs, `bench` (A) and `other` (B): {rig name: session id}."""
    bench_create("other")
    return {"bench": start("bench")["session_id"], "other": start("other")["session_id"]}


@pytest.fixture
def bench_key(bench) -> str:
    """The key of a token of rig `bench`, made by the management command."""
    out = io.StringIO()
    call_command("create_rig_token", "bench", "--name", "plc-1", stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_a_rigs_token_ingests_into_its_own_rigs_session(bench_key, sessions):
    batch = readings("fz", [10.0, 11.5, 12.0]) + readings("temp", [21.0, 21.5], t0=T0 + 0.05)

    response = rig_client(bench_key).post(readings_path(sessions["bench"]), batch, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["accepted"] == 5
    assert reading_count(sessions["bench"]) == 5


def test_a_rigs_token_reads_its_own_rigs_readings_back(bench_key, sessions):
    api = rig_client(bench_key)
    api.post(readings_path(sessions["bench"]), readings("fz", [1.0, 2.0]), format="json")

    got = api.get(readings_path(sessions["bench"]))

    assert got.status_code == 200
    assert [(r["sensor"], r["value"]) for r in got.json()] == [("fz", 1.0), ("fz", 2.0)]


def test_a_rigs_token_gets_403_naming_both_rigs_on_another_rigs_session_and_nothing_is_stored(bench_key, sessions):
    api = rig_client(bench_key)

    posted = api.post(readings_path(sessions["other"]), readings("fz", [10.0, 11.0]), format="json")
    read = api.get(readings_path(sessions["other"]))

    assert posted.status_code == 403
    assert set(posted.json()) == {"detail"}
    assert "'bench'" in posted.json()["detail"] and "'other'" in posted.json()["detail"]
    assert read.status_code == 403
    assert reading_count(sessions["other"]) == 0


def test_an_unknown_session_is_still_a_404_for_a_rig_token(bench_key, sessions):
    response = rig_client(bench_key).post(readings_path(999_999), readings("fz", [1.0]), format="json")

    assert response.status_code == 404


@pytest.fixture
def open_result(staff_client, ingest, sessions) -> int:
    """A validation result on the bench's session (its force above the 80 N threshold)."""
    assert ingest(sessions["bench"], readings("fz", [95.0, 96.0])).status_code == 201
    return ValidationResult.objects.get(session_id=sessions["bench"], status="error").pk


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/sessions/start", {"rig": "bench"}),
        ("post", "/api/v1/sessions/stop", {"session_id": "BENCH"}),
        ("post", "/api/v1/sessions/reset", {"rig": "bench"}),
        ("post", "/api/v1/results/RESULT/acknowledge/", {"comment": "seen"}),
        ("post", "/api/v1/rules/", {"code": "too_hot", "sensor_type": "temperature", "error_high": 90}),
        ("delete", "/api/v1/sessions/BENCH/", None),
        ("get", "/api/v1/sessions/", None),
        ("get", "/api/v1/results/", None),
        ("get", "/api/v1/rigs/", None),
    ],
)
def test_a_rigs_token_may_do_nothing_else_with_403_naming_its_rig(bench_key, sessions, open_result, method, path, body):
    path = path.replace("BENCH", str(sessions["bench"])).replace("RESULT", str(open_result))
    if body and body.get("session_id") == "BENCH":
        body = {"session_id": sessions["bench"]}

    response = getattr(rig_client(bench_key), method)(path, body, format="json")

    assert response.status_code == 403, response.content
    assert "rig 'bench'" in response.json()["detail"]
    session = RecordingSession.objects.get(pk=sessions["bench"])
    assert session.status == RecordingSession.Status.RECORDING
    assert ValidationResult.objects.get(pk=open_result).acknowledged_at is None
    assert RecordingSession.objects.filter(rig__name="bench").count() == 1
    assert reading_count(sessions["bench"]) == 2


def test_a_revoked_token_gets_401_and_stores_nothing(bench_key, sessions):
    RigToken.objects.filter(digest=RigToken.digest_of(bench_key)).update(revoked_at="2026-01-02T03:04:05Z")

    response = rig_client(bench_key).post(readings_path(sessions["bench"]), readings("fz", [1.0]), format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "revoked" in response.json()["detail"]
    assert reading_count(sessions["bench"]) == 0


def test_an_unknown_rig_key_gets_401(sessions):
    unknown = rig_client("rig_" + "0" * 40)

    response = unknown.post(readings_path(sessions["bench"]), readings("fz", [1.0]), format="json")

    assert response.status_code == 401
    assert "rig token" in response.json()["detail"]
    assert reading_count(sessions["bench"]) == 0


def test_user_tokens_and_anonymous_requests_answer_as_before(bench_key, staff_client, plain_client, anon_client,
                                                             sessions):
    assert staff_client.post(readings_path(sessions["other"]), readings("fz", [1.0]), format="json").status_code == 201
    assert plain_client.get("/api/v1/sessions/").status_code == 200
    assert rig_client("0" * 40).get("/api/v1/sessions/").status_code == 403  # DRF's "Invalid token."
    assert anon_client.get("/api/v1/sessions/").status_code == 403
    assert reading_count(sessions["other"]) == 1


def test_the_key_is_stored_only_as_its_sha256_and_use_is_recorded(bench_key, sessions):
    assert KEY.fullmatch(bench_key)
    token = RigToken.objects.get()
    assert token.digest == hashlib.sha256(bench_key.encode()).hexdigest()
    assert bench_key not in {token.digest, token.hint, token.name}
    assert (token.rig.name, token.name, token.hint, token.last_used_at) == ("bench", "plc-1", bench_key[:8], None)

    rig_client(bench_key).post(readings_path(sessions["bench"]), readings("fz", [1.0]), format="json")

    token.refresh_from_db()
    assert token.last_used_at is not None


def test_each_command_run_prints_a_new_key(bench):
    keys = set()
    for _ in range(2):
        out = io.StringIO()
        call_command("create_rig_token", "bench", stdout=out, stderr=io.StringIO())
        keys.add(out.getvalue().strip())
    assert len(keys) == 2 and all(KEY.fullmatch(key) for key in keys)
    assert RigToken.objects.filter(rig=bench).count() == 2


def test_the_command_names_the_rigs_when_the_rig_is_unknown(bench):
    with pytest.raises(CommandError, match=r"No rig named 'nope' \(rigs: bench, sim\)"):
        call_command("create_rig_token", "nope")
    assert not RigToken.objects.exists()


def test_the_admin_shows_a_new_tokens_key_once_and_revokes_it(admin_client, bench, sessions):
    made = admin_client.post(f"{TOKENS}add/", {"rig": bench.pk, "name": "line-3 PLC"}, follow=True)
    keys = KEY.findall(made.content.decode())
    assert made.status_code == 200 and len(set(keys)) == 1
    key = keys[0]
    api = rig_client(key)
    assert api.post(readings_path(sessions["bench"]), readings("fz", [1.0]), format="json").status_code == 201

    listing = admin_client.get(TOKENS)
    assert listing.status_code == 200
    assert "line-3 PLC" in listing.content.decode() and key not in listing.content.decode()
    token = RigToken.objects.get()
    page = admin_client.get(f"{TOKENS}{token.pk}/change/")
    assert page.status_code == 200 and key not in page.content.decode()

    revoked = admin_client.post(TOKENS, {"action": "revoke", "_selected_action": [token.pk]}, follow=True)
    assert "1 token(s) revoked." in revoked.content.decode()
    assert api.post(readings_path(sessions["bench"]), readings("fz", [2.0]), format="json").status_code == 401
    assert reading_count(sessions["bench"]) == 1


def test_an_operator_sees_the_tokens_in_the_admin_but_cannot_make_one(django_user_model, bench_key):
    user = django_user_model.objects.create_user("op", password="secret-pass-1", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(user)

    listing = client.get(TOKENS)

    assert listing.status_code == 200 and bench_key[:8] in listing.content.decode()
    assert bench_key not in listing.content.decode()
    assert client.get(f"{TOKENS}add/").status_code == 403


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("live_layer")
async def test_a_rig_token_never_opens_the_live_feed_even_a_public_one(ws, settings):
    settings.ROBOTEST_PUBLIC_READ = True
    key = await sync_to_async(lambda: RigToken.issue(rig=bench_create(), name="plc")[1])()

    client = await ws(headers=auth(key), established=False)

    error = await client.frame()
    assert (error["type"], error["code"]) == ("error", 4403) and "rig token" in error["message"]
    assert await client.next() == {"type": "websocket.close", "code": 4403}
