"""OpenAPI pieces every API module shares: the error shapes of `errors.py`, bounded and time parameters."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

# Unix seconds (1970 to 3000, what params.timestamp accepts) or an ISO 8601 time (naive means UTC).
TIME = {
    "oneOf": [
        {"type": "number", "minimum": 0, "exclusiveMaximum": True, "maximum": 32503680000},
        {"type": "string", "format": "date-time"},
    ],
}
BIGINT_MAX = 2**63 - 1


@extend_schema_field(
    {
        "oneOf": [
            {"type": "object", "additionalProperties": {}, "description": "field name → its messages; nested fields nest"},
            {"type": "array", "items": {}},
        ],
    }
)
class FieldErrorsField(serializers.JSONField):
    """What DRF's validation said, field by field (`{"limit": ["must be from 1 to 10000, got 0"]}`)."""


class ErrorSerializer(serializers.Serializer):
    """Every 4xx: a message, and field errors when a parameter or body field was wrong."""

    detail = serializers.CharField(help_text="What went wrong, naming the parameter or field.")
    errors = FieldErrorsField(
        required=False,
        help_text="Present on a 400 for bad fields: `{field: [message, …]}` (nested fields nest).",
    )


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


BAD_REQUEST = error("A bad parameter or body: `detail` names it, `errors` holds the field errors.")
FORBIDDEN = error(
    "No credentials, a bad token, a viewer's write (the viewer role only reads), or (for writes restricted to "
    "staff) a user who is not staff or admin. "
    "Reads need credentials too unless `ROBOTEST_PUBLIC_READ=true`."
)
NOT_FOUND = error("The session, rig or sensor named does not exist.")
# What any operation with a request body may also answer.
BODY_ERRORS = {
    413: error("The body is larger than ROBOTEST_INGEST_MAX_BYTES (4 MiB by default); the detail names the limit."),
    429: error("Over a rate limit (ROBOTEST_INGEST_RATE, ROBOTEST_ANON_RATE, ROBOTEST_AUTH_FAILURE_RATE): "
               "`Retry-After` says when to try again."),
    415: error("A body in a media type the endpoint does not parse, or a malformed one: send JSON."),
}


def integer_param(name: str, description: str, *, minimum: int, maximum: int = BIGINT_MAX, default=None) -> OpenApiParameter:
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum}
    if default is not None:
        schema["default"] = default
    return OpenApiParameter(name, schema, description=description)


def time_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, TIME, description=f"{description} Unix seconds or ISO 8601 (naive means UTC).")


def string_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, description=description)
