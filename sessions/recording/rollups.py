"""Rollups of readings (ReadingRollup) at several resolutions, kept by the pipeline as it writes.

Every stored batch adds its numbers to one row per (sensor, field, resolution, cell): count, sum,
min, max, where a cell is floor(Unix µs / resolution). Scalar numbers roll up under field '', and
every numeric top-level field of an object value (booleans are not numbers; field names SQL may
not name, see expressions.FIELD_NAME, are left out) under its name. The batch is summed here, in
Python, while its rows are at hand (the finest cells per reading, each coarser resolution from
the one below it); the database then takes one upsert of a few rows per sensor and cell for all
resolutions instead of a GROUP BY over the batch.

Each resolution divides the next, so every cell lies inside one cell of each coarser resolution,
and a bucket whose width is a multiple of a resolution is a whole number of its cells
(sessions.reads.aggregates).

Timestamps are from 1970 on (params.timestamp, ingest), so integer division is a floor.
"""

from collections.abc import Sequence

from django.db import connection

from sessions.models import Reading, ReadingRollup
from sessions.recording.expressions import FIELD_NAME
from sessions.recording.storage import Row, bound_cursor

# Cell lengths in µs, finest first. 10 ms cells let 1,000 buckets of a quarter second (a 250 s
# range) read 25,000 rows instead of 250,000 readings at 1 kHz; the coarse ones cost a row per
# sensor and flush each and keep buckets of minutes to a few dozen rows each.
RESOLUTIONS = (10_000, 100_000, 1_000_000, 10_000_000, 60_000_000)
FINEST = RESOLUTIONS[0]
SECOND = ReadingRollup.SECOND

# (sensor_id, field, resolution, cell, count, sum, min, max)
RollupRow = tuple[int, str, int, int, int, float, float, float]

_COLUMNS = '(session_id, sensor_id, field, resolution, bucket, "count", "sum", "min", "max")'
_PG_UPSERT = (
    "INSERT INTO {table} AS r " + _COLUMNS + " "
    "SELECT %b, * FROM unnest(%b::bigint[], %b::text[], %b::int[], %b::bigint[], %b::bigint[], %b::float8[], "
    "%b::float8[], %b::float8[]) "
    'ON CONFLICT (session_id, sensor_id, field, resolution, bucket) DO UPDATE SET "count" = r."count" + EXCLUDED."count", '
    # float8 + float8 past 1.8e308 is an error in PostgreSQL, and would refuse the batch: such
    # sums (absurd for a sensor, possible from a rig) saturate instead.
    '"sum" = CASE WHEN abs(r."sum") < 1e300 AND abs(EXCLUDED."sum") < 1e300 THEN r."sum" + EXCLUDED."sum" '
    "ELSE GREATEST(LEAST(r.\"sum\"::numeric + EXCLUDED.\"sum\"::numeric, 1.7e308), -1.7e308)::float8 END, "
    '"min" = LEAST(r."min", EXCLUDED."min"), "max" = GREATEST(r."max", EXCLUDED."max")'
)
_SQLITE_UPSERT = (
    "INSERT INTO {table} " + _COLUMNS + " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    'ON CONFLICT (session_id, sensor_id, field, resolution, bucket) DO UPDATE SET "count" = "count" + excluded."count", '
    '"sum" = "sum" + excluded."sum", "min" = min("min", excluded."min"), "max" = max("max", excluded."max")'
)

# Field names already checked against FIELD_NAME (a regex match for every field of every reading
# costs too much); bounded, since a rig may send any keys.
_field_ok: dict[str, bool] = {}
_FIELD_CACHE_MAX = 10_000


def rollup_rows(rows: Sequence[Row], items: Sequence[tuple]) -> list[RollupRow]:
    """Sum a batch (storage rows beside the pipeline items they came from) into one row per sensor, field, resolution and cell."""
    # Inlined on purpose: this runs for every reading (and every field of an object) stored.
    acc: dict[tuple[int, str, int], list] = {}
    get = acc.get
    # Objects: their fields' slots under one (sensor, cell) key, one lookup a field.
    by_fields: dict[tuple[int, int], dict[str, list]] = {}
    get_fields = by_fields.get
    field_ok = _field_ok
    finest = FINEST
    for row, item in zip(rows, items, strict=True):
        value = item[2]
        kind = type(value)
        if kind is float or kind is int:
            if kind is int:
                value = float(value)
            key = (row[1], "", row[3] // finest)
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
            key = (row[1], row[3] // finest)
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
    for (sensor_id, cell), slots in by_fields.items():
        for name, slot in slots.items():
            acc[(sensor_id, name, cell)] = slot
    out = [(s, f, finest, c, n, total, low, high) for (s, f, c), (n, total, low, high) in acc.items()]
    finer = finest
    for resolution in RESOLUTIONS[1:]:
        acc = _coarser(acc, resolution // finer)
        out.extend((s, f, resolution, c, n, total, low, high) for (s, f, c), (n, total, low, high) in acc.items())
        finer = resolution
    return out


def _coarser(cells: dict[tuple[int, str, int], list], factor: int) -> dict[tuple[int, str, int], list]:
    """The same sums over cells `factor` times longer."""
    acc: dict[tuple[int, str, int], list] = {}
    get = acc.get
    for (sensor_id, name, cell), (n, total, low, high) in cells.items():
        key = (sensor_id, name, cell // factor)
        slot = get(key)
        if slot is None:
            acc[key] = [n, total, low, high]
        else:
            slot[0] += n
            slot[1] += total
            slot[2] = min(slot[2], low)
            slot[3] = max(slot[3], high)
    return acc


def _check_field(name: str) -> bool:
    if len(_field_ok) >= _FIELD_CACHE_MAX:
        _field_ok.clear()
    ok = _field_ok[name] = bool(FIELD_NAME.match(name))
    return ok


def rollups_write(session_id: int, rows: Sequence[RollupRow]) -> None:
    """Add rows (of every resolution) to the session's rollups in one statement (callers hold the transaction)."""
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


def sqlite_micros(column: str) -> str:
    """SQL for the Unix µs of a SQLite timestamp column."""
    # Django keeps SQLite times as naive UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]". The seconds
    # from the first 19 characters: SQLite rounds a time to milliseconds, so strftime of
    # "…:41.999745" is 42.
    return (
        f"(CAST(strftime('%%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
        f" + CASE WHEN length({column}) > 19 THEN CAST(substr({column}, 21, 6) AS INTEGER) ELSE 0 END)"
    )


# --- rebuilding from the readings --------------------------------------------------------------
# For readings stored without the pipeline (the benchmark dataset's raw COPY, readings older than
# the rollups): the same sums, computed by the database from the readings table, the finest cells
# from the readings and each coarser resolution from the finest.

_PG_CELL = "((extract(epoch FROM rd.timestamp) * 1000000)::bigint / {finest})"
_REBUILD = (
    "INSERT INTO {rollup} " + _COLUMNS + " "
    "SELECT session_id, sensor_id, field, {finest}, cell, count(*), sum(v), min(v), max(v) FROM ("
    "  SELECT rd.session_id, rd.sensor_id, '' AS field, {cell} AS cell, {number} AS v FROM {reading} AS rd"
    "  WHERE {where} AND {is_number}"
    "  UNION ALL"
    "  SELECT rd.session_id, rd.sensor_id, f.key, {cell}, {field_number} FROM {reading} AS rd, {each}(rd.value) AS f"
    "  WHERE {where} AND {is_object} AND {field_is_number} AND f.key {regexp} %s"
    ") AS x GROUP BY session_id, sensor_id, field, cell"
)
_REBUILD_COARSER = (
    "INSERT INTO {rollup} " + _COLUMNS + " "
    'SELECT session_id, sensor_id, field, %s, bucket / %s, sum("count"), sum("sum"), min("min"), max("max") '
    "FROM {rollup} WHERE resolution = %s AND {where} GROUP BY session_id, sensor_id, field, bucket / %s"
)
_PG_REBUILD = dict(
    cell=_PG_CELL.format(finest=FINEST), number="(rd.value)::float8", is_number="jsonb_typeof(rd.value) = 'number'",
    each="jsonb_each", field_number="(f.value)::float8", is_object="jsonb_typeof(rd.value) = 'object'",
    field_is_number="jsonb_typeof(f.value) = 'number'", regexp="~",
)
_SQLITE_REBUILD = dict(
    cell=f"({sqlite_micros('rd.timestamp')} / {FINEST})", number="CAST(rd.value AS REAL)",
    is_number="json_type(rd.value) IN ('integer', 'real')",
    each="json_each", field_number="CAST(f.value AS REAL)", is_object="json_type(rd.value) = 'object'",
    field_is_number="f.type IN ('integer', 'real')", regexp="REGEXP",
)


def rollup_rebuild(*, session_id: int | None = None) -> None:
    """Recompute a session's rollups (every session's without one) from its stored readings."""
    table = ReadingRollup._meta.db_table
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
    if "resolution" not in columns:
        return  # migration 0005, before 0013 added resolutions: 0013 rebuilds every session
    rollups = ReadingRollup.objects.all()
    if session_id is not None:
        rollups = rollups.filter(session_id=session_id)
    rollups._raw_delete(rollups.db)
    pg = connection.vendor == "postgresql"
    where = "session_id = %s" if session_id is not None else "1 = 1"
    sql = _REBUILD.format(
        rollup=table, reading=Reading._meta.db_table, finest=FINEST,
        where="rd.session_id = %s" if session_id is not None else "1 = 1",
        **(_PG_REBUILD if pg else _SQLITE_REBUILD),
    )
    where_params = [session_id] if session_id is not None else []
    with connection.cursor() as cursor:
        cursor.execute(sql, [*where_params, *where_params, FIELD_NAME.pattern])
        coarser = _REBUILD_COARSER.format(rollup=table, where=where)
        for resolution in RESOLUTIONS[1:]:
            factor = resolution // FINEST
            cursor.execute(coarser, [resolution, factor, FINEST, *where_params, factor])
