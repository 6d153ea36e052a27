"""Request checks that hold for every API path, before any view runs."""

from asgiref.sync import iscoroutinefunction
from django.http import JsonResponse
from django.utils.decorators import sync_and_async_middleware

NUL_MESSAGE = "must not contain NUL (\\x00) characters"


def _nul_refusal(request) -> JsonResponse | None:
    """A 400 naming the first query parameter that holds a NUL.

    PostgreSQL cannot compare text with a NUL in it: a view that filters on such a value fails
    with a database error (a 500). Refused here once for every view, the seed's hand-parsed ones
    and the django-filter ones alike, instead of in each.
    """
    if not request.path.startswith("/api/"):
        return None
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            name = name.replace("\x00", "\\x00")
            return JsonResponse({"detail": f"{name}: {NUL_MESSAGE}", "errors": {name: [NUL_MESSAGE]}}, status=400)
    return None


@sync_and_async_middleware
def api_query_text(get_response):
    """Refuses an API request whose query string holds a NUL (see `_nul_refusal`)."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _nul_refusal(request) or await get_response(request)

    else:

        def middleware(request):
            return _nul_refusal(request) or get_response(request)

    return middleware
