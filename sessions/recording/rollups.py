"""Rollups of readings (ReadingRollup) at several resolutions, kept by the pipeline as it writes.

Every stored batch adds its numbers to one row per (sensor, field, resolution, cell): count, sum,
min, max, where a cell is floor(Unix µs / resolution). Scalar numbers roll up under field '', and
every numeric top-level field of an object value (booleans are not numbers; field names SQL may
not name, see expressions.FIELD_NAME, are left out) under its name. The batch is summed here, as
arrays, while its columns are at hand (the finest cells from the readings, each coarser
resolution from the one below it); the database then takes one upsert of a few rows per sensor
and cell for all resolutions instead of a GROUP BY over the batch.

Each resolution divides the next, so every cell lies inside one cell of each coarser resolution,
and a bucket whose width is a multiple of a resolution is a whole number of its cells
(sessions.reads.aggregates).

Timestamps are from 1970 on (params.timestamp, ingest), so integer division is a floor.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress

import numpy as np
from django.db import connection

from sessions.models import Reading, ReadingRollup
from sessions.recording import binary
from sessions.recording.expressions import FIELD_NAME
from sessions.recording.storage import bound_cursor

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


@dataclass
class Cells:
    """A batch's rollup rows, every resolution, as columns."""

    sensor_ids: np.ndarray
    fields: list[str]
    resolutions: np.ndarray
    cells: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray

    def __len__(self) -> int:
        return len(self.fields)

    def take(self, which: np.ndarray) -> "Cells":
        """The cells where `which` (a boolean mask) is true."""
        fields = [f for f, keep in zip(self.fields, which.tolist(), strict=True) if keep]
        return Cells(self.sensor_ids[which], fields, self.resolutions[which], self.cells[which], self.counts[which],
                     self.sums[which], self.mins[which], self.maxs[which])

    def rows(self) -> list[RollupRow]:
        return list(zip(self.sensor_ids.tolist(), self.fields, self.resolutions.tolist(), self.cells.tolist(),
                        self.counts.tolist(), self.sums.tolist(), self.mins.tolist(), self.maxs.tolist(), strict=True))


def rollup_columns(sensor_ids: np.ndarray, micros: np.ndarray, values: Sequence) -> Cells:
    """Sum a batch, given as columns, into one row per sensor, field, resolution and cell.

    Numbers are summed as arrays; an object's numeric fields are gathered reading by reading first.
    Each reading is a cell of one at the start, and each resolution groups the one below it.
    """
    n = len(values)
    kinds = set(map(type, values))
    if kinds <= {float, int}:
        numbers = np.arange(n)
        x = np.array(values, dtype=np.float64)
    else:
        numbers = np.fromiter((type(v) is float or type(v) is int for v in values), dtype=bool, count=n).nonzero()[0]
        x = np.array([values[i] for i in numbers.tolist()], dtype=np.float64)
    sid = sensor_ids[numbers]
    at = micros[numbers]
    field = np.zeros(len(numbers), dtype=np.int64)
    names = [""]
    if dict in kinds:
        sid, at, field, x = _with_object_fields(sensor_ids, micros, values, names, (sid, at, field, x))
    levels = [_group(sid, field, at // FINEST, np.ones(len(x), dtype=np.int64), x, x, x)]
    finer = FINEST
    for resolution in RESOLUTIONS[1:]:
        sid, field, cell, count, total, low, high = levels[-1]
        levels.append(_group(sid, field, cell // (resolution // finer), count, total, low, high))
        finer = resolution
    columns = [np.concatenate(parts) for parts in zip(*levels, strict=True)]
    resolutions = np.repeat(np.array(RESOLUTIONS, dtype=np.int32), [len(level[0]) for level in levels])
    sid, field, cell, count, total, low, high = columns
    return Cells(sid, np.array(names, dtype=object)[field].tolist(), resolutions, cell, count, total, low, high)


def _with_object_fields(sensor_ids, micros, values, names: list[str], scalars: tuple) -> tuple:
    """The scalar columns with every numeric field of every object value appended (field codes index `names`)."""
    codes = {"": 0}
    field_ok = _field_ok
    readings, fields, xs = [], [], []
    for i, value in enumerate(values):
        if type(value) is not dict:
            continue
        for name, number in value.items():
            kind = type(number)
            if (kind is float or kind is int) and (field_ok.get(name) or _check_field(name)):
                code = codes.get(name)
                if code is None:
                    code = codes[name] = len(names)
                    names.append(name)
                readings.append(i)
                fields.append(code)
                xs.append(number)
    rows = np.array(readings, dtype=np.intp)
    sid, at, field, x = scalars
    return (
        np.concatenate((sid, sensor_ids[rows])),
        np.concatenate((at, micros[rows])),
        np.concatenate((field, np.array(fields, dtype=np.int64))),
        np.concatenate((x, np.array(xs, dtype=np.float64))),
    )


def _group(sid, field, cell, count, total, low, high) -> tuple:
    """Entries of one (sensor, field, cell) merged: counts and sums added, min and max kept."""
    order = np.lexsort((cell, field, sid))
    sid, field, cell = sid[order], field[order], cell[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (sid[1:] != sid[:-1]) | (field[1:] != field[:-1]) | (cell[1:] != cell[:-1])
    starts = np.flatnonzero(first)
    # bincount adds in order, one after the other, as the pipeline always summed (reduceat may pair
    # terms up): the same cells hold the same sums to the last bit, whichever path wrote them.
    with np.errstate(over="ignore", invalid="ignore"):  # a sum past the largest double is infinite, as in Python
        summed = np.bincount(np.cumsum(first) - 1, weights=total[order], minlength=len(starts))
    return (
        sid[starts], field[starts], cell[starts], np.add.reduceat(count[order], starts), summed,
        np.minimum.reduceat(low[order], starts), np.maximum.reduceat(high[order], starts),
    )


def _check_field(name: str) -> bool:
    if len(_field_ok) >= _FIELD_CACHE_MAX:
        _field_ok.clear()
    ok = _field_ok[name] = bool(FIELD_NAME.match(name))
    return ok


# (sensor_id, field, resolution) -> the latest cell the session's rollups hold for it
Edges = dict[tuple[int, str, int], int]


def rollups_write(session_id: int, cells: Cells, *, edges: Edges | None = None) -> Edges | None:
    """Add a batch's cells (of every resolution) to the session's rollups (callers hold the transaction).

    On PostgreSQL, cells past the latest one stored for their sensor, field and resolution cannot
    exist yet and go in by COPY; only the others (mostly one a series: where the last batch ended)
    take the upsert. `edges` are those latest cells as the caller last saw them (None: unknown,
    they are read); it holds them only while it is the session's only writer (SessionRecorder).
    Returns them as they are now.
    """
    if not len(cells):
        return edges
    table = ReadingRollup._meta.db_table
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.executemany(_SQLITE_UPSERT.format(table=table), [(session_id, *row) for row in cells.rows()])
        return None
    keys = list(zip(cells.sensor_ids.tolist(), cells.fields, cells.resolutions.tolist(), strict=True))
    numbers = cells.cells.tolist()
    with bound_cursor() as cursor, connection.wrap_database_errors:
        if edges is None:
            edges = _edges(cursor, session_id, set(keys))
        known = edges.get
        fresh = np.fromiter((cell > known(key, -1) for key, cell in zip(keys, numbers, strict=True)),
                            dtype=bool, count=len(keys))
        if not fresh.all():
            old = cells.take(~fresh)
            cursor.execute(_PG_UPSERT.format(table=table), [
                session_id, binary.fixed_array(binary.Int8Array, old.sensor_ids), binary.text_array(old.fields),
                binary.fixed_array(binary.Int4Array, old.resolutions), binary.fixed_array(binary.Int8Array, old.cells),
                binary.fixed_array(binary.Int8Array, old.counts), binary.fixed_array(binary.Float8Array, old.sums),
                binary.fixed_array(binary.Float8Array, old.mins), binary.fixed_array(binary.Float8Array, old.maxs),
            ])
        if fresh.any():
            with cursor.copy(_COPY.format(table=table)) as copy:
                copy.write(_copy_rows(session_id, cells.take(fresh)))
    for key, cell in compress(zip(keys, numbers, strict=True), fresh.tolist()):
        if cell > known(key, -1):  # a series' fresh cells: its edge is the latest of them
            edges[key] = cell
    return edges


def _edges(cursor, session_id: int, keys: set) -> Edges:
    """The latest cell stored for each (sensor_id, field, resolution): one index probe each."""
    if not keys:
        return {}
    sensors, fields, resolutions = zip(*keys)
    cursor.execute(_EDGES.format(table=ReadingRollup._meta.db_table), [
        session_id, binary.fixed_array(binary.Int8Array, sensors), binary.text_array(list(fields)),
        binary.fixed_array(binary.Int4Array, resolutions),
    ])
    return {(s, f, r): cell for s, f, r, cell in cursor.fetchall() if cell is not None}


_EDGES = (
    "SELECT k.s, k.f, k.r, (SELECT max(bucket) FROM {table} WHERE session_id = %b AND sensor_id = k.s "
    "AND field = k.f AND resolution = k.r) FROM unnest(%b::bigint[], %b::text[], %b::int[]) AS k(s, f, r)"
)
_COPY = 'COPY {table} (session_id, sensor_id, resolution, bucket, "count", "sum", "min", "max", field) FROM STDIN (FORMAT BINARY)'


def _copy_rows(session_id: int, cells: Cells) -> bytes:
    """Binary COPY of cells; the field's name, the one text, goes last."""
    return binary.copy_rows(
        [("session", ">i8", session_id), ("sensor", ">i8", cells.sensor_ids), ("resolution", ">i4", cells.resolutions),
         ("bucket", ">i8", cells.cells), ("count", ">i8", cells.counts), ("sum", ">f8", cells.sums),
         ("min", ">f8", cells.mins), ("max", ">f8", cells.maxs)],
        cells.fields,
    )


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
