"""The seed's session paths (start, stop, reset, status, sensors status) and the sessions resource."""

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from robotest_site.api import openapi
from robotest_site.api.authentication import rig_principal
from robotest_site.api.errors import error_responses
from robotest_site.api.permissions import IsStaffOrReadOnly, ReadPublicOrAuthenticated
from sensors.models import DEFAULT_RIG
from sessions import services
from sessions.api import schema as api_schema
from sessions.api.filters import SessionFilter
from sessions.api.ingest import ingest_response
from sessions.api.lookups import rig_or_404, session_or_404
from sessions.api.readings import readings_response
from sessions.api.serializers import (
    RecordingSessionDetailSerializer,
    RecordingSessionSerializer,
    SessionResetSerializer,
    SessionStartSerializer,
    SessionStopSerializer,
)
from sessions.models import RecordingSession, ValidationResult
from sessions.reads.sessions import recording_session, recording_status, sensors_status, session_summary


class SessionReadingsPermission(ReadPublicOrAuthenticated):
    """A session's readings: as every read and ingest; a rig token for its own rig's sessions only.

    The one place a rig token's rig is checked: before the view, so a refused batch stores nothing.
    """

    def has_permission(self, request, view) -> bool:
        rig = rig_principal(request.user)
        if rig is None:
            return super().has_permission(request, view)
        session_id = _session_pk(view.kwargs.get("pk"))
        owner = RecordingSession.objects.filter(pk=session_id).values_list("rig__name", flat=True).first()
        if owner is not None and owner != rig.rig_name:
            self.message = (
                f"This is a token of rig {rig.rig_name!r}: session {session_id} is rig {owner!r}'s, "
                f"so it may not ingest into it or read it."
            )
            return False
        return True  # its own rig's session, or none (the view answers 404)


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
            session = recording_session(rig_name=DEFAULT_RIG)
            if session is None:
                return _conflict(f"nothing is recording on rig {DEFAULT_RIG!r}")
        else:
            session = session_or_404(session_id)
        try:
            session = services.session_stop(session=session)
        except services.SessionConflict as exc:
            return _conflict(str(exc))
        return Response(session_summary(session))


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
        rig = rig_or_404(request.query_params.get("rig") or DEFAULT_RIG)
        return Response(recording_status(rig=rig))


class SensorsStatusView(APIView):
    """Each sensor of every recording session: active, readings per minute; and the system's totals."""

    @extend_schema(responses={200: api_schema.SensorsStatusSerializer, 403: openapi.FORBIDDEN})
    def get(self, request):
        return Response(sensors_status())


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
        "all or nothing. Any user but a viewer (README \"Roles\"), or a token of the session's rig "
        "(`Token rig_…`, manage.py create_rig_token).",
        request=api_schema.INGEST_REQUEST,
        parameters=api_schema.INGEST_PARAMETERS,
        responses=api_schema.INGEST_RESPONSES,
    )
    # Not paged like the resource lists: readings page by keyset through the Link header, as the seed path.
    @action(detail=True, methods=["get", "post"], url_path="readings", permission_classes=[SessionReadingsPermission],
            pagination_class=None)
    def readings(self, request, pk=None):
        # Not the collection's IsStaffOrReadOnly: reads as every read, ingest by any user but a viewer
        # or by its rig's token.
        session_id = _session_pk(pk)
        if request.method == "GET":
            return readings_response(request, session_id=session_id)
        return ingest_response(request, session_id)


def _session_pk(raw) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise NotFound(f"no session {raw!r}") from None
