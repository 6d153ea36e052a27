"""A session's readings as CSV: long (one row per reading, the seed's columns) or wide.

On PostgreSQL the database writes the CSV itself (`COPY (SELECT …) TO STDOUT`, several times the
rows/s of Python's csv writer), and its text is the Python writer's byte for byte (SQLite keeps
the Python writer). Long: two cases stay equal only as parsed, a number whose repr has an
exponent (`5e-05`, which jsonb writes `0.00005`) and non-ASCII text inside an object value
(UTF-8 from the database, `\\uXXXX` from Python). Wide: byte for byte, exponents included; a
session whose cells would need what SQL does not write as Python does (a list or nested object
in a cell, a carriage return in a text) is written by the Python writer instead.
"""

import csv
import io
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import nullcontext
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import connection, transaction

from sensors.models import Sensor
from sessions.exports.chunks import MICROS_SQL, CopyOut, binary_fields, block_width, blocks_copy, rechunk
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
# to_char with or without .US (one is evaluated) costs less than a replace() of its text.
_TIMESTAMP_SQL = (
    "CASE WHEN date_trunc('second', {t}) = {t} THEN date_part('epoch', {t})::text || '.0' "
    "ELSE date_part('epoch', {t})::text END"
)
_DATETIME_SQL = """CASE WHEN date_trunc('second', {t}) = {t} THEN to_char({t}, 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
         ELSE to_char({t}, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') END"""
_SESSION_TIME_SQL = "(extract(epoch FROM {t}) - %(started)s::numeric)::text"
# Each line written whole, with the quoting COPY's CSV gave it (a field with a comma or a quote in
# quotes, its quotes doubled): a number never needs it, an object or a text always (but `{}`).
# The lines of a slice of time are one binary COPY row (chunks.BLOCK_READINGS).
_LINE_SQL = r"""{timestamp} || CASE r.sensor_id {sensor_types} END || CASE jsonb_typeof(r.value)
        WHEN 'number' THEN r.value::text
        WHEN 'object' THEN CASE
          WHEN r.value = '{{}}' THEN '{{}}'
          ELSE '"' || replace({compact}, '"', '""') || '"' END
        WHEN 'string' THEN '"' || replace(r.value::text, '"', '""') || '"'
        WHEN 'array' THEN CASE WHEN r.value::text ~ '[,"]' THEN '"' || replace(r.value::text, '"', '""') || '"'
                               ELSE r.value::text END
        ELSE r.value::text END
      || ',' || {datetime} || ',' || {session_time} || ',' || r.session_id
      || CASE r.sensor_id {sensor_names} END || E'\n'"""
# An object's jsonb text with Python's compact separators (see `value` above).
COMPACT_SQL = r"""CASE WHEN r.value::text !~ '\\|, [^"]|, "[],:}]' THEN replace(replace(r.value::text, '": ', '":'), ', "', ',"')
          ELSE regexp_replace(r.value::text, '("(?:[^"\\]|\\.)*")|([:,]) ', '\1\2', 'g') END"""
# The export's own transaction (chunks.CopyOut): floats in their shortest exact digits, times in
# UTC; the session's rows through its index, never a scan of the whole table (the planner's
# choice for a big session, 1.7 s of 2.8 at 1,000,000 readings of 10 million); the sort in
# memory (4 MB spilled 130 MB to disk); no JIT (its compilation delayed a small export's first byte).
COPY_SETUP = (
    "SET LOCAL extra_float_digits = 1",
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL enable_seqscan = off",
    "SET LOCAL work_mem = '64MB'",
    "SET LOCAL jit = off",
)


def csv_stream(session: RecordingSession, *, layout: str = "long"):
    """The session's readings as CSV chunks, in (timestamp, id) order; `layout` long or wide."""
    if layout == "wide":
        return _wide(session)
    if connection.vendor == "postgresql":
        return csv_copy(session)
    return rechunk(_long_rows(session))


def csv_copy(session: RecordingSession) -> CopyOut:
    """The long CSV written by PostgreSQL itself."""
    sensors = list(Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name", "sensor_type"))
    line = _LINE_SQL.format(
        compact=COMPACT_SQL,
        sensor_names=_case(sensors, 1, prefix=",", otherwise=","),
        sensor_types=_case(sensors, 2, prefix=",", suffix=",", otherwise=",,"),
        **_time_columns("r.timestamp"),
    )
    sql = blocks_copy(reading=Reading._meta.db_table, aggregates="string_agg(b.line, '')", columns=f"{line} AS line")
    header = (",".join(COLUMNS) + "\n").encode()
    return CopyOut(sql, {**_params(session), "width": block_width(session)}, setup=COPY_SETUP,
                   encode=lambda rows: itertools.chain([header], (fields[0] for fields in binary_fields(rows))))


def _time_columns(column: str, *, named: bool = False) -> dict[str, str]:
    columns = {
        "timestamp": _TIMESTAMP_SQL.format(t=column),
        "datetime": _DATETIME_SQL.format(t=column),
        "session_time": _SESSION_TIME_SQL.format(t=column),
    }
    return {name: f'{sql} AS "{name}"' if named else sql for name, sql in columns.items()}


def _params(session: RecordingSession) -> dict:
    started = session.started_at
    return {"session": session.pk, "started": f"{int(started.timestamp())}.{started.microsecond:06d}"}


def _case(sensors: list[tuple], column: int, *, prefix: str = "", suffix: str = "", otherwise: str | None = None) -> str:
    """`WHEN <id> THEN '<text>' … [ELSE '<otherwise>']`: ids are integers, texts slugs or short names
    as COPY's CSV quotes them, as literals."""
    whens = [f"WHEN {int(row[0])} THEN {_literal(prefix + _csv_field(row[column]) + suffix)}" for row in sensors]
    if otherwise is not None:  # a sensor not of the rig: empty fields, as COPY wrote its NULL
        whens.append(f"ELSE {_literal(otherwise)}")
    return " ".join(whens) if whens else "WHEN NULL THEN NULL"


def _csv_field(text: str) -> str:
    """A text field as PostgreSQL's COPY (FORMAT csv) writes it: quoted if it holds a comma, a quote,
    a line break, or is empty (the NULL's text)."""
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


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


async def wide_columns(session: RecordingSession) -> tuple[list[str], dict[int, str | dict[str, str]], bool]:
    """The wide layout's sensor columns, sorted, for each sensor id its column or {field: column}, and
    whether a cell holds what only the Python writer writes as it should (a list, a nested object,
    a text with a carriage return: `_WIDE_SQL` leaves those out).

    A sensor is an object sensor when it has object readings: one column per field seen in the
    session (one pass over its readings, in SQL, off the event loop and off the thread of the sync
    views), and a number it sent among its objects is left out; a sensor without readings keeps
    one empty column.
    """
    fields, python_only = await sync_to_async(_object_fields, thread_sensitive=False)(session.pk)
    columns: dict[int, str | dict[str, str]] = {}
    async for pk, name in Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name"):
        keys = fields.get(pk)
        columns[pk] = {key: f"{name}.{key}" for key in sorted(keys)} if keys else name
    names = sorted(c for column in columns.values() for c in (column.values() if isinstance(column, dict) else [column]))
    return names, columns, python_only


# Object fields, and on PostgreSQL the readings the wide COPY cannot write (a NULL key: a list, a
# text with a carriage return, or an empty object, which makes a sensor of them a one-column one).
_FIELDS_SQL = {
    "postgresql": r"""
        SELECT r.sensor_id, k.key, bool_or(k.key IS NULL OR jsonb_typeof(k.value) IN ('object', 'array')
                                           OR (jsonb_typeof(k.value) = 'string' AND strpos(k.value #>> '{{}}', E'\r') > 0))
        FROM {reading} r
        LEFT JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(r.value) = 'object' THEN r.value END) k ON true
        WHERE r.session_id = %s AND (jsonb_typeof(r.value) IN ('object', 'array')
                                     OR (jsonb_typeof(r.value) = 'string' AND strpos(r.value #>> '{{}}', E'\r') > 0))
        GROUP BY 1, 2
    """,
    "sqlite": (
        "SELECT DISTINCT r.sensor_id, j.key, 0 FROM {reading} r, json_each(r.value) j "
        "WHERE r.session_id = %s AND json_type(r.value) = 'object'"
    ),
}


def _object_fields(session_id: int) -> tuple[dict[int, set[str]], bool]:
    fields: dict[int, set[str]] = {}
    python_only = False
    sql = _FIELDS_SQL[connection.vendor].format(reading=Reading._meta.db_table)
    try:
        # On PostgreSQL in a transaction of its own for COPY_SETUP's SET LOCALs (on SQLite a
        # transaction is IMMEDIATE: it would hold the writers off for nothing).
        with transaction.atomic() if connection.vendor == "postgresql" else nullcontext(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                for statement in COPY_SETUP:
                    cursor.execute(statement)
            cursor.execute(sql, [session_id])
            for sensor_id, key, odd in cursor.fetchall():
                if key is not None:
                    fields.setdefault(sensor_id, set()).add(key)
                python_only = python_only or bool(odd)
    finally:
        connection.close()  # a thread of asgiref's pool, not Django's: nothing else closes its connection
    return fields, python_only


# Python's text of a JSON number `{j}` (what json.loads and then repr() or str() write), from any
# jsonb number, not only the reprs the application stores: an integer (scale 0) as jsonb writes
# it, and so a decimal of at most 15 digits without trailing zeros (but `.0`) from 1e-4 up: no
# other decimal that short reads back as the same float, so it is its repr. Any other through
# float8, whose shortest digits (extra_float_digits = 1) are repr's, with repr's `.0` on a whole
# number, and positional from 1e15 to 1e16 where float8 turns to an exponent one power earlier than
# repr does. Numeric tests first: the float8 text costs twice as much.
_SHORT = " ".join(f"WHEN {scale} THEN 1e{15 - scale}" for scale in range(1, 16))
NUMBER_SQL = r"""CASE WHEN scale(({j})::numeric) = 0 THEN ({j})::text
      WHEN scale(({j})::numeric) <= 15 AND (scale(({j})::numeric) = 1 OR min_scale(({j})::numeric) = scale(({j})::numeric))
           AND abs(({j})::numeric) >= 0.0001 AND abs(({j})::numeric) < CASE scale(({j})::numeric) SHORT END
        THEN ({j})::text
      WHEN abs(({j})::numeric) >= 1e15 AND abs(({j})::numeric) < 1e16
        THEN CASE WHEN ({j})::numeric < 0 THEN '-' ELSE '' END
             || rpad(left(replace(split_part(ltrim(({j})::float8::text, '-'), 'e', 1), '.', ''), 16), 16, '0') || '.'
             || COALESCE(NULLIF(substr(replace(split_part(ltrim(({j})::float8::text, '-'), 'e', 1), '.', ''), 17), ''), '0')
      ELSE regexp_replace(({j})::float8::text, '^(-?[0-9]+)$', '\1.0') END""".replace("SHORT", _SHORT)
# Wide, on PostgreSQL: one row per instant, from one GROUP BY over the session's readings. A
# column's cell is the max() of its sensor's one reading at that instant; where a sensor has
# several at one instant (rare) a subquery takes the latest by id that sets the column, as the
# Python writer's "the later one wins". A cell is Python's csv text of the value: a number as
# above, True/False, null, a text itself (in quotes, its quotes doubled, if it holds a comma, a
# quote or a line feed; an empty one as the NULL, written as nothing).
_CELL_SQL = r"""CASE jsonb_typeof({j})
      WHEN 'number' THEN {number}
      WHEN 'string' THEN CASE WHEN ({j} #>> '{{}}') ~ '[,"\n]' THEN '"' || replace({j} #>> '{{}}', '"', '""') || '"'
                              ELSE NULLIF({j} #>> '{{}}', '') END
      WHEN 'boolean' THEN CASE WHEN ({j})::boolean THEN 'True' ELSE 'False' END
      WHEN 'null' THEN 'null' END"""


def _cell_sql(j: str) -> str:
    return _CELL_SQL.format(j=j, number=NUMBER_SQL.replace("{j}", j))


# The cells and the times are written below the sort (in PostgreSQL's parallel workers, where
# there are any), the GROUP BY only picks them up: written in its aggregates they cost 3 times
# more. Its rows are the lines of the CSV, sent as blocks of a slice of time (chunks.blocks_copy).
_WIDE_SQL = """
COPY (
  SELECT string_agg(w.line, '')
  FROM (
    SELECT s.block, max(s."timestamp") || ',' || max(s.datetime) || ',' || max(s.session_time){cells} || E'\\n' AS line
    FROM (
      SELECT {micros} / %(width)s AS block, r.timestamp AS at, r.sensor_id, {timestamp}, {datetime}, {session_time}{values}
      FROM {reading} r
      WHERE r.session_id = %(session)s
      ORDER BY 1, r.timestamp
      OFFSET 0
    ) s
    GROUP BY s.block, s.at
    ORDER BY s.block, s.at
    OFFSET 0
  ) w
  GROUP BY w.block
  ORDER BY w.block
) TO STDOUT WITH (FORMAT binary)
"""


def wide_copy(session: RecordingSession, names: list[str], columns: dict[int, str | dict[str, str]]) -> CopyOut:
    """The wide CSV's rows (not its header) written by PostgreSQL itself."""
    reading = Reading._meta.db_table
    sources: dict[str, tuple[int, str | None]] = {}
    for sensor_id, column in columns.items():
        for field, name in (column.items() if isinstance(column, dict) else [(None, column)]):
            sources[name] = (int(sensor_id), field)
    values, cells = [], []
    for k, name in enumerate(names):
        sensor_id, field = sources[name]
        value = "r.value" if field is None else f"(r.value -> {_literal(field)})"
        values.append(f", CASE WHEN r.sensor_id = {sensor_id} THEN {_cell_sql(value)} END AS c{k}")
        latest = "r2.value" if field is None else f"(r2.value -> {_literal(field)})"
        sets = "" if field is None else f" AND {latest} IS NOT NULL"
        # Several readings of the sensor at this instant: the latest (by id) that sets the column.
        cells.append(
            f" || ',' || COALESCE(CASE WHEN count(*) FILTER (WHERE s.sensor_id = {sensor_id}) > 1 THEN (SELECT "
            f"{_cell_sql(latest)} FROM {reading} r2 WHERE r2.session_id = %(session)s "
            f"AND r2.sensor_id = {sensor_id} AND r2.timestamp = s.at{sets} ORDER BY r2.id DESC LIMIT 1) "
            f"ELSE max(s.c{k}) END, '')"
        )
    sql = _WIDE_SQL.format(
        reading=reading, micros=MICROS_SQL, cells="".join(cells), values="".join(values),
        **_time_columns("r.timestamp", named=True),
    )
    return CopyOut(sql, {**_params(session), "width": block_width(session)}, setup=COPY_SETUP,
                   encode=lambda rows: (fields[0] for fields in binary_fields(rows)))


def _cell(value) -> object:
    if isinstance(value, int | float | str):
        return value
    return _compact(value)


async def _wide(session: RecordingSession) -> AsyncIterator[bytes]:
    names, columns, python_only = await wide_columns(session)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = _line(writer, buffer, WIDE_HEAD + names)
    if connection.vendor == "postgresql" and not python_only:
        yield header
        async for chunk in wide_copy(session, names, columns):
            yield chunk
        return
    async for chunk in rechunk(_wide_rows(session, header, names, columns)):
        yield chunk


async def _wide_rows(session: RecordingSession, header: bytes, names: list[str], columns: dict) -> AsyncIterator[bytes]:
    position = {name: i for i, name in enumerate(names, start=len(WIDE_HEAD))}
    started = session.started_at.timestamp()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    yield header
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
