"""Downloads of one session beside its CSV: the JSON test record and the MCAP file."""

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from robotest_site.negotiation import DownloadNegotiation

from sessions import exports

from .lookups import session_or_404
from .schema import download_responses


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
