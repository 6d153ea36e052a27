"""One JSON error shape for every 4xx: `{"detail": …}` plus field errors where there are any."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, Throttled
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from robotest_site.api import throttling


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, RequestDataTooBig):
        # Django's own answer is an HTML 400 page that does not say why.
        return Response({"detail": _too_big(request)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, AuthenticationFailed | NotAuthenticated) and request is not None:
        refused = throttling.refusal(request)
        if refused is not None:
            request.robotest_throttle, wait = refused
            exc = Throttled(wait)
    if isinstance(exc, Throttled) and getattr(request, "robotest_throttle", None):
        # The detail names the limit (DRF adds the wait; its handler sets Retry-After).
        exc = Throttled(exc.wait, detail=f"{request.robotest_throttle}.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, list):
        response.data = {"detail": "; ".join(_messages("", data)), "errors": data}
    elif isinstance(data, dict) and "detail" not in data:
        # A serializer's {field: [messages]}: name each field, nested ones by path (sensors[0].name).
        response.data = {"detail": "; ".join(_messages("", data)), "errors": data}
    return response


def _too_big(request) -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    length = request.META.get("CONTENT_LENGTH") if request is not None else None
    size = f" ({int(length):,} bytes)" if length and str(length).isdigit() else ""
    return (
        f"the request body{size} is larger than the limit of {limit:,} bytes (ROBOTEST_INGEST_MAX_BYTES): "
        "send it in smaller batches"
    )


def _messages(path: str, errors) -> list[str]:
    if isinstance(errors, dict):
        out = []
        for key, value in errors.items():
            if isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            out.extend(_messages(child, value))
        return out
    if isinstance(errors, list):
        if all(not isinstance(e, dict | list) for e in errors):
            text = " ".join(str(e) for e in errors)
            return [f"{path}: {text}" if path else text] if text else []
        out = []
        for index, value in enumerate(errors):
            out.extend(_messages(f"{path}[{index}]" if path else f"[{index}]", value))
        return out
    return [f"{path}: {errors}" if path else str(errors)]



def error_responses(**codes: str) -> dict:
    """OpenAPI responses in the error shape: `error_responses(_400="a bad parameter")` → {400: …}."""
    from robotest_site.api import openapi

    return {int(code.lstrip("_")): openapi.error(text) for code, text in codes.items()}
