from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from robotest_site import openapi
from robotest_site.permissions import IsStaffOrReadOnly
from sensors.models import Rig
from sensors.services import rig_create

from .serializers import RigSerializer


@extend_schema_view(
    list=extend_schema(responses={200: RigSerializer(many=True), 403: openapi.FORBIDDEN}),
    retrieve=extend_schema(
        responses={200: RigSerializer, 403: openapi.FORBIDDEN, 404: openapi.error("No rig by that name.")}
    ),
    create=extend_schema(
        responses={
            201: RigSerializer,
            400: openapi.error("A bad field, a taken name, or a sensor named twice; `errors` names each."),
            403: openapi.FORBIDDEN,
            **openapi.BODY_ERRORS,
        }
    ),
)
class RigViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Test rigs and their sensors; staff create external rigs."""

    queryset = Rig.objects.prefetch_related("sensors")
    serializer_class = RigSerializer
    permission_classes = [IsStaffOrReadOnly]
    lookup_field = "name"
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
