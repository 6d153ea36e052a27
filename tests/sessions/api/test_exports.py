"""Exports of one session: CSV long (PostgreSQL COPY) and wide, the JSON test record, MCAP.

Each is read back and compared with the readings endpoint, row for row.
"""

import asyncio
import csv
import io
import json
import os
import time
import warnings

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection, transaction
from django.utils import timezone
from mcap.reader import make_reader

from sessions.exports import chunks
from sessions.exports.csv import _long_rows, csv_copy
from sessions.exports.mcap import MCAP_CHUNK_BYTES
from sessions.models import RecordingSession, ValidationResult
from sessions.reads.stats import sensor_stats
from sessions.recording import storage
from tests.conftest import T0, ft6_value, readings

# transaction=True: on PostgreSQL the CSV is read by its own connection (a COPY in a thread),
# which sees only committed rows; serialized_rollback keeps the migration's `sim` rig.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

postgresql_only = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "postgres").startswith("postgres"), reason="COPY is PostgreSQL's"
)


def content(response) -> bytes:
    # The stream is an async generator; the sync test client consumes it whole (Django warns).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return b"".join(response)


def table(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content(response).decode())))


async def _collect(stream) -> bytes:
    return b"".join([chunk async for chunk in stream])


def collect(stream) -> bytes:
    return async_to_sync(_collect)(stream)


@pytest.fixture
def recorded(ingest, bench_session):
    """fz, ft6 and temp readings, two of them at one instant, one fz above the error bound."""
    batch = (
        readings("fz", [10.5, 11, 95.25, -3, 0.1 + 0.2])
        + readings("ft6", [ft6_value(3), ft6_value(4)], t0=T0 + 0.05)
        + readings("temp", [21.125], t0=T0 + 0.2)
    )
    assert ingest(bench_session, batch).status_code == 201
    return bench_session


def api_readings(client, session_id: int) -> list[dict]:
    return client.get(f"/api/v1/sessions/{session_id}/readings/", {"limit": 10000}).json()


# --- CSV, long -------------------------------------------------------------------------------


@postgresql_only
def test_csv_from_copy_is_byte_for_byte_the_python_writer(ingest, bench_session):
    odd = [
        {"sensor": "fz", "timestamp": T0, "value": 1},  # a whole second: repr's ".0"
        {"sensor": "fz", "timestamp": T0 - 1.5, "value": -2.5},  # before the start: negative session_time
        {"sensor": "fz", "timestamp": T0 + 0.000001, "value": 123456789.123},
        {"sensor": "fz", "timestamp": T0 + 12.34, "value": 0.30000000000000004},
        {"sensor": "fz", "timestamp": T0 + 3601.999999, "value": 10**15},
        {"sensor": "ft6", "timestamp": T0 + 0.5, "value": {"b": 1, "a": "x, \"y\"", "long_name": 2.0}},
        {"sensor": "ft6", "timestamp": T0 + 0.6, "value": {}},
        # Objects the two replace()s would get wrong: through the regex.
        {"sensor": "ft6", "timestamp": T0 + 0.7, "value": {"s": "ends in, ", "t": "a\": b, \"c", "u": "back\\"}},
        {"sensor": "ft6", "timestamp": T0 + 0.8, "value": {"nested": {"a": [1, 2.5, {"b": None}]}, "ok": True}},
        {"sensor": "ft6", "timestamp": T0 + 0.9, "value": {"list": ["x, ", "y"], "k: v": 1}},
    ] + readings("fz", [i * 0.37 for i in range(200)], t0=T0 + 0.123457, step=0.013)
    assert ingest(bench_session, odd).status_code == 201
    session = RecordingSession.objects.select_related("rig").get(pk=bench_session)

    from_copy = collect(csv_copy(session))
    from_python = collect(chunks.rechunk(_long_rows(session)))

    assert from_copy.decode().splitlines()[:3] == from_python.decode().splitlines()[:3]
    assert from_copy == from_python


@postgresql_only
def test_csv_from_copy_is_equal_as_parsed_where_its_text_differs(ingest, bench_session):
    # An exponent in Python's repr, non-ASCII text in an object: the only known differences.
    batch = [
        {"sensor": "fz", "timestamp": T0, "value": 5e-05},
        {"sensor": "fz", "timestamp": T0 + 0.1, "value": 1.5e300},
        {"sensor": "ft6", "timestamp": T0 + 0.2, "value": {"température": 21.5, "note": "ça va"}},
    ]
    assert ingest(bench_session, batch).status_code == 201
    session = RecordingSession.objects.select_related("rig").get(pk=bench_session)

    def parsed(data: bytes) -> list[dict]:
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        return [{**row, "value": json.loads(row["value"])} for row in rows]

    from_copy = collect(csv_copy(session))
    from_python = collect(chunks.rechunk(_long_rows(session)))

    assert from_copy != from_python
    assert parsed(from_copy) == parsed(from_python)


@postgresql_only
def test_csv_copy_streams_a_bounded_number_of_chunks_and_stops_when_the_client_goes(bench_session):
    session = RecordingSession.objects.select_related("rig").get(pk=bench_session)
    sensor_id = session.rig.sensors.get(name="fz").pk
    rows = 40_000  # ~3.6 MB of CSV: about 55 chunks
    with transaction.atomic():
        storage.readings_write(
            [(session.pk, sensor_id, i + 1, int(T0 * 1e6) + i * 1000, repr(i * 0.5)) for i in range(rows)]
        )
    stream = csv_copy(session)

    async def first_chunk_then_wait():
        iterator = stream.__aiter__()
        first = await iterator.__anext__()
        # Let the producer run until it blocks on the full queue (it cannot go further).
        for _ in range(1000):
            if stream.chunks_read >= chunks.QUEUE_CHUNKS + 1:
                break
            await asyncio.sleep(0.01)
        copying = await sync_to_async(_copy_running)()
        read = stream.chunks_read
        await iterator.aclose()
        return first, read, copying

    first, read, copying = async_to_sync(first_chunk_then_wait)()

    assert first.startswith(b"timestamp,sensor_type,value,datetime,session_time,session_id,sensor\n")
    assert len(first) >= chunks.CHUNK_BYTES
    # One chunk sent, the queue full, one more in the producer's hand: the rest still in the database.
    assert chunks.QUEUE_CHUNKS + 1 <= read <= chunks.QUEUE_CHUNKS + 2
    assert copying
    assert stream.finished.wait(timeout=30)
    # The server ends the cancelled COPY's backend on its own time: wait for it, within reason.
    for _ in range(300):
        if not _copy_running():
            break
        time.sleep(0.05)
    assert not _copy_running()


def _copy_running() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND ltrim(query, E' \\n') LIKE %s AND pid <> pg_backend_pid()",
            ["COPY (%"],
        )
        return cursor.fetchone()[0] > 0


# --- CSV, wide -------------------------------------------------------------------------------


def test_wide_csv_has_one_row_per_instant_and_one_column_per_sensor_field(staff_client, recorded):
    response = staff_client.get(f"/api/v1/sessions/{recorded}/export/csv", {"layout": "wide"})

    assert response.status_code == 200
    assert f'filename="robotest-session-{recorded}-bench-wide.csv"' in response["Content-Disposition"]
    rows = table(response)
    fields = [f"ft6.{k}" for k in sorted(ft6_value(0))]
    assert list(rows[0]) == ["timestamp", "datetime", "session_time", *sorted(["fz", "temp", *fields])]
    api = api_readings(staff_client, recorded)
    assert len(rows) == len({r["timestamp"] for r in api})
    by_time = {float(row["timestamp"]): row for row in rows}
    for reading in api:
        row = by_time[reading["timestamp"]]
        if reading["sensor"] == "ft6":
            assert {k: float(row[f"ft6.{k}"]) for k in ft6_value(0)} == reading["value"]
        else:
            assert json.loads(row[reading["sensor"]]) == reading["value"]
    # T0 + 0.1: fz only; the other sensors' cells are empty.
    lone = by_time[T0 + 0.1]
    assert lone["fz"] == "11" and lone["temp"] == "" and lone["ft6.fx"] == ""
    assert [float(r["timestamp"]) for r in rows] == sorted(by_time)


def test_wide_csv_of_a_session_without_readings_is_the_header(staff_client, bench_session):
    rows = content(staff_client.get(f"/api/v1/sessions/{bench_session}/export/csv", {"layout": "wide"}))

    assert rows.decode() == "timestamp,datetime,session_time,ft6,fz,temp\n"


def test_csv_with_an_unknown_layout_is_a_400_naming_it(staff_client, recorded):
    response = staff_client.get(f"/api/v1/sessions/{recorded}/export/csv", {"layout": "tall"})

    assert response.status_code == 400
    assert "layout" in response.json()["detail"]


# --- JSON test record ------------------------------------------------------------------------


def test_json_record_holds_the_session_its_rig_rules_results_and_statistics(staff_client, staff_user, recorded):
    staff_client.post("/api/v1/sessions/stop", {"session_id": recorded}, format="json")
    result = ValidationResult.objects.filter(session_id=recorded).first()
    ValidationResult.objects.filter(pk=result.pk).update(
        acknowledged_by=staff_user, acknowledged_at=timezone.now(), acknowledge_comment="seen"
    )
    session = RecordingSession.objects.get(pk=recorded)

    response = staff_client.get(f"/api/v1/sessions/{recorded}/export/json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert f'filename="robotest-session-{recorded}-bench.json"' in response["Content-Disposition"]
    record = json.loads(content(response))
    assert record["session"]["id"] == recorded
    assert record["session"]["rig"] == "bench"
    assert record["session"]["operator"] == "operator"
    assert record["session"]["status"] == "completed"
    assert record["verdict"] == record["session"]["verdict"] == session.verdict == "fail"
    assert record["session"]["duration_seconds"] == pytest.approx(
        (session.stopped_at - session.started_at).total_seconds()
    )
    assert [s["name"] for s in record["rig"]["sensors"]] == ["ft6", "fz", "temp"]
    assert record["rules"] == session.rules and record["rates"] == session.rates
    assert record["statistics"] == json.loads(json.dumps(sensor_stats(session_id=recorded)))
    assert record["readings"]["count"] == len(api_readings(staff_client, recorded)) == 8
    assert record["readings"]["csv"].endswith(f"/api/v1/sessions/{recorded}/export/csv")
    assert record["readings"]["mcap"].endswith(f"/api/v1/sessions/{recorded}/export/mcap")
    stored = list(ValidationResult.objects.filter(session_id=recorded).order_by("first_timestamp", "id"))
    assert [r["id"] for r in record["validation_results"]] == [r.pk for r in stored] != []
    for got, want in zip(record["validation_results"], stored):
        assert got["first_timestamp"] == want.first_timestamp.timestamp()
        assert got["last_timestamp"] == want.last_timestamp.timestamp()
        assert (got["count"], got["peak"], got["status"], got["rule"]) == (want.count, want.peak, want.status, want.rule)
        assert got["acknowledged"] == (want.acknowledged_at is not None)
    acked = next(r for r in record["validation_results"] if r["id"] == result.pk)
    assert acked["acknowledged"] and acked["acknowledged_by"] == "operator" and acked["acknowledge_comment"] == "seen"


# --- MCAP ------------------------------------------------------------------------------------


def test_mcap_holds_every_reading_on_its_sensors_channel_in_order(staff_client, recorded):
    response = staff_client.get(f"/api/v1/sessions/{recorded}/export/mcap")

    assert response.status_code == 200
    assert f'filename="robotest-session-{recorded}-bench.mcap"' in response["Content-Disposition"]
    data = content(response)
    reader = make_reader(io.BytesIO(data))
    api = api_readings(staff_client, recorded)
    messages = [(channel.topic, message) for _, channel, message in reader.iter_messages(topics=[
        "/bench/fz", "/bench/ft6", "/bench/temp"], log_time_order=True)]
    assert len(messages) == len(api)
    for (topic, message), reading in zip(messages, api):
        assert topic == f"/bench/{reading['sensor']}"
        assert message.log_time == message.publish_time == round(reading["timestamp"] * 1e6) * 1000
        assert message.sequence == reading["seq"]
        decoded = json.loads(message.data)
        assert decoded == (reading["value"] if reading["sensor"] == "ft6" else {"value": reading["value"]})


def test_mcap_has_schemas_alerts_metadata_and_a_summary(staff_client, recorded):
    data = content(staff_client.get(f"/api/v1/sessions/{recorded}/export/mcap"))

    reader = make_reader(io.BytesIO(data))
    summary = reader.get_summary()
    assert summary is not None and summary.chunk_indexes and summary.statistics.message_count > 8
    topics = {channel.topic: channel for channel in summary.channels.values()}
    assert set(topics) == {"/bench/fz", "/bench/ft6", "/bench/temp", "/alerts"}
    schemas = {topic: json.loads(summary.schemas[c.schema_id].data) for topic, c in topics.items()}
    assert schemas["/bench/fz"]["properties"] == {"value": {"type": "number"}}
    assert set(schemas["/bench/ft6"]["properties"]) == set(ft6_value(0))
    assert all(c.message_encoding == "json" and summary.schemas[c.schema_id].encoding == "jsonschema"
               for c in topics.values())
    alerts = [json.loads(m.data) for _, _, m in reader.iter_messages(topics=["/alerts"])]
    assert [a["id"] for a in alerts] == list(
        ValidationResult.objects.filter(session_id=recorded).order_by("first_timestamp", "id").values_list("id", flat=True)
    )
    metadata = {m.name: m.metadata for m in reader.iter_metadata()}
    assert metadata["session"]["id"] == str(recorded) and metadata["session"]["rig"] == "bench"
    assert metadata["verdict"]["verdict"] == RecordingSession.objects.get(pk=recorded).verdict
    # Read front to back too, without the summary's help.
    assert sum(1 for _ in make_reader(_Unseekable(data)).iter_messages()) == summary.statistics.message_count


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


# --- every export: 404, auth, and chunking ---------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "json", "mcap"])
def test_export_of_an_unknown_session_is_a_404(staff_client, recorded, kind):
    response = staff_client.get(f"/api/v1/sessions/99999/export/{kind}")

    assert response.status_code == 404
    assert "99999" in response.json()["detail"]


@pytest.mark.parametrize("kind", ["json", "mcap"])
def test_export_needs_a_user_unless_reads_are_public(anon_client, plain_client, recorded, settings, kind):
    path = f"/api/v1/sessions/{recorded}/export/{kind}"
    assert anon_client.get(path).status_code in (401, 403)
    assert plain_client.get(path).status_code == 200

    settings.ROBOTEST_PUBLIC_READ = True
    assert anon_client.get(path).status_code == 200


@pytest.mark.parametrize("kind, accept", [("csv", "text/csv"), ("json", "application/json"), ("mcap", "application/x-mcap")])
def test_export_answers_a_client_that_accepts_only_its_type(staff_client, recorded, kind, accept):
    response = staff_client.get(f"/api/v1/sessions/{recorded}/export/{kind}", HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"].startswith(accept)
    assert content(response)
    assert staff_client.get(f"/api/v1/sessions/99999/export/{kind}", HTTP_ACCEPT=accept).status_code == 404


def test_exports_come_in_chunks_of_about_64_kb(staff_client, ingest, bench_session):
    for k in range(3):
        assert ingest(bench_session, readings("fz", [float(i) for i in range(3000)], t0=T0 + k * 400)).status_code == 201

    for path in ("export/csv", "export/csv?layout=wide", "export/json", "export/mcap"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sizes = [len(chunk) for chunk in staff_client.get(f"/api/v1/sessions/{bench_session}/{path}")]
        if path != "export/json":  # the record of a session without results is small
            assert len(sizes) > 1, path
        # MCAP goes a finished (compressed) MCAP chunk at a time: at most the Writer's chunk size.
        limit = MCAP_CHUNK_BYTES if path == "export/mcap" else 2 * chunks.CHUNK_BYTES
        assert all(size < limit for size in sizes), (path, sizes)
