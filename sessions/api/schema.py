"""OpenAPI descriptions of the session and readings views: response shapes and query parameters.

The views build their answers as plain dicts (selectors); these serializers only describe them.
"""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from robotest_site.api import openapi
from sessions.models import RecordingSession, ValidationResult
from sessions.recording.ingest import MAX_BATCH

SCALAR_OR_OBJECT = {
    "oneOf": [{"type": "number"}, {"type": "object", "additionalProperties": {}}],
    "description": "A number, or an object for sensors with several fields (camera, force/torque).",
}


@extend_schema_field(SCALAR_OR_OBJECT)
class ValueField(serializers.JSONField):
    """A reading's value: a number or an object."""


@extend_schema_field({"type": "number", "nullable": True})
class NullableNumberField(serializers.FloatField):
    """A statistic that only numbers have: null for object values or no readings."""


class ReadingSerializer(serializers.Serializer):
    timestamp = serializers.FloatField(help_text="Unix seconds (microsecond precision).")
    sensor_type = serializers.CharField()
    value = ValueField()
    sensor = serializers.CharField(help_text="The sensor's name in its rig.")
    session_id = serializers.IntegerField()
    seq = serializers.IntegerField(help_text="Position in the session, from 1: a gap means readings were missed.")


class SensorStatsSerializer(serializers.Serializer):
    sensor_type = serializers.CharField()
    unit = serializers.CharField(allow_blank=True)
    count = serializers.IntegerField()
    first_timestamp = NullableNumberField(help_text="Unix seconds; null without readings.")
    last_timestamp = NullableNumberField(help_text="Unix seconds; null without readings.")
    min = NullableNumberField()
    max = NullableNumberField()
    mean = NullableNumberField()


class SessionStartedSerializer(serializers.Serializer):
    session_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RecordingSession.Status.choices, help_text="Always `recording`.")
    started_at = serializers.DateTimeField()
    duration_seconds = serializers.FloatField()
    data_points = serializers.IntegerField()
    rig = serializers.CharField()
    name = serializers.CharField(allow_blank=True)


class SessionSummarySerializer(serializers.Serializer):
    session_id = serializers.IntegerField(help_text="The session that was started (and is now stopped).")
    rig = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=RecordingSession.Status.choices)
    started_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    total_readings = serializers.IntegerField(help_text="Every reading of the session, the last one included.")
    session_duration = serializers.FloatField(help_text="Seconds.")
    validation_alerts = serializers.IntegerField()
    verdict = serializers.ChoiceField(choices=RecordingSession.Verdict.choices, allow_null=True)
    summary_stats = serializers.DictField(child=SensorStatsSerializer(), help_text="Per sensor name.")


class SessionResetSerializerOut(serializers.Serializer):
    reset = serializers.BooleanField(help_text="Whether a recording session was aborted.")
    session_id = serializers.IntegerField(allow_null=True)
    rig = serializers.CharField()
    message = serializers.CharField()


class DataSummarySerializer(serializers.Serializer):
    total_readings = serializers.IntegerField()
    duration_seconds = serializers.FloatField()
    readings_per_second = serializers.FloatField(required=False, help_text="Only while recording.")


class ValidationStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    warning = serializers.IntegerField()
    error = serializers.IntegerField()
    open = serializers.IntegerField()


class RecordingStatusSerializer(serializers.Serializer):
    recording = serializers.BooleanField()
    rig = serializers.CharField()
    session_id = serializers.IntegerField(allow_null=True)
    sensors_active = serializers.ListField(child=serializers.CharField(), help_text="Sensor names, while recording.")
    data_summary = DataSummarySerializer()
    validation_stats = ValidationStatsSerializer()
    connected_clients = serializers.IntegerField()


class SensorActivitySerializer(serializers.Serializer):
    active = serializers.BooleanField(help_text="Whether it produced a reading in the last minute.")
    readings_per_minute = serializers.FloatField()
    sensor_type = serializers.CharField()
    rig = serializers.CharField()
    session_id = serializers.IntegerField()


class SystemStatusSerializer(serializers.Serializer):
    recording = serializers.BooleanField()
    total_readings = serializers.IntegerField()
    connected_clients = serializers.IntegerField()
    dropped_frames = serializers.IntegerField()


class SensorsStatusSerializer(serializers.Serializer):
    sensors = serializers.DictField(
        child=SensorActivitySerializer(),
        help_text="Each sensor of every recording session: by name for `sim`, `rig.sensor` for other rigs.",
    )
    system = SystemStatusSerializer()
    timestamp = serializers.FloatField(help_text="Unix seconds.")


class IngestItemSerializer(serializers.Serializer):
    sensor = serializers.CharField(help_text="The sensor's name in the session's rig.")
    timestamp = serializers.JSONField(help_text="Unix seconds or ISO 8601 (naive means UTC).")
    value = ValueField()


class ValidationChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    session_id = serializers.IntegerField()
    sensor_type = serializers.CharField()
    sensor = serializers.CharField()
    rule = serializers.CharField()
    status = serializers.ChoiceField(choices=ValidationResult.Status.choices)
    message = serializers.CharField()
    timestamp = serializers.FloatField(help_text="Unix seconds of the latest violation.")
    first_timestamp = serializers.FloatField()
    last_timestamp = serializers.FloatField()
    count = serializers.IntegerField()
    peak = serializers.FloatField()
    details = serializers.DictField()
    open = serializers.BooleanField(help_text="Whether the run of violations may still grow.")


class IngestAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    first_seq = serializers.IntegerField(allow_null=True)
    last_seq = serializers.IntegerField(allow_null=True)
    validation = ValidationChangeSerializer(many=True, help_text="The results this batch opened, updated or closed.")


class IngestErrorItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the bad reading in the batch.")
    field = serializers.CharField(allow_blank=True, help_text="The bad field; empty when the item is not an object.")
    message = serializers.CharField()


class IngestErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = IngestErrorItemSerializer(many=True, required=False, help_text="Each bad reading (at most 100).")


INGEST_REQUEST = {
    "application/json": {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_BATCH,
        "items": {
            "type": "object",
            "required": ["sensor", "timestamp", "value"],
            "additionalProperties": False,
            "properties": {
                "sensor": {"type": "string", "description": "The sensor's name in the session's rig."},
                "timestamp": openapi.TIME,
                "value": SCALAR_OR_OBJECT,
            },
        },
    }
}
INGEST_RESPONSES = {
    201: IngestAcceptedSerializer,
    400: OpenApiResponse(
        IngestErrorSerializer,
        description="One bad reading rejects the batch: nothing is stored. Or a malformed `Idempotency-Key`.",
    ),
    403: openapi.FORBIDDEN,
    404: openapi.NOT_FOUND,
    409: OpenApiResponse(
        openapi.ErrorSerializer, description="The session is not recording, or records a simulated rig."
    ),
    422: openapi.error(
        "The `Idempotency-Key` was sent with another body to this session in the last 24 h: nothing is stored."
    ),
    **openapi.BODY_ERRORS,
}
INGEST_PARAMETERS = [
    OpenApiParameter(
        "Idempotency-Key",
        {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x20-\\x7e]+$"},
        location=OpenApiParameter.HEADER,
        required=False,
        description="One key per batch (a UUID, say), sent again with the batch when a request timed out. "
        "Within 24 h the same key with the same body (byte for byte) gets the first answer back, with "
        "`Idempotent-Replayed: true`, and stores nothing; with another body it is a 422. Keys are per "
        "session. Only a stored batch keeps its key: a rejected one is judged afresh when retried.",
    ),
    OpenApiParameter(
        "Idempotent-Replayed",
        {"type": "string", "enum": ["true"]},
        location=OpenApiParameter.HEADER,
        response=[201],
        description="Present when this is the stored answer to an earlier request with the same Idempotency-Key.",
    ),
]

LINK = OpenApiParameter(
    "Link",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    response=[200],
    description='`<URL of the next page>; rel="next"` when this page is full; absent on the last page.',
)
SESSION = openapi.integer_param("session", "Only this session's readings (404 if it does not exist).", minimum=1)
READING_FILTERS = [
    openapi.string_param("sensor", "Only this sensor (its name; 404 if no sensor has it)."),
    openapi.string_param("sensor_type", "Only sensors of this type (an unused type matches nothing)."),
    openapi.time_param("start_time", "Readings at or after this time."),
    openapi.time_param("end_time", "Readings at or before this time (not before `start_time`)."),
    openapi.integer_param(
        "limit", "The most readings in this page.", minimum=1, maximum=settings.MAX_DATA_POINTS, default=100
    ),
    OpenApiParameter(
        "after",
        {"type": "string", "pattern": r"^[0-9]+\.[0-9]+$"},
        description="Opaque position from a `Link` header: the page after it.",
    ),
    openapi.integer_param(
        "after_seq",
        "Backfill of a live gap: readings after this position, in `seq` order (needs a session).",
        minimum=0,
    ),
]
READINGS_RESPONSES = {
    200: OpenApiResponse(ReadingSerializer(many=True), description="Readings in timestamp order (or `seq` order with `after_seq`)."),
    400: openapi.BAD_REQUEST,
    403: openapi.FORBIDDEN,
    404: openapi.NOT_FOUND,
}
LAYOUT_PARAM = OpenApiParameter(
    "layout", {"type": "string", "enum": ["long", "wide"], "default": "long"},
    description="`long` (default): one row per reading. `wide`: one row per timestamp, one column per sensor "
    "(object sensors: one per field, `sensor.field`), empty where a sensor has no reading then.",
)


def download_responses(media_type: str, description: str, body=OpenApiTypes.BINARY) -> dict:
    """A streamed file download, or a JSON error."""
    return {
        (200, media_type): OpenApiResponse(body, description=description),
        (403, "application/json"): openapi.FORBIDDEN,
        (404, "application/json"): openapi.error("No such session."),
    }


CSV_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(
        OpenApiTypes.BINARY,
        description="Streamed CSV, `Content-Disposition: attachment` with a filename naming the session. Columns "
        "`timestamp,sensor_type,value,datetime,session_time,session_id,sensor`; object values as JSON.",
    ),
    (400, "application/json"): openapi.BAD_REQUEST,
    (403, "application/json"): openapi.FORBIDDEN,
    (404, "application/json"): openapi.error("No such session, or none to export yet."),
}
