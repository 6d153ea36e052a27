"""Query-parameter parsing that answers a bad value with a 400 naming the parameter."""

import math
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError


def bad(name: str, message: str) -> ValidationError:
    return ValidationError({name: [message]})


def integer(params, name: str, *, default: int | None, minimum: int, maximum: int) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(name, f"must be a whole number from {minimum} to {maximum}, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise bad(name, f"must be from {minimum} to {maximum}, got {value}")
    return value


def timestamp(raw: object) -> datetime:
    """Unix seconds (number or numeric string) or ISO 8601 (naive means UTC) → aware datetime; ValueError otherwise."""
    if isinstance(raw, bool):
        raise ValueError("must be Unix seconds or an ISO 8601 time")
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str):
        try:
            seconds = float(raw)
        except ValueError:
            parsed = _iso(raw)
            if parsed is None:
                raise ValueError(f"must be Unix seconds or an ISO 8601 time, got {raw!r}") from None
            return parsed
    else:
        raise ValueError("must be Unix seconds or an ISO 8601 time")
    if not math.isfinite(seconds) or not 0 <= seconds < 32503680000:  # year 3000
        raise ValueError(f"is not a usable time: {raw!r}")
    return datetime.fromtimestamp(seconds, tz=UTC)


def _iso(raw: str) -> datetime | None:
    try:
        parsed = parse_datetime(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def time_param(params, name: str) -> datetime | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return timestamp(raw)
    except ValueError as exc:
        raise bad(name, str(exc)) from None
