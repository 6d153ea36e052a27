"""REST views of recording sessions and readings: the seed's paths and the DRF resources."""

import threading
from urllib.parse import urlencode

from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from robotest_site import openapi, params
from robotest_site.errors import error_responses
from robotest_site.negotiation import DownloadNegotiation
from robotest_site.permissions import IsStaffOrReadOnly
from sensors.models import Rig, Sensor
from sessions import broadcast, exports, selectors, services
from sessions.ingest import BatchError, batch_parse
from sessions.models import RecordingSession, ValidationResult
from sessions.pipeline import SessionNotRecording, SessionRecorder, readings_record

from . import schema as api_schema
from .filters import SessionFilter
from .lookups import rig_or_404
from .lookups import session_or_404
from .serializers import (
    RecordingSessionDetailSerializer,
    RecordingSessionSerializer,
    SessionResetSerializer,
    SessionStartSerializer,
    SessionStopSerializer,
)


def _conflict(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_400_BAD_REQUEST)


class SessionStartView(APIView):
    """Start recording a rig (default `sim`)."""

    @extend_schema(
        request=SessionStartSerializer,
        responses={
            201: api_schema.SessionStartedSerializer,
            400: openapi.error("That rig is already recording, or a bad field."),
            403: openapi.FORBIDDEN,
            404: openapi.error("No rig by that name."),
            **openapi.BODY_ERRORS,
        },
    )
    def post(self, request):
        serializer = SessionStartSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rig = rig_or_404(data["rig"])
        try:
            session = services.session_start(
                rig=rig, name=data["name"], description=data["description"], user=request.user
            )
        except services.SessionConflict as exc:
            return _conflict(str(exc))
        return Response(
            {
                "session_id": session.pk,
                "status": session.status,
                "started_at": session.started_at.isoformat(),
                "duration_seconds": 0.0,
                "data_points": 0,
                "rig": rig.name,
                "name": session.name,
            },
            status=status.HTTP_201_CREATED,
        )


class SessionStopView(APIView):
    """Stop a recording session (default: the one of `sim`); answers once its last reading is stored."""

    @extend_schema(
        request=SessionStopSerializer,
        responses={
            200: api_schema.SessionSummarySerializer,
            400: openapi.error("Nothing records (on `sim`, without a session_id), or that session is not recording."),
            403: openapi.FORBIDDEN,
            404: openapi.error("No session with that id."),
            **openapi.BODY_ERRORS,
        },
    )
    def post(self, request):
        serializer = SessionStopSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        session_id = serializer.validated_data.get("session_id")
        if session_id is None:
            session = selectors.recording_session(rig_name="sim")
            if session is None:
                return _conflict("nothing is recording on rig 'sim'")
        else:
            session = session_or_404(session_id)
        try:
            session = services.session_stop(session=session)
        except services.SessionConflict as exc:
            return _conflict(str(exc))
        return Response(selectors.session_summary(session))


class SessionResetView(APIView):
    """Abort a rig's recording session and delete its readings; finished sessions are never touched."""

    @extend_schema(
        request=SessionResetSerializer,
        responses={
            200: api_schema.SessionResetSerializerOut,
            400: openapi.BAD_REQUEST,
            403: openapi.FORBIDDEN,
            404: openapi.error("No rig by that name."),
            **openapi.BODY_ERRORS,
        },
    )
    def post(self, request):
        serializer = SessionResetSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        rig = rig_or_404(serializer.validated_data["rig"])
        session = services.session_reset(rig=rig)
        return Response(
            {
                "reset": session is not None,
                "session_id": session.pk if session else None,
                "rig": rig.name,
                "message": f"session {session.pk} aborted and its readings deleted" if session else "nothing was recording",
            }
        )


class SessionStatusView(APIView):
    """What `sim` (or `?rig=`) is recording now."""

    @extend_schema(
        parameters=[openapi.string_param("rig", "The rig's name (default `sim`).")],
        responses={
            200: api_schema.RecordingStatusSerializer,
            400: openapi.BAD_REQUEST,
            403: openapi.FORBIDDEN,
            404: openapi.error("No rig by that name."),
        },
    )
    def get(self, request):
        rig = rig_or_404(request.query_params.get("rig") or "sim")
        return Response(selectors.recording_status(rig=rig))


class SensorsStatusView(APIView):
    """Each sensor of every recording session: active, readings per minute; and the system's totals."""

    @extend_schema(responses={200: api_schema.SensorsStatusSerializer, 403: openapi.FORBIDDEN})
    def get(self, request):
        return Response(selectors.sensors_status())


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
        rows = selectors.readings_after_seq(session_id=session_id, sensor_ids=sensor_ids, after_seq=after_seq, limit=limit)
        headers = {}
        if len(rows) == limit:
            next_query = {k: v for k, v in query.items() if k != "after_seq"}
            next_query["after_seq"] = rows[-1]["seq"]
            headers["Link"] = f'<{request.build_absolute_uri(request.path)}?{urlencode(next_query)}>; rel="next"'
        return Response(rows, headers=headers)
    after = _cursor(query.get("after"))
    rows = selectors.readings_list(
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


class SessionCsvExportView(APIView):
    """A session's readings as streamed CSV (`?session=`, default the most recently started; `?layout=wide`)."""

    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        parameters=[
            openapi.integer_param("session", "The session (default: the most recently started).", minimum=1),
            api_schema.LAYOUT_PARAM,
        ],
        responses=api_schema.CSV_RESPONSES,
    )
    def get(self, request, session_id: int | None = None):
        if session_id is None:
            session_id = params.integer(request.query_params, "session", default=None, minimum=1, maximum=2**63 - 1)
        if session_id is None:
            session = RecordingSession.objects.select_related("rig").order_by("-started_at", "-id").first()
            if session is None:
                raise NotFound("there is no session to export yet: start one first")
        else:
            session = session_or_404(session_id)
        layout = request.query_params.get("layout", "long")
        if layout not in exports.LAYOUTS:
            raise params.bad("layout", f"must be one of {', '.join(exports.LAYOUTS)}, not {layout!r}")
        response = StreamingHttpResponse(exports.csv_stream(session, layout=layout), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{exports.csv_filename(session, layout=layout)}"'
        return response


@extend_schema_view(
    list=extend_schema(
        summary="Recording sessions, newest first, filtered and paged",
        responses={
            200: RecordingSessionSerializer(many=True),
            **error_responses(_400="a bad parameter, named in the message", _404="an unknown rig or page"),
        },
    ),
    retrieve=extend_schema(
        summary="One session with its rule snapshot and per-sensor statistics",
        description="`summary_stats`: per sensor count, first/last time, min, max, mean. Frozen when the "
        "session completes; while it records, each request adds the readings stored since the last one.",
        responses={200: RecordingSessionDetailSerializer, **error_responses(_404="no such session")},
    ),
    destroy=extend_schema(
        summary="Delete a finished session, its readings and results (staff)",
        responses={
            204: None,
            **error_responses(_400="the session is recording", _403="not staff", _404="no such session"),
        },
    ),
)
class RecordingSessionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Recording sessions; staff may delete a finished one."""

    queryset = RecordingSession.objects.select_related("rig", "operator")
    permission_classes = [IsStaffOrReadOnly]
    filterset_class = SessionFilter
    ordering_fields = ["id", "started_at", "stopped_at", "name", "status", "verdict", "reading_count", "alert_count"]
    # Any segment reaches the view, which answers an id it does not know with a JSON 404.
    lookup_value_regex = "[^/]+"

    def get_serializer_class(self):
        return RecordingSessionDetailSerializer if self.action == "retrieve" else RecordingSessionSerializer

    def destroy(self, request, *args, **kwargs):
        session = self.get_object()
        if session.status == RecordingSession.Status.RECORDING:
            return _conflict(f"session {session.pk} is recording: stop it first")
        with transaction.atomic():
            session.readings.all().delete()
            ValidationResult.objects.filter(session=session).delete()
            session.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        operation_id="sessions_readings_list",
        summary="A session's readings",
        description="The readings of this session, as `GET /api/v1/sensors/readings?session=`.",
        parameters=[*api_schema.READING_FILTERS, api_schema.LINK],
        responses=api_schema.READINGS_RESPONSES,
    )
    @extend_schema(
        methods=["POST"],
        operation_id="sessions_readings_ingest",
        summary="Ingest a batch of readings",
        description="From an external rig's recording session: a JSON list of at most 10,000 readings, "
        "all or nothing. Any authenticated user.",
        request=api_schema.INGEST_REQUEST,
        responses=api_schema.INGEST_RESPONSES,
    )
    # Not paged like the resource lists: readings page by keyset through the Link header, as the seed path.
    @action(detail=True, methods=["get", "post"], url_path="readings", permission_classes=[], pagination_class=None)
    def readings(self, request, pk=None):
        # Permissions of the collection (reads public or not, writes by any user) apply here.
        from robotest_site.permissions import ReadPublicOrAuthenticated

        if not ReadPublicOrAuthenticated().has_permission(request, self):
            self.permission_denied(request, message=ReadPublicOrAuthenticated.message)
        session_id = _session_pk(pk)
        if request.method == "GET":
            return readings_response(request, session_id=session_id)
        return _ingest(request, session_id)


def _session_pk(raw) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise NotFound(f"no session {raw!r}") from None


# One recorder per session in this process, each behind a lock: a recorder's validation state
# must see one batch at a time.
_recorders: dict[int, tuple[threading.Lock, SessionRecorder]] = {}
_recorders_lock = threading.Lock()


# A rig records one session at a time, so few are live; past this many the oldest go (a
# forgotten recorder only costs a reload from the database).
_MAX_RECORDERS = 256


def _recorder(session_id: int) -> tuple[threading.Lock, SessionRecorder]:
    with _recorders_lock:
        entry = _recorders.get(session_id)
        if entry is None:
            while len(_recorders) >= _MAX_RECORDERS:
                _recorders.pop(next(iter(_recorders)))
            entry = _recorders[session_id] = (threading.Lock(), SessionRecorder(session_id))
        return entry


def _forget_recorder(session_id: int) -> None:
    with _recorders_lock:
        _recorders.pop(session_id, None)


def _ingest(request, session_id: int) -> Response:
    session = session_or_404(session_id)
    if session.rig.source != Rig.Source.EXTERNAL:
        return Response(
            {"detail": f"session {session_id} records simulated rig '{session.rig.name}': only external rigs take readings"},
            status=status.HTTP_409_CONFLICT,
        )
    if session.status != RecordingSession.Status.RECORDING:
        _forget_recorder(session_id)
        return Response({"detail": f"session {session_id} is {session.status}, not recording"}, status=status.HTTP_409_CONFLICT)
    sensors = dict(Sensor.objects.filter(rig_id=session.rig_id).values_list("name", "id"))
    try:
        items = batch_parse(request.data, sensors=sensors)
    except BatchError as exc:
        return Response({"detail": exc.detail, "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    lock, recorder = _recorder(session_id)
    try:
        with lock:
            result = readings_record(recorder=recorder, items=items)
    except SessionNotRecording:
        _forget_recorder(session_id)
        return Response({"detail": f"session {session_id} stopped recording; nothing was stored"}, status=status.HTTP_409_CONFLICT)
    broadcast.publish_sync(session_id, *broadcast.batch_events(result))
    return Response(
        {"accepted": result.accepted, "first_seq": result.first_seq, "last_seq": result.last_seq,
         "validation": result.validation},
        status=status.HTTP_201_CREATED,
    )


class SessionCsvExportOneView(SessionCsvExportView):
    """One session's readings as streamed CSV: the session named in the path."""

    @extend_schema(
        operation_id="sessions_export_csv_one",
        parameters=[
            OpenApiParameter("session_id", int, OpenApiParameter.PATH, description="The session."),
            api_schema.LAYOUT_PARAM,
        ],
        responses=api_schema.CSV_RESPONSES,
    )
    def get(self, request, session_id: int):
        return super().get(request, session_id=session_id)
