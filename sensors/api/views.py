from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from robotest_site.permissions import IsStaffOrReadOnly
from sensors.models import Rig
from sensors.services import rig_create

from .serializers import RigSerializer


class RigViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Test rigs and their sensors; staff create external rigs."""

    queryset = Rig.objects.prefetch_related("sensors")
    serializer_class = RigSerializer
    permission_classes = [IsStaffOrReadOnly]
    lookup_field = "name"

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rig = rig_create(
            name=data["name"], source=data.get("source", Rig.Source.EXTERNAL),
            description=data.get("description", ""), sensors=data["sensors"],
        )
        return Response(self.get_serializer(rig).data, status=status.HTTP_201_CREATED)
