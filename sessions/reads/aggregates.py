"""Time-bucketed aggregates of readings (count, average, min, max), computed in the database.

Buckets are aligned to the Unix epoch: a reading at `t` falls in the bucket that starts at
floor(t / interval) * interval. Time ranges are half-open here, [start_us, stop_us), in integer
Unix microseconds (the readings' resolution); None leaves a side unbounded.

Two ways to the same answer:
- an interval that is a multiple of the finest rollup resolution (10 ms, sessions/recording/rollups.py)
  sums rollup cells into the buckets: inside the range the cells of the coarsest resolution that
  divides the interval (each lies in one bucket), at the range's edges finer cells down to 10 ms,
  and the partial 10 ms at its very ends from the readings themselves, so counts stay exact
  whatever the range;
- any other interval bins the readings themselves: `date_bin` on PostgreSQL, the same arithmetic
  on SQLite's text timestamps.
Counts, minima and maxima are the same either way; averages may differ in the last bits (sums
added in another order), and are the same to the bit when every partial sum is exact in a double.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Max, Min, Q, QuerySet

from sessions.models import Reading, ReadingRollup
from sessions.recording.expressions import JsonNumber
from sessions.recording.rollups import FINEST, RESOLUTIONS, SECOND, sqlite_micros

US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Bucket:
    """One interval's aggregate; times in Unix seconds."""

    start: float
    end: float
    count: int
    average: float
    min: float
    max: float


def readings_aggregate(
    *,
    sensor_ids: list[int],
    field: str = "",
    session_id: int | None = None,
    start_us: int | None = None,
    stop_us: int | None = None,
    interval_us: int,
    source: str = "auto",
) -> list[Bucket]:
    """Non-empty buckets of the sensors' numbers (or of `field` of their objects), in time order.

    `source`: "auto" (rollups when the interval is a multiple of the finest resolution), or "raw"
    (always the readings). Without a session, an unbounded range would read every session: callers bound it.
    """
    if not sensor_ids:
        return []
    if source == "auto" and interval_us % FINEST == 0:
        rows = _from_rollups(sensor_ids, field, session_id, start_us, stop_us, interval_us)
    else:
        rows = _from_readings(sensor_ids, field, session_id, start_us, stop_us, interval_us)
    return [
        Bucket(
            start=bucket / US,
            end=(bucket + interval_us) / US,
            count=count,
            average=total / count,
            min=low,
            max=high,
        )
        for bucket, count, total, low, high in rows
    ]


def data_extent(
    *, sensor_ids: list[int], field: str = "", session_id: int | None = None,
    start_us: int | None = None, stop_us: int | None = None,
) -> tuple[int, int] | None:
    """The whole seconds [first, last + 1) in µs that hold the sensors' numbers within the range; None if none."""
    rollups = _rollups(sensor_ids, field, session_id).filter(resolution=SECOND)
    if start_us is not None:
        rollups = rollups.filter(bucket__gte=start_us // US)
    if stop_us is not None:
        rollups = rollups.filter(bucket__lt=-(-stop_us // US))
    found = rollups.aggregate(first=Min("bucket"), last=Max("bucket"))
    if found["first"] is None:
        return None
    return found["first"] * US, (found["last"] + 1) * US


def fields_present(*, sensor_ids: list[int], session_id: int | None = None) -> list[str]:
    """The fields the sensors' rollups hold ('' for scalar numbers), for telling a caller which to ask for."""
    return sorted(set(_rollups(sensor_ids, None, session_id).values_list("field", flat=True).distinct()[:200]))


def has_field(*, sensor_ids: list[int], field: str, session_id: int | None = None) -> bool:
    return _rollups(sensor_ids, field, session_id).filter(resolution=SECOND).exists()


def _rollups(sensor_ids: list[int], field: str | None, session_id: int | None) -> QuerySet:
    rollups = ReadingRollup.objects.filter(sensor_id__in=sensor_ids)
    if field is not None:
        rollups = rollups.filter(field=field)
    if session_id is not None:
        rollups = rollups.filter(session_id=session_id)
    return rollups


def _numbers(
    sensor_ids: list[int], field: str, session_id: int | None, ranges: list[tuple[int | None, int | None]]
) -> QuerySet:
    """The readings' numbers (timestamp, v) within any of the half-open µs ranges."""
    readings = Reading.objects.filter(sensor_id__in=sensor_ids)
    if session_id is not None:
        readings = readings.filter(session_id=session_id)
    else:
        # The readings' index leads with the session: find the sessions from the rollups (which
        # hold a row for every second with a number in it), so no query scans the whole table.
        seconds = ReadingRollup.objects.filter(sensor_id__in=sensor_ids, field=field, resolution=SECOND)
        span = Q()
        for lo, hi in ranges:
            span |= _span(Q(), "bucket", None if lo is None else lo // US, None if hi is None else -(-hi // US))
        readings = readings.filter(session_id__in=seconds.filter(span).values("session_id").distinct())
    within = Q()
    for lo, hi in ranges:
        within |= _span(Q(), "timestamp", None if lo is None else _time(lo), None if hi is None else _time(hi))
    return (
        readings.filter(within)
        .annotate(v=JsonNumber("value", field))
        .filter(v__isnull=False)
        .values("timestamp", "v")
    )


def _span(q: Q, name: str, lo, hi) -> Q:
    if lo is not None:
        q &= Q(**{f"{name}__gte": lo})
    if hi is not None:
        q &= Q(**{f"{name}__lt": hi})
    return q


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _sql(queryset: QuerySet) -> tuple[str, tuple]:
    return queryset.query.sql_with_params()


def _from_readings(sensor_ids, field, session_id, start_us, stop_us, interval_us) -> list[tuple]:
    inner, params = _sql(_numbers(sensor_ids, field, session_id, [(start_us, stop_us)]))
    if connection.vendor == "postgresql":
        bucket = "date_bin(%s, x.timestamp, TIMESTAMPTZ '1970-01-01 00:00:00+00')"
        head = [timedelta(microseconds=interval_us)]
    else:
        bucket = f"({sqlite_micros('x.timestamp')} / %s) * %s"
        head = [interval_us, interval_us]
    sql = (
        f"SELECT {bucket} AS b, count(*), sum(x.v), min(x.v), max(x.v) FROM ({inner}) AS x GROUP BY b ORDER BY b"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*head, *params])
        rows = cursor.fetchall()
    if connection.vendor == "postgresql":
        return [(round((b - _EPOCH) / timedelta(microseconds=1)), *rest) for b, *rest in rows]
    return rows


def _from_rollups(sensor_ids, field, session_id, start_us, stop_us, interval_us) -> list[tuple]:
    """(bucket start µs, count, sum, min, max) from the cells that tile the range, the readings at its ends."""
    levels = [r for r in RESOLUTIONS if interval_us % r == 0]
    cells, ends = _tiles(start_us, stop_us, levels)
    parts = []
    params: list = []
    for resolution, first, stop in cells:
        span = _span(Q(resolution=resolution), "bucket", first, stop)
        cell_sql, cell_params = _sql(
            _rollups(sensor_ids, field, session_id).filter(span).values("bucket", "count", "sum", "min", "max")
        )
        # A cell's bucket: its start (µs) floored to the interval; cells never straddle buckets.
        parts.append(
            f"SELECT (r.bucket * %s) / %s AS b, r.count AS n, r.sum AS s, r.min AS lo, r.max AS hi FROM ({cell_sql}) AS r"
        )
        params.extend([resolution, interval_us, *cell_params])
    for lo, hi in ends:
        # Less than one finest cell, so inside one bucket, known here.
        end_sql, end_params = _sql(_numbers(sensor_ids, field, session_id, [(lo, hi)]))
        parts.append(
            f"SELECT %s AS b, count(*) AS n, sum(e.v) AS s, min(e.v) AS lo, max(e.v) AS hi FROM ({end_sql}) AS e"
        )
        params.extend([lo // interval_us, *end_params])
    if not parts:
        return []
    sql = (
        "SELECT u.b AS bucket, sum(u.n), sum(u.s), min(u.lo), max(u.hi) FROM ("
        + " UNION ALL ".join(parts)
        + ") AS u GROUP BY u.b HAVING sum(u.n) > 0 ORDER BY u.b"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            (int(b) * interval_us, int(n), float(s), float(lo), float(hi)) for b, n, s, lo, hi in cursor.fetchall()
        ]


def _tiles(
    start_us: int | None, stop_us: int | None, levels: list[int]
) -> tuple[list[tuple[int, int | None, int | None]], list[tuple[int, int]]]:
    """Cover [start_us, stop_us) with whole cells, coarsest inside, finer toward the ends.

    Returns the cells as (resolution, first cell, stop cell) (None: unbounded) and the µs ranges
    left at the ends, each inside one cell of levels[0] (the finest) and so inside one bucket.
    """
    cells = []
    rest: list[tuple[int | None, int | None]] = [(start_us, stop_us)]
    for resolution in reversed(levels):
        uncovered = []
        for lo, hi in rest:
            first = None if lo is None else -(-lo // resolution)
            stop = None if hi is None else hi // resolution
            if first is not None and stop is not None and first >= stop:
                uncovered.append((lo, hi))  # no whole cell of this size inside
                continue
            cells.append((resolution, first, stop))
            if lo is not None and lo < first * resolution:
                uncovered.append((lo, first * resolution))
            if hi is not None and stop * resolution < hi:
                uncovered.append((stop * resolution, hi))
        rest = uncovered
    ends = []
    for lo, hi in rest:
        # Shorter than a finest cell, or (none fits inside) than two: cut where one starts.
        cut = -(-lo // levels[0]) * levels[0]
        ends.extend([(lo, cut), (cut, hi)] if lo < cut < hi else [(lo, hi)])
    return cells, ends
