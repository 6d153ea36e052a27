from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from robotest_site.api import openapi
from robotest_site.api.errors import error_responses
from robotest_site.api.permissions import IsStaffOrReadOnly
from sensors.api.serializers import RigSerializer, SensorSerializer
from sensors.models import Rig, Sensor
from sensors.services import rig_create


class SensorFilter(filters.FilterSet):
    sensor_type = filters.CharFilter(help_text="Only sensors of this type.")

    class Meta:
        model = Sensor
        fields = ["sensor_type"]


class RigFilter(filters.FilterSet):
    source = filters.ChoiceFilter(choices=Rig.Source.choices)

    class Meta:
        model = Rig
        fields = ["source"]


@extend_schema_view(
    list=extend_schema(
        summary="Test rigs with their sensors",
        responses={200: RigSerializer(many=True), **error_responses(_400="a bad parameter", _404="no such page")},
    ),
    retrieve=extend_schema(summary="One rig with its sensors", responses={200: RigSerializer, **error_responses(_404="no such rig")}),
    create=extend_schema(
        summary="Create an external rig with its sensors (staff)",
        responses={
            201: RigSerializer, **error_responses(_400="a bad field, named in the message", _403="not staff"),
            **openapi.BODY_ERRORS,
        },
    ),
)
class RigViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Test rigs and their sensors; staff create external rigs."""

    queryset = Rig.objects.prefetch_related("sensors")
    serializer_class = RigSerializer
    permission_classes = [IsStaffOrReadOnly]
    lookup_field = "name"
    filterset_class = RigFilter
    ordering_fields = ["id", "name", "created_at"]
    # Rig names are slugs: anything else (a NUL, which PostgreSQL refuses) is no route, a JSON 404.
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rig = rig_create(
            name=data["name"], source=data.get("source", Rig.Source.EXTERNAL),
            description=data.get("description", ""), sensors=data["sensors"],
        )
        return Response(self.get_serializer(rig).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="The sensors of one rig",
        responses={
            200: SensorSerializer(many=True),
            **error_responses(_400="a bad parameter", _404="no such rig or page"),
        },
    )
    @action(
        detail=True, methods=["get"], queryset=Sensor.objects.order_by("name"), serializer_class=SensorSerializer,
        filterset_class=SensorFilter, ordering_fields=["id", "name", "sensor_type"],
    )
    def sensors(self, request, name=None):
        # Nested under the rig because a sensor's name is unique only in its rig; a top-level
        # /sensors/ resource would also sit beside the seed's /sensors/readings paths.
        rig = get_object_or_404(Rig, name=name)
        sensors = self.filter_queryset(self.get_queryset().filter(rig=rig))
        page = self.paginate_queryset(sensors)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
