"""What the API views look up by name or id: the object, or the JSON 404 that names it (CONTRACT "Errors")."""

from rest_framework.exceptions import NotFound

from robotest_site.api import params
from sensors.models import Rig
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
    session_id = params.integer(query, "session", default=None, minimum=1, maximum=2**63 - 1)
    return None if session_id is None else session_or_404(session_id)
