"""Readings: `/api/v1/sensors/readings` (and a session's `readings/`) in time order, and `latest`."""

from urllib.parse import urlencode

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from robotest_site.api import params
from robotest_site.api.errors import error_responses
from sensors.models import Sensor
from sessions.api import schema as api_schema
from sessions.api.lookups import rig_or_404, session_or_404, session_param
from sessions.reads.readings import readings_after_seq, readings_latest, readings_list
from sessions.reads.sessions import latest_session

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
            session = latest_session(rig=rig)
        if session is None:
            latest = dict.fromkeys(rig.sensors.order_by("name").values_list("name", flat=True))
        else:
            latest = readings_latest(session=session)
        return Response({
            "latest_readings": latest,
            "timestamp": timezone.now().timestamp(),
            "total_readings": session.reading_count if session else 0,
            "session_id": session.pk if session else None,
            "rig": rig.name,
        })


class ReadingsView(APIView):
    """Stored readings in time order, filtered; further pages through a `Link: rel="next"` header."""

    @extend_schema(
        operation_id="sensors_readings_list",
        parameters=[api_schema.SESSION, *api_schema.READING_FILTERS, api_schema.LINK],
        responses=api_schema.READINGS_RESPONSES,
    )
    def get(self, request, session_id: int | None = None):
        return readings_response(request, session_id=session_id)


def readings_response(request, *, session_id: int | None) -> Response:
    from django.conf import settings

    query = request.query_params
    session = None
    if session_id is None and query.get("session") not in (None, ""):
        session_id = params.integer(query, "session", default=None, minimum=1, maximum=2**63 - 1)
    if session_id is not None:
        session = session_or_404(session_id)
    sensor_ids = None
    sensors = Sensor.objects.all()
    if session is not None:
        sensors = sensors.filter(rig_id=session.rig_id)
    if query.get("sensor"):
        sensors = sensors.filter(name=query["sensor"])
        sensor_ids = list(sensors.values_list("id", flat=True))
        if not sensor_ids:
            raise NotFound(f"no sensor named {query['sensor']!r}" + (f" in session {session.pk}" if session else ""))
    if query.get("sensor_type"):
        sensor_ids = list(sensors.filter(sensor_type=query["sensor_type"]).values_list("id", flat=True))
    start = params.time_param(query, "start_time")
    end = params.time_param(query, "end_time")
    if start and end and end < start:
        raise params.bad("end_time", "must not be before start_time")
    limit = params.integer(query, "limit", default=100, minimum=1, maximum=settings.MAX_DATA_POINTS)
    after_seq = params.integer(query, "after_seq", default=None, minimum=0, maximum=2**63 - 1)
    if after_seq is not None:
        if session_id is None:
            raise params.bad("after_seq", "needs a session: sequence positions count within one session")
        # Backfill of a live gap: the readings after a position, in sequence order.
        rows = readings_after_seq(session_id=session_id, sensor_ids=sensor_ids, after_seq=after_seq, limit=limit)
        headers = {}
        if len(rows) == limit:
            next_query = {k: v for k, v in query.items() if k != "after_seq"}
            next_query["after_seq"] = rows[-1]["seq"]
            headers["Link"] = f'<{request.build_absolute_uri(request.path)}?{urlencode(next_query)}>; rel="next"'
        return Response(rows, headers=headers)
    after = _cursor(query.get("after"))
    rows = readings_list(
        session_id=session_id, sensor_ids=sensor_ids, start=start, end=end, after=after, limit=limit
    )
    headers = {}
    if len(rows) == limit:
        last_time, last_id = rows[-1]["_key"]
        next_query = {k: v for k, v in query.items() if k != "after"}
        next_query["after"] = f"{round(last_time.timestamp() * 1_000_000)}.{last_id}"
        headers["Link"] = f'<{request.build_absolute_uri(request.path)}?{urlencode(next_query)}>; rel="next"'
    for row in rows:
        del row["_key"]
    return Response(rows, headers=headers)


def _cursor(raw: str | None):
    if not raw:
        return None
    try:
        micros, pk = raw.split(".")
        return params.timestamp(int(micros) / 1_000_000), int(pk)
    except ValueError:
        raise params.bad("after", f"is not a position from a Link header: {raw!r}") from None
