"""Every export against the same output built here, independently, from the readings read through the ORM.

The CSV long and wide and the MCAP file of a session with scalar, object (camera: text fields)
and odd values (exponents, non-ASCII text, ties at one instant, a number among an object
sensor's readings) are compared byte for byte: on PostgreSQL the database writes most of each,
on SQLite Python does, and both must write what the Python reference below writes.
"""

import csv
import io
import json
import math
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer

from sensors.models import Sensor
from sensors.services import rig_create
from sessions.exports import csv_stream, mcap_stream
from sessions.exports.mcap import MCAP_CHUNK_BYTES
from sessions.exports.record import _head, result_record
from sessions.models import Reading, RecordingSession, ValidationResult
from sessions.recording import storage

# transaction=True: on PostgreSQL an export reads with its own connection, which sees only
# committed rows; serialized_rollback keeps the migration's `sim` rig.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

T0 = 1_700_000_000
_compact = json.JSONEncoder(separators=(",", ":")).encode
SENSORS = [("fz", "force"), ("ft6", "force_torque"), ("cam", "camera"), ("temp", "temperature"), ("txt", "text"),
           ("mixed", "mixed"), ("idle", "force"), ("odd, name", 'we"ird')]


def _values(odd: bool) -> list[tuple[str, float, object]]:
    """(sensor, seconds after T0, value): several thousand readings, so several COPY and MCAP chunks."""
    values = [
        ("fz", 0, 1), ("fz", -1.5, -2.5), ("fz", 0.000001, 123456789.123), ("fz", 12.34, 0.30000000000000004),
        ("fz", 3601.999999, 10**15), ("fz", 1.2, 1e16), ("fz", 1.3, -0.0), ("fz", 1.4, 30.0), ("fz", 1.7, 1e15),
        ("fz", 1.8, 123456789012345.6), ("fz", 1.9, True), ("fz", 2.0, None), ("fz", 2.1, 0.0001),
        ("ft6", 0.5, {"b": 1, "a": "x, \"y\"", "long_name": 2.0}),
        ("ft6", 0.7, {"s": "ends in, ", "t": "a\": b, \"c", "u": "back\\"}),
        ("ft6", 2.6, {"fx": 1.5, "fy": -2.25, "fz": 30.0}), ("ft6", 2.6, {"fx": 9.5, "tz": 0.125}),
        ("ft6", 2.6, 7.0),  # a number among an object sensor's readings: not a column of its own
        ("cam", 0.3, {"image_id": 3, "resolution": "640x480", "brightness": 120, "exposure": 1.25}),
        ("temp", 0.3, 21), ("temp", 0.3, 22.5),  # two at one instant: the later one (by id) wins
        ("txt", 4.0, "plain"), ("txt", 4.1, "with, comma"), ("txt", 4.2, "quote\"d"), ("txt", 4.3, ""),
        ("txt", 4.4, "new\nline"), ("txt", 4.6, "\\."), ("txt", 4.8, " "),
        ("mixed", 6.0, 3), ("mixed", 6.1, {"x": 1}), ("mixed", 6.2, 4.5),
        ("odd, name", 7.0, 1.25),
    ]
    if odd:  # what the long CSV writes as jsonb does (equal only as parsed there: test_exports.py)
        values += [("fz", 1.0, 5e-05), ("fz", 2.2, -3e-05), ("fz", 1.5, 1e-7), ("txt", 4.5, "ünï"),
                   ("ft6", 2.5, {"température": 21.5, "note": "ça va", "tiny": 5e-05, "big": 1e16})]
    values += [("fz", 10 + i * 0.013, round(math.sin(i) * 50, 3)) for i in range(3000)]
    values += [("ft6", 10.004 + i * 0.013, {"fx": i * 0.5, "fy": -i, "fz": 30.0, "tx": 0.125, "ty": i % 7, "tz": -0.5})
               for i in range(1500)]
    values += [("cam", 20 + i * 0.5, {"image_id": i, "resolution": "1280x720", "brightness": i % 256,
                                      "exposure": i / 7}) for i in range(200)]
    return values


def _session(values: list[tuple[str, float, object]], *, texts: bool = False) -> RecordingSession:
    rig = rig_create(name="exact", sensors=[{"name": n, "sensor_type": t} for n, t in SENSORS])
    ids = dict(rig.sensors.values_list("name", "id"))
    session = RecordingSession.objects.create(
        rig=rig, name="exact", status=RecordingSession.Status.COMPLETED, verdict=RecordingSession.Verdict.FAIL,
        started_at=datetime.fromtimestamp(T0 + 0.25, tz=UTC), stopped_at=datetime.fromtimestamp(T0 + 4000, tz=UTC),
        reading_count=len(values), rules={"fz": {"max": 80}}, rates={"fz": 10},
    )
    rows = [(session.pk, ids[s], i + 1, round((T0 + dt) * 1_000_000), v if texts else storage.value_json(v))
            for i, (s, dt, v) in enumerate(values)]
    with transaction.atomic():
        storage.readings_write(rows)
    for k, (sensor, first, last) in enumerate([("fz", 1.1, 1.9), ("ft6", 0.5, 0.5), ("fz", 0, 3601.999999)]):
        ValidationResult.objects.create(
            session=session, sensor_id=ids[sensor], rule=f"rule{k}", status="error" if k else "warning",
            message=f"message {k}", first_timestamp=datetime.fromtimestamp(T0 + first, tz=UTC),
            last_timestamp=datetime.fromtimestamp(T0 + last, tz=UTC), count=k + 1, peak=1.5 * k, details={"k": k},
        )
    return RecordingSession.objects.select_related("rig").get(pk=session.pk)


@pytest.fixture
def plain():
    return _session(_values(odd=False))


@pytest.fixture
def odd():
    return _session(_values(odd=True))


async def _collect(stream) -> bytes:
    return b"".join([chunk async for chunk in stream])


def collect(stream) -> bytes:
    return async_to_sync(_collect)(stream)


def _readings(session: RecordingSession) -> list[dict]:
    return list(Reading.objects.filter(session=session).order_by("timestamp", "id")
                .values("timestamp", "sensor_id", "seq", "value"))


def _times(ts: datetime, session: RecordingSession) -> list[str]:
    unix = ts.timestamp()
    return [repr(unix), ts.astimezone(UTC).isoformat(), f"{unix - session.started_at.timestamp():.6f}"]


def _csv(rows: list[list]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def expected_long(session: RecordingSession) -> bytes:
    sensors = {s.pk: s for s in Sensor.objects.filter(rig=session.rig)}
    rows = [["timestamp", "sensor_type", "value", "datetime", "session_time", "session_id", "sensor"]]
    for r in _readings(session):
        unix, iso, since = _times(r["timestamp"], session)
        value = r["value"]
        sensor = sensors[r["sensor_id"]]
        text = value if isinstance(value, int | float) else _compact(value)
        rows.append([unix, sensor.sensor_type, text, iso, since, session.pk, sensor.name])
    return _csv(rows)


def _cell(value) -> object:
    return value if isinstance(value, int | float | str) else _compact(value)


def expected_wide(session: RecordingSession) -> bytes:
    readings = _readings(session)
    names = dict(Sensor.objects.filter(rig=session.rig).values_list("id", "name"))
    keys: dict[int, set] = {}
    for r in readings:
        if isinstance(r["value"], dict):
            keys.setdefault(r["sensor_id"], set()).update(r["value"])
    columns = sorted(
        column for pk, name in names.items()
        for column in ([f"{name}.{key}" for key in keys[pk]] if keys.get(pk) else [name])
    )
    instants: dict[datetime, dict[str, object]] = {}
    for r in readings:
        cells = instants.setdefault(r["timestamp"], {})
        name, value = names[r["sensor_id"]], r["value"]
        if keys.get(r["sensor_id"]):
            if isinstance(value, dict):
                cells.update({f"{name}.{key}": _cell(v) for key, v in value.items()})
        else:
            cells[name] = _cell(value)
    rows = [["timestamp", "datetime", "session_time", *columns]]
    rows += [[*_times(ts, session), *(cells.get(c, "") for c in columns)] for ts, cells in instants.items()]
    return _csv(rows)


def _ns(ts: datetime) -> int:
    return round(ts.timestamp() * 1e6) * 1000


def expected_mcap(session: RecordingSession) -> bytes:
    """The file the `mcap` package's Writer writes of the session's readings and results."""
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    head = _head(session, {})
    names = dict(Sensor.objects.filter(rig=session.rig).values_list("id", "name"))
    out = io.BytesIO()
    writer = Writer(out, chunk_size=MCAP_CHUNK_BYTES, compression=CompressionType.ZSTD)
    writer.start(profile="", library="robotest")

    def strings(d: dict) -> dict:
        return {k: v if isinstance(v, str) else dumps(v) for k, v in d.items() if v is not None}

    writer.add_metadata("session", strings(head["session"]))
    writer.add_metadata("verdict", {"verdict": head["verdict"] or "", "status": session.status})
    writer.add_metadata("rig", strings(head["rig"]))
    writer.add_metadata("rules", {"rules": dumps(head["rules"]), "rates": dumps(head["rates"])})
    channels = {}
    for r in _readings(session):
        value, name = r["value"], names[r["sensor_id"]]
        if r["sensor_id"] not in channels:
            if isinstance(value, dict):
                properties = {k: {"type": "number"} if isinstance(v, int | float) else
                              {"type": "string"} if isinstance(v, str) else {} for k, v in value.items()}
            else:
                properties = {"value": {"type": "number"}}
            schema = writer.register_schema(
                name=f"robotest.{session.rig.name}.{name}", encoding="jsonschema",
                data=dumps({"type": "object", "title": name, "properties": properties}).encode(),
            )
            channels[r["sensor_id"]] = writer.register_channel(
                topic=f"/{session.rig.name}/{name}", message_encoding="json", schema_id=schema
            )
        data = dumps(value if isinstance(value, dict) else {"value": value}).encode()
        writer.add_message(channels[r["sensor_id"]], log_time=_ns(r["timestamp"]), data=data,
                           publish_time=_ns(r["timestamp"]), sequence=r["seq"])
    from sessions.exports.mcap import ALERT_SCHEMA
    from sessions.exports.record import RESULT_FIELDS

    results = ValidationResult.objects.filter(session=session).order_by("first_timestamp", "id").values(*RESULT_FIELDS)
    alerts = None
    for result in results:
        if alerts is None:  # `/alerts` only when there are results
            schema = writer.register_schema(name="robotest.ValidationResult", encoding="jsonschema",
                                            data=dumps(ALERT_SCHEMA).encode())
            alerts = writer.register_channel(topic="/alerts", message_encoding="json", schema_id=schema)
        record = result_record(result)
        writer.add_message(alerts, log_time=_ns(result["first_timestamp"]), data=dumps(record).encode(),
                           publish_time=_ns(result["last_timestamp"]), sequence=record["id"])
    writer.finish()
    return out.getvalue()


def test_long_csv_is_byte_for_byte_the_reference():
    # Not a boolean: the long CSV of PostgreSQL writes jsonb's `true`, Python's writer `True` (as before).
    session = _session([v for v in _values(odd=False) if not isinstance(v[2], bool)])

    assert collect(csv_stream(session)) == expected_long(session)


@pytest.mark.parametrize("which", ["plain", "odd"])
def test_wide_csv_is_byte_for_byte_the_reference(request, which):
    session = request.getfixturevalue(which)

    data = collect(csv_stream(session, layout="wide"))

    assert data.splitlines()[:40] == expected_wide(session).splitlines()[:40]
    assert data == expected_wide(session)


def test_wide_csv_of_cells_sql_leaves_to_python_is_the_reference():
    # A list, a nested object, a carriage return, an empty object: the Python writer's, on both databases.
    values = _values(odd=True) + [("txt", 5.0, [1, 2.5, "a, b"]), ("ft6", 5.1, {"nested": {"a": [1, None]}}),
                                  ("txt", 5.2, "cr\rx"), ("mixed", 5.3, {})]
    session = _session(values)

    assert collect(csv_stream(session, layout="wide")) == expected_wide(session)


@pytest.mark.parametrize("which", ["plain", "odd"])
def test_mcap_is_byte_for_byte_what_the_mcap_writer_writes(request, which):
    session = request.getfixturevalue(which)

    data = collect(mcap_stream(session))

    assert data == expected_mcap(session)


def test_mcap_read_back_holds_every_reading_with_its_value(odd):
    names = dict(Sensor.objects.filter(rig=odd.rig).values_list("id", "name"))

    reader = make_reader(io.BytesIO(collect(mcap_stream(odd))))

    messages = [(channel.topic, message) for _, channel, message in reader.iter_messages(log_time_order=False)
                if channel.topic != "/alerts"]
    readings = _readings(odd)
    assert len(messages) == len(readings) and reader.get_summary().statistics.chunk_count > 1
    for (topic, message), reading in zip(messages, readings):
        assert topic == f"/exact/{names[reading['sensor_id']]}"
        assert message.log_time == message.publish_time == _ns(reading["timestamp"])
        assert message.sequence == reading["seq"]
        value = reading["value"]
        assert json.loads(message.data) == (value if isinstance(value, dict) else {"value": value})


def test_wide_csv_of_a_session_without_readings_is_its_header():
    session = _session([])

    assert collect(csv_stream(session, layout="wide")) == _csv([["timestamp", "datetime", "session_time",
                                                                *sorted(name for name, _ in SENSORS)]])


def test_wide_csv_and_mcap_write_numbers_as_python_does_whoever_stored_them():
    # JSON texts as another writer may store them (benchmarks/read_dataset.py writes "%.3f"): not reprs.
    texts = ["50.000", "0.10", "-2.50", "0.10000000000000001", "1e-7", "1000000000000000.5", "1234567890123456.0",
             "-9999999999999998.0", "12345678901234567.5", "100", "-0.000", "123456789012345.60", "1E2",
             "12345678901234.5", "1234567890123.45", "0.0001", "0.00010", "-0.000123456789012", "99999999999999.9",
             "0.30000000000000004", "0.1000000000000000", "7.0", "-7.10"]
    values = [("fz", i * 0.1, text) for i, text in enumerate(texts)]
    values += [("ft6", 5 + i * 0.1, text) for i, text in enumerate([
        '{"a": 50.000, "b": 0.10000000000000001, "c": 1.5}', '{"fx": 12.0, "fy": -0.50}', '{"fx": 1234567.123456789}',
        '{"fx": 1.25, "fy": 3}',
    ])]
    session = _session(values, texts=True)

    assert collect(csv_stream(session, layout="wide")) == expected_wide(session)
    assert collect(mcap_stream(session)) == expected_mcap(session)
