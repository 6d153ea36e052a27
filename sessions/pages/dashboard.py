"""The live dashboard at `/`: rig picker and session controls, live charts, sensor tiles and the alerts feed.

The page's first paint needs no request of its own: every rig, its sensors and its latest session
(with the rule snapshot when it records) are rendered into it; static/dashboard.js takes over from
there with the live feed (docs/websocket.md) and the REST API.
"""

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.middleware.csrf import get_token
from django.shortcuts import render

from robotest_site.roles import can_operate
from sensors.models import DEFAULT_RIG, Rig
from sessions.models import RecordingSession

# Readings of a recording session the page loads when it opens, so its charts do not start empty.
HISTORY_READINGS = 3000


def dashboard(request):
    may_read = request.user.is_authenticated or settings.ROBOTEST_PUBLIC_READ
    rigs = _rigs() if may_read else []
    selected = _selected(rigs, request.GET.get("rig", ""))
    config = {
        "ws_path": "/ws/sensor-data",
        "api": "/api/v1/",
        "csrf_token": get_token(request),
        "can_operate": can_operate(request.user),
        "logged_in": request.user.is_authenticated,
        "username": request.user.get_username() if request.user.is_authenticated else None,
        "history_readings": HISTORY_READINGS,
        "rigs": rigs,
        "rig": selected["name"] if selected else None,
    }
    context = {
        "nav": "dashboard",
        "dashboard_config": config,
        "rigs": rigs,
        "selected": selected,
        "may_read": may_read,
        "operate": config["can_operate"],
        "login_next": request.get_full_path(),
    }
    return render(request, "dashboard.html", context)


def _rigs() -> list[dict]:
    """Every rig with its sensors and its latest session (the recording one, when one records)."""
    latest = RecordingSession.objects.filter(rig=OuterRef("pk")).order_by("-started_at", "-id").values("pk")[:1]
    rigs = list(Rig.objects.prefetch_related("sensors").annotate(latest_id=Subquery(latest)).order_by("name"))
    sessions = RecordingSession.objects.select_related("rig").in_bulk([rig.latest_id for rig in rigs if rig.latest_id])
    return [
        {
            "name": rig.name,
            "source": rig.source,
            "description": rig.description,
            "sensors": [
                {"name": s.name, "sensor_type": s.sensor_type, "unit": s.unit}
                for s in sorted(rig.sensors.all(), key=lambda s: s.name)
            ],
            "session": _session(sessions.get(rig.latest_id)),
        }
        for rig in rigs
    ]


def _session(session: RecordingSession | None) -> dict | None:
    if session is None:
        return None
    recording = session.status == RecordingSession.Status.RECORDING
    return {
        "id": session.pk,
        "rig": session.rig.name,
        "name": session.name,
        "status": session.status,
        "stopping": recording and session.stop_requested_at is not None,
        "verdict": session.verdict or None,
        "started_at": session.started_at.timestamp(),
        "reading_count": session.reading_count,
        "alert_count": session.alert_count,
        # What the charts draw (limit lines) and the tiles compare against; only while it records.
        "rules": session.rules if recording else [],
        "rates": session.rates if recording else {},
    }


def _selected(rigs: list[dict], asked: str) -> dict | None:
    """The rig `?rig=` names; else the default rig when it records, else the first recording rig, else the default."""
    by_name = {rig["name"]: rig for rig in rigs}
    if asked in by_name:
        return by_name[asked]
    recording = [rig for rig in rigs if rig["session"] and rig["session"]["status"] == "recording"]
    default = by_name.get(DEFAULT_RIG)
    if default and default in recording:
        return default
    if recording:
        return recording[0]
    return default or (rigs[0] if rigs else None)
