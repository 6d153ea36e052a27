"""A session as an MCAP file (the `mcap` package's Writer), streamed as it is written.

One channel per sensor, topic `/<rig>/<sensor>`, JSON messages with a JSON Schema: a scalar
reading is `{"value": x}` (Foxglove plots fields of an object, as `/bench/fz.value`), an object
reading is the object itself (`/bench/ft6.fx`). Messages are the readings in time order:
log_time = publish_time = the reading's time in ns, sequence = its seq. The `/alerts` channel
holds the validation results (log_time = first violation, publish_time = last). Session metadata
and the verdict are MCAP metadata records.

The Writer writes to `_Sink`, which hands what it has been given to the response every ~64 KB;
the Writer itself holds one chunk (MCAP_CHUNK_BYTES before zstd compression; `zstandard` and
`lz4` come with the `mcap` package) and a small index entry per chunk until `finish()` writes the
summary and index section that Foxglove seeks by.
"""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from mcap.writer import CompressionType, Writer

from sensors.models import Sensor
from sessions.exports.chunks import CHUNK_BYTES, rechunk
from sessions.exports.csv import readings_in_order
from sessions.exports.record import _head, result_record, results_in_order
from sessions.models import RecordingSession

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PROFILE = ""  # no ROS profile: plain JSON channels
# Uncompressed bytes of one MCAP chunk: what the Writer holds, and the unit Foxglove fetches.
MCAP_CHUNK_BYTES = 256 * 1024
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
ALERT_SCHEMA = {
    "type": "object",
    "title": "robotest.ValidationResult",
    "properties": {
        "sensor": {"type": "string"},
        "rule": {"type": "string"},
        "status": {"type": "string", "enum": ["warning", "error"]},
        "message": {"type": "string"},
        "first_timestamp": {"type": "number"},
        "last_timestamp": {"type": "number"},
        "count": {"type": "integer"},
        "peak": {"type": "number"},
    },
}


class _Sink:
    """The Writer's output: counts what was written (for `tell`) and keeps it until taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.position = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        return data


def sensor_schema(sensor_name: str, value) -> dict:
    """The JSON Schema of a sensor's messages, from its first reading's shape."""
    if isinstance(value, dict):
        properties = {
            key: {"type": "number"} if isinstance(v, int | float) else {"type": "string"} if isinstance(v, str) else {}
            for key, v in value.items()
        }
    else:
        properties = {"value": {"type": "number"}}
    return {"type": "object", "title": sensor_name, "properties": properties}


def _ns(ts: datetime) -> int:
    # Exact: whole microseconds from the datetime, never through a float.
    delta = ts - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def _metadata(head: dict) -> dict[str, str]:
    """MCAP metadata values are strings: numbers as text, structures as JSON."""
    return {key: value if isinstance(value, str) else _dumps(value) for key, value in head.items() if value is not None}


async def _pieces(session: RecordingSession) -> AsyncIterator[bytes]:
    head = await sync_to_async(_head)(session, {})
    sensors = {
        pk: name async for pk, name in Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name")
    }
    sink = _Sink()
    writer = Writer(sink, chunk_size=MCAP_CHUNK_BYTES, compression=CompressionType.ZSTD)
    writer.start(profile=PROFILE, library="robotest")
    writer.add_metadata("session", _metadata(head["session"]))
    writer.add_metadata("verdict", {"verdict": head["verdict"] or "", "status": session.status})
    writer.add_metadata("rig", _metadata(head["rig"]))
    writer.add_metadata("rules", {"rules": _dumps(head["rules"]), "rates": _dumps(head["rates"])})
    channels: dict[int, int] = {}
    async for reading in readings_in_order(session, with_seq=True):
        sensor_id, value = reading["sensor_id"], reading["value"]
        channel = channels.get(sensor_id)
        if channel is None:
            name = sensors[sensor_id]
            schema = writer.register_schema(
                name=f"robotest.{session.rig.name}.{name}",
                encoding="jsonschema",
                data=_dumps(sensor_schema(name, value)).encode(),
            )
            channel = channels[sensor_id] = writer.register_channel(
                topic=f"/{session.rig.name}/{name}", message_encoding="json", schema_id=schema
            )
        time_ns = _ns(reading["timestamp"])
        data = value if isinstance(value, dict) else {"value": value}
        writer.add_message(channel, log_time=time_ns, data=_dumps(data).encode(), publish_time=time_ns,
                           sequence=reading["seq"] & 0xFFFFFFFF)
        if sink.size >= CHUNK_BYTES:
            yield sink.take()
    alerts = None
    async for result in results_in_order(session):
        if alerts is None:
            schema = writer.register_schema(
                name="robotest.ValidationResult", encoding="jsonschema", data=_dumps(ALERT_SCHEMA).encode()
            )
            alerts = writer.register_channel(topic="/alerts", message_encoding="json", schema_id=schema)
        record = result_record(result)
        writer.add_message(alerts, log_time=_ns(result["first_timestamp"]), data=_dumps(record).encode(),
                           publish_time=_ns(result["last_timestamp"]), sequence=record["id"] & 0xFFFFFFFF)
        if sink.size >= CHUNK_BYTES:
            yield sink.take()
    writer.finish()
    yield sink.take()


def mcap_stream(session: RecordingSession) -> AsyncIterator[bytes]:
    """The session as an MCAP file, in chunks of ~64 KB or more (a finished MCAP chunk at a time)."""
    return rechunk(_pieces(session))
