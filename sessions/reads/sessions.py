"""Reads of sessions and readings."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from sensors.models import DEFAULT_RIG, Sensor
from sessions.live import presence
from sessions.models import EngineHeartbeat, Reading, RecordingSession, ValidationResult
from sessions.reads.stats import sensor_stats, sensor_stats_current


def session_summary(session: RecordingSession) -> dict:
    """The stop summary (the seed's fields and more)."""
    return {
        "session_id": session.pk,
        "rig": session.rig.name,
        "name": session.name,
        "status": session.status,
        "started_at": session.started_at.isoformat(),
        "stopped_at": session.stopped_at.isoformat() if session.stopped_at else None,
        "total_readings": session.reading_count,
        "session_duration": round(session.duration_seconds(), 6),
        "validation_alerts": session.alert_count,
        "lost_readings": session.lost_readings,
        "verdict": session.verdict or None,
        "summary_stats": session.summary_stats,
    }


def session_stats(session: RecordingSession) -> dict[str, dict]:
    """Per-sensor statistics (sessions.reads.stats): frozen at completion, kept current while it records;
    an aborted session has no readings left."""
    if session.status == RecordingSession.Status.RECORDING:
        return sensor_stats_current(session=session)
    if session.status == RecordingSession.Status.COMPLETED and session.summary_stats:
        return session.summary_stats
    return sensor_stats(session_id=session.pk)


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
    duration = session.duration_seconds()
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
            key = sensor.name if session.rig.name == DEFAULT_RIG else f"{session.rig.name}.{sensor.name}"
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


