"""django-filter filter sets of the sessions resource."""

from django_filters import rest_framework as filters

from robotest_site.api import params
from robotest_site.api.filters import TimeFilter, existing
from sensors.models import Rig
from sessions.models import RecordingSession


class SessionFilter(filters.FilterSet):
    """`rig` (name), `status`, `verdict`, and a start-time window `[started_after, started_before)`."""

    rig = filters.CharFilter(
        method=existing("rig", Rig, "name", "rig__name"), help_text="Rig name; an unknown rig is a 404."
    )
    status = filters.ChoiceFilter(choices=RecordingSession.Status.choices)
    verdict = filters.ChoiceFilter(choices=RecordingSession.Verdict.choices)
    started_after = TimeFilter(
        field_name="started_at", lookup_expr="gte",
        help_text="Sessions started at or after this time (Unix seconds or ISO 8601).",
    )
    started_before = TimeFilter(
        field_name="started_at", lookup_expr="lt",
        help_text="Sessions started before this time (Unix seconds or ISO 8601).",
    )

    class Meta:
        model = RecordingSession
        fields = ["rig", "status", "verdict", "started_after", "started_before"]

    def filter_queryset(self, queryset):
        after, before = self.form.cleaned_data.get("started_after"), self.form.cleaned_data.get("started_before")
        if after and before and before <= after:
            raise params.bad("started_before", "must be after started_after")
        return super().filter_queryset(queryset)
