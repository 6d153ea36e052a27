"""Bulk writes of readings: binary COPY on PostgreSQL, one executemany on SQLite.

Rows are `(session_id, sensor_id, seq, timestamp_us, value_json)`, with `timestamp_us` integer
Unix microseconds and `value_json` the value's JSON text (`value_json()`). Callers hold the
transaction.
"""

import json
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.db import connection

from sessions.models import Reading

Row = tuple[int, int, int, int, str]

# PostgreSQL's binary timestamps count microseconds from 2000-01-01.
_PG_EPOCH_US = 946_684_800 * 1_000_000
_COPY_SQL = "COPY {table} (session_id, sensor_id, seq, timestamp, value) FROM STDIN (FORMAT BINARY)"
_SQLITE_SQL = "INSERT INTO {table} (session_id, sensor_id, seq, timestamp, value) VALUES (%s, %s, %s, %s, %s)"
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
# Five fields: three int8, a timestamptz, then the jsonb's length; jsonb's binary form is a
# version byte (1) before the JSON text.
_ROW_HEAD = struct.Struct("!hiqiqiqiqi")
_EPOCH = datetime(1970, 1, 1)
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def value_json(value: object) -> str:
    """JSON text of a reading's value; a float's repr is already its JSON text."""
    if type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a reading's value must be a finite number")
        return repr(value)
    if type(value) is int:
        return str(value)
    return _dumps(value)


def readings_write(rows: Sequence[Row]) -> None:
    """Store rows in one round trip: COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        _copy_binary(rows)
    else:
        _insert_many(rows)


def _copy_binary(rows: Sequence[Row]) -> None:
    head = _ROW_HEAD.pack
    parts = [_COPY_HEADER]
    append = parts.append
    for session_id, sensor_id, seq, ts_us, value in rows:
        text = value.encode()
        append(head(5, 8, session_id, 8, sensor_id, 8, seq, 8, ts_us - _PG_EPOCH_US, len(text) + 1))
        append(b"\x01")
        append(text)
    parts.append(_COPY_TRAILER)
    sql = _COPY_SQL.format(table=Reading._meta.db_table)
    # psycopg's own cursor under Django's: its errors are turned into Django's (DatabaseError and
    # kin) here, as Django does for its own calls, so callers see one family of database errors.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(sql) as copy:
            copy.write(b"".join(parts))


def _insert_many(rows: Sequence[Row]) -> None:
    # Django's SQLite backend stores naive UTC text ("YYYY-MM-DD HH:MM:SS.ffffff") and JSON text.
    params = [
        (session_id, sensor_id, seq, str(_EPOCH + timedelta(microseconds=ts_us)), value)
        for session_id, sensor_id, seq, ts_us, value in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_SQLITE_SQL.format(table=Reading._meta.db_table), params)


def from_unix(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


# --- validation results ----------------------------------------------------------------------
# A spiky signal opens a result every few readings (the seed's force spikes: ~15 % of readings),
# so results are written in bulk too: one INSERT … SELECT FROM unnest(…) RETURNING id on
# PostgreSQL; on SQLite (in-process, no round trips) one statement a row.

ResultRow = tuple  # (sensor_id, rule, status, message, first, last, count, peak, details, is_open)

_RESULT_COLUMNS = "sensor_id, rule, status, message, first_timestamp, last_timestamp, count, peak, details, is_open"
_PG_RESULTS_INSERT = (
    "INSERT INTO {table} (session_id, " + _RESULT_COLUMNS + ", acknowledge_comment) "
    "SELECT %b, u.sensor_id, u.rule, u.status, u.message, u.first_ts, u.last_ts, u.count, u.peak, "
    "u.details::jsonb, u.is_open, '' FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], "
    "%b::timestamptz[], %b::timestamptz[], %b::int[], %b::float8[], %b::text[], %b::bool[]) "
    "WITH ORDINALITY AS u(sensor_id, rule, status, message, first_ts, last_ts, count, peak, details, is_open, n) "
    "ORDER BY u.n RETURNING id"
)
_PG_RESULTS_UPDATE = (
    "UPDATE {table} AS r SET status = u.status, message = u.message, last_timestamp = u.last_ts, "
    "count = u.count, peak = u.peak, details = u.details::jsonb, is_open = u.is_open "
    "FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::timestamptz[], %b::int[], %b::float8[], "
    "%b::text[], %b::bool[]) AS u(id, status, message, last_ts, count, peak, details, is_open) WHERE r.id = u.id"
)
_SQLITE_RESULTS_INSERT = (
    "INSERT INTO {table} (session_id, " + _RESULT_COLUMNS + ", acknowledge_comment) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '') RETURNING id"
)
_SQLITE_RESULTS_UPDATE = (
    "UPDATE {table} SET status = %s, message = %s, last_timestamp = %s, count = %s, peak = %s, "
    "details = %s, is_open = %s WHERE id = %s"
)


def results_insert(session_id: int, rows: Sequence[ResultRow]) -> list[int]:
    """Insert results (timestamps as Unix seconds, details as dicts); their ids, in order."""
    if not rows:
        return []
    from sessions.models import ValidationResult

    table = ValidationResult._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            columns = list(zip(*rows))
            params = [
                session_id, list(columns[0]), list(columns[1]), list(columns[2]), list(columns[3]),
                [from_unix(t) for t in columns[4]], [from_unix(t) for t in columns[5]],
                # float(): psycopg refuses a list that mixes ints and floats (an int brightness peak).
                list(columns[6]), [float(p) for p in columns[7]], [_dumps(d) for d in columns[8]], list(columns[9]),
            ]
            with bound_cursor() as bound, connection.wrap_database_errors:
                bound.execute(_PG_RESULTS_INSERT.format(table=table), params)
                return [row[0] for row in bound.fetchall()]
        sql = _SQLITE_RESULTS_INSERT.format(table=table)
        ids = []
        for sensor_id, rule, status, message, first, last, count, peak, details, is_open in rows:
            cursor.execute(
                sql,
                [session_id, sensor_id, rule, status, message, _sqlite_time(first), _sqlite_time(last), count,
                 float(peak), _dumps(details), is_open],
            )
            ids.append(cursor.fetchone()[0])
        return ids


def results_update(rows: Sequence[tuple]) -> None:
    """Update results: rows of (id, status, message, last, count, peak, details, is_open)."""
    if not rows:
        return
    from sessions.models import ValidationResult

    table = ValidationResult._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            c = list(zip(*rows))
            params = [list(c[0]), list(c[1]), list(c[2]), [from_unix(t) for t in c[3]], list(c[4]),
                      [float(p) for p in c[5]], [_dumps(d) for d in c[6]], list(c[7])]
            with bound_cursor() as bound, connection.wrap_database_errors:
                bound.execute(_PG_RESULTS_UPDATE.format(table=table), params)
            return
        cursor.executemany(
            _SQLITE_RESULTS_UPDATE.format(table=table),
            [(status, message, _sqlite_time(last), count, float(peak), _dumps(details), is_open, pk)
             for pk, status, message, last, count, peak, details, is_open in rows],
        )


def bound_cursor():
    """A cursor that binds parameters server-side, in binary.

    Django's PostgreSQL connection binds client-side: it would quote every array element into
    SQL text in Python, which cost most of the time of a results insert (docs/benchmarks.md).
    """
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _sqlite_time(ts: float) -> str:
    return str(_EPOCH + timedelta(microseconds=round(ts * 1_000_000)))
