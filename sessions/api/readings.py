"""Readings: `/api/v1/sensors/readings` (and a session's `readings/`) in time order, and `latest`."""

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from robotest_site.api import params
from robotest_site.api.errors import error_responses
from sensors.models import DEFAULT_RIG
from sessions.api import schema as api_schema
from sessions.api.lookups import rig_or_404, sensor_ids_or_404, session_param
from sessions.models import RecordingSession
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
            rig = rig_or_404(query.get("rig") or DEFAULT_RIG)
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
    """The readings a query asks for, a page at a time; `Link: rel="next"` when the page is full."""
    query = ReadingsQuery.parse(request.query_params, session_id=session_id)
    next_position = None
    if query.after_seq is not None:
        # Backfill of a live gap: the readings after a position, in sequence order.
        rows = readings_after_seq(
            session_id=query.session.pk, sensor_ids=query.sensor_ids, after_seq=query.after_seq, limit=query.limit
        )
        if len(rows) == query.limit:
            next_position = ("after_seq", rows[-1]["seq"])
    else:
        rows = readings_list(
            session_id=query.session.pk if query.session else None, sensor_ids=query.sensor_ids,
            start=query.start, end=query.end, after=query.after, limit=query.limit,
        )
        if len(rows) == query.limit:
            last_time, last_id = rows[-1]["_key"]
            next_position = ("after", f"{round(last_time.timestamp() * 1_000_000)}.{last_id}")
        for row in rows:
            del row["_key"]
    headers = {"Link": _next_link(request, *next_position)} if next_position else {}
    return Response(rows, headers=headers)


@dataclass(frozen=True)
class ReadingsQuery:
    """The query parameters of the readings endpoints, parsed; a bad one is a 400 naming it."""

    session: RecordingSession | None
    sensor_ids: list[int] | None  # None: every sensor
    start: datetime | None
    end: datetime | None
    limit: int
    after_seq: int | None
    after: tuple[datetime, int] | None

    @classmethod
    def parse(cls, query, *, session_id: int | None) -> "ReadingsQuery":
        session = _page_session(query, session_id)
        start = params.time_param(query, "start_time")
        end = params.time_param(query, "end_time")
        if start and end and end < start:
            raise params.bad("end_time", "must not be before start_time")
        after_seq = params.integer(query, "after_seq", default=None, minimum=0, maximum=params.MAX_ID)
        if after_seq is not None and session is None:
            raise params.bad("after_seq", "needs a session: sequence positions count within one session")
        return cls(
            session=session,
            sensor_ids=sensor_ids_or_404(session, name=query.get("sensor"), sensor_type=query.get("sensor_type")),
            start=start,
            end=end,
            limit=params.integer(query, "limit", default=100, minimum=1, maximum=settings.MAX_DATA_POINTS),
            after_seq=after_seq,
            after=_cursor(query.get("after")),
        )


def _page_session(query, session_id: int | None) -> RecordingSession | None:
    """The session of the path or of `?session=` (a 400 for a bad id, a 404 for an unknown one), None
    without one. Its id and rig only: a page needs no more, and the joins of lookups.session_or_404
    were a tenth of a page's time (issue 12)."""
    if session_id is None:
        session_id = params.integer(query, "session", default=None, minimum=1, maximum=params.MAX_ID)
        if session_id is None:
            return None
    session = RecordingSession.objects.only("id", "rig_id").filter(pk=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id}")
    return session


def _next_link(request, name: str, position) -> str:
    """The `Link` to the next page: this query with its position parameter moved on."""
    query = {key: value for key, value in request.query_params.items() if key != name}
    query[name] = position
    return f'<{request.build_absolute_uri(request.path)}?{urlencode(query)}>; rel="next"'


def _cursor(raw: str | None) -> tuple[datetime, int] | None:
    if not raw:
        return None
    try:
        micros, pk = raw.split(".")
        return params.timestamp(int(micros) / 1_000_000), int(pk)
    except ValueError:
        raise params.bad("after", f"is not a position from a Link header: {raw!r}") from None
