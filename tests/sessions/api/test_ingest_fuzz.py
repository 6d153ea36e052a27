"""Ingest under Hypothesis: plausible, broken and junk bodies to an external rig's session (issue 11).

Each example is one request whose outcome the test knows in advance: a body of good readings in a
JSON media type is a 201 that stores exactly those readings; anything else (a bad item, a broken or
non-JSON body, NaN, a name twice in one object, an empty batch, another media type) is a 4xx whose
JSON `detail` names the problem, and which changes no row: readings, the session's counter,
validation results, rollups, idempotency keys. Never a 5xx.

Bounded for CI (a fixed derandomized run); for a deeper one:

    ROBOTEST_FUZZ_EXAMPLES=2000 python -m pytest tests/sessions/api/test_ingest_fuzz.py -q
"""

import json
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions.models import IngestKey, Reading, ReadingRollup, RecordingSession, ValidationResult
from tests.conftest import BENCH_SENSORS

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("ROBOTEST_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 150,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

SENSORS = [s["name"] for s in BENCH_SENSORS]
LAST = 32503680000  # 3000-01-01 in Unix seconds: the last time a reading may carry (excluded)


# --- a JSON writer that can also write what json.dumps will not -----------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text written as is: NaN, a 5,000-digit integer."""

    text: str


class Pairs(list):
    """An object as (name, value) pairs, so that a name may appear twice."""


def dumps(value) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return dumps(Pairs(value.items()))
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


# --- readings: good ones (with what should be stored) and bad ones (with the field at fault) -------


@dataclass
class Item:
    body: object
    # Good: (sensor, Unix seconds, value) as it should be stored. Bad: None.
    stored: tuple | None = None
    # Bad: the field the answer must name for this item ("" when the item is no object).
    field: str | None = None


finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = finite | st.integers(min_value=-(2**70), max_value=2**70)
names = (st.text(min_size=1, max_size=12) | st.text(min_size=60, max_size=80)).filter(
    lambda s: "\x00" not in s and not _surrogate(s)
)
plain_text = st.text(max_size=20).filter(lambda s: "\x00" not in s and not _surrogate(s))
object_values = st.recursive(
    numbers | plain_text | st.booleans() | st.none(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(names, children, max_size=3),
    max_leaves=8,
)
good_values = numbers | st.dictionaries(names, object_values, max_size=6)

_zones = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])


@st.composite
def good_times(draw) -> tuple[object, float]:
    """(what the rig sends, the Unix seconds it means)."""
    kind = draw(st.sampled_from(["float", "int", "text", "iso"]))
    if kind == "float":
        seconds = draw(st.floats(min_value=0, max_value=LAST, exclude_max=True))
        return seconds, seconds
    if kind == "int":
        seconds = draw(st.integers(min_value=0, max_value=LAST - 1))
        return seconds, float(seconds)
    if kind == "text":
        seconds = draw(st.floats(min_value=0, max_value=4e9))
        return repr(seconds), seconds
    moment = draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30), timezones=_zones))
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.isoformat(), aware.timestamp()


@st.composite
def good_items(draw) -> Item:
    sensor = draw(st.sampled_from(SENSORS))
    sent, seconds = draw(good_times())
    value = draw(good_values)
    return Item({"sensor": sensor, "timestamp": sent, "value": value}, stored=(sensor, seconds, value))


BAD_SENSORS = ["nope", "force", "", "FZ", "fz ", "x" * 5000, 5, 1.5, None, True, [], {}, ["fz"], {"name": "fz"}]
BAD_TIMES = [
    -1, -0.5, LAST, 1e12, 2**64, Raw("1" + "0" * 400), Raw("1e400"), Raw("-1e400"), True, False, None, [], {},
    [1_700_000_000.0], "yesterday", "", " ", "nan", "inf", "-5", "1e400", "0x10", "12:00", "2023-13-45T00:00:00",
    "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z", "9" * 5000, "\x00", "\ud800", "1970-01-01T00:00:00+05:30",
]
_DEEP = 40
BAD_VALUES = [
    "abc", "12.5", "", True, False, None, [1, 2], [], Raw("1" + "0" * 400), Raw("1e400"), Raw("-1e999"),
    {"label": "a\x00b"}, {"a\x00": 1}, {"s": "\ud800"}, {"\udfff": 1.0}, {"list": ["ok", "\x00"]},
    {"n": Raw("1e400")}, {"deep": json.loads("[" * _DEEP + "]" * _DEEP)},
]


def _surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


@st.composite
def bad_items(draw) -> Item:
    sensor = draw(st.sampled_from(SENSORS))
    sent, _ = draw(good_times())
    good = {"sensor": sensor, "timestamp": sent, "value": draw(good_values)}
    how = draw(st.sampled_from(["sensor", "timestamp", "value", "missing", "extra", "not_an_object"]))
    if how == "not_an_object":
        junk = draw(st.sampled_from(["fz,1700000000,1.0", 1.5, None, True, [], [good], Raw("0")]))
        return Item(junk, field="")
    if how == "missing":
        name = draw(st.sampled_from(["sensor", "timestamp", "value"]))
        del good[name]
        return Item(good, field=name)
    if how == "extra":
        name = draw(st.sampled_from(["unit", "Sensor", "seq", "", "x" * 300, "\ud800", "\x00", "valu\u00e9"]))
        good[name] = draw(object_values)
        return Item(good, field=name)
    pool = {"sensor": BAD_SENSORS, "timestamp": BAD_TIMES, "value": BAD_VALUES}[how]
    good[how] = draw(st.sampled_from(pool))
    return Item(good, field=how)


# --- whole requests ----------------------------------------------------------------------------


JSON_TYPES = [
    "application/json", "application/json; charset=utf-8", "Application/JSON", "application/json;charset=latin-1",
]
OTHER_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml", "",
               "application/json-patch+json", "multipart/form-data; boundary=B"]


@dataclass
class Request:
    body: bytes
    content_type: str
    key: str | None
    items: list[Item] = field(default_factory=list)
    # What the 4xx `detail` must contain (any of them) when the request is bad as a whole.
    names: tuple[str, ...] = ()

    @property
    def good(self) -> bool:
        return not self.names and bool(self.items) and all(i.stored is not None for i in self.items)


@st.composite
def requests_(draw) -> Request:
    items = draw(st.lists(st.one_of(good_items(), good_items(), bad_items()), max_size=12))
    if draw(st.integers(0, 9)) == 0:
        items = draw(st.lists(good_items(), min_size=1, max_size=3))  # often a wholly good batch
    key = str(uuid.uuid4()) if draw(st.booleans()) else None
    text = dumps([i.body for i in items])
    request = Request(text.encode(), draw(st.sampled_from(JSON_TYPES)), key, items)
    if not items:
        request.names = ("empty",)
    shape = draw(st.sampled_from(["as is"] * 6 + ["media type", "broken", "not a list", "junk bytes"]))
    if shape == "media type":
        request.content_type = draw(st.sampled_from(OTHER_TYPES))
        # DRF's answers: 415 naming the type, or a form that is no list, or a bad multipart.
        request.names = ("media type", "list", "multipart", "empty")
    elif shape == "broken":
        request.body, request.names = draw(_broken(text))
    elif shape == "not a list":
        body = draw(st.sampled_from([{"sensor": "fz", "timestamp": 1.0, "value": 1.0}, "readings", 42, None, True, {}]))
        request.body, request.names = dumps(body).encode(), ("list",)
    elif shape == "junk bytes":
        junk = draw(st.binary(min_size=1, max_size=200).filter(lambda b: not _json_list(b)))
        request.body, request.names = junk, ("JSON", "UTF-8", "empty", "list", "digits", "nested", "NaN", "Infinity",
                                             "twice")
    return request


def _json_list(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), list | dict)
    except ValueError:
        return False


@st.composite
def _broken(draw, text: str) -> tuple[bytes, tuple[str, ...]]:
    """A JSON text spoilt one way, and what the answer must name."""
    how = draw(st.sampled_from(["truncated", "trailing", "bom", "latin-1", "nan", "twice", "digits", "deep", "empty"]))
    if how == "truncated":
        return text[: draw(st.integers(0, len(text) - 1))].encode(), ("JSON", "empty")
    if how == "trailing":
        return (text + draw(st.sampled_from(["]", "}", ",", "x", "[]"]))).encode(), ("JSON",)
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode(), ("BOM",)
    if how == "latin-1":
        cut = draw(st.integers(0, len(text)))
        return text[:cut].encode() + b"\xe9" + text[cut:].encode(), ("UTF-8",)
    if how == "nan":
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        item = {"sensor": "fz", "timestamp": 1_700_000_000.0, "value": Raw(token)}
        return dumps([item]).encode(), (token.lstrip("-"),)
    if how == "twice":
        name = draw(st.sampled_from(["sensor", "timestamp", "value"]))
        pairs = Pairs([("sensor", "fz"), ("timestamp", 1_700_000_000.0), ("value", 1.0), (name, "again")])
        return dumps([pairs]).encode(), (repr(name),)
    if how == "digits":
        item = {"sensor": "temp", "timestamp": 1_700_000_000.0, "value": Raw("7" * 5000)}
        return dumps([item]).encode(), ("4300",)
    if how == "deep":
        depth = draw(st.sampled_from([2_000, 100_000]))
        return ("[" * depth + "]" * depth).encode(), ("nested",)
    return draw(st.sampled_from([b"", b"   ", b"\r\n"])), ("empty",)


# --- the test -----------------------------------------------------------------------------------


def _state(session_id: int) -> tuple:
    """Everything a batch may change."""
    return (
        Reading.objects.filter(session_id=session_id).count(),
        RecordingSession.objects.get(pk=session_id).reading_count,
        sorted(ValidationResult.objects.filter(session_id=session_id).values_list("id", "count", "last_timestamp",
                                                                                "status", "is_open")),
        sorted(ReadingRollup.objects.filter(session_id=session_id).values_list("id", "count", "sum")),
        IngestKey.objects.filter(session_id=session_id).count(),
    )


def _post(client, session_id: int, request: Request):
    headers = {"HTTP_IDEMPOTENCY_KEY": request.key} if request.key else {}
    return client.generic("POST", f"/api/v1/sessions/{session_id}/readings/", request.body,
                          content_type=request.content_type, **headers)


def _same(stored, sent) -> bool:
    """A stored value equals the one sent: numbers to a double's precision (jsonb writes 1e300 out in full)."""
    if isinstance(sent, bool) or sent is None or isinstance(sent, str):
        return stored == sent and type(stored) is type(sent)
    if isinstance(sent, int | float):
        return (not isinstance(stored, bool) and isinstance(stored, int | float)
                and math.isclose(float(stored), float(sent), rel_tol=1e-15, abs_tol=0.0))
    if isinstance(sent, dict):
        return (isinstance(stored, dict) and stored.keys() == sent.keys()
                and all(_same(stored[k], sent[k]) for k in sent))
    return (isinstance(stored, list) and len(stored) == len(sent)
            and all(_same(a, b) for a, b in zip(stored, sent, strict=True)))


def _assert_stored_exactly(session_id: int, answer: dict, items: list[Item]) -> None:
    rows = list(
        Reading.objects.filter(session_id=session_id, seq__gte=answer["first_seq"], seq__lte=answer["last_seq"])
        .select_related("sensor").order_by("seq")
    )
    assert len(rows) == answer["accepted"] == len(items)
    unmatched = [i.stored for i in items]
    for row in rows:
        seconds = row.timestamp.timestamp()
        for expected in unmatched:
            sensor, sent_seconds, value = expected
            # Stored to the microsecond; beyond 2**53 µs (year 2255) a double holds less.
            close = abs(seconds - sent_seconds) <= 0.5e-6 + 2 * math.ulp(sent_seconds)
            if row.sensor.name == sensor and close and _same(row.value, value):
                unmatched.remove(expected)
                break
        else:
            raise AssertionError(f"stored {(row.sensor.name, seconds, row.value)} was not sent: {unmatched}")


def _assert_names_the_problem(body: dict, request: Request) -> None:
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], body
    if request.names:
        assert any(name.lower() in body["detail"].lower() for name in request.names), (request.names, body)
        return
    bad = {index: item.field for index, item in enumerate(request.items) if item.stored is None}
    errors = body["errors"]
    assert errors and all(e["message"] for e in errors), body
    named = {}
    for error in errors:
        named.setdefault(error["index"], set()).add(error["field"])
    # Every bad item is named with its field, and nothing else is (at most 100 errors: all fit here).
    expected_fields = {index: {f.encode("utf-8", "backslashreplace").decode()[:60] for f in [field_]}
                       for index, field_ in bad.items()}
    assert {i: {f[:60] for f in fields} for i, fields in named.items()} == expected_fields, (body, request.items)


@given(sent=requests_())
@FUZZ
def test_ingest_stores_a_good_batch_exactly_and_refuses_anything_else_with_a_named_4xx_storing_nothing(
    staff_client, bench_session, sent
):
    request = sent
    before = _state(bench_session)

    response = _post(staff_client, bench_session, request)

    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"] == "application/json", response.content[:200]
    if not request.good:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
        _assert_names_the_problem(response.json(), request)
        assert _state(bench_session) == before
        return
    assert response.status_code == 201, response.content[:500]
    answer = response.json()
    _assert_stored_exactly(bench_session, answer, request.items)
    after = _state(bench_session)
    assert (after[0] - before[0], after[1] - before[1]) == (len(request.items), len(request.items))
    assert after[4] - before[4] == (1 if request.key else 0)
    if request.key:
        # The same batch again with its key: the first answer, nothing stored. Numbers compared as
        # doubles: the stored answer is jsonb, which writes a peak of 1e300 out as a 301-digit integer.
        replay = _post(staff_client, bench_session, request)
        assert replay.status_code == 201 and _same(replay.json(), answer), (replay.json(), answer)
        assert _state(bench_session) == after
