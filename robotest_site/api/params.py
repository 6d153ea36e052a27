"""Query-parameter parsing that answers a bad value with a 400 naming the parameter."""

import math
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

# Times outside this range are typos, and some are beyond what PostgreSQL stores.
_FIRST = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(3000, 1, 1, tzinfo=UTC)
_LAST_UNIX = _LAST.timestamp()

MAX_ID = 2**63 - 1  # the largest bigint: an id past it is a 400, not a database error


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
        try:
            seconds = float(raw)
        except OverflowError:
            raise ValueError(f"is not a usable time: {raw!r}") from None
    elif isinstance(raw, str):
        try:
            seconds = float(raw)
        except ValueError:
            parsed = _iso(raw)
            if parsed is None:
                raise ValueError(f"must be Unix seconds or an ISO 8601 time, got {raw!r}") from None
            if not _FIRST <= parsed < _LAST:
                raise ValueError(f"must be between 1970 and 3000, got {raw!r}") from None
            return parsed
    else:
        raise ValueError("must be Unix seconds or an ISO 8601 time")
    if not math.isfinite(seconds) or not 0 <= seconds < _LAST_UNIX:
        raise ValueError(f"is not a usable time (Unix seconds from 1970 to 3000): {raw!r}")
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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # an offset that pushes it past year 1 or 9999
        return None


def time_param(params, name: str) -> datetime | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return timestamp(raw)
    except ValueError as exc:
        raise bad(name, str(exc)) from None
