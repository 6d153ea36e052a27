"""Time-bucketed aggregates of readings (count, average, min, max), computed in the database.

Buckets are aligned to the Unix epoch: a reading at `t` falls in the bucket that starts at
floor(t / interval) * interval. Time ranges are half-open here, [start_us, stop_us), in integer
Unix microseconds (the readings' resolution); None leaves a side unbounded.

Two ways to the same answer:
- whole-second intervals sum the per-second rollups (sessions/rollups.py) into the buckets, and
  take the partial seconds at the range's edges from the readings themselves, so counts stay exact
  whatever the range;
- sub-second intervals bin the readings themselves: `date_bin` on PostgreSQL, the same arithmetic
  on SQLite's text timestamps.
Counts, minima and maxima are the same either way; averages may differ in the last bits (sums
added in another order).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Max, Min, Q, QuerySet

from sessions.models import Reading, ReadingRollup
from sessions.recording.expressions import JsonNumber

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

    `source`: "auto" (rollups when the interval is whole seconds), or "raw" (always the readings).
    Without a session, an unbounded range would read every session: callers bound it.
    """
    if not sensor_ids:
        return []
    if source == "auto" and interval_us % US == 0:
        rows = _from_rollups(sensor_ids, field, session_id, start_us, stop_us, interval_us // US)
        scale = US
    else:
        rows = _from_readings(sensor_ids, field, session_id, start_us, stop_us, interval_us)
        scale = 1
    return [
        Bucket(
            start=bucket * scale / US,
            end=(bucket * scale + interval_us) / US,
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
    rollups = _rollups(sensor_ids, field, session_id)
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
    return _rollups(sensor_ids, field, session_id).exists()


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
        seconds = ReadingRollup.objects.filter(sensor_id__in=sensor_ids, field=field)
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
        bucket = f"({_sqlite_us('x.timestamp')} / %s) * %s"
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


def _sqlite_us(column: str) -> str:
    # Django keeps SQLite times as naive UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]".
    return (
        f"(CAST(strftime('%%s', {column}) AS INTEGER) * 1000000"
        f" + CASE WHEN length({column}) > 19 THEN CAST(substr({column}, 21, 6) AS INTEGER) ELSE 0 END)"
    )


def _from_rollups(sensor_ids, field, session_id, start_us, stop_us, interval_s) -> list[tuple]:
    # Whole seconds inside the range come from the rollups; the partial seconds at its edges
    # (a start inside a second, an end that is not on a second) from the readings.
    first = None if start_us is None else -(-start_us // US)
    last = None if stop_us is None else stop_us // US
    edges = []
    if first is not None and last is not None and first >= last:
        edges.append((start_us, stop_us))  # within one second, or across one boundary only
        first = last = None
        whole = None
    else:
        whole = _span(Q(), "bucket", first, last)
        if start_us is not None and start_us < first * US:
            edges.append((start_us, first * US))
        if stop_us is not None and last * US < stop_us:
            edges.append((last * US, stop_us))
    parts = []
    params: list = []
    if whole is not None:
        rollup_sql, rollup_params = _sql(
            _rollups(sensor_ids, field, session_id).filter(whole).values("bucket", "count", "sum", "min", "max")
        )
        parts.append(f"SELECT r.bucket AS b, r.count AS n, r.sum AS s, r.min AS lo, r.max AS hi FROM ({rollup_sql}) AS r")
        params.extend(rollup_params)
    if edges:
        edge_sql, edge_params = _sql(_numbers(sensor_ids, field, session_id, edges))
        second = (
            "floor(extract(epoch FROM e.timestamp))::bigint"
            if connection.vendor == "postgresql"
            else "CAST(strftime('%%s', e.timestamp) AS INTEGER)"
        )
        parts.append(f"SELECT {second} AS b, 1 AS n, e.v AS s, e.v AS lo, e.v AS hi FROM ({edge_sql}) AS e")
        params.extend(edge_params)
    sql = (
        "SELECT (u.b / %s) * %s AS bucket, sum(u.n), sum(u.s), min(u.lo), max(u.hi) FROM ("
        + " UNION ALL ".join(parts)
        + ") AS u GROUP BY bucket ORDER BY bucket"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [interval_s, interval_s, *params])
        return [(int(b), int(n), float(s), float(lo), float(hi)) for b, n, s, lo, hi in cursor.fetchall()]
