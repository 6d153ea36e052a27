"""Bulk writes of readings: binary COPY on PostgreSQL, one executemany on SQLite.

Rows are `(session_id, sensor_id, seq, timestamp_us, value_json)`, with `timestamp_us` integer
Unix microseconds and `value_json` the value's JSON text (`value_json()`). Callers hold the
transaction.
"""

import json
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import connection
from psycopg.copy import QueuedLibpqWriter

from sessions.models import Reading
from sessions.recording import binary

Row = tuple[int, int, int, int, str]

# PostgreSQL's binary timestamps count microseconds from 2000-01-01.
_PG_EPOCH_US = binary.PG_EPOCH_US
_COPY_SQL = "COPY {table} (session_id, sensor_id, seq, timestamp, value) FROM STDIN (FORMAT BINARY)"
_SQLITE_SQL = "INSERT INTO {table} (session_id, sensor_id, seq, timestamp, value) VALUES (%s, %s, %s, %s, %s)"
_COPY_HEADER = binary.COPY_HEADER
_COPY_TRAILER = binary.COPY_TRAILER
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


# One row's fixed part in binary COPY, as a numpy record: the field count, then each field's length
# and value; the last length is the jsonb's, whose version byte (1) ends the record. The JSON
# text follows it.
_ROW_RECORD = np.dtype([
    ("fields", ">i2"), ("session_len", ">i4"), ("session", ">i8"), ("sensor_len", ">i4"), ("sensor", ">i8"),
    ("seq_len", ">i4"), ("seq", ">i8"), ("time_len", ">i4"), ("time", ">i8"), ("value_len", ">i4"), ("version", "u1"),
])


@contextmanager
def readings_streamed(
    *, session_id: int, sensor_ids: np.ndarray, first_seq: int, micros: np.ndarray, texts: list[str],
) -> Iterator[None]:
    """Store a batch given as columns (seqs from `first_seq` on); the with block runs while they go in.

    On PostgreSQL the rows are sent as one binary COPY on entry and the COPY is ended on exit: the
    database inserts them on its core while the block's Python work runs on this one. `texts` are
    the values' JSON (`value_json`), ASCII as the encoder writes it.
    """
    if connection.vendor != "postgresql":
        n = len(texts)
        params = zip([session_id] * n, sensor_ids.tolist(), range(first_seq, first_seq + n), sqlite_times(micros), texts)
        with connection.cursor() as cursor:
            cursor.executemany(_SQLITE_SQL.format(table=Reading._meta.db_table), params)
        yield
        return
    data = _binary_rows(session_id, sensor_ids, first_seq, micros, texts)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        # The rows go out from a thread of psycopg's: more than a socket buffer holds, they would
        # otherwise keep this one waiting on the database before the block's work could start.
        with raw.copy(_COPY_SQL.format(table=Reading._meta.db_table), writer=QueuedLibpqWriter(raw)) as copy:
            copy.write(data)
            yield


def _binary_rows(session_id: int, sensor_ids: np.ndarray, first_seq: int, micros: np.ndarray,
                 texts: list[str]) -> bytes:
    """COPY's binary form of the rows, built as arrays: each record's fixed part, then its text."""
    n = len(texts)
    body, lengths = binary.utf8(texts)
    records = np.empty(n, dtype=_ROW_RECORD)
    records["fields"] = 5
    for name in ("session_len", "sensor_len", "seq_len", "time_len"):
        records[name] = 8
    records["session"] = session_id
    records["sensor"] = sensor_ids
    records["seq"] = np.arange(first_seq, first_seq + n, dtype=np.int64)
    records["time"] = micros - _PG_EPOCH_US
    records["value_len"] = lengths + 1
    records["version"] = 1
    return _COPY_HEADER + binary.interleave(records, body, lengths) + _COPY_TRAILER


def sqlite_times(micros: np.ndarray) -> list[str]:
    """Unix µs as Django's SQLite backend writes times: naive UTC "YYYY-MM-DD HH:MM:SS[.ffffff]"."""
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    text.view(np.uint32).reshape(len(text), -1)[:, 10] = ord(" ")
    out = text.tolist()
    for i in np.flatnonzero(micros % 1_000_000 == 0).tolist():
        out[i] = out[i][:19]  # str(datetime) leaves out a zero fraction
    return out


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
# Many rows a statement: SQLite takes up to 32,766 parameters (11 a row here).
_SQLITE_RESULTS_PER_INSERT = 1000
_SQLITE_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '')"
_SQLITE_RESULTS_INSERT = (
    "INSERT INTO {table} (session_id, " + _RESULT_COLUMNS + ", acknowledge_comment) VALUES {rows} RETURNING id"
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
            c = list(zip(*rows))
            params = [
                session_id, binary.fixed_array(binary.Int8Array, c[0]), binary.text_array(c[1]),
                binary.text_array(c[2]), binary.text_array(c[3]), _times(c[4]), _times(c[5]),
                binary.fixed_array(binary.Int4Array, c[6]), binary.fixed_array(binary.Float8Array, c[7]),
                binary.text_array([_dumps(d) for d in c[8]]), binary.fixed_array(binary.BoolArray, c[9]),
            ]
            with bound_cursor() as bound, connection.wrap_database_errors:
                bound.execute(_PG_RESULTS_INSERT.format(table=table), params)
                return [row[0] for row in bound.fetchall()]
        ids = []
        for start in range(0, len(rows), _SQLITE_RESULTS_PER_INSERT):
            chunk = rows[start:start + _SQLITE_RESULTS_PER_INSERT]
            c = list(zip(*chunk))
            firsts, lasts = sqlite_times(_micros(c[4])), sqlite_times(_micros(c[5]))
            params = []
            for sensor_id, rule, status, message, first, last, count, peak, details, is_open in zip(
                c[0], c[1], c[2], c[3], firsts, lasts, c[6], c[7], c[8], c[9], strict=True
            ):
                params += (session_id, sensor_id, rule, status, message, first, last, count, float(peak),
                           _dumps(details), is_open)
            cursor.execute(_SQLITE_RESULTS_INSERT.format(table=table, rows=", ".join([_SQLITE_ROW] * len(chunk))),
                           params)
            # RETURNING's order is unspecified in SQLite, but the ids of one statement's rows are
            # given in the order of its VALUES (AUTOINCREMENT): ascending is that order.
            ids.extend(sorted(row[0] for row in cursor.fetchall()))
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
            params = [
                binary.fixed_array(binary.Int8Array, c[0]), binary.text_array(c[1]), binary.text_array(c[2]),
                _times(c[3]), binary.fixed_array(binary.Int4Array, c[4]), binary.fixed_array(binary.Float8Array, c[5]),
                binary.text_array([_dumps(d) for d in c[6]]), binary.fixed_array(binary.BoolArray, c[7]),
            ]
            with bound_cursor() as bound, connection.wrap_database_errors:
                bound.execute(_PG_RESULTS_UPDATE.format(table=table), params)
            return
        cursor.executemany(
            _SQLITE_RESULTS_UPDATE.format(table=table),
            [(status, message, _sqlite_time(last), count, float(peak), _dumps(details), is_open, pk)
             for pk, status, message, last, count, peak, details, is_open in rows],
        )


def _micros(seconds: Sequence[float]) -> np.ndarray:
    # Rounded to µs as the readings' timestamps are: a result's first timestamp is its first reading's.
    return np.rint(np.array(seconds, dtype=np.float64) * 1_000_000).astype(np.int64)


def _times(seconds: Sequence[float]) -> binary.ArrayParam:
    return binary.fixed_array(binary.TimestamptzArray, _micros(seconds))


def bound_cursor():
    """A cursor that binds parameters server-side, in binary.

    Django's PostgreSQL connection binds client-side: it would quote every array element into
    SQL text in Python, which cost most of the time of a results insert (docs/benchmarks.md).
    """
    import psycopg

    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    binary.register(cursor)
    return cursor


def _sqlite_time(ts: float) -> str:
    return str(_EPOCH + timedelta(microseconds=round(ts * 1_000_000)))
