"""Log lines that say which request or session they belong to, as text or as one JSON object each.

`request_id` is set by the request middleware for the length of a request; `session_id` by the
engine in each session's tasks (and in the database calls they make). A filter copies both onto
every record, so any formatter can print them.
"""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str | None] = ContextVar("robotest_request_id", default=None)
session_id: ContextVar[int | None] = ContextVar("robotest_session_id", default=None)

FORMATS = ("text", "json")
# The attributes every LogRecord has: anything else was passed in `extra=` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class ContextFilter(logging.Filter):
    """Puts the current request id and session id on the record (None outside a request or session)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "session_id"):
            record.session_id = session_id.get()
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with `request=… session=…` after the message when they are known."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = [
            f"{key}={value}"
            for key, value in (("request", getattr(record, "request_id", None)), ("session", getattr(record, "session_id", None)))
            if value is not None
        ]
        if not context:
            return text
        head, sep, rest = text.partition("\n")  # a traceback stays below the line
        return f"{head} [{' '.join(context)}]{sep}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, session_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "session_id": getattr(record, "session_id", None),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def logging_config(log_format: str) -> dict:
    """Django's LOGGING for `text` or `json`: one console handler with the context filter."""
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"()": f"{__name__}.TextFormatter", "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": f"{__name__}.ContextFilter"}},
        "formatters": {log_format: formatter},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["context"]}
        },
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {"django.db.backends": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
    }
