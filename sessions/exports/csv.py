"""A session's readings as CSV: long (one row per reading, the seed's columns) or wide.

Long, on PostgreSQL, the database writes the CSV itself (`COPY (SELECT …) TO STDOUT`, several
times the rows/s of Python's csv writer), and its text is the Python writer's byte for byte
(SQLite keeps the Python writer). Two cases stay equal only as parsed: a number whose repr has
an exponent (`5e-05`, which jsonb writes `0.00005`) and non-ASCII text inside an object value
(UTF-8 from the database, `\\uXXXX` from Python). The wide layout is written in Python on both.
"""

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import connection

from sensors.models import Sensor
from sessions.exports.chunks import CopyOut, rechunk
from sessions.models import Reading, RecordingSession

COLUMNS = ["timestamp", "sensor_type", "value", "datetime", "session_time", "session_id", "sensor"]
WIDE_HEAD = ["timestamp", "datetime", "session_time"]
FETCH_ROWS = 2000
_compact = json.JSONEncoder(separators=(",", ":")).encode

# `datetime`: isoformat() in UTC, whose microseconds are left out when they are zero.
# `timestamp`: Python's repr of the Unix float. date_part() divides the integer microseconds by
# 1e6 in float8 (as datetime.timestamp() does) and float8 prints its shortest exact digits (as
# repr does, with extra_float_digits = 1), without repr's `.0` on a whole second.
# `session_time`: Python formats the float difference to 6 places, which is always the exact
# difference in microseconds (both floats are within 2.4e-7 s of theirs): numeric, scale 6.
# `value`: jsonb prints `{"a": 1, "b": [1, 2]}`, Python's writer `{"a":1,"b":[1,2]}` (same key
# order). Outside strings the jsonb text separates with `": ` and `, "` only in a flat object of
# strings and numbers whose strings hold no backslash (no escaped quote) and do not end in `, `:
# two plain replace()s then. Anything else (the regex test) goes through a regex that skips
# strings whole; it is exact too, at twice the cost, and rare.
# Each CASE evaluates one branch: a row formats its time and its value once (no LATERAL, which
# the planner would inline, repeating each reference). Written flat like this the formatting
# runs in PostgreSQL's parallel workers, below the Gather Merge of the sort, on every core.
# Sensor names and types come as literals (a CASE): no join.
_COPY_SQL = r"""
COPY (
  SELECT
    CASE WHEN date_trunc('second', r.timestamp) = r.timestamp THEN date_part('epoch', r.timestamp)::text || '.0'
         ELSE date_part('epoch', r.timestamp)::text END AS "timestamp",
    CASE r.sensor_id {sensor_types} END AS sensor_type,
    CASE WHEN jsonb_typeof(r.value) <> 'object' THEN r.value::text
         WHEN r.value::text !~ '\\|, [^"]|, "[],:}}]' THEN replace(replace(r.value::text, '": ', '":'), ', "', ',"')
         ELSE regexp_replace(r.value::text, '("(?:[^"\\]|\\.)*")|([:,]) ', '\1\2', 'g') END AS value,
    replace(to_char(r.timestamp, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), '.000000+', '+') AS datetime,
    (extract(epoch FROM r.timestamp) - %(started)s::numeric)::text AS session_time,
    r.session_id,
    CASE r.sensor_id {sensor_names} END AS sensor
  FROM {reading} r
  WHERE r.session_id = %(session)s
  ORDER BY r.timestamp, r.id
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def csv_stream(session: RecordingSession, *, layout: str = "long"):
    """The session's readings as CSV chunks, in (timestamp, id) order; `layout` long or wide."""
    if layout == "wide":
        return rechunk(_wide_rows(session))
    if connection.vendor == "postgresql":
        return csv_copy(session)
    return rechunk(_long_rows(session))


def csv_copy(session: RecordingSession) -> CopyOut:
    """The long CSV written by PostgreSQL itself."""
    sensors = list(Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name", "sensor_type"))
    sql = _COPY_SQL.format(
        reading=Reading._meta.db_table,
        sensor_names=_case(sensors, 1),
        sensor_types=_case(sensors, 2),
    )
    started = session.started_at
    params = {"session": session.pk, "started": f"{int(started.timestamp())}.{started.microsecond:06d}"}
    # The connection is the export's own: its settings may be set for the text it writes.
    return CopyOut(sql, params, setup=("SET extra_float_digits = 1", "SET TimeZone = 'UTC'"))


def _case(sensors: list[tuple], column: int) -> str:
    """`WHEN <id> THEN '<text>' …`: ids are integers, texts slugs or short names, quoted as literals."""
    if not sensors:
        return "WHEN NULL THEN NULL"
    return " ".join(f"WHEN {int(row[0])} THEN {_literal(row[column])}" for row in sensors)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _line(writer, buffer: io.StringIO, row: list) -> bytes:
    writer.writerow(row)
    line = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return line.encode()


async def _sensors(session: RecordingSession) -> dict[int, tuple[str, str]]:
    return {
        pk: (name, kind)
        async for pk, name, kind in Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name", "sensor_type")
    }


def _times(ts: datetime, started: float) -> tuple[float, str, str]:
    unix = ts.timestamp()
    return unix, ts.astimezone(UTC).isoformat(), f"{unix - started:.6f}"


def readings_in_order(session: RecordingSession, *, with_seq: bool = False):
    """The session's readings (values() rows) in (timestamp, id) order, read in batches."""
    fields = ("timestamp", "value", "sensor_id", "seq") if with_seq else ("timestamp", "value", "sensor_id")
    return (
        Reading.objects.filter(session_id=session.pk)
        .order_by("timestamp", "id")
        .values(*fields)
        .aiterator(chunk_size=FETCH_ROWS)
    )


async def _long_rows(session: RecordingSession) -> AsyncIterator[bytes]:
    sensors = await _sensors(session)
    started = session.started_at.timestamp()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    yield _line(writer, buffer, COLUMNS)
    async for row in readings_in_order(session):
        unix, iso, since = _times(row["timestamp"], started)
        value = row["value"]
        name, kind = sensors[row["sensor_id"]]
        yield _line(
            writer,
            buffer,
            [repr(unix), kind, value if isinstance(value, int | float) else _compact(value), iso, since, session.pk, name],
        )


async def wide_columns(session: RecordingSession) -> tuple[list[str], dict[int, str | dict[str, str]]]:
    """The wide layout's sensor columns, sorted, and for each sensor id its column or {field: column}.

    A sensor is an object sensor when it has object readings: one column per field seen in the
    session (one pass over its readings, in SQL), and a number it sent among its objects is left
    out; a sensor without readings keeps one empty column.
    """
    fields = await sync_to_async(_object_fields)(session.pk)
    columns: dict[int, str | dict[str, str]] = {}
    async for pk, name in Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name"):
        keys = fields.get(pk)
        columns[pk] = {key: f"{name}.{key}" for key in sorted(keys)} if keys else name
    names = sorted(c for column in columns.values() for c in (column.values() if isinstance(column, dict) else [column]))
    return names, columns


_FIELDS_SQL = {
    "postgresql": (
        "SELECT DISTINCT r.sensor_id, k FROM {reading} r CROSS JOIN LATERAL jsonb_object_keys(r.value) k "
        "WHERE r.session_id = %s AND jsonb_typeof(r.value) = 'object'"
    ),
    "sqlite": (
        "SELECT DISTINCT r.sensor_id, j.key FROM {reading} r, json_each(r.value) j "
        "WHERE r.session_id = %s AND json_type(r.value) = 'object'"
    ),
}


def _object_fields(session_id: int) -> dict[int, set[str]]:
    fields: dict[int, set[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_FIELDS_SQL[connection.vendor].format(reading=Reading._meta.db_table), [session_id])
        for sensor_id, key in cursor.fetchall():
            fields.setdefault(sensor_id, set()).add(key)
    return fields


def _cell(value) -> object:
    if isinstance(value, int | float | str):
        return value
    return _compact(value)


async def _wide_rows(session: RecordingSession) -> AsyncIterator[bytes]:
    names, columns = await wide_columns(session)
    position = {name: i for i, name in enumerate(names, start=len(WIDE_HEAD))}
    started = session.started_at.timestamp()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    yield _line(writer, buffer, WIDE_HEAD + names)
    current = None
    row: list = []
    async for reading in readings_in_order(session):
        ts = reading["timestamp"]
        if ts != current:
            if current is not None:
                yield _line(writer, buffer, row)
            current = ts
            unix, iso, since = _times(ts, started)
            row = [repr(unix), iso, since] + [""] * len(names)
        column = columns[reading["sensor_id"]]
        value = reading["value"]
        # Two readings of one sensor at one instant: the later one (by id) wins.
        if isinstance(column, dict):
            if isinstance(value, dict):
                for key, field_value in value.items():
                    row[position[column[key]]] = _cell(field_value)
        else:
            row[position[column]] = _cell(value)
    if current is not None:
        yield _line(writer, buffer, row)
