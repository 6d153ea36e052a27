"""The session review pages: `/sessions/` (the list) and `/sessions/<id>/` (one session)."""

from django.shortcuts import get_object_or_404, render

from sessions.models import RecordingSession


def session_list(request):
    sessions = RecordingSession.objects.select_related("rig").order_by("-id")[:50]
    return render(request, "sessions/list.html", {"nav": "sessions", "sessions": sessions})


def session_detail(request, session_id: int):
    session = get_object_or_404(RecordingSession.objects.select_related("rig"), pk=session_id)
    return render(request, "sessions/detail.html", {"nav": "sessions", "session": session})
