"""Per-request context: an id on every log line and in the `X-Request-ID` answer, and the latency by view."""

import re
import time
import uuid

from django.core.signals import request_finished
from django.dispatch import receiver

from robotest_site.observability import logs, metrics

HEADER = "X-Request-ID"
# A caller's id is kept when it could not break a log line or a header: ids from proxies
# (uuid, hex, `Root=1-…`) fit; anything else gets an id of our own.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=/+-]{0,127}")


def request_context(get_response):
    """Sets the request id for the request's log lines, echoes it, and times the request by view."""

    def middleware(request):
        incoming = request.headers.get(HEADER, "")
        rid = incoming if _SANE.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = rid
        # Not reset on the way out: Django logs a 4xx or 5xx ("django.request") after the last
        # middleware returned. `request_finished` clears it (below); under ASGI the request's
        # context ends with it anyway.
        logs.request_id.set(rid)
        started = time.perf_counter()
        response = get_response(request)
        match = getattr(request, "resolver_match", None)
        # The URL's name (or the view's dotted path), never the raw path: one series per route.
        view = match.view_name if match is not None else "unmatched"
        metrics.http_observe(view, request.method, response.status_code, time.perf_counter() - started)
        response[HEADER] = rid
        return response

    return middleware


@receiver(request_finished, dispatch_uid="robotest.observability.request_finished")
def _request_finished(**kwargs) -> None:
    # A thread of a WSGI server serves the next request next: this one's id must not linger.
    logs.request_id.set(None)
