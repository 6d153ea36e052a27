"""Validation results (alerts): the `/api/v1/results/` resource, its acknowledge action, and the
seed's `/api/v1/sensors/validation` list. Both give a result in the shape of the live feed."""

from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from robotest_site.api import params
from robotest_site.api.errors import error_responses
from robotest_site.api.filters import BooleanFilter, IdFilter, existing
from robotest_site.api.permissions import ReadPublicOrAuthenticated
from sensors.models import Sensor
from sessions.api.lookups import sensor_ids_or_404, session_param
from sessions.models import RecordingSession, ValidationResult
from sessions.reads.results import result_json, results_list, results_queryset
from sessions.services import AlreadyAcknowledged, result_acknowledge

BAD = "a bad parameter, named in the message"


class ResultSerializer(serializers.Serializer):
    """A result as `sessions.reads.results.result_json` gives it; the fields declared here document it."""

    id = serializers.IntegerField()
    session_id = serializers.IntegerField()
    sensor_type = serializers.CharField()
    sensor = serializers.CharField(help_text="Sensor name in the session's rig.")
    rule = serializers.CharField(help_text="Code of the rule violated.")
    status = serializers.ChoiceField(choices=ValidationResult.Status.choices)
    message = serializers.CharField()
    timestamp = serializers.FloatField(help_text="Unix seconds of the last violating reading (the seed's field).")
    first_timestamp = serializers.FloatField(help_text="Unix seconds of the first violating reading.")
    last_timestamp = serializers.FloatField(help_text="Unix seconds of the last violating reading.")
    count = serializers.IntegerField(help_text="Consecutive violating readings.")
    peak = serializers.FloatField(help_text="The worst value reached.")
    details = serializers.JSONField(help_text="The rule's kind, field and bounds.")
    open = serializers.BooleanField(help_text="True while the run of violations may still grow.")
    acknowledged = serializers.BooleanField()
    acknowledged_by = serializers.CharField(allow_null=True, help_text="Username.")
    acknowledged_at = serializers.FloatField(allow_null=True, help_text="Unix seconds.")
    acknowledge_comment = serializers.CharField(allow_blank=True)

    def to_representation(self, instance: ValidationResult) -> dict:
        return result_json(instance)


class AcknowledgeSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ResultFilter(filters.FilterSet):
    session = IdFilter(
        method=existing("session", RecordingSession, "pk", "session_id"), help_text="Session id; unknown is a 404."
    )
    sensor = filters.CharFilter(
        method=existing("sensor", Sensor, "name", "sensor__name"), help_text="Sensor name; unknown is a 404."
    )
    status = filters.ChoiceFilter(choices=ValidationResult.Status.choices)
    rule = filters.CharFilter(help_text="Rule code (e.g. force_threshold).")
    is_open = BooleanFilter(help_text="true: runs of violations that may still grow.")
    acknowledged = BooleanFilter(method="filter_acknowledged")

    class Meta:
        model = ValidationResult
        fields = ["session", "sensor", "status", "rule", "is_open", "acknowledged"]

    def filter_acknowledged(self, queryset, name, value):
        return queryset.filter(acknowledged_at__isnull=not value)


@extend_schema_view(
    list=extend_schema(
        summary="Validation results (alerts), newest first, filtered and paged",
        responses={200: ResultSerializer(many=True), **error_responses(_400=BAD, _404="an unknown session, sensor or page")},
    ),
    retrieve=extend_schema(
        summary="One validation result", responses={200: ResultSerializer, **error_responses(_404="no such result")}
    ),
)
class ResultViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Validation results: runs of consecutive violations of one rule on one sensor; any user but a viewer may acknowledge one."""

    queryset = results_queryset()
    serializer_class = ResultSerializer
    filterset_class = ResultFilter
    ordering_fields = ["id", "first_timestamp", "last_timestamp", "count", "peak", "status", "acknowledged_at"]
    # Any segment reaches the view, which answers an id it does not know with a JSON 404.
    lookup_value_regex = "[^/]+"

    @extend_schema(
        summary="Acknowledge a result: who, when, and a comment (any signed-in user)",
        request=AcknowledgeSerializer,
        responses={
            200: ResultSerializer,
            **error_responses(
                _400="a bad comment", _404="no such result",
                _409="already acknowledged: the first acknowledgement stands (body: detail and the result)",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        result = self.get_object()
        body = AcknowledgeSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        try:
            result = result_acknowledge(result_id=result.pk, user=request.user, comment=body.validated_data["comment"])
        except AlreadyAcknowledged:
            result = self.get_queryset().get(pk=result.pk)
            return Response(
                {
                    "detail": f"result {result.pk} was acknowledged by {result.acknowledged_by or 'a deleted user'} "
                    f"at {result.acknowledged_at.isoformat()}",
                    "result": result_json(result),
                },
                status=status.HTTP_409_CONFLICT,
            )
        return Response(result_json(result))


# The seed's bound on one validation read.
MAX_VALIDATION_LIMIT = 200


class ValidationView(APIView):
    """The seed's `/api/v1/sensors/validation`: a plain list of results, newest first."""

    permission_classes = [ReadPublicOrAuthenticated]

    @extend_schema(
        summary="Validation results, newest first (the seed's plain list)",
        parameters=[
            OpenApiParameter("session", OpenApiTypes.INT, description="Session id; unknown is a 404."),
            OpenApiParameter("sensor", OpenApiTypes.STR, description="Sensor name; unknown is a 404."),
            OpenApiParameter("status", OpenApiTypes.STR, enum=ValidationResult.Status.values),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1–200, default 50."),
        ],
        responses={
            200: ResultSerializer(many=True),
            **error_responses(_400=BAD, _404="an unknown session or sensor"),
        },
    )
    def get(self, request):
        query = request.query_params
        session = session_param(query)
        sensor_ids = sensor_ids_or_404(session, name=query.get("sensor"))
        result_status = query.get("status") or None
        if result_status is not None and result_status not in ValidationResult.Status.values:
            raise params.bad("status", f"must be one of {', '.join(ValidationResult.Status.values)}, got {result_status!r}")
        limit = params.integer(query, "limit", default=50, minimum=1, maximum=MAX_VALIDATION_LIMIT)
        session_id = session.pk if session else None
        return Response(results_list(session_id=session_id, sensor_ids=sensor_ids, status=result_status, limit=limit))
