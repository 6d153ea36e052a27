"""A batch pushed by a real rig: checked item by item without a per-item serializer, then recorded.

A per-item DRF serializer costs tens of microseconds a reading; this plain loop keeps ingest in
the tens of thousands of readings per second, and still names every bad item's index and field.
"""

import json
import math
import threading
from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from robotest_site.api.params import timestamp as parse_timestamp
from sessions.recording.pipeline import Item, RecordResult, SessionNotRecording, SessionRecorder, readings_record

MAX_BATCH = 10_000
# Enough to fix a batch; a wholly wrong batch need not echo 10,000 errors back.
MAX_ERRORS = 100
_FIELDS = frozenset(("sensor", "timestamp", "value"))
# Integers beyond a double's range cannot be validated or aggregated: they take the slow path's 400.
_BIG = 2**1023
# How deep an object value may nest: deeper ones are junk, and would exhaust the checks' recursion.
MAX_DEPTH = 32
# How much of a bad value an error message quotes.
_QUOTED = 60


class BatchError(Exception):
    """The batch was rejected as a whole; `errors` names each bad item's index and field."""

    def __init__(self, detail: str, errors: list[dict] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


def batch_loads(raw: bytes) -> object:
    """The request body as JSON; BatchError naming what is wrong: not UTF-8, not JSON, NaN or
    Infinity, a name twice in one object (which would silently keep the last)."""
    if not raw.strip():
        raise BatchError("the body is empty: send a JSON list of readings {sensor, timestamp, value}")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise BatchError("the body starts with a byte order mark (BOM): send UTF-8 JSON without one")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
        if raw.count(b":") != _names_in(data):
            # A name may have come twice in one object (or a string holds a colon): parse again, checking.
            data = json.loads(raw, parse_constant=_no_constant, object_pairs_hook=_unique_names)
        return data
    except json.JSONDecodeError as exc:
        raise BatchError(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise BatchError(f"the body is not UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise BatchError("the body's JSON is nested too deeply") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise BatchError("the body holds an integer of more than 4300 digits") from None
        raise BatchError(f"the body is not valid JSON: {exc}") from None


def _names_in(data: object) -> int:
    """How many names the parsed objects hold, all levels down.

    Each name in the text is followed by one colon outside strings; an object loses a name only
    when it came twice. So as many colons in the body as names kept means no name came twice,
    and batch_loads checks object by object (a Python call for each) only when the counts differ.
    """
    names = 0
    for item in data if type(data) is list else (data,):
        if type(item) is dict:
            names += len(item)
            for value in item.values():
                if type(value) is dict or type(value) is list:
                    names += _names_in(value)
        elif type(item) is list:
            names += _names_in(item)
    return names


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number (send finite numbers)")


def _unique_names(pairs: list[tuple[str, object]]) -> dict:
    item = dict(pairs)
    if len(item) != len(pairs):
        seen: set[str] = set()
        twice = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise ValueError(f"the name {_quote(twice)} appears twice in one object")
    return item


def _quote(value: object) -> str:
    """`repr` of a client's value, cut short: a message names it, it need not echo a megabyte back."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= _QUOTED else f"{text[:_QUOTED]}… ({len(text)} characters)"


def batch_parse(data: object, *, sensors: dict[str, object]) -> list[Item]:
    """A JSON list of `{sensor, timestamp, value}` → pipeline items; BatchError on any bad item."""
    if not isinstance(data, list):
        raise BatchError("the body must be a JSON list of readings {sensor, timestamp, value}")
    if not data:
        raise BatchError("the batch is empty: send at least one reading")
    if len(data) > MAX_BATCH:
        raise BatchError(f"a batch holds at most {MAX_BATCH} readings, got {len(data)}")
    items: list[Item] = []
    errors: list[dict] = []
    append = items.append
    for index, item in enumerate(data):
        if type(item) is not dict:
            errors.append({"index": index, "field": "", "message": "must be an object {sensor, timestamp, value}"})
        else:
            sensor = item.get("sensor")
            ts = item.get("timestamp")
            value = item.get("value")
            # Fast path: the shapes a rig normally sends.
            if (
                type(sensor) is str and sensor in sensors
                and type(ts) is float and 0 <= ts < 32503680000.0
                and ((type(value) is float and math.isfinite(value)) or (type(value) is int and -_BIG < value < _BIG))
                and len(item) == 3
            ):
                append((sensor, ts, value))
                continue
            _check_item(index, item, sensors, errors, append)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise BatchError(
            f"{len(errors)}{'+' if len(errors) >= MAX_ERRORS else ''} bad reading(s) in the batch; nothing was stored",
            errors,
        )
    return items


def _check_item(index: int, item: dict, sensors, errors: list[dict], append) -> None:
    found = len(errors)
    for name in sorted(set(item) - _FIELDS):
        errors.append(
            {"index": index, "field": _field_name(name), "message": "unknown field (expected sensor, timestamp, value)"}
        )
    for name in ("sensor", "timestamp", "value"):
        if name not in item:
            errors.append({"index": index, "field": name, "message": "this field is required"})
    sensor = item.get("sensor")
    if "sensor" in item and (type(sensor) is not str or sensor not in sensors):
        known = ", ".join(sorted(sensors)) or "none"
        errors.append(
            {"index": index, "field": "sensor", "message": f"no sensor {_quote(sensor)} on this rig (it has: {known})"}
        )
    ts: float | None = None
    if "timestamp" in item:
        try:
            ts = _unix(item["timestamp"])
        except ValueError as exc:
            errors.append({"index": index, "field": "timestamp", "message": _cut(str(exc))})
    value = item.get("value")
    if "value" in item and not _is_value(value):
        errors.append(
            {"index": index, "field": "value",
             "message": "must be a finite number or a JSON object (numbers within a double's range, text without NUL, "
                        f"nested at most {MAX_DEPTH} deep)"}
        )
    if len(errors) == found:
        append((sensor, ts, value))


def _field_name(name: str) -> str:
    """An unknown field's name as the answer can carry it: cut short, a lone surrogate escaped."""
    name = name if len(name) <= _QUOTED else f"{name[:_QUOTED]}…"
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _cut(message: str) -> str:
    return message if len(message) <= 4 * _QUOTED else f"{message[:4 * _QUOTED]}…"


def _unix(raw: object) -> float:
    parsed: datetime = parse_timestamp(raw)
    return parsed.timestamp()


def _is_value(value: object) -> bool:
    if type(value) is bool or value is None:
        return False
    if isinstance(value, int | float):
        return _storable(value)
    if isinstance(value, dict):
        return _storable(value)
    return False


def _storable(value: object, depth: int = 0) -> bool:
    """Whether the database can store and aggregate it: no NaN or infinity, no number beyond a
    double, no NUL or lone surrogate in a string (PostgreSQL's jsonb refuses them), at most
    MAX_DEPTH levels of objects and lists."""
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int | float):
        try:
            return math.isfinite(float(value))
        except OverflowError:
            return False
    if isinstance(value, str):
        return _clean_text(value)
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_clean_text(k) and _storable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v, depth + 1) for v in value)
    return False


def _clean_text(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# One recorder per session in this process, each behind a lock: a recorder's validation state
# must see one batch at a time.
_recorders: dict[int, tuple[threading.Lock, SessionRecorder]] = {}
_recorders_lock = threading.Lock()
# A rig records one session at a time, so few are live; past this many the oldest go (a
# forgotten recorder only costs a reload from the database).
_MAX_RECORDERS = 256


def batch_record(
    *, session_id: int, items: list[Item], also: Callable[[RecordResult], None] | None = None
) -> RecordResult:
    """Store one parsed batch with the session's recorder; SessionNotRecording if it stopped meanwhile.

    `also` runs in the batch's transaction once its readings are written (an idempotency key's
    insert): if it raises, nothing of the batch is stored. Without it the pipeline runs as is.
    """
    with _recorders_lock:
        entry = _recorders.get(session_id)
        if entry is None:
            while len(_recorders) >= _MAX_RECORDERS:
                _recorders.pop(next(iter(_recorders)))
            entry = _recorders[session_id] = (threading.Lock(), SessionRecorder(session_id))
    lock, recorder = entry
    try:
        with lock:
            if also is None:
                return readings_record(recorder=recorder, items=items)
            try:
                # The pipeline's transaction becomes a savepoint of this one, which commits both.
                with transaction.atomic():
                    result = readings_record(recorder=recorder, items=items)
                    also(result)
                return result
            except BaseException:
                # The validator saw readings that were rolled back: reload before the next batch.
                recorder.next_seq = -1
                raise
    except SessionNotRecording:
        recorder_forget(session_id)
        raise


def batch_answer(result: RecordResult) -> dict:
    """The JSON body of a stored batch's 201 (and of its replays, docs/errors.md)."""
    return {"accepted": result.accepted, "first_seq": result.first_seq, "last_seq": result.last_seq,
            "validation": result.validation}


def recorder_forget(session_id: int) -> None:
    """Drop the session's recorder (it stopped): the next batch would load its state afresh."""
    with _recorders_lock:
        _recorders.pop(session_id, None)
