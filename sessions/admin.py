"""The admin site for review: sessions with their results and downloads, results to acknowledge, engine state."""

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from robotest_site.roles import can_operate
from sessions import exports, services
from sessions.models import EngineHeartbeat, LiveServer, Reading, RecordingSession, ValidationResult

admin.site.site_header = "RoboTest administration"
admin.site.site_title = "RoboTest admin"
admin.site.index_title = "Recordings, rigs and rules"
# "View site" leads to the dashboard.
admin.site.site_url = "/"
# The lists are wide (a session has ten columns): the home page and the breadcrumbs lead everywhere the sidebar did.
admin.site.enable_nav_sidebar = False

BOUNDS = ("warning_low", "warning_high", "error_low", "error_high")
DOWNLOADS = (
    ("CSV", "session-export-csv-one"), ("JSON", "session-export-json-one"), ("MCAP", "session-export-mcap-one"),
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the engine, the pipeline or a web process: shown, never edited here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def plain_list(item: str, rows) -> str:
    """An unbulleted HTML list, one `item` (a format_html string) per row of arguments."""
    return format_html('<ul class="plain">{}</ul>', format_html_join("", f"<li>{item}</li>", rows))


async def one_csv(streams):
    """Several sessions' long CSVs as one file: the first one's header, then every stream's rows."""
    for index, stream in enumerate(streams):
        header_left = index > 0
        async for chunk in stream:
            if header_left:
                end = chunk.find(b"\n")
                if end < 0:
                    continue
                chunk, header_left = chunk[end + 1:], False
            if chunk:
                yield chunk


class ValidationResultInline(admin.TabularInline):
    model = ValidationResult
    extra = 0
    fields = ["sensor", "rule", "status", "message", "first_timestamp", "last_timestamp", "count", "peak",
              "acknowledged_by", "acknowledged_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("sensor", "acknowledged_by")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RecordingSession)
class RecordingSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "rig", "status", "verdict", "started_at", "duration", "readings", "alerts", "links"]
    list_display_links = ["id", "name"]
    list_select_related = ["rig"]
    list_filter = ["status", "verdict", "rig", "keep"]
    # Also a session's id (get_search_results). No search_help_text: axe finds the search box then labelled by it alone.
    search_fields = ["name", "description", "rig__name"]
    date_hierarchy = "started_at"
    fields = ["name", "description", "rig", "status", "verdict", "started_at", "stop_requested_at", "stopped_at",
              "duration", "reading_count", "alert_count", "operator", "links", "rule_set", "rates", "statistics",
              "keep", "pruned_at"]
    readonly_fields = ["rig", "status", "verdict", "started_at", "stop_requested_at", "stopped_at", "duration",
                       "reading_count", "alert_count", "operator", "links", "rule_set", "rates", "statistics",
                       "pruned_at"]
    inlines = [ValidationResultInline]
    actions = ["export_csv", "delete_selected"]

    @admin.display(description="duration")
    def duration(self, obj: RecordingSession) -> str:
        return obj.duration_text()

    @admin.display(description="readings", ordering="reading_count")
    def readings(self, obj: RecordingSession) -> int:
        return obj.reading_count

    @admin.display(description="alerts", ordering="alert_count")
    def alerts(self, obj: RecordingSession) -> int:
        return obj.alert_count

    @admin.display(description="review, downloads")
    def links(self, obj: RecordingSession) -> str:
        review = format_html('<a href="{}">review</a>', reverse("session-page", args=[obj.pk]))
        downloads = format_html_join(
            " · ", '<a href="{}" download>{}</a>', ((reverse(name, args=[obj.pk]), label) for label, name in DOWNLOADS)
        )
        return format_html("{} · {}", review, downloads)

    @admin.display(description="rules it started with")
    def rule_set(self, obj: RecordingSession) -> str:
        def bounds(rule: dict) -> str:
            return ", ".join(f"{name} {rule[name]}" for name in BOUNDS if rule.get(name) is not None)

        rows = ((rule["code"], rule.get("sensor") or rule.get("sensor_type"), rule.get("kind"), bounds(rule))
                for rule in obj.rules)
        return plain_list("{} ({}, {}): {}", rows) if obj.rules else "-"

    @admin.display(description="statistics per sensor")
    def statistics(self, obj: RecordingSession) -> str:
        def text(stats: dict) -> str:
            if stats.get("min") is None:
                return f"{stats.get('count', 0)} readings"
            unit = f" {stats['unit']}" if stats.get("unit") else ""
            return (f"{stats['count']} readings, min {stats['min']:.6g}, max {stats['max']:.6g}, "
                    f"mean {stats['mean']:.6g}{unit}")

        rows = ((name, text(stats)) for name, stats in sorted(obj.summary_stats.items()))
        return plain_list("{}: {}", rows) if obj.summary_stats else "-"

    def view_on_site(self, obj: RecordingSession) -> str:
        return reverse("session-page", args=[obj.pk])

    def get_search_results(self, request, queryset, search_term):
        found, duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lstrip("#")
        if term.isdigit() and len(term) < 19:  # a bigint
            found |= queryset.filter(pk=int(term))
        return found, duplicates

    def has_add_permission(self, request) -> bool:
        # A session starts on its rig (the dashboard, the API), which takes its rule snapshot.
        return False

    def get_deleted_objects(self, objs, request):
        """The confirmation's summary from the stored counters: listing a session's readings would load them all."""
        objs = list(objs)
        summary = [f"{obj}: {obj.reading_count} readings, {obj.alert_count} validation results" for obj in objs]
        counts = {
            "recording sessions": len(objs),
            "readings": sum(obj.reading_count for obj in objs),
            "validation results": sum(obj.alert_count for obj in objs),
        }
        perms_needed = set() if self.has_delete_permission(request) else {"recording session"}
        recording = [
            f"{obj} (recording: stop it first)" for obj in objs if obj.status == RecordingSession.Status.RECORDING
        ]
        return summary, counts, perms_needed, recording

    @admin.action(description="Export the selected sessions as one CSV")
    def export_csv(self, request, queryset):
        sessions = list(queryset.select_related("rig").order_by("started_at", "id"))
        # One long CSV per session (the API's export), joined: the same columns, session_id on every row.
        streams = [exports.csv_stream(session) for session in sessions]
        ids = [str(session.pk) for session in sessions]
        name = f"robotest-sessions-{'-'.join(ids)}.csv" if len(ids) <= 10 else f"robotest-{len(ids)}-sessions.csv"
        response = StreamingHttpResponse(one_csv(streams), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class CappedCountPaginator(Paginator):
    """Counts no further than CAP rows: a COUNT(*) of tens of millions of readings takes seconds."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


@admin.register(Reading)
class ReadingAdmin(ReadOnlyAdmin):
    list_display = ["session", "seq", "sensor", "timestamp", "value"]
    list_filter = ["session__rig"]
    # The table holds tens of millions of rows: never COUNT(*) it whole for the changelist.
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_select_related = ["session", "sensor"]
    ordering = ["-id"]


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "no")
        return queryset


@admin.register(ValidationResult)
class ValidationResultAdmin(admin.ModelAdmin):
    list_display = ["id", "session", "sensor", "rule", "status", "count", "peak", "first_timestamp", "acknowledged"]
    list_select_related = ["session", "sensor", "acknowledged_by"]
    list_filter = ["status", "is_open", AcknowledgedFilter, "rule"]
    search_fields = ["rule", "message", "sensor__name"]
    actions = ["acknowledge"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    @admin.display(description="acknowledged", ordering="acknowledged_at")
    def acknowledged(self, obj: ValidationResult) -> str:
        if obj.acknowledged_at is None:
            return "no"
        when = timezone.localtime(obj.acknowledged_at).strftime("%Y-%m-%d %H:%M")
        return f"by {obj.acknowledged_by or 'a deleted user'}, {when}"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Results are the pipeline's; the one change a person makes is the acknowledge action.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_acknowledge_permission(self, request) -> bool:
        return can_operate(request.user) and request.user.has_perm("recording.acknowledge_result")

    @admin.action(permissions=["acknowledge"], description="Acknowledge the selected results (as you, now)")
    def acknowledge(self, request, queryset):
        done, before = 0, []
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                services.result_acknowledge(result_id=pk, user=request.user)
            except services.AlreadyAcknowledged:
                before.append(str(pk))
            else:
                done += 1
        if done:
            self.message_user(request, f"Acknowledged {done} result{'s' if done != 1 else ''}.", messages.SUCCESS)
        if before:
            self.message_user(
                request, f"Already acknowledged, left as they were: {', '.join(before)}.", messages.WARNING
            )


@admin.register(EngineHeartbeat)
class EngineHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "pid", "beat_at", "sessions"]


@admin.register(LiveServer)
class LiveServerAdmin(ReadOnlyAdmin):
    list_display = ["name", "clients", "dropped_frames", "lost_readings", "beat_at"]

