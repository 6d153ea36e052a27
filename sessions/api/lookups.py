"""What the API views look up by name or id: the object, or the JSON 404 that names it (docs/errors.md)."""

from rest_framework.exceptions import NotFound

from robotest_site.api import params
from sensors.models import Rig, Sensor
from sessions.models import RecordingSession


def rig_or_404(name: str) -> Rig:
    rig = Rig.objects.filter(name=name).first()
    if rig is None:
        raise NotFound(f"no rig named {name!r}")
    return rig


def session_or_404(session_id: int) -> RecordingSession:
    """The session with its rig and operator loaded."""
    session = RecordingSession.objects.select_related("rig", "operator").filter(pk=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id}")
    return session


def session_param(query) -> RecordingSession | None:
    """The session `?session=` names (a 400 for a bad id, a 404 for an unknown one), or None without one."""
    session_id = params.integer(query, "session", default=None, minimum=1, maximum=params.MAX_ID)
    return None if session_id is None else session_or_404(session_id)


def sensor_ids_or_404(
    session: RecordingSession | None, *, name: str | None = None, sensor_type: str | None = None
) -> list[int] | None:
    """The sensors `?sensor=` and `?sensor_type=` select (of the session's rig), None without either;
    a 404 for a sensor name that is not there."""
    if not name and not sensor_type:
        return None
    sensors = Sensor.objects.all()
    if session is not None:
        sensors = sensors.filter(rig_id=session.rig_id)
    if name:
        sensors = sensors.filter(name=name)
        ids = list(sensors.values_list("id", flat=True))
        if not ids:
            raise NotFound(f"no sensor named {name!r}" + (f" in session {session.pk}" if session else ""))
        if not sensor_type:
            return ids
    return list(sensors.filter(sensor_type=sensor_type).values_list("id", flat=True))
