"""Bulk writes of readings: binary COPY on PostgreSQL, one executemany on SQLite.

Rows are `(session_id, sensor_id, seq, timestamp_us, value_json)`, with `timestamp_us` integer
Unix microseconds and `value_json` the value's JSON text (`value_json()`). Callers hold the
transaction.
"""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
from django.db import connection
from psycopg.copy import QueuedLibpqWriter

from sessions.models import Reading
from sessions.recording import binary

Row = tuple[int, int, int, int, str]

_COPY_SQL = "COPY {table} (session_id, sensor_id, seq, timestamp, value) FROM STDIN (FORMAT BINARY)"
_SQLITE_SQL = "INSERT INTO {table} (session_id, sensor_id, seq, timestamp, value) VALUES (%s, %s, %s, %s, %s)"
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


def value_texts(values: Sequence) -> list[str]:
    """`value_json` of each value; a batch of floats is checked finite at once, as an array."""
    if set(map(type, values)) == {float}:
        if not np.isfinite(np.array(values, dtype=np.float64)).all():
            raise ValueError("a reading's value must be a finite number")
        return list(map(float.__repr__, values))
    return list(map(value_json, values))


def readings_write(rows: Sequence[Row]) -> None:
    """Store rows of any sessions in one round trip: COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    session_ids, sensor_ids, seqs, micros = (np.array(column, dtype=np.int64) for column in list(zip(*rows))[:4])
    texts = [row[4] for row in rows]
    if connection.vendor != "postgresql":
        _insert_columns(session_ids, sensor_ids, seqs, micros, texts)
        return
    # psycopg's own cursor under Django's: its errors are turned into Django's (DatabaseError and
    # kin) here, as Django does for its own calls, so callers see one family of database errors.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(_COPY_SQL.format(table=Reading._meta.db_table)) as copy:
            copy.write(_binary_rows(session_ids, sensor_ids, seqs, micros, texts))


@contextmanager
def readings_streamed(
    *, session_id: int, sensor_ids: np.ndarray, first_seq: int, micros: np.ndarray, texts: list[str],
) -> Iterator[None]:
    """Store a batch given as columns (seqs from `first_seq` on); the with block runs while they go in.

    On PostgreSQL the rows are sent as one binary COPY on entry and the COPY is ended on exit: the
    database inserts them on its core while the block's Python work runs on this one. `texts` are
    the values' JSON (`value_json`), ASCII as the encoder writes it.
    """
    seqs = np.arange(first_seq, first_seq + len(texts), dtype=np.int64)
    if connection.vendor != "postgresql":
        _insert_columns(session_id, sensor_ids, seqs, micros, texts)
        yield
        return
    data = _binary_rows(session_id, sensor_ids, seqs, micros, texts)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        # The rows go out from a thread of psycopg's: more than a socket buffer holds, they would
        # otherwise keep this one waiting on the database before the block's work could start.
        with raw.copy(_COPY_SQL.format(table=Reading._meta.db_table), writer=QueuedLibpqWriter(raw)) as copy:
            copy.write(data)
            yield


def _binary_rows(session_ids, sensor_ids: np.ndarray, seqs: np.ndarray, micros: np.ndarray, texts: list[str]) -> bytes:
    """Binary COPY of readings (`session_ids` one id or one a row); the value is jsonb, its text last."""
    return binary.copy_rows(
        [("session", ">i8", session_ids), ("sensor", ">i8", sensor_ids), ("seq", ">i8", seqs),
         ("time", ">i8", micros - binary.PG_EPOCH_US)],
        texts, jsonb=True,
    )


def _insert_columns(session_ids, sensor_ids: np.ndarray, seqs: np.ndarray, micros: np.ndarray,
                    texts: list[str]) -> None:
    # Django's SQLite backend stores naive UTC text ("YYYY-MM-DD HH:MM:SS.ffffff") and JSON text.
    sessions = np.broadcast_to(session_ids, len(texts)).tolist()
    params = zip(sessions, sensor_ids.tolist(), seqs.tolist(), sqlite_times(micros), texts)
    with connection.cursor() as cursor:
        cursor.executemany(_SQLITE_SQL.format(table=Reading._meta.db_table), params)


def sqlite_times(micros: np.ndarray) -> list[str]:
    """Unix µs as Django's SQLite backend writes times: naive UTC "YYYY-MM-DD HH:MM:SS[.ffffff]"."""
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    text.view(np.uint32).reshape(len(text), -1)[:, 10] = ord(" ")
    out = text.tolist()
    for i in np.flatnonzero(micros % 1_000_000 == 0).tolist():
        out[i] = out[i][:19]  # str(datetime) leaves out a zero fraction
    return out


def from_unix(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


# --- validation results ----------------------------------------------------------------------
# A spiky signal opens a result every few readings (the seed's force spikes: ~15 % of readings),
# so results are written in bulk too: one INSERT … SELECT FROM unnest(…) RETURNING id on
# PostgreSQL; on SQLite a thousand rows a statement.

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
            firsts, lasts = sqlite_times(unix_micros(c[4])), sqlite_times(unix_micros(c[5]))
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
            [(status, message, last, count, float(peak), _dumps(details), is_open, pk)
             for (pk, status, message, _, count, peak, details, is_open), last
             in zip(rows, sqlite_times(unix_micros([row[3] for row in rows])), strict=True)],
        )


def unix_micros(seconds: Sequence[float]) -> np.ndarray:
    """Unix seconds as the integer µs stored, as round(ts * 1_000_000) (the same product, half to even):
    readings' and results' timestamps alike, so a result's first timestamp is its first reading's."""
    return np.rint(np.array(seconds, dtype=np.float64) * 1_000_000).astype(np.int64)


def _times(seconds: Sequence[float]) -> binary.ArrayParam:
    return binary.fixed_array(binary.TimestamptzArray, unix_micros(seconds))


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

