from django.contrib import admin

from sessions.models import EngineHeartbeat, Reading, RecordingSession, ValidationResult


class ValidationResultInline(admin.TabularInline):
    model = ValidationResult
    extra = 0
    fields = ["sensor", "rule", "status", "message", "first_timestamp", "last_timestamp", "count", "peak",
              "acknowledged_by", "acknowledged_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(RecordingSession)
class RecordingSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "rig", "name", "status", "verdict", "started_at", "stopped_at", "reading_count", "alert_count"]
    list_filter = ["status", "verdict", "rig"]
    search_fields = ["name", "description"]
    date_hierarchy = "started_at"
    readonly_fields = ["rig", "status", "started_at", "stop_requested_at", "stopped_at", "rules", "rates",
                       "reading_count", "alert_count", "verdict", "summary_stats", "operator"]
    inlines = [ValidationResultInline]


@admin.register(Reading)
class ReadingAdmin(admin.ModelAdmin):
    list_display = ["session", "seq", "sensor", "timestamp", "value"]
    list_filter = ["session__rig"]
    raw_id_fields = ["session", "sensor"]
    # The table holds tens of millions of rows: never COUNT(*) it for the changelist.
    show_full_result_count = False
    list_select_related = ["sensor"]
    ordering = ["-id"]

    def get_readonly_fields(self, request, obj=None):
        return ["session", "sensor", "seq", "timestamp", "value"] if obj else []


@admin.register(ValidationResult)
class ValidationResultAdmin(admin.ModelAdmin):
    list_display = ["id", "session", "sensor", "rule", "status", "count", "peak", "first_timestamp", "is_open",
                    "acknowledged_at"]
    list_filter = ["status", "rule", "is_open"]
    raw_id_fields = ["session", "sensor", "acknowledged_by"]


@admin.register(EngineHeartbeat)
class EngineHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["name", "pid", "beat_at", "sessions"]
