from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sensors.models import DEFAULT_RIG
from sessions.models import RecordingSession
from sessions.reads.sessions import session_stats

# {sensor name: statistics}: what sessions.reads.stats.sensor_stats returns.
SENSOR_STATS_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "sensor_type": {"type": "string"},
            "unit": {"type": "string"},
            "count": {"type": "integer"},
            "first_timestamp": {"type": "number", "nullable": True, "description": "Unix seconds"},
            "last_timestamp": {"type": "number", "nullable": True, "description": "Unix seconds"},
            "min": {"type": "number", "nullable": True, "description": "null for object values"},
            "max": {"type": "number", "nullable": True},
            "mean": {"type": "number", "nullable": True},
        },
    },
}


class SessionStartSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    rig = serializers.SlugField(max_length=64, required=False, default=DEFAULT_RIG)


class SessionStopSerializer(serializers.Serializer):
    session_id = serializers.IntegerField(required=False, min_value=1)


class SessionResetSerializer(serializers.Serializer):
    rig = serializers.SlugField(max_length=64, required=False, default=DEFAULT_RIG)


class RecordingSessionSerializer(serializers.ModelSerializer):
    rig = serializers.SlugRelatedField(slug_field="name", read_only=True)
    operator = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    duration_seconds = serializers.SerializerMethodField()
    verdict = serializers.SerializerMethodField()

    class Meta:
        model = RecordingSession
        fields = [
            "id", "rig", "name", "description", "operator", "status", "started_at", "stopped_at",
            "duration_seconds", "reading_count", "lost_readings", "alert_count", "verdict", "summary_stats",
        ]
        read_only_fields = fields

    @extend_schema_field(
        serializers.ChoiceField(
            choices=RecordingSession.Verdict.choices, allow_null=True,
            help_text="null until the session completes (and for an aborted one), as in the stop summary",
        )
    )
    def get_verdict(self, session: RecordingSession) -> str | None:
        return session.verdict or None

    def get_duration_seconds(self, session: RecordingSession) -> float:
        return round(session.duration_seconds(), 6)


class RecordingSessionDetailSerializer(RecordingSessionSerializer):
    """A session with its rule snapshot, its rates and per-sensor statistics (`summary_stats`)."""

    summary_stats = serializers.SerializerMethodField()

    class Meta(RecordingSessionSerializer.Meta):
        fields = [*RecordingSessionSerializer.Meta.fields, "rules", "rates"]
        read_only_fields = fields

    @extend_schema_field(SENSOR_STATS_SCHEMA)
    def get_summary_stats(self, session: RecordingSession) -> dict:
        return session_stats(session)
