"""The seed's `/api/v1/sensors/readings/latest`: the newest reading of each sensor of one session."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from robotest_site import params
from robotest_site.errors import error_responses
from sessions import selectors

from .lookups import rig_or_404, session_param

# A reading as /api/v1/sensors/readings gives it; null for a sensor without one yet.
_READING = inline_serializer(
    "LatestReading",
    {
        "timestamp": serializers.FloatField(help_text="Unix seconds"),
        "sensor_type": serializers.CharField(),
        "value": serializers.JSONField(help_text="A number or an object"),
        "sensor": serializers.CharField(),
        "session_id": serializers.IntegerField(),
        "seq": serializers.IntegerField(help_text="Position in the session, from 1"),
    },
    allow_null=True,
)


class LatestReadingsView(APIView):
    """Each sensor's newest reading in one session: `?session=`, or `?rig=` (default `sim`): the rig's
    recording session or, when none records, its most recent one."""

    @extend_schema(
        summary="The newest reading of each sensor (the seed's shape)",
        parameters=[
            OpenApiParameter("session", OpenApiTypes.INT, description="Session id; unknown is a 404."),
            OpenApiParameter("rig", OpenApiTypes.STR, description="Rig name (default sim); unknown is a 404."),
        ],
        responses={
            200: inline_serializer(
                "LatestReadings",
                {
                    "latest_readings": serializers.DictField(child=_READING, help_text="{sensor name: reading or null}"),
                    "timestamp": serializers.FloatField(help_text="Unix seconds, now"),
                    "total_readings": serializers.IntegerField(help_text="Readings the session holds"),
                    "session_id": serializers.IntegerField(allow_null=True),
                    "rig": serializers.CharField(),
                },
            ),
            **error_responses(_400="a bad parameter, named in the message", _404="an unknown session or rig"),
        },
    )
    def get(self, request):
        query = request.query_params
        session = session_param(query)
        if session is not None:
            if query.get("rig") and query["rig"] != session.rig.name:
                raise params.bad("rig", f"session {session.pk} records rig {session.rig.name!r}, not {query['rig']!r}")
            rig = session.rig
        else:
            rig = rig_or_404(query.get("rig") or "sim")
            session = selectors.latest_session(rig=rig)
        if session is None:
            latest = dict.fromkeys(rig.sensors.order_by("name").values_list("name", flat=True))
        else:
            latest = selectors.readings_latest(session=session)
        return Response({
            "latest_readings": latest,
            "timestamp": timezone.now().timestamp(),
            "total_readings": session.reading_count if session else 0,
            "session_id": session.pk if session else None,
            "rig": rig.name,
        })
