"""Content negotiation for download views, whose file bypasses DRF's renderers."""

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class DownloadNegotiation(DefaultContentNegotiation):
    """Never a 406 for the file's own type (`Accept: text/csv`): the view streams the file itself,
    and its errors, which do go through a renderer, fall back to the first one (JSON)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
