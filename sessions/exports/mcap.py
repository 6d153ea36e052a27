"""A session as an MCAP file, streamed as it is written.

One channel per sensor, topic `/<rig>/<sensor>`, JSON messages with a JSON Schema: a scalar
reading is `{"value": x}` (Foxglove plots fields of an object, as `/bench/fz.value`), an object
reading is the object itself (`/bench/ft6.fx`). Messages are the readings in time order:
log_time = publish_time = the reading's time in ns, sequence = its seq. The `/alerts` channel
holds the validation results (log_time = first violation, publish_time = last). Session metadata
and the verdict are MCAP metadata records.

The file is byte for byte what the `mcap` package's Writer writes (chunks of MCAP_CHUNK_BYTES
before zstd compression, message indexes, the summary and index section Foxglove seeks by), but
`McapFile` writes a message in a few operations where the Writer builds three objects: at a
million readings the Writer was most of the export's time. On PostgreSQL the readings come from
one binary COPY whose rows carry each message's JSON already written by the database (see
`_COPY_SQL`), encoded into MCAP in the COPY's own thread (chunks.CopyOut); SQLite reads them
through the ORM. Memory: one MCAP chunk and a small index entry per chunk until the end.
"""

import array
import asyncio
import concurrent.futures
import itertools
import json
import operator
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime

import zstandard
from asgiref.sync import sync_to_async
from django.db import connection
from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (
    Channel,
    Chunk,
    ChunkIndex,
    DataEnd,
    Footer,
    Header,
    Metadata,
    MetadataIndex,
    Schema,
    Statistics,
    SummaryOffset,
)
from mcap.writer import MCAP0_MAGIC

from sensors.models import Sensor
from sessions.exports.chunks import CHUNK_BYTES, MICROS_SQL, CopyOut, binary_fields, block_width, blocks_copy, rechunk
from sessions.exports.csv import COMPACT_SQL, COPY_SETUP, NUMBER_SQL, readings_in_order
from sessions.exports.record import _head, result_record, results_in_order, results_values
from sessions.models import Reading, RecordingSession

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PROFILE = ""  # no ROS profile: plain JSON channels
# Uncompressed bytes of one MCAP chunk: what the writer holds, and the unit Foxglove fetches.
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
_MESSAGE = struct.Struct("<BQHIQQ")  # opcode, record length, channel, sequence, log_time, publish_time
_MESSAGE_INDEX = struct.Struct("<BQHI")


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


def message_data(value) -> bytes:
    """A reading's message: an object as it is, anything else as `{"value": …}`, compact JSON."""
    return _dumps(value if isinstance(value, dict) else {"value": value}).encode()


def _ns(ts: datetime) -> int:
    # Exact: whole microseconds from the datetime, never through a float.
    delta = ts - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def _metadata(head: dict) -> dict[str, str]:
    """MCAP metadata values are strings: numbers as text, structures as JSON."""
    return {key: value if isinstance(value, str) else _dumps(value) for key, value in head.items() if value is not None}


class McapFile:
    """An MCAP file written as mcap.writer.Writer(chunk_size=MCAP_CHUNK_BYTES, compression=ZSTD) writes it.

    The same records in the same order (its defaults: every index, statistics, summary offsets,
    CRCs of chunks and summary); what is written accumulates in `out` until the caller takes it.
    """

    def __init__(self, *, chunk_size: int = MCAP_CHUNK_BYTES) -> None:
        self.out = bytearray()
        self.position = 0  # bytes written before `out`
        self.chunk_size = chunk_size
        self.chunk = bytearray()
        self.chunk_messages = 0
        self.chunk_start = self.chunk_end = 0
        self.chunk_index: dict[int, list[int]] = {}  # channel → [log_time, offset, …] in the chunk
        self.chunk_indexes: list[ChunkIndex] = []
        self.schemas: list[Schema] = []
        self.channels: list[Channel] = []
        self.metadata_indexes: list[MetadataIndex] = []
        self.message_counts: dict[int, int] = {}
        self.message_count = 0
        self.start_time = self.end_time = 0
        self.chunk_count = 0

    def take(self) -> bytes:
        data = bytes(self.out)
        self.position += len(data)
        self.out.clear()
        return data

    def _write(self, record) -> int:
        builder = RecordBuilder()
        record.write(builder)
        data = builder.end()
        self.out += data
        return len(data)

    def start(self, *, profile: str, library: str) -> None:
        self.out += MCAP0_MAGIC
        self._write(Header(profile, library))

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        offset = self.position + len(self.out)
        length = self._write(Metadata(name=name, metadata=data))
        self.metadata_indexes.append(MetadataIndex(offset=offset, length=length, name=name))

    def register_schema(self, *, name: str, encoding: str, data: bytes) -> int:
        schema = Schema(id=len(self.schemas) + 1, data=data, encoding=encoding, name=name)
        self.schemas.append(schema)
        self._into_chunk(schema)
        return schema.id

    def register_channel(self, *, topic: str, message_encoding: str, schema_id: int) -> int:
        channel = Channel(id=len(self.channels) + 1, topic=topic, message_encoding=message_encoding,
                          schema_id=schema_id, metadata={})
        self.channels.append(channel)
        self._into_chunk(channel)
        return channel.id

    def _into_chunk(self, record) -> None:
        builder = RecordBuilder()
        record.write(builder)
        self.chunk += builder.end()
        if len(self.chunk) > self.chunk_size:
            self._finish_chunk()

    def add_message(self, channel: int, sequence: int, time: int, data: bytes, publish_time: int | None = None) -> None:
        """A message logged at `time` (published then too unless `publish_time`)."""
        if self.chunk_messages:
            self.chunk_start = min(self.chunk_start, time)
        else:
            self.chunk_start = time
        self.chunk_end = max(self.chunk_end, time)
        self.chunk_messages += 1
        self.chunk_index.setdefault(channel, []).extend((time, len(self.chunk)))
        self.chunk += _MESSAGE.pack(Opcode.MESSAGE, 22 + len(data), channel, sequence, time,
                                    time if publish_time is None else publish_time)
        self.chunk += data
        if len(self.chunk) > self.chunk_size:
            self._finish_chunk()

    def add_in_time_order(self, channels, sequences, times, datas) -> None:
        """Messages (log_time = publish_time) in time order, as columns: the hot path.

        Each chunk closes after the message that makes it longer than chunk_size, as the Writer's
        does; its min/max of times and its counters are taken per chunk (the same numbers: times
        only grow here, and a chunk's message index counts its messages). One plain loop: building
        the bytes as whole columns (struct over a block, joins) measured slower.
        """
        chunk = self.chunk  # the same bytearray and dict for every chunk (_finish_chunk clears them)
        index = self.chunk_index
        pack = _MESSAGE.pack
        limit = self.chunk_size
        for channel, sequence, time, data in zip(channels, sequences, times, datas):
            if not self.chunk_messages:
                self.chunk_start = time
            entries = index.get(channel)
            if entries is None:
                entries = index[channel] = []
            entries += (time, len(chunk))
            chunk += pack(5, 22 + len(data), channel, sequence, time, time)
            chunk += data
            self.chunk_messages += 1
            if len(chunk) > limit:
                self.chunk_end = time
                self._finish_chunk()
        if self.chunk_messages and times:
            self.chunk_end = times[-1]

    def _finish_chunk(self) -> None:
        if not self.chunk_messages:
            return
        self.chunk_count += 1
        data = bytes(self.chunk)
        compressed = zstandard.compress(data)
        chunk = Chunk(compression="zstd", data=compressed, message_start_time=self.chunk_start,
                      message_end_time=self.chunk_end, uncompressed_crc=zlib.crc32(data), uncompressed_size=len(data))
        start = self.position + len(self.out)
        length = self._write(chunk)
        offsets: dict[int, int] = {}
        indexes = bytearray()
        for channel, entries in self.chunk_index.items():
            offsets[channel] = start + length + len(indexes)
            indexes += _MESSAGE_INDEX.pack(Opcode.MESSAGE_INDEX, 6 + 8 * len(entries), channel, 8 * len(entries))
            indexes += struct.pack(f"<{len(entries)}Q", *entries)
            self.message_counts[channel] = self.message_counts.get(channel, 0) + len(entries) // 2
        self.out += indexes
        self.chunk_indexes.append(ChunkIndex(
            message_start_time=self.chunk_start, message_end_time=self.chunk_end, chunk_start_offset=start,
            chunk_length=length, message_index_offsets=offsets, message_index_length=len(indexes),
            compression="zstd", compressed_size=len(compressed), uncompressed_size=len(data),
        ))
        if self.message_count:
            self.start_time = min(self.start_time, self.chunk_start)
        else:
            self.start_time = self.chunk_start
        self.end_time = max(self.end_time, self.chunk_end)
        self.message_count += self.chunk_messages
        self.chunk.clear()
        self.chunk_messages = 0
        self.chunk_start = self.chunk_end = 0
        self.chunk_index.clear()

    def finish(self) -> None:
        """The last chunk, the data end, the summary (schemas, channels, statistics, indexes), the footer."""
        self._finish_chunk()
        self._write(DataEnd(0))
        summary_start = self.position + len(self.out)
        builder = RecordBuilder()
        offsets = []
        groups = [
            (Opcode.SCHEMA, self.schemas),
            (Opcode.CHANNEL, self.channels),
            (Opcode.STATISTICS, [Statistics(
                attachment_count=0, channel_count=len(self.channels), channel_message_counts=self.message_counts,
                chunk_count=self.chunk_count, message_count=self.message_count, message_end_time=self.end_time,
                message_start_time=self.start_time, metadata_count=len(self.metadata_indexes),
                schema_count=len(self.schemas),
            )]),
            (Opcode.CHUNK_INDEX, self.chunk_indexes),
            (Opcode.ATTACHMENT_INDEX, []),
            (Opcode.METADATA_INDEX, self.metadata_indexes),
        ]
        for opcode, records in groups:
            group_start = builder.count
            for record in records:
                record.write(builder)
            offsets.append(SummaryOffset(group_opcode=opcode, group_start=summary_start + group_start,
                                         group_length=builder.count - group_start))
        summary_offset_start = summary_start + builder.count
        for offset in offsets:
            offset.write(builder)
        summary = builder.end()
        crc = zlib.crc32(summary)
        crc = zlib.crc32(struct.pack("<BQQQ", Opcode.FOOTER, 8 + 8 + 4, summary_start, summary_offset_start), crc)
        self.out += summary
        self._write(Footer(summary_start=summary_start, summary_offset_start=summary_offset_start, summary_crc=crc))
        self.out += MCAP0_MAGIC


class _Session:
    """One session's MCAP: its metadata, a channel per sensor on its first reading, `/alerts`."""

    def __init__(self, session: RecordingSession, head: dict, sensors: dict[int, str], first: dict[int, object]) -> None:
        self.session = session
        self.sensors = sensors
        self.first = first  # each sensor's first reading's value (PostgreSQL)
        self.file = McapFile()
        self.channels: dict[int, int] = {}
        self.alerts: int | None = None
        self.file.start(profile=PROFILE, library="robotest")
        self.file.add_metadata("session", _metadata(head["session"]))
        self.file.add_metadata("verdict", {"verdict": head["verdict"] or "", "status": session.status})
        self.file.add_metadata("rig", _metadata(head["rig"]))
        self.file.add_metadata("rules", {"rules": _dumps(head["rules"]), "rates": _dumps(head["rates"])})

    def channel(self, sensor_id: int, value) -> int:
        """The sensor's channel, registered with the schema of `value` (its first reading's)."""
        name = self.sensors[sensor_id]
        rig = self.session.rig.name
        schema = self.file.register_schema(
            name=f"robotest.{rig}.{name}", encoding="jsonschema", data=_dumps(sensor_schema(name, value)).encode()
        )
        channel = self.channels[sensor_id] = self.file.register_channel(
            topic=f"/{rig}/{name}", message_encoding="json", schema_id=schema
        )
        return channel

    def reading(self, sensor_id: int, seq: int, time_ns: int, value) -> None:
        channel = self.channels.get(sensor_id) or self.channel(sensor_id, value)
        self.file.add_message(channel, seq & 0xFFFFFFFF, time_ns, message_data(value))

    def result(self, result: dict) -> None:
        """A validation result on `/alerts` (registered with the first): log_time = first violation, publish_time = last."""
        if self.alerts is None:
            schema = self.file.register_schema(
                name="robotest.ValidationResult", encoding="jsonschema", data=_dumps(ALERT_SCHEMA).encode()
            )
            self.alerts = self.file.register_channel(topic="/alerts", message_encoding="json", schema_id=schema)
        record = result_record(result)
        self.file.add_message(self.alerts, record["id"] & 0xFFFFFFFF, _ns(result["first_timestamp"]),
                              _dumps(record).encode(), publish_time=_ns(result["last_timestamp"]))


# The readings as binary COPY rows, each a block of readings in time order (chunks.BLOCK_READINGS; one
# string_agg of the sorted rows per slice of time): psycopg hands Python a row at a time, at
# 0.5 µs or more each. A block is two fields: each reading's sensor, seq mod 2**32 and time in
# whole microseconds (exact: seconds and microseconds apart, never one float) as big-endian int8,
# and the messages' JSON parted by \x02, written by the database as the Python encoder writes
# it, byte for byte: a number as csv.NUMBER_SQL writes it, an object with compact separators (as
# in the long CSV) when its numbers are their reprs already. A text outside printable ASCII
# (Python escapes it as \uXXXX), a list, and an object with a number that might not be its repr
# (digits ending in 0 but for `.0`, 16 digits or more, below 1e-4: every other decimal of 15
# digits or fewer is the shortest that reads back as its float; an integer ending in 0 is
# caught too, harmlessly) come as their jsonb text after a \x01, and Python writes them.
_DATA_SQL = r"""CASE jsonb_typeof(r.value)
        WHEN 'number' THEN '{{"value":' || {number} || '}}'
        WHEN 'object' THEN CASE WHEN r.value::text ~ '[^ -~]|[0-9]0[],}} ]|0\.0000|[0-9.]{{17}}'
                                  THEN E'\x01' || r.value::text
                                ELSE {compact} END
        WHEN 'array' THEN E'\x01' || r.value::text
        ELSE CASE WHEN r.value::text ~ '[^ -~]' THEN E'\x01' || r.value::text
                  ELSE '{{"value":' || r.value::text || '}}' END
      END"""
_HEAD_SQL = "int8send(r.sensor_id) || int8send(r.seq %% 4294967296) || int8send({micros})"
# Each sensor's first reading, for its schema: one index probe per sensor.
_FIRST_SQL = """
SELECT s.id, r.value::text FROM {sensor} s
CROSS JOIN LATERAL (
  SELECT value FROM {reading} WHERE session_id = %(session)s AND sensor_id = s.id ORDER BY timestamp, id LIMIT 1
) r
WHERE s.rig_id = %(rig)s
"""


def _encode_copy(mcap: _Session, rows: Iterable[bytes]) -> Iterator[bytes]:
    """The MCAP bytes of the COPY's rows (blocks of readings), the file's ~64 KB at a time."""
    file = mcap.file
    for sensors, sequences, micros, datas in _blocks(rows):
        times = list(map(operator.mul, micros, itertools.repeat(1000)))
        new = set(sensors).difference(mcap.channels)
        # A sensor's channel is registered just before its first message, as the Writer's was.
        cuts = sorted(sensors.index(sensor_id) for sensor_id in new) + [len(sensors)]
        done = 0
        for cut in cuts:
            if cut > done:
                channels = list(map(mcap.channels.__getitem__, sensors[done:cut]))
                file.add_in_time_order(channels, sequences[done:cut], times[done:cut], datas[done:cut])
            if cut < len(sensors):
                mcap.channel(sensors[cut], mcap.first[sensors[cut]])
            done = cut
        if len(file.out) >= CHUNK_BYTES:
            yield file.take()


def _blocks(rows: Iterable[bytes]) -> Iterator[tuple[list[int], array.array, array.array, list[bytes]]]:
    """Each COPY row (two fields: the block's big-endian int8 triples and its messages) as columns."""
    for head, text in binary_fields(rows):
        heads = array.array("q", head)
        if sys.byteorder == "little":
            heads.byteswap()
        datas = text.split(b"\x02")  # JSON text holds no control character: \x02 parts it, \x01 marks the odd
        if b"\x01" in text:
            datas = [message_data(json.loads(d[1:])) if d[:1] == b"\x01" else d for d in datas]
        yield heads[0::3].tolist(), heads[1::3], heads[2::3], datas


def _tail(mcap: _Session) -> Iterator[bytes]:
    for result in results_values(mcap.session).iterator(chunk_size=1000):
        mcap.result(result)
        if len(mcap.file.out) >= CHUNK_BYTES:
            yield mcap.file.take()
    mcap.file.finish()
    yield mcap.file.take()


def _first_values(session: RecordingSession) -> dict[int, object]:
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_FIRST_SQL.format(sensor=Sensor._meta.db_table, reading=Reading._meta.db_table),
                       {"session": session.pk, "rig": session.rig_id})
        return {sensor_id: json.loads(value) for sensor_id, value in cursor.fetchall()}


def _settle(future: concurrent.futures.Future, task: asyncio.Future) -> None:
    """Hand an asyncio task's outcome to a thread waiting on `future`."""
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())


async def _pieces(session: RecordingSession) -> AsyncIterator[bytes]:
    sensors = {pk: name async for pk, name in Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name")}
    if connection.vendor == "postgresql":
        first = await sync_to_async(_first_values)(session)
        # The head (its statistics: a second or two at a million readings) is read beside the COPY,
        # which sorts meanwhile; the COPY's thread waits for it before it writes the first byte.
        head: concurrent.futures.Future = concurrent.futures.Future()
        task = asyncio.ensure_future(sync_to_async(_head)(session, {}))
        task.add_done_callback(lambda done: _settle(head, done))
        made: list[_Session] = []

        def encode(rows: Iterable[bytes]) -> Iterator[bytes]:
            mcap = _Session(session, head.result(), sensors, first)
            made.append(mcap)
            yield mcap.file.take()
            yield from _encode_copy(mcap, rows)

        data = _DATA_SQL.format(number=NUMBER_SQL.replace("{j}", "r.value"), compact=COMPACT_SQL)
        sql = blocks_copy(reading=Reading._meta.db_table,
                          aggregates="string_agg(b.head, ''::bytea), string_agg(b.data, E'\\x02')",
                          columns=f"{_HEAD_SQL.format(micros=MICROS_SQL)} AS head, {data} AS data")
        stream = CopyOut(sql, {"session": session.pk, "width": block_width(session)}, setup=COPY_SETUP,
                         encode=encode, tail=lambda: _tail(made[0]))
        try:
            async for chunk in stream:
                yield chunk
        finally:
            task.cancel()
        return
    mcap = _Session(session, await sync_to_async(_head)(session, {}), sensors, {})
    async for reading in readings_in_order(session, with_seq=True):
        mcap.reading(reading["sensor_id"], reading["seq"], _ns(reading["timestamp"]), reading["value"])
        if len(mcap.file.out) >= CHUNK_BYTES:
            yield mcap.file.take()
    async for result in results_in_order(session):
        mcap.result(result)
        if len(mcap.file.out) >= CHUNK_BYTES:
            yield mcap.file.take()
    mcap.file.finish()
    yield mcap.file.take()


def mcap_stream(session: RecordingSession) -> AsyncIterator[bytes]:
    """The session as an MCAP file, in chunks of ~64 KB or more (a finished MCAP chunk at a time)."""
    return rechunk(_pieces(session))
