"""A 503 with `Retry-After` while the database cannot be reached, instead of Django's 500.

PostgreSQL restarting, failing over or refusing connections raises `OperationalError` (or
`InterfaceError` on a connection that died) wherever a view first touches the database: in DRF's
authentication, a service, a page's session lookup. DRF's exception handler passes such errors on,
so this middleware answers them for every view: JSON under `/api/` (the error shape of
docs/errors.md), a plain page elsewhere. A write caught by it is rolled back with its transaction;
an ingest batch resent with its `Idempotency-Key` is stored once, even when its commit went
through just before the connection broke (the retry gets the first answer back).
"""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """Turns a database that cannot be reached into a 503 that says when to retry."""

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        seconds = settings.ROBOTEST_RETRY_AFTER_SECONDS
        # One line per refused request, not a traceback each: an outage refuses many.
        logger.warning("database unavailable, answering 503: %s: %s", type(exception).__name__, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse(
                {"detail": f"the database is unavailable; retry in {seconds} s"}, status=503
            )
        else:
            # No request context: its processors would ask the database for the user.
            page = render_to_string("503.html", {"project_name": settings.PROJECT_NAME, "retry_after": seconds})
            response = HttpResponse(page, status=503)
        response["Retry-After"] = str(seconds)
        return response
