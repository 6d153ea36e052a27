from rest_framework import serializers

from sessions.models import RecordingSession


class SessionStartSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    rig = serializers.SlugField(max_length=64, required=False, default="sim")


class SessionStopSerializer(serializers.Serializer):
    session_id = serializers.IntegerField(required=False, min_value=1)


class SessionResetSerializer(serializers.Serializer):
    rig = serializers.SlugField(max_length=64, required=False, default="sim")


class RecordingSessionSerializer(serializers.ModelSerializer):
    rig = serializers.SlugRelatedField(slug_field="name", read_only=True)
    operator = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    duration_seconds = serializers.SerializerMethodField()
    # Declared so the schema says what is sent: "" until the session ends.
    verdict = serializers.ChoiceField(choices=RecordingSession.Verdict.choices, allow_blank=True, read_only=True)

    class Meta:
        model = RecordingSession
        fields = [
            "id", "rig", "name", "description", "operator", "status", "started_at", "stopped_at",
            "duration_seconds", "reading_count", "alert_count", "verdict", "summary_stats",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, session: RecordingSession) -> float:
        from django.utils import timezone

        end = session.stopped_at or timezone.now()
        return round((end - session.started_at).total_seconds(), 6)


class RecordingSessionDetailSerializer(RecordingSessionSerializer):
    class Meta(RecordingSessionSerializer.Meta):
        fields = [*RecordingSessionSerializer.Meta.fields, "rules", "rates"]
        read_only_fields = fields
