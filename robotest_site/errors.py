"""One JSON error shape for every 4xx: `{"detail": …}` plus field errors where there are any."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
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



# The body of every 4xx, for the OpenAPI schema.
_ERROR = inline_serializer(
    "Error",
    {
        "detail": serializers.CharField(help_text="What is wrong, naming the parameter or field."),
        "errors": serializers.JSONField(required=False, help_text="{field: [messages]} when fields are at fault."),
    },
)


def error_responses(**codes: str) -> dict:
    """OpenAPI responses in the error shape: `error_responses(_400="a bad parameter")` → {400: …}."""
    return {int(code.lstrip("_")): OpenApiResponse(_ERROR, description=text) for code, text in codes.items()}
