"""Ingest retried after a timeout: an `Idempotency-Key` per batch stores it once (issue 11, docs/errors.md)."""

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import psycopg
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from sessions.live.events import LIVE_GROUP
from sessions.models import IngestKey, Reading, ReadingRollup, RecordingSession
from tests.conftest import T0, bench_create, readings, stored
from tests.e2e.harness import process_env

pytestmark = pytest.mark.django_db

BATCH = readings("fz", [10.0, 95.0, 12.5]) + readings("temp", [21.0, 22.0], t0=T0 + 0.05)
BODY = json.dumps(BATCH)


def post(client, session_id: int, body: str = BODY, key: str | None = "batch-0001"):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(f"/api/v1/sessions/{session_id}/readings/", data=body, content_type="application/json",
                       **headers)


def rows(session_id: int) -> int:
    """The session's readings as counted in the table, not from the session's counter."""
    return Reading.objects.filter(session_id=session_id).count()


def test_a_retry_with_the_same_key_and_body_gets_the_first_answer_and_stores_nothing(staff_client, bench_session):
    first = post(staff_client, bench_session)
    retry = post(staff_client, bench_session)

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first.headers
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert first.json()["accepted"] == len(BATCH) == rows(bench_session)
    assert RecordingSession.objects.get(pk=bench_session).reading_count == len(BATCH)
    # The batch's alert (fz 95 > 80) is in the replayed answer too, and stored once.
    assert [r["status"] for r in retry.json()["validation"]] == ["error"]
    assert RecordingSession.objects.get(pk=bench_session).alert_count == 1


def test_a_retry_after_the_session_stopped_still_gets_the_first_answer(staff_client, bench_session):
    first = post(staff_client, bench_session)
    assert staff_client.post("/api/v1/sessions/stop", {"session_id": bench_session}, format="json").status_code == 200

    retry = post(staff_client, bench_session)

    assert (retry.status_code, retry.json()) == (201, first.json())
    assert rows(bench_session) == len(BATCH)


def test_the_same_key_with_another_body_is_a_422_naming_the_key_and_stores_nothing(staff_client, bench_session):
    post(staff_client, bench_session)

    other = post(staff_client, bench_session, body=json.dumps(readings("fz", [1.0])))

    assert other.status_code == 422, other.content
    assert "Idempotency-Key 'batch-0001'" in other.json()["detail"]
    assert rows(bench_session) == len(BATCH)


def test_the_same_body_under_a_new_key_is_a_new_batch(staff_client, bench_session):
    first = post(staff_client, bench_session, key="a").json()
    second = post(staff_client, bench_session, key="b").json()

    assert (first["first_seq"], second["first_seq"]) == (1, len(BATCH) + 1)
    assert rows(bench_session) == 2 * len(BATCH)


def test_without_a_key_every_request_stores_its_batch(staff_client, bench_session):
    post(staff_client, bench_session, key=None)
    post(staff_client, bench_session, key=None)

    assert rows(bench_session) == 2 * len(BATCH)
    assert not IngestKey.objects.exists()


def test_keys_are_per_session(staff_client, bench_session, start):
    bench_create("bench-2")
    other_session = start("bench-2")["session_id"]

    here = post(staff_client, bench_session)
    there = post(staff_client, other_session)

    assert here.status_code == there.status_code == 201
    assert "Idempotent-Replayed" not in there.headers
    assert (rows(bench_session), rows(other_session)) == (len(BATCH), len(BATCH))


@pytest.mark.parametrize(
    ("key", "named"),
    [("", "empty"), ("k" * 201, "got 201"), ("caf\u00e9", "at position 3"), ("tab\there", "at position 3")],
)
def test_a_malformed_key_is_a_400_naming_the_header_and_stores_nothing(staff_client, bench_session, key, named):
    response = post(staff_client, bench_session, key=key)

    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("Idempotency-Key: must be 1 to 200 printable ASCII characters")
    assert named in response.json()["detail"]
    assert rows(bench_session) == 0
    assert not IngestKey.objects.exists()


def test_a_key_of_200_printable_characters_is_taken(staff_client, bench_session):
    key = "".join(chr(32 + i % 95) for i in range(200)).strip() + "~" * 2

    assert post(staff_client, bench_session, key=key[:200]).status_code == 201
    assert IngestKey.objects.get().key == key[:200]


def test_a_rejected_batch_keeps_no_key_and_its_corrected_retry_is_stored(staff_client, bench_session):
    bad = post(staff_client, bench_session, body=json.dumps(readings("nope", [1.0])))
    good = post(staff_client, bench_session)

    assert bad.status_code == 400
    assert good.status_code == 201
    assert "Idempotent-Replayed" not in good.headers
    assert rows(bench_session) == len(BATCH)


def test_a_key_answers_for_24_hours_then_a_retry_is_a_new_batch(staff_client, bench_session):
    post(staff_client, bench_session)
    IngestKey.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    assert post(staff_client, bench_session).headers.get("Idempotent-Replayed") == "true"

    IngestKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    late = post(staff_client, bench_session)

    assert late.status_code == 201
    assert "Idempotent-Replayed" not in late.headers
    assert late.json()["first_seq"] == len(BATCH) + 1
    assert rows(bench_session) == 2 * len(BATCH)
    assert IngestKey.objects.get().answer == late.json()


def test_a_keyed_batch_drops_up_to_twenty_expired_keys(staff_client, bench_session):
    old = timezone.now() - timedelta(hours=25)
    IngestKey.objects.bulk_create(
        IngestKey(session_id=bench_session, key=f"old-{i}", digest="0" * 64, status=201, answer={}, created_at=old)
        for i in range(25)
    )

    post(staff_client, bench_session, key="new")

    assert IngestKey.objects.filter(created_at__lt=timezone.now() - timedelta(hours=24)).count() == 5
    assert IngestKey.objects.filter(key="new").exists()


def test_live_clients_see_a_retried_batch_once(staff_client, bench_session):
    layer = get_channel_layer()

    async def listen():
        channel = await layer.new_channel()
        await layer.group_add(LIVE_GROUP, channel)
        return channel

    async def batches(channel, last_seq: int) -> list[list[int]]:
        """The seqs of each of this session's batch events, until one ends at `last_seq`."""
        seen = []
        try:
            async with asyncio.timeout(5):
                while not seen or seen[-1][-1] != last_seq:
                    event = await layer.receive(channel)
                    if event.get("type") == "sensor.batch" and event.get("session_id") == bench_session:
                        seen.append([json.loads(line)["seq"] for line in event["lines"]])
        finally:
            await layer.group_discard(LIVE_GROUP, channel)
        return seen

    channel = async_to_sync(listen)()
    post(staff_client, bench_session)
    post(staff_client, bench_session)
    post(staff_client, bench_session, body=json.dumps(readings("fz", [1.0], t0=T0 + 10)), key=None)

    seen = async_to_sync(batches)(channel, len(BATCH) + 1)
    assert seen == [list(range(1, len(BATCH) + 1)), [len(BATCH) + 1]]


def test_the_api_schema_documents_the_key_the_replay_header_and_the_422(anon_client):
    schema = anon_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    ingest = schema["paths"]["/api/v1/sessions/{id}/readings/"]["post"]

    header = next(p for p in ingest["parameters"] if p["name"] == "Idempotency-Key")
    assert (header["in"], header["schema"]["maxLength"], header.get("required", False)) == ("header", 200, False)
    assert "Idempotent-Replayed" in ingest["responses"]["201"]["headers"]
    assert "Idempotency-Key" in ingest["responses"]["422"]["description"]


def _fail_inserts_into(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION robotest_test_fail() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'the disk is full (test)'; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER robotest_test_fail BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION robotest_test_fail()"
        )


def _stop_failing(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER robotest_test_fail ON {table}")


def test_readings_are_never_stored_without_their_key(staff_client, bench_session):
    table = IngestKey._meta.db_table
    _fail_inserts_into(table)

    with pytest.raises(DatabaseError, match="disk is full"):
        post(staff_client, bench_session)

    assert rows(bench_session) == 0
    assert not ReadingRollup.objects.filter(session_id=bench_session).exists()
    assert RecordingSession.objects.get(pk=bench_session).reading_count == 0
    _stop_failing(table)
    retry = post(staff_client, bench_session)
    assert (retry.status_code, retry.json()["first_seq"]) == (201, 1)
    assert [seq for *_, seq in stored(bench_session)] == list(range(1, len(BATCH) + 1))


def test_a_key_is_never_stored_without_its_readings(staff_client, bench_session):
    table = Reading._meta.db_table
    _fail_inserts_into(table)

    # The readings go by COPY, straight through psycopg.
    with pytest.raises((DatabaseError, psycopg.Error), match="disk is full"):
        post(staff_client, bench_session)

    assert not IngestKey.objects.exists()
    _stop_failing(table)
    retry = post(staff_client, bench_session)
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert rows(bench_session) == len(BATCH)


# Two web processes get the same keyed batch at once (a client retried while the first request
# was still running). Both wait on the session's row lock, held here; released, one stores and
# the other, whose key insert then fails, rolls its copy back and answers with the first answer.
_CLIENT = """
import json, sys
import django
django.setup()
from django.test import Client
path, token, key, body = sys.argv[1:5]
response = Client().post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}",
                         HTTP_IDEMPOTENCY_KEY=key)
print(json.dumps({"status": response.status_code, "body": response.json(),
                  "replayed": response.headers.get("Idempotent-Replayed")}))
"""


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps showing its first look at pg_stat_activity.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


# serialized_rollback: the data migration's `sim` rig survives the flush after the test.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_processes_sending_one_keyed_batch_at_once_store_it_once(staff_token, bench_session):
    env = process_env(settings="robotest_site.settings.test", database_url=_database_url(),
                      redis_url=os.environ.get("REDIS_URL", ""))
    args = [sys.executable, "-c", _CLIENT, f"/api/v1/sessions/{bench_session}/readings/", staff_token, "k-1", BODY]
    with transaction.atomic():
        RecordingSession.objects.select_for_update().get(pk=bench_session)
        clients = [
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        deadline = time.monotonic() + 30
        while _lock_waiters() < 2:
            assert time.monotonic() < deadline, [c.poll() for c in clients]
            time.sleep(0.05)
    answers = []
    for client in clients:
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))

    assert [a["status"] for a in answers] == [201, 201]
    assert answers[0]["body"] == answers[1]["body"]
    assert sorted(str(a["replayed"]) for a in answers) == ["None", "true"]
    assert answers[0]["body"]["accepted"] == len(BATCH) == rows(bench_session)
    assert [seq for *_, seq in stored(bench_session)] == list(range(1, len(BATCH) + 1))
    assert RecordingSession.objects.get(pk=bench_session).reading_count == len(BATCH)
    assert IngestKey.objects.filter(session_id=bench_session).count() == 1
