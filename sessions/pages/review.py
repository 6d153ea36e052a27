"""The session review pages: `/sessions/` (the list) and `/sessions/<id>/` (one session, its charts and alerts)."""

from datetime import UTC, datetime, time, timedelta
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from robotest_site.roles import can_operate
from sensors.models import Rig
from sessions.models import RecordingSession, ValidationResult
from sessions.reads.pages import Position, session_review, sessions_filtered, sessions_page
from sessions.services import AlreadyAcknowledged, result_acknowledge

PAGE_SIZE = 50
# The aggregated answer's buckets per chart: about one per horizontal pixel of a wide chart.
MAX_POINTS = 1000


def readable(view):
    """Pages read what the API reads: a signed-in user, or anyone when ROBOTEST_PUBLIC_READ=true."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated and not settings.ROBOTEST_PUBLIC_READ:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped


class PositionField(forms.CharField):
    """A list position as the Newer/Older links carry it: `<Unix µs>.<id>`."""

    def to_python(self, value) -> Position | None:
        value = super().to_python(value)
        if not value:
            return None
        try:
            micros, pk = value.split(".")
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros)), int(pk)
        except (ValueError, OverflowError):
            raise forms.ValidationError("is not a position from a Newer/Older link") from None


def position_text(position: Position) -> str:
    started_at, pk = position
    delta = started_at - datetime(1970, 1, 1, tzinfo=UTC)
    return f"{delta // timedelta(microseconds=1)}.{pk}"


class SessionFilterForm(forms.Form):
    """The list's filters; every field optional; a bad value is a form error shown beside the field."""

    q = forms.CharField(label="Name contains", required=False, max_length=200)
    rig = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "Any"), *RecordingSession.Status.choices])
    verdict = forms.ChoiceField(required=False, choices=[("", "Any"), *RecordingSession.Verdict.choices])
    started_from = forms.DateField(label="Started on or after", required=False,
                                   widget=forms.DateInput(attrs={"type": "date"}))
    started_to = forms.DateField(label="Started on or before", required=False,
                                 widget=forms.DateInput(attrs={"type": "date"}))
    before = PositionField(required=False, widget=forms.HiddenInput)
    after = PositionField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rigs = Rig.objects.order_by("name").values_list("name", flat=True)
        self.fields["rig"].choices = [("", "Any"), *((name, name) for name in rigs)]

    def clean(self):
        data = super().clean()
        start, end = data.get("started_from"), data.get("started_to")
        if start and end and end < start:
            self.add_error("started_to", "must be on or after the first day")
        return data

    def sessions(self):
        """The filtered sessions (call after is_valid)."""
        data = self.cleaned_data
        start, end = data.get("started_from"), data.get("started_to")
        return sessions_filtered(
            rig=data["rig"], status=data["status"], verdict=data["verdict"], name=data["q"].strip(),
            started_from=datetime.combine(start, time.min, tzinfo=UTC) if start else None,
            started_before=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None,
        )


@readable
def session_list(request):
    form = SessionFilterForm(request.GET or None)
    page, newer, older = [], None, None
    # A bad filter shows its error beside the field and lists nothing: the page itself is fine (200).
    if not form.is_bound or form.is_valid():
        data = form.cleaned_data if form.is_bound else {}
        sessions = form.sessions() if form.is_bound else sessions_filtered()
        result = sessions_page(sessions, before=data.get("before"), after=data.get("after"), limit=PAGE_SIZE)
        page = [(s, s.duration_text()) for s in result.sessions]
        newer, older = result.newer, result.older
    query = request.GET.copy()
    query.pop("before", None)
    query.pop("after", None)
    context = {
        "nav": "sessions", "form": form, "page": page, "filtered": bool(query),
        "newer_query": _page_query(query, "after", newer), "older_query": _page_query(query, "before", older),
    }
    return render(request, "sessions/list.html", context)


def _page_query(query, name: str, position: Position | None) -> str | None:
    if position is None:
        return None
    query = query.copy()
    query[name] = position_text(position)
    return query.urlencode()


@readable
def session_detail(request, session_id: int):
    session = get_object_or_404(RecordingSession.objects.select_related("rig", "operator"), pk=session_id)
    review = session_review(session)
    charts = [
        {"sensor": c.sensor, "sensor_type": c.sensor_type, "unit": c.unit, "field": c.field, "rate_hz": c.rate_hz}
        for c in review["charts"]
    ]
    config = {
        "session": session.pk, "status": session.status, "rules": session.rules, "charts": charts,
        "started_at": session.started_at.timestamp(),
        "stopped_at": session.stopped_at.timestamp() if session.stopped_at else None,
        "max_points": MAX_POINTS, "ws_path": "/ws/sensor-data",
        "episodes": review["episodes"],
    }
    context = {
        "nav": "sessions", "session": session, "duration": session.duration_text(),
        "stats": review["stats"], "alerts": review["alerts"], "alerts_total": len(review["episodes"]),
        "rules": [_rule_row(r) for r in session.rules],
        "can_operate": can_operate(request.user), "review_config": config,
    }
    return render(request, "sessions/detail.html", context)


def _rule_row(rule: dict) -> dict:
    applies = rule.get("sensor") or f"every {rule.get('sensor_type')}"
    if rule.get("field"):
        applies = f"{applies} · {rule['field']}"
    return {**rule, "applies": applies}


@require_POST
def acknowledge(request, session_id: int, result_id: int):
    """The page's Acknowledge form: records who and when (the first acknowledgement stands), then back to the page."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("session-page", args=[session_id]))
    if not can_operate(request.user):
        raise PermissionDenied("viewers may not acknowledge alerts")
    result = get_object_or_404(ValidationResult, pk=result_id, session_id=session_id)
    try:
        result_acknowledge(result_id=result.pk, user=request.user, comment=request.POST.get("comment", "")[:2000])
    except AlreadyAcknowledged:
        pass  # the page shows who did it first
    return redirect(f"{reverse('session-page', args=[session_id])}#alert-{result.pk}")

