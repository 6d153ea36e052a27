"""Reads behind the session review pages: a keyset page of the session list, and what one session's page shows.

The list is ordered as the model orders it, newest first on (started_at, id), and paged by that
key rather than by offset: a page after a position reads the index from that position on, so the
100,000th session comes as fast as the first (migration 0008's index on the pair).
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Max, Min, Q, QuerySet, Sum

from sensors.models import Sensor
from sessions.models import Reading, ReadingRollup, RecordingSession
from sessions.reads.results import results_queryset
from sessions.reads.sessions import session_stats
from sessions.recording import rollups

# Alerts listed on a session's page (the JSON record and /api/v1/results/ hold them all).
ALERTS_SHOWN = 500

# A position in the list: the (started_at, id) of a session.
Position = tuple[datetime, int]


@dataclass(frozen=True)
class SessionsPage:
    """One page of the list, newest first, with the positions to page from (None: no such page)."""

    sessions: list[RecordingSession]
    newer: Position | None
    older: Position | None


def sessions_filtered(
    *, rig: str = "", status: str = "", verdict: str = "", started_from: datetime | None = None,
    started_before: datetime | None = None, name: str = "",
) -> QuerySet:
    """Sessions narrowed by every filter given (an empty one narrows nothing); name is a substring, any case."""
    sessions = RecordingSession.objects.all()
    if rig:
        sessions = sessions.filter(rig__name=rig)
    if status:
        sessions = sessions.filter(status=status)
    if verdict:
        sessions = sessions.filter(verdict=verdict)
    if started_from is not None:
        sessions = sessions.filter(started_at__gte=started_from)
    if started_before is not None:
        sessions = sessions.filter(started_at__lt=started_before)
    if name:
        sessions = sessions.filter(name__icontains=name)
    return sessions


def sessions_page(
    sessions: QuerySet, *, before: Position | None = None, after: Position | None = None, limit: int = 50
) -> SessionsPage:
    """The `limit` sessions just older than `before`, or just newer than `after`, or the newest ones."""
    if after is not None:
        rows = list(_newer_than(sessions, after).order_by("started_at", "id").select_related("rig")[: limit + 1])
        more_newer, more_older = len(rows) > limit, True  # `after` itself is older than these
        rows = rows[:limit][::-1]
    else:
        page = sessions if before is None else _older_than(sessions, before)
        rows = list(page.order_by("-started_at", "-id").select_related("rig")[: limit + 1])
        more_older = len(rows) > limit
        rows = rows[:limit]
        # Ordered like the index, so the probe reads one entry of it.
        more_newer = before is not None and _newer_than(sessions, before).order_by("started_at", "id")[:1].exists()
    if not rows:
        return SessionsPage([], newer=None, older=None)
    return SessionsPage(
        rows, newer=_position(rows[0]) if more_newer else None, older=_position(rows[-1]) if more_older else None
    )


def _position(session: RecordingSession) -> Position:
    return session.started_at, session.pk


def _older_than(sessions: QuerySet, position: Position) -> QuerySet:
    started_at, pk = position
    # The plain bound lets the index scan start at the position; the Q picks what lies past it.
    return sessions.filter(Q(started_at__lt=started_at) | Q(started_at=started_at, id__lt=pk), started_at__lte=started_at)


def _newer_than(sessions: QuerySet, position: Position) -> QuerySet:
    started_at, pk = position
    return sessions.filter(Q(started_at__gt=started_at) | Q(started_at=started_at, id__gt=pk), started_at__gte=started_at)


def is_measurement(field: str) -> bool:
    """A numeric field worth a chart: not an identifier (`image_id`, a frame counter)."""
    return field != "id" and not field.endswith("_id")


def field_stats(*, session_id: int) -> dict[str, dict[str, dict]]:
    """{sensor id: {field: count, min, max, mean}} of the session's numbers, summed from its per-minute rollups.

    Every resolution of the rollups holds each number once; the coarsest (a row per sensor, field
    and minute) is the fewest rows to read. Scalar sensors appear under field ''.
    """
    rows = (
        ReadingRollup.objects.filter(session_id=session_id, resolution=rollups.RESOLUTIONS[-1])
        .values("sensor_id", "field")
        .annotate(n=Sum("count"), total=Sum("sum"), low=Min("min"), high=Max("max"))
        .order_by("sensor_id", "field")
    )
    stats: dict[int, dict[str, dict]] = {}
    for row in rows:
        stats.setdefault(row["sensor_id"], {})[row["field"]] = {
            "count": row["n"], "min": row["low"], "max": row["high"],
            "mean": row["total"] / row["n"] if row["n"] else None,
        }
    return stats


@dataclass(frozen=True)
class ChartSpec:
    """One chart of the session page: a sensor, or one numeric field of an object sensor."""

    sensor: str
    sensor_type: str
    unit: str
    field: str  # '' for a scalar sensor
    rate_hz: float | None


def session_review(session: RecordingSession) -> dict:
    """What the session page shows: per-sensor statistics, the charts to draw, the alerts with their acknowledgements."""
    by_field = field_stats(session_id=session.pk)
    sensors = list(Sensor.objects.filter(rig_id=session.rig_id).order_by("name"))
    if session.status == RecordingSession.Status.COMPLETED and not session.summary_stats:
        stats = stats_from_rollups(session, sensors, by_field)
    else:
        stats = session_stats(session)
    charts, rows = [], []
    for sensor in sensors:
        fields = by_field.get(sensor.pk, {})
        # Identifiers are left out, unless they are all an object sensor sends (a chart per field it has).
        numeric = [f for f in fields if f and is_measurement(f)] or [f for f in fields if f]
        stat = stats.get(sensor.name, {})
        rate = session.rates.get(sensor.name) or _observed_rate(stat)
        for field in numeric or [""]:
            charts.append(ChartSpec(sensor.name, sensor.sensor_type, sensor.unit, field, rate))
        rows.append({
            "sensor": sensor, "stats": stat, "fields": [(f, fields[f]) for f in numeric],
            "first": _moment(stat.get("first_timestamp")), "last": _moment(stat.get("last_timestamp")),
        })
    results = results_queryset().filter(session_id=session.pk).order_by("first_timestamp", "id")
    # A spiky signal can open thousands: the table shows the first ALERTS_SHOWN, the charts mark every one.
    episodes = [
        {"id": pk, "sensor": sensor, "field": (details or {}).get("field", ""), "status": status,
         "first_timestamp": first.timestamp(), "last_timestamp": last.timestamp()}
        for pk, sensor, details, status, first, last in results.values_list(
            "id", "sensor__name", "details", "status", "first_timestamp", "last_timestamp")
    ]
    alerts = list(results[:ALERTS_SHOWN]) if len(episodes) > ALERTS_SHOWN else list(results)
    return {"charts": charts, "stats": rows, "alerts": alerts, "episodes": episodes}


def stats_from_rollups(session: RecordingSession, sensors: list[Sensor], by_field: dict) -> dict[str, dict]:
    """sessions.reads.stats.sensor_stats of a finished session without frozen statistics, without reading every reading.

    Sessions completed before statistics were frozen at completion (and datasets built by COPY)
    have none; a GROUP BY over their readings takes a second per million. Numbers come from the
    rollups (exact: per-second count, sum, min, max; a sensor that sent non-numbers among its
    numbers is counted by its numbers), first and last times from two index lookups per sensor; an
    object sensor's count is what the session's counter leaves over, or (with several) its index entries.
    """
    numbers = {sensor.pk: by_field.get(sensor.pk, {}).get("") for sensor in sensors}
    others = [sensor for sensor in sensors if any(by_field.get(sensor.pk, {})) or numbers[sensor.pk] is None]
    stats = {}
    for sensor in sensors:
        readings = Reading.objects.filter(session_id=session.pk, sensor_id=sensor.pk)
        first = readings.order_by("timestamp").values_list("timestamp", flat=True).first()
        last = readings.order_by("-timestamp").values_list("timestamp", flat=True).first()
        scalar = numbers[sensor.pk]
        if sensor not in others:
            count = scalar["count"]
        elif len(others) == 1:
            # The session's counter holds every reading: what the number sensors do not account for is this one's.
            count = session.reading_count - sum(n["count"] for pk, n in numbers.items() if n and pk != sensor.pk)
        else:
            count = readings.count()
        stats[sensor.name] = {
            "sensor_type": sensor.sensor_type, "unit": sensor.unit, "count": count,
            "first_timestamp": first.timestamp() if first else None, "last_timestamp": last.timestamp() if last else None,
            "min": scalar["min"] if scalar else None, "max": scalar["max"] if scalar else None,
            "mean": round(scalar["mean"], 6) if scalar and scalar["mean"] is not None else None,
        }
    return stats


def _moment(unix: float | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, tz=UTC)


def _observed_rate(stat: dict) -> float | None:
    """Readings per second from a sensor's count and first/last times (a pushed rig has no configured rate)."""
    first, last, count = stat.get("first_timestamp"), stat.get("last_timestamp"), stat.get("count") or 0
    if first is None or last is None or last <= first or count < 2:
        return None
    return (count - 1) / (last - first)

