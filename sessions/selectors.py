"""Reads of sessions and readings."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, Max, Min, Q
from django.utils import timezone

from sensors.models import Sensor

from . import presence
from .db import JsonNumber
from .models import EngineHeartbeat, Reading, RecordingSession, ValidationResult


def sensor_stats(*, session_id: int) -> dict[str, dict]:
    """Per-sensor count, first/last time and, for numbers, min/max/mean, computed in SQL."""
    rows = (
        Reading.objects.filter(session_id=session_id)
        .values("sensor_id")
        .annotate(
            count=Count("id"),
            first=Min("timestamp"),
            last=Max("timestamp"),
            min=Min(JsonNumber("value")),
            max=Max(JsonNumber("value")),
            mean=Avg(JsonNumber("value")),
        )
    )
    by_id = {row["sensor_id"]: row for row in rows}
    session = RecordingSession.objects.only("rig_id").get(pk=session_id)
    return stats_by_sensor(rig_id=session.rig_id, rows=by_id)


def stats_by_sensor(*, rig_id: int, rows: dict[int, dict]) -> dict[str, dict]:
    """Each sensor of the rig: its statistics from `rows` ({sensor id: count, first, last, min, max, mean})."""
    stats = {}
    for sensor in Sensor.objects.filter(rig_id=rig_id):
        row = rows.get(sensor.pk)
        stats[sensor.name] = {
            "sensor_type": sensor.sensor_type,
            "unit": sensor.unit,
            "count": row["count"] if row else 0,
            "first_timestamp": row["first"].timestamp() if row else None,
            "last_timestamp": row["last"].timestamp() if row else None,
            "min": row["min"] if row else None,
            "max": row["max"] if row else None,
            "mean": round(row["mean"], 6) if row and row["mean"] is not None else None,
        }
    return stats


def session_summary(session: RecordingSession) -> dict:
    """The stop summary (the seed's fields and more)."""
    end = session.stopped_at or timezone.now()
    return {
        "session_id": session.pk,
        "rig": session.rig.name,
        "name": session.name,
        "status": session.status,
        "started_at": session.started_at.isoformat(),
        "stopped_at": session.stopped_at.isoformat() if session.stopped_at else None,
        "total_readings": session.reading_count,
        "session_duration": round((end - session.started_at).total_seconds(), 6),
        "validation_alerts": session.alert_count,
        "verdict": session.verdict or None,
        "summary_stats": session.summary_stats,
    }


def engine_alive(name: str = "") -> bool:
    """Whether the engine `name` (or, without a name, any engine) has beaten recently."""
    horizon = timezone.now() - timedelta(seconds=settings.ROBOTEST_HEARTBEAT_TIMEOUT)
    beats = EngineHeartbeat.objects.filter(beat_at__gte=horizon)
    return (beats.filter(name=name) if name else beats).exists()


def recording_session(*, rig_name: str) -> RecordingSession | None:
    return (
        RecordingSession.objects.select_related("rig")
        .filter(rig__name=rig_name, status=RecordingSession.Status.RECORDING)
        .first()
    )


def latest_session(*, rig) -> RecordingSession | None:
    """The rig's recording session or, when none records, its most recently started one."""
    sessions = RecordingSession.objects.filter(rig=rig)
    return sessions.filter(status=RecordingSession.Status.RECORDING).first() or sessions.order_by("-started_at", "-id").first()


def readings_latest(*, session: RecordingSession) -> dict[str, dict | None]:
    """Each sensor of the session's rig: its newest reading in the session, or None.

    One `ORDER BY timestamp DESC LIMIT 1` per sensor, each a backward scan of the
    (session, sensor, timestamp) index: a handful of rows read however many the table holds.
    """
    sensors = list(Sensor.objects.filter(rig_id=session.rig_id).order_by("name").values_list("id", "name"))
    rows = []
    for sensor_id, _name in sensors:
        row = (
            Reading.objects.filter(session_id=session.pk, sensor_id=sensor_id)
            .order_by("-timestamp", "-seq")  # the seq only breaks a tie of timestamps
            .values("timestamp", "value", "seq", "session_id", "sensor_id")
            .first()
        )
        if row is not None:
            rows.append(row)
    latest: dict[str, dict | None] = dict.fromkeys(name for _id, name in sensors)
    for reading in _as_readings(rows):
        latest[reading["sensor"]] = reading
    return latest


def readings_list(
    *,
    session_id: int | None = None,
    sensor_ids: list[int] | None = None,
    start=None,
    end=None,
    after: tuple | None = None,
    limit: int,
) -> list[dict]:
    """Readings in (timestamp, id) order, at most `limit`, after the keyset position `after`."""
    qs = Reading.objects.all()
    if session_id is not None:
        qs = qs.filter(session_id=session_id)
    if sensor_ids is not None:
        qs = qs.filter(sensor_id__in=sensor_ids)
    if start is not None:
        qs = qs.filter(timestamp__gte=start)
    if end is not None:
        qs = qs.filter(timestamp__lte=end)
    if after is not None:
        after_time, after_id = after
        # The >= lets the index range start at the position; the Q picks out what follows it.
        qs = qs.filter(Q(timestamp__gt=after_time) | Q(timestamp=after_time, id__gt=after_id), timestamp__gte=after_time)
    fields = ("id", "timestamp", "value", "seq", "session_id", "sensor_id")
    if session_id is not None and connection.vendor == "postgresql":
        qs = _merged_by_sensor(qs, session_id, sensor_ids, limit)
    rows = list(qs.order_by("timestamp", "id").values(*fields)[:limit])
    readings = _as_readings(rows)
    for reading, row in zip(readings, rows):
        reading["_key"] = (row["timestamp"], row["id"])
    return readings


def _merged_by_sensor(qs, session_id: int, sensor_ids: list[int] | None, limit: int):
    """The same page as one UNION ALL of each sensor's first `limit` rows.

    The readings' one index is (session, sensor, timestamp): it gives each sensor's readings in
    time order, not the session's, so a page of the whole session read and sorted every row of it
    (0.7-0.9 s at 1,000,000 readings, benchmarks/read_api.py). Each sensor's `limit` rows are a
    short index range; the page is the first `limit` of their union. No second index: each one
    slows COPY (models.Reading).
    """
    if sensor_ids is None:
        sensor_ids = list(
            Sensor.objects.filter(rig__sessions=session_id).order_by("id").values_list("id", flat=True)
        )
    if not sensor_ids:
        return qs.none()
    parts = [qs.filter(sensor_id=pk).order_by("timestamp", "id").values("pk")[:limit] for pk in sensor_ids]
    # Reading ids of every sensor's first rows; the outer query orders and cuts them.
    union = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return Reading.objects.filter(pk__in=union)


def _as_readings(rows: list[dict]) -> list[dict]:
    """Reading rows (values()) in the REST shape, with their sensors' names and types."""
    sensors = dict(
        (pk, (name, kind))
        for pk, name, kind in Sensor.objects.filter(pk__in={r["sensor_id"] for r in rows}).values_list(
            "id", "name", "sensor_type"
        )
    )
    return [
        {
            "timestamp": r["timestamp"].timestamp(),
            "sensor_type": sensors[r["sensor_id"]][1],
            "value": r["value"],
            "sensor": sensors[r["sensor_id"]][0],
            "session_id": r["session_id"],
            "seq": r["seq"],
        }
        for r in rows
    ]


def recording_status(*, rig) -> dict:
    """The seed's session status for one rig: what records now, and how it is going."""
    session = RecordingSession.objects.filter(rig=rig, status=RecordingSession.Status.RECORDING).first()
    sensors = list(Sensor.objects.filter(rig=rig).values_list("name", flat=True))
    if session is None:
        return {
            "recording": False,
            "rig": rig.name,
            "session_id": None,
            "sensors_active": [],
            "data_summary": {"total_readings": 0, "duration_seconds": 0.0},
            "validation_stats": {"total": 0, "warning": 0, "error": 0, "open": 0},
            "connected_clients": presence.total_clients(),
        }
    duration = (timezone.now() - session.started_at).total_seconds()
    by_status = dict(
        ValidationResult.objects.filter(session=session).values_list("status").annotate(n=Count("id")).order_by()
    )
    open_count = ValidationResult.objects.filter(session=session, is_open=True).count()
    return {
        "recording": True,
        "rig": rig.name,
        "session_id": session.pk,
        "sensors_active": sensors,
        "data_summary": {
            "total_readings": session.reading_count,
            "duration_seconds": round(duration, 3),
            "readings_per_second": round(session.reading_count / duration, 3) if duration > 0 else 0.0,
        },
        "validation_stats": {
            "total": session.alert_count,
            "warning": by_status.get("warning", 0),
            "error": by_status.get("error", 0),
            "open": open_count,
        },
        "connected_clients": presence.total_clients(),
    }


def sensors_status() -> dict:
    """The seed's sensor status: each sensor of every recording session, its rate over the last minute."""
    now = timezone.now()
    recording = list(RecordingSession.objects.filter(status=RecordingSession.Status.RECORDING).select_related("rig"))
    sensors: dict[str, dict] = {}
    for session in recording:
        since = max(session.started_at, now - timedelta(minutes=1))
        window = max((now - since).total_seconds(), 1e-6)
        counts = dict(
            Reading.objects.filter(session=session, timestamp__gte=since)
            .values_list("sensor_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        for sensor in Sensor.objects.filter(rig_id=session.rig_id):
            key = sensor.name if session.rig.name == "sim" else f"{session.rig.name}.{sensor.name}"
            n = counts.get(sensor.pk, 0)
            sensors[key] = {
                "active": n > 0,
                "readings_per_minute": round(n * 60.0 / window, 3) if window >= 1 else n * 60,
                "sensor_type": sensor.sensor_type,
                "rig": session.rig.name,
                "session_id": session.pk,
            }
    live = presence.totals()
    return {
        "sensors": sensors,
        "system": {
            "recording": bool(recording),
            "total_readings": sum(s.reading_count for s in recording),
            "connected_clients": live["clients"],
            "dropped_frames": live["dropped_frames"],
            "layer_lost_readings": live["layer_lost_readings"],
        },
        "timestamp": now.timestamp(),
    }


def readings_after_seq(*, session_id: int, sensor_ids: list[int] | None, after_seq: int, limit: int) -> list[dict]:
    """A session's readings after a sequence position, in sequence order (backfill of a live gap)."""
    qs = Reading.objects.filter(session_id=session_id, seq__gt=after_seq)
    if sensor_ids is not None:
        qs = qs.filter(sensor_id__in=sensor_ids)
    return _as_readings(list(qs.order_by("seq").values("timestamp", "value", "seq", "session_id", "sensor_id")[:limit]))
