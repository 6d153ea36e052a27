"""Downloads of one session beside its CSV: the JSON test record and the MCAP file."""

from django.http import StreamingHttpResponse
from django.urls import reverse
from rest_framework.exceptions import NotAcceptable, NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from sessions import exports
from sessions.models import RecordingSession


class DownloadNegotiation(DefaultContentNegotiation):
    """Content negotiation of a download: `Accept: text/csv` (or application/x-mcap) is no 406.

    The body is the file whatever the client accepts; errors are rendered by the first renderer (JSON).
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


def _session(session_id: int) -> RecordingSession:
    session = RecordingSession.objects.select_related("rig", "operator").filter(pk=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id}")
    return session


def _download(stream, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class SessionRecordExportView(APIView):
    """A session as a JSON test record: metadata, rig, rules, verdict, results, statistics (streamed)."""

    content_negotiation_class = DownloadNegotiation

    def get(self, request, session_id: int):
        session = _session(session_id)
        links = {
            name: request.build_absolute_uri(reverse(f"session-export-{name}-one", args=[session.pk]))
            for name in ("csv", "mcap")
        }
        stream = exports.record_stream(session, links=links)
        return _download(stream, "application/json", exports.export_filename(session, "json"))


class SessionMcapExportView(APIView):
    """A session as an MCAP file: a channel per sensor, `/alerts`, metadata (streamed)."""

    content_negotiation_class = DownloadNegotiation

    def get(self, request, session_id: int):
        session = _session(session_id)
        return _download(exports.mcap_stream(session), "application/x-mcap", exports.export_filename(session, "mcap"))
