"""Bulk writes of readings: binary COPY on PostgreSQL, one executemany on SQLite.

Rows are `(session_id, sensor_id, seq, timestamp_us, value)`, with `timestamp_us` integer Unix
microseconds and `value` a number or a JSON-safe object. Callers hold the transaction.
"""

import json
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.db import connection

from .models import Reading

Row = tuple[int, int, int, int, object]

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
        text = value_json(value).encode()
        append(head(5, 8, session_id, 8, sensor_id, 8, seq, 8, ts_us - _PG_EPOCH_US, len(text) + 1))
        append(b"\x01")
        append(text)
    parts.append(_COPY_TRAILER)
    sql = _COPY_SQL.format(table=Reading._meta.db_table)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql) as copy:
            copy.write(b"".join(parts))


def _insert_many(rows: Sequence[Row]) -> None:
    # Django's SQLite backend stores naive UTC text ("YYYY-MM-DD HH:MM:SS.ffffff") and JSON text.
    params = [
        (session_id, sensor_id, seq, str(_EPOCH + timedelta(microseconds=ts_us)), value_json(value))
        for session_id, sensor_id, seq, ts_us, value in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_SQLITE_SQL.format(table=Reading._meta.db_table), params)


def to_unix(dt: datetime) -> float:
    """A stored timestamp as Unix seconds, the JSON form (REST, WebSocket)."""
    return dt.timestamp()


def from_unix(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
