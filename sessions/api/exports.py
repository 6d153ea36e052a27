"""Downloads of a session: streamed CSV, the JSON test record and the MCAP file."""

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.views import APIView

from robotest_site.api import openapi, params
from robotest_site.api.negotiation import DownloadNegotiation
from sessions import exports
from sessions.api import schema as api_schema
from sessions.api.lookups import session_or_404
from sessions.api.schema import download_responses
from sessions.models import RecordingSession


def _download(stream, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class SessionRecordExportView(APIView):
    """A session as a JSON test record: metadata, rig, rules, verdict, results, statistics (streamed)."""

    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        summary="A session as a JSON test record",
        responses=download_responses(
            "application/json",
            "Streamed JSON, `Content-Disposition: attachment`: session metadata, rig and sensors, rule snapshot, "
            "rates, verdict, every validation result, per-sensor statistics, links to the CSV and MCAP.",
            body=OpenApiTypes.OBJECT,
        ),
    )
    def get(self, request, session_id: int):
        session = session_or_404(session_id)
        links = {
            name: request.build_absolute_uri(reverse(f"session-export-{name}-one", args=[session.pk]))
            for name in ("csv", "mcap")
        }
        stream = exports.record_stream(session, links=links)
        return _download(stream, "application/json", exports.export_filename(session, "json"))


class SessionMcapExportView(APIView):
    """A session as an MCAP file: a channel per sensor, `/alerts`, metadata (streamed)."""

    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        summary="A session as an MCAP file (Foxglove)",
        responses=download_responses(
            "application/x-mcap",
            "Streamed MCAP, `Content-Disposition: attachment`: one JSON channel per sensor (`/<rig>/<sensor>`), "
            "`/alerts` with the validation results, session metadata and verdict as metadata records.",
        ),
    )
    def get(self, request, session_id: int):
        session = session_or_404(session_id)
        return _download(exports.mcap_stream(session), "application/x-mcap", exports.export_filename(session, "mcap"))


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
            session_id = params.integer(request.query_params, "session", default=None, minimum=1, maximum=params.MAX_ID)
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
