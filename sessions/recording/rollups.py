"""Per-second rollups of readings (ReadingRollup), kept by the pipeline as it writes.

Every stored batch adds its numbers to one row per (sensor, field, second): count, sum, min, max.
Scalar numbers roll up under field '', and every numeric top-level field of an object value
(booleans are not numbers; field names SQL may not name, see db.FIELD_NAME, are left out) under
its name. The batch is summed here, in Python, while its rows are at hand; the database then
takes one upsert of a few rows per sensor and second instead of a GROUP BY over the batch.

Timestamps are from 1970 on (params.timestamp, ingest), so integer division is a floor.
"""

from collections.abc import Sequence

from django.db import connection

from sessions.models import Reading, ReadingRollup
from sessions.recording.expressions import FIELD_NAME
from sessions.recording.storage import Row, bound_cursor

# (sensor_id, field, second, count, sum, min, max)
RollupRow = tuple[int, str, int, int, float, float, float]

_COLUMNS = '(session_id, sensor_id, field, bucket, "count", "sum", "min", "max")'
_PG_UPSERT = (
    "INSERT INTO {table} AS r " + _COLUMNS + " "
    "SELECT %b, * FROM unnest(%b::bigint[], %b::text[], %b::bigint[], %b::bigint[], %b::float8[], "
    "%b::float8[], %b::float8[]) "
    'ON CONFLICT (session_id, sensor_id, field, bucket) DO UPDATE SET "count" = r."count" + EXCLUDED."count", '
    # float8 + float8 past 1.8e308 is an error in PostgreSQL, and would refuse the batch: such
    # sums (absurd for a sensor, possible from a rig) saturate instead.
    '"sum" = CASE WHEN abs(r."sum") < 1e300 AND abs(EXCLUDED."sum") < 1e300 THEN r."sum" + EXCLUDED."sum" '
    "ELSE GREATEST(LEAST(r.\"sum\"::numeric + EXCLUDED.\"sum\"::numeric, 1.7e308), -1.7e308)::float8 END, "
    '"min" = LEAST(r."min", EXCLUDED."min"), "max" = GREATEST(r."max", EXCLUDED."max")'
)
_SQLITE_UPSERT = (
    "INSERT INTO {table} " + _COLUMNS + " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    'ON CONFLICT (session_id, sensor_id, field, bucket) DO UPDATE SET "count" = "count" + excluded."count", '
    '"sum" = "sum" + excluded."sum", "min" = min("min", excluded."min"), "max" = max("max", excluded."max")'
)

# Field names already checked against FIELD_NAME (a regex match for every field of every reading
# costs too much); bounded, since a rig may send any keys.
_field_ok: dict[str, bool] = {}
_FIELD_CACHE_MAX = 10_000


def rollup_rows(rows: Sequence[Row], items: Sequence[tuple]) -> list[RollupRow]:
    """Sum a batch (storage rows beside the pipeline items they came from) into one row per sensor, field and second."""
    # Inlined on purpose: this runs for every reading (and every field of an object) stored.
    acc: dict[tuple[int, str, int], list] = {}
    get = acc.get
    # Objects: their fields' slots under one (sensor, second) key, one lookup a field.
    by_fields: dict[tuple[int, int], dict[str, list]] = {}
    get_fields = by_fields.get
    field_ok = _field_ok
    for row, item in zip(rows, items, strict=True):
        value = item[2]
        kind = type(value)
        if kind is float or kind is int:
            if kind is int:
                value = float(value)
            key = (row[1], "", row[3] // 1_000_000)
            slot = get(key)
            if slot is None:
                acc[key] = [1, value, value, value]
            else:
                slot[0] += 1
                slot[1] += value
                if value < slot[2]:
                    slot[2] = value
                elif value > slot[3]:
                    slot[3] = value
        elif kind is dict:
            key = (row[1], row[3] // 1_000_000)
            slots = get_fields(key)
            if slots is None:
                slots = by_fields[key] = {}
            for name, number in value.items():
                kind = type(number)
                if (kind is float or kind is int) and (field_ok.get(name) or _check_field(name)):
                    if kind is int:
                        number = float(number)
                    slot = slots.get(name)
                    if slot is None:
                        slots[name] = [1, number, number, number]
                    else:
                        slot[0] += 1
                        slot[1] += number
                        if number < slot[2]:
                            slot[2] = number
                        elif number > slot[3]:
                            slot[3] = number
    for (sensor_id, second), slots in by_fields.items():
        for name, slot in slots.items():
            acc[(sensor_id, name, second)] = slot
    return [(s, f, b, n, total, low, high) for (s, f, b), (n, total, low, high) in acc.items()]


def _check_field(name: str) -> bool:
    if len(_field_ok) >= _FIELD_CACHE_MAX:
        _field_ok.clear()
    ok = _field_ok[name] = bool(FIELD_NAME.match(name))
    return ok


def rollups_write(session_id: int, rows: Sequence[RollupRow]) -> None:
    """Add rows to the session's rollups in one statement (callers hold the transaction)."""
    if not rows:
        return
    table = ReadingRollup._meta.db_table
    if connection.vendor == "postgresql":
        columns = [list(column) for column in zip(*rows)]
        with bound_cursor() as cursor, connection.wrap_database_errors:
            cursor.execute(_PG_UPSERT.format(table=table), [session_id, *columns])
        return
    with connection.cursor() as cursor:
        cursor.executemany(_SQLITE_UPSERT.format(table=table), [(session_id, *row) for row in rows])


# --- rebuilding from the readings --------------------------------------------------------------
# For readings stored without the pipeline (the benchmark dataset's raw COPY, readings older than
# the rollups): the same sums, computed by the database from the readings table.

_PG_SECOND = "floor(extract(epoch FROM rd.timestamp))::bigint"
_SQLITE_SECOND = "CAST(strftime('%%s', rd.timestamp) AS INTEGER)"
_REBUILD = (
    "INSERT INTO {rollup} " + _COLUMNS + " "
    "SELECT session_id, sensor_id, field, second, count(*), sum(v), min(v), max(v) FROM ("
    "  SELECT rd.session_id, rd.sensor_id, '' AS field, {second} AS second, {number} AS v FROM {reading} AS rd"
    "  WHERE {where} AND {is_number}"
    "  UNION ALL"
    "  SELECT rd.session_id, rd.sensor_id, f.key, {second}, {field_number} FROM {reading} AS rd, {each}(rd.value) AS f"
    "  WHERE {where} AND {is_object} AND {field_is_number} AND f.key {regexp} %s"
    ") AS x GROUP BY session_id, sensor_id, field, second"
)
_PG_REBUILD = dict(
    second=_PG_SECOND, number="(rd.value)::float8", is_number="jsonb_typeof(rd.value) = 'number'",
    each="jsonb_each", field_number="(f.value)::float8", is_object="jsonb_typeof(rd.value) = 'object'",
    field_is_number="jsonb_typeof(f.value) = 'number'", regexp="~",
)
_SQLITE_REBUILD = dict(
    second=_SQLITE_SECOND, number="CAST(rd.value AS REAL)", is_number="json_type(rd.value) IN ('integer', 'real')",
    each="json_each", field_number="CAST(f.value AS REAL)", is_object="json_type(rd.value) = 'object'",
    field_is_number="f.type IN ('integer', 'real')", regexp="REGEXP",
)


def rollup_rebuild(*, session_id: int | None = None) -> None:
    """Recompute a session's rollups (every session's without one) from its stored readings."""
    rollups = ReadingRollup.objects.all()
    if session_id is not None:
        rollups = rollups.filter(session_id=session_id)
    rollups._raw_delete(rollups.db)
    pg = connection.vendor == "postgresql"
    sql = _REBUILD.format(
        rollup=ReadingRollup._meta.db_table,
        reading=Reading._meta.db_table,
        where="rd.session_id = %s" if session_id is not None else "1 = 1",
        **(_PG_REBUILD if pg else _SQLITE_REBUILD),
    )
    where_params = [session_id] if session_id is not None else []
    with connection.cursor() as cursor:
        cursor.execute(sql, [*where_params, *where_params, FIELD_NAME.pattern])
