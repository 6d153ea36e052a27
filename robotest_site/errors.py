"""One JSON error shape for every 4xx: `{"detail": …}` plus field errors where there are any."""

from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, list):
        response.data = {"detail": "; ".join(str(item) for item in data), "errors": data}
    elif isinstance(data, dict) and "detail" not in data:
        # A serializer's {field: [messages]}: name each field in the message.
        parts = []
        for field, messages in data.items():
            text = " ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
            parts.append(f"{field}: {text}")
        response.data = {"detail": "; ".join(parts), "errors": data}
    return response
