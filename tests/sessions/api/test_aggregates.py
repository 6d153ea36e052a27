"""`GET /api/v1/sensors/readings/aggregated`: buckets checked against the same sums done in Python."""

import math
import random
import time

import pytest

from sensors.models import Rig, Sensor
from sensors.services import rig_create
from sessions.models import Reading
from sessions.reads.aggregates import readings_aggregate
from tests.conftest import BENCH_SENSORS, T0, ft6_value

pytestmark = pytest.mark.django_db

AGGREGATED = "/api/v1/sensors/readings/aggregated"
US = 1_000_000


def scattered(sensor: str, count: int, *, t0: float, seconds: float, seed: int, value=None) -> list[dict]:
    """Readings at random instants (µs) within `seconds` from `t0`, with random values."""
    rng = random.Random(seed)
    batch = []
    for _ in range(count):
        ts = round(t0 + rng.uniform(0, seconds), 6)
        v = value(rng) if value else round(rng.uniform(-50, 150), 3)
        batch.append({"sensor": sensor, "timestamp": ts, "value": v})
    return batch


def ft6_random(rng) -> dict:
    return {**ft6_value(rng.randint(0, 9)), "fz": round(rng.uniform(0, 60), 4), "ok": True, "tag": "x"}


def expected(batch, *, interval: float, field: str = "", start: float | None = None, end: float | None = None):
    """The buckets as the endpoint should give them, summed here from the readings sent."""
    step = round(interval * US)
    buckets: dict[int, list[float]] = {}
    for r in batch:
        us = round(r["timestamp"] * US)
        if (start is not None and us < round(start * US)) or (end is not None and us > round(end * US)):
            continue
        value = r["value"][field] if field else r["value"]
        buckets.setdefault(us // step * step, []).append(value)
    return [
        {"interval_start": b / US, "interval_end": (b + step) / US, "count": len(vs), "average": sum(vs) / len(vs),
         "min": min(vs), "max": max(vs), "timestamp": b / US}
        for b, vs in sorted(buckets.items())
    ]


def same(data: list[dict], want: list[dict]) -> None:
    assert [(d["interval_start"], d["interval_end"], d["count"], d["min"], d["max"], d["timestamp"]) for d in data] == [
        (w["interval_start"], w["interval_end"], w["count"], w["min"], w["max"], w["timestamp"]) for w in want
    ]
    assert [d["average"] for d in data] == pytest.approx([w["average"] for w in want], rel=1e-12, abs=1e-12)


@pytest.fixture
def fz_batches():
    # Two batches that share seconds: the second adds to the rollups the first left.
    first = scattered("fz", 1500, t0=T0 + 0.37, seconds=40.0, seed=1)
    second = scattered("fz", 500, t0=T0 + 20.0, seconds=30.0, seed=2)
    return first, second


@pytest.fixture
def recorded(ingest, bench_session, fz_batches):
    """fz: 2,000 readings over ~50 s in two batches; ft6: 800 objects over ~30 s; temp: 10 readings."""
    ft6 = scattered("ft6", 800, t0=T0 + 5.5, seconds=30.0, seed=3, value=ft6_random)
    temp = scattered("temp", 10, t0=T0, seconds=5.0, seed=4)
    for batch in (fz_batches[0], fz_batches[1] + temp, ft6):
        response = ingest(bench_session, batch)
        assert response.status_code == 201, response.content
    return {"session": bench_session, "fz": fz_batches[0] + fz_batches[1], "ft6": ft6, "temp": temp}


def get(client, **query):
    response = client.get(AGGREGATED, query)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("interval", [1, 7, 60])
def test_buckets_of_a_scalar_sensor_match_python(staff_client, recorded, interval):
    body = get(staff_client, session=recorded["session"], sensor="fz", interval_seconds=interval)

    same(body["data"], expected(recorded["fz"], interval=interval))
    assert body["interval_seconds"] == interval
    assert body["total_intervals"] == len(body["data"])
    assert {"sensor_type": "force", "sensor": "fz", "session": recorded["session"]}.items() <= body.items()


def test_the_default_interval_is_a_minute(staff_client, recorded):
    body = get(staff_client, session=recorded["session"], sensor="fz")

    assert body["interval_seconds"] == 60
    same(body["data"], expected(recorded["fz"], interval=60))


@pytest.mark.parametrize("interval", [1, 5])
def test_a_field_of_an_object_sensor_matches_python(staff_client, recorded, interval):
    body = get(staff_client, session=recorded["session"], sensor="ft6", field="fz", interval_seconds=interval)

    same(body["data"], expected(recorded["ft6"], interval=interval, field="fz"))
    assert body["field"] == "fz"


def test_by_sensor_type(staff_client, recorded):
    body = get(staff_client, session=recorded["session"], sensor_type="temperature", interval_seconds=2)

    same(body["data"], expected(recorded["temp"], interval=2))
    assert body["sensor_type"] == "temperature"


@pytest.mark.parametrize("max_points", [1, 2, 7, 10, 49, 50, 51, 500])
def test_max_points_picks_an_interval_that_fits(staff_client, recorded, max_points):
    body = get(staff_client, session=recorded["session"], sensor="fz", max_points=max_points)

    assert 0 < len(body["data"]) <= max_points
    same(body["data"], expected(recorded["fz"], interval=body["interval_seconds"]))


def test_max_points_gives_whole_seconds_from_a_second_up(staff_client, recorded):
    # The fz readings touch 50 whole seconds (T0 .. T0 + 49.x).
    assert get(staff_client, session=recorded["session"], sensor="fz", max_points=50)["interval_seconds"] == 1
    assert get(staff_client, session=recorded["session"], sensor="fz", max_points=20)["interval_seconds"] == 3


def test_max_points_over_a_short_range_bins_below_a_second(staff_client, recorded):
    start, end = T0 + 10.123456, T0 + 12.5
    body = get(staff_client, session=recorded["session"], sensor="fz", max_points=100, start_time=start, end_time=end)

    assert body["interval_seconds"] < 1
    assert len(body["data"]) <= 100
    same(body["data"], expected(recorded["fz"], interval=body["interval_seconds"], start=start, end=end))


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (T0 + 3.25, T0 + 17.75),  # both edges inside a second
        (T0 + 3.0, T0 + 17.0),  # on seconds: the end's second holds only the instant itself
        (T0 + 3.999999, T0 + 4.000001),  # across one boundary only
        (T0 + 5.1, T0 + 5.9),  # within one second
        (T0 + 30.5, None),  # open end (with a session)
        (None, T0 + 8.5),  # open start (with a session)
    ],
)
def test_range_edges_inside_seconds_count_exactly(staff_client, recorded, lo, hi):
    query = {"session": recorded["session"], "sensor": "fz", "interval_seconds": 2}
    if lo is not None:
        query["start_time"] = lo
    if hi is not None:
        query["end_time"] = hi

    body = get(staff_client, **query)

    same(body["data"], expected(recorded["fz"], interval=2, start=lo, end=hi))


def test_an_edge_reading_at_the_end_instant_is_included(staff_client, recorded):
    last = recorded["fz"][7]["timestamp"]
    body = get(staff_client, session=recorded["session"], sensor="fz", interval_seconds=3600, end_time=last, start_time=last)

    assert [d["count"] for d in body["data"]] == [sum(1 for r in recorded["fz"] if r["timestamp"] == last)]


def test_iso_times_give_the_same_answer_as_unix_seconds(staff_client, recorded):
    from datetime import UTC, datetime

    iso = {k: datetime.fromtimestamp(v, tz=UTC).isoformat() for k, v in {"start_time": T0 + 3.25, "end_time": T0 + 9.5}.items()}
    unix = {"start_time": T0 + 3.25, "end_time": T0 + 9.5}

    a = get(staff_client, session=recorded["session"], sensor="fz", interval_seconds=1, **iso)
    b = get(staff_client, session=recorded["session"], sensor="fz", interval_seconds=1, **unix)

    assert a["data"] == b["data"] and a["data"]


def test_empty_buckets_are_left_out(staff_client, ingest, bench_session):
    batch = [{"sensor": "fz", "timestamp": T0 + t, "value": float(t)} for t in (0.5, 1.5, 10.5, 11.5)]
    assert ingest(bench_session, batch).status_code == 201

    body = get(staff_client, session=bench_session, sensor="fz", interval_seconds=2)

    assert [d["interval_start"] for d in body["data"]] == [T0, T0 + 10]
    assert body["total_intervals"] == 2


def test_booleans_and_strings_are_not_numbers(staff_client, ingest, bench_session):
    batch = [
        {"sensor": "ft6", "timestamp": T0 + 0.1, "value": {"fz": 1.0, "ok": True}},
        {"sensor": "ft6", "timestamp": T0 + 0.2, "value": {"fz": 3, "ok": False}},
        {"sensor": "ft6", "timestamp": T0 + 0.3, "value": {"fz": "high", "ok": True}},
    ]
    assert ingest(bench_session, batch).status_code == 201

    body = get(staff_client, session=bench_session, sensor="ft6", field="fz", interval_seconds=1)
    ok = staff_client.get(AGGREGATED, {"session": bench_session, "sensor": "ft6", "field": "ok"})

    assert [(d["count"], d["average"], d["min"], d["max"]) for d in body["data"]] == [(2, 2.0, 1.0, 3.0)]
    assert ok.status_code == 400 and "ok" in ok.json()["detail"]


# --- the rollups and the readings give the same answer ------------------------------------------

@pytest.mark.parametrize("interval", [1, 3, 60])
@pytest.mark.parametrize(
    ("lo", "hi"), [(None, None), (T0 + 2.5, T0 + 33.333333), (T0 + 4.0, T0 + 6.0), (T0 + 7.2, T0 + 7.7)]
)
def test_rollups_and_raw_readings_agree(recorded, interval, lo, hi):
    scope = dict(
        sensor_ids=list(Sensor.objects.filter(name__in=["fz"]).values_list("id", flat=True)),
        session_id=recorded["session"],
        start_us=None if lo is None else round(lo * US),
        stop_us=None if hi is None else round(hi * US) + 1,
        interval_us=interval * US,
    )

    rolled = readings_aggregate(**scope)
    raw = readings_aggregate(**scope, source="raw")

    assert [(b.start, b.end, b.count, b.min, b.max) for b in rolled] == [(b.start, b.end, b.count, b.min, b.max) for b in raw]
    assert [b.average for b in rolled] == pytest.approx([b.average for b in raw], rel=1e-12)
    assert sum(b.count for b in raw) == sum(d["count"] for d in expected(recorded["fz"], interval=1, start=lo, end=hi))


def test_rollups_and_raw_readings_agree_without_a_session(recorded):
    sensor_ids = list(Sensor.objects.filter(name="ft6").values_list("id", flat=True))
    scope = dict(sensor_ids=sensor_ids, field="fz", start_us=round((T0 + 6.3) * US), stop_us=round((T0 + 21.7) * US),
                 interval_us=4 * US)

    rolled = readings_aggregate(**scope)
    raw = readings_aggregate(**scope, source="raw")

    assert [(b.start, b.count, b.min, b.max) for b in rolled] == [(b.start, b.count, b.min, b.max) for b in raw]
    assert rolled


# --- which readings: hours_back, session, start/end ----------------------------------------------

@pytest.fixture
def recent(ingest, start, bench):
    """Two sessions of the bench rig: one 2.5 hours ago, one now."""
    now = time.time()
    old_session = start("bench")["session_id"]
    old = [{"sensor": "fz", "timestamp": now - 9000 + i, "value": float(i)} for i in range(20)]
    assert ingest(old_session, old).status_code == 201
    from sessions.models import RecordingSession

    RecordingSession.objects.filter(pk=old_session).update(status="completed")
    new_session = start("bench")["session_id"]
    new = [{"sensor": "fz", "timestamp": now - 30 + i * 0.5, "value": 100.0 + i} for i in range(40)]
    assert ingest(new_session, new).status_code == 201
    return {"old": old_session, "new": new_session, "old_readings": old, "new_readings": new, "now": now}


def test_hours_back_defaults_to_the_last_hour(staff_client, recent):
    body = get(staff_client, sensor="fz", interval_seconds=3600)

    assert sum(d["count"] for d in body["data"]) == 40
    assert body["hours_back"] == 1


def test_hours_back_reaches_further(staff_client, recent):
    body = get(staff_client, sensor="fz", interval_seconds=60, hours_back=3)

    same(body["data"], expected(recent["old_readings"] + recent["new_readings"], interval=60))
    assert body["hours_back"] == 3


def test_a_session_alone_gives_all_of_its_readings(staff_client, recent):
    body = get(staff_client, sensor="fz", session=recent["old"], interval_seconds=10)

    same(body["data"], expected(recent["old_readings"], interval=10))


def test_hours_back_within_a_session(staff_client, recent):
    assert get(staff_client, sensor="fz", session=recent["old"], hours_back=1)["data"] == []
    assert sum(d["count"] for d in get(staff_client, sensor="fz", session=recent["old"], hours_back=3)["data"]) == 20


def test_start_and_end_without_a_session_span_sessions(staff_client, recent):
    start, end = recent["now"] - 9000 + 4.5, recent["now"] - 20.25
    body = get(staff_client, sensor="fz", interval_seconds=30, start_time=start, end_time=end)

    same(body["data"], expected(recent["old_readings"] + recent["new_readings"], interval=30, start=start, end=end))


def test_end_time_with_hours_back_reaches_back_from_the_end(staff_client, recent):
    end = recent["now"] - 9000 + 10.5
    body = get(staff_client, sensor="fz", interval_seconds=3600, end_time=end, hours_back=1)

    assert sum(d["count"] for d in body["data"]) == 11


# --- sensors by name across rigs ---------------------------------------------------------------

def test_a_sensor_name_in_several_rigs_needs_rig_or_session(staff_client, recorded):
    rig_create(name="bench2", source=Rig.Source.EXTERNAL, sensors=BENCH_SENSORS)

    ambiguous = staff_client.get(AGGREGATED, {"sensor": "fz", "start_time": T0, "end_time": T0 + 100})
    by_rig = get(staff_client, sensor="fz", rig="bench", start_time=T0, end_time=T0 + 100, interval_seconds=60)
    by_session = get(staff_client, sensor="fz", session=recorded["session"], interval_seconds=60)

    assert ambiguous.status_code == 400
    assert "sensor" in ambiguous.json()["errors"] and "rig" in ambiguous.json()["detail"]
    assert by_rig["data"] == by_session["data"] != []


def test_a_sensor_type_nobody_uses_matches_nothing(staff_client, recorded):
    body = get(staff_client, sensor_type="laser", session=recorded["session"])

    assert body["data"] == [] and body["total_intervals"] == 0


def test_a_sensor_with_no_readings_gives_no_buckets(staff_client, bench_session):
    assert get(staff_client, sensor="ft6", session=bench_session, max_points=10)["data"] == []


# --- bad parameters ------------------------------------------------------------------------------

BAD = [
    ({}, 400, "sensor_type"),
    ({"sensor": "fz", "interval_seconds": "0"}, 400, "interval_seconds"),
    ({"sensor": "fz", "interval_seconds": "3601"}, 400, "interval_seconds"),
    ({"sensor": "fz", "interval_seconds": "abc"}, 400, "interval_seconds"),
    ({"sensor": "fz", "max_points": "0"}, 400, "max_points"),
    ({"sensor": "fz", "max_points": "10001"}, 400, "max_points"),
    ({"sensor": "fz", "max_points": "10", "interval_seconds": "5"}, 400, "max_points"),
    ({"sensor": "fz", "hours_back": "0"}, 400, "hours_back"),
    ({"sensor": "fz", "hours_back": "25"}, 400, "hours_back"),
    ({"sensor": "fz", "hours_back": "2", "start_time": T0}, 400, "hours_back"),
    ({"sensor": "fz", "start_time": "yesterday"}, 400, "start_time"),
    ({"sensor": "fz", "end_time": "nan"}, 400, "end_time"),
    ({"sensor": "fz", "start_time": T0 + 10, "end_time": T0}, 400, "end_time"),
    ({"sensor": "fz", "field": "a.b"}, 400, "field"),
    ({"sensor": "fz", "field": "x" * 65}, 400, "field"),
    ({"sensor": "fz", "field": "fz"}, 400, "field"),  # a scalar sensor
    ({"sensor": "ft6"}, 400, "field"),  # an object sensor
    ({"sensor": "ft6", "field": "nope"}, 400, "field"),
    ({"sensor": "fz", "session": "abc"}, 400, "session"),
    ({"sensor": "fz", "session": "999999"}, 404, "999999"),
    ({"sensor": "nope"}, 404, "nope"),
    ({"sensor": "fz", "rig": "nope"}, 404, "nope"),
    ({"sensor": "fz", "rig": "sim"}, 404, "fz"),
    ({"sensor": "f\x00z"}, 400, "sensor"),
    ({"sensor_type": "\x00"}, 400, "sensor_type"),
    ({"sensor": "fz", "rig": "b\x00"}, 400, "rig"),
    ({"sensor": "fz", "field": "f\x00"}, 400, "field"),
]


@pytest.mark.parametrize(("query", "status", "named"), BAD)
def test_a_bad_parameter_is_a_4xx_naming_it(staff_client, recorded, query, status, named):
    query = {"session": recorded["session"], **query} if "session" not in query and "rig" not in query else query
    if query.keys() == {"session"}:
        query = {}

    response = staff_client.get(AGGREGATED, query)

    assert response.status_code == status, response.content
    assert named in response.json()["detail"]


def test_a_rig_other_than_the_sessions_is_a_400(staff_client, recorded):
    response = staff_client.get(AGGREGATED, {"session": recorded["session"], "sensor": "fz", "rig": "sim"})

    assert response.status_code == 400 and "rig" in response.json()["errors"]


def test_reads_need_credentials(anon_client, recorded):
    assert anon_client.get(AGGREGATED, {"sensor": "fz"}).status_code in (401, 403)


def test_answers_are_finite_floats(staff_client, recorded):
    body = get(staff_client, session=recorded["session"], sensor="fz", interval_seconds=5)

    assert all(math.isfinite(d[k]) for d in body["data"] for k in ("average", "min", "max", "interval_start"))


# --- rollups at every resolution: the same buckets as the readings, to the bit -------------------

MS = 1_000


@pytest.fixture
def dense(ingest, bench_session):
    """fz: 6,000 readings over ~130 s across two minute boundaries, a 1 kHz burst among them, and
    values in sixteenths (every sum exact in a double, so averages compare exactly); ft6: 600 objects."""
    rng = random.Random(11)
    minute = int(T0) + 40  # a multiple of 60
    sparse = [round(minute - 7.3 + rng.uniform(0, 130), 6) for _ in range(4000)]
    burst = [round(minute + 61.2 + i / 1000, 6) for i in range(2000)]
    fz = [{"sensor": "fz", "timestamp": ts, "value": rng.randint(-800, 1600) / 16} for ts in sparse + burst]
    ft6 = [
        {"sensor": "ft6", "timestamp": round(minute + rng.uniform(0, 70), 6), "value": {**ft6_value(i), "fz": rng.randint(0, 960) / 16}}
        for i in range(600)
    ]
    for batch in (fz[:3500], fz[3500:] + ft6):
        assert ingest(bench_session, batch).status_code == 201
    fz_id, ft6_id = (Sensor.objects.get(rig__name="bench", name=n).pk for n in ("fz", "ft6"))
    return {"session": bench_session, "fz": fz, "ft6": ft6, "fz_id": fz_id, "ft6_id": ft6_id, "minute": minute}


def exact(buckets) -> list[tuple]:
    return [(b.start, b.end, b.count, b.average, b.min, b.max) for b in buckets]


def python(batch, *, interval_us: int, lo: int | None = None, hi: int | None = None, field: str = "") -> list[tuple]:
    """[lo, hi) in µs, bucketed here from the readings sent."""
    want = expected(
        [r for r in batch if (lo is None or round(r["timestamp"] * US) >= lo) and (hi is None or round(r["timestamp"] * US) < hi)],
        interval=interval_us / US, field=field,
    )
    return [(w["interval_start"], w["interval_end"], w["count"], w["average"], w["min"], w["max"]) for w in want]


WIDTHS_US = [10 * MS, 20 * MS, 30 * MS, 100 * MS, 250 * MS, 700 * MS, US, 7 * US, 10 * US, 30 * US, 60 * US, 90 * US, 120 * US]


@pytest.mark.parametrize("interval_us", WIDTHS_US)
def test_every_bucket_width_matches_python_over_the_whole_session(dense, interval_us):
    scope = {"sensor_ids": [dense["fz_id"]], "session_id": dense["session"], "interval_us": interval_us}

    assert exact(readings_aggregate(**scope)) == python(dense["fz"], interval_us=interval_us)
    assert exact(readings_aggregate(**scope, source="raw")) == python(dense["fz"], interval_us=interval_us)


def test_random_ranges_and_widths_match_python_with_a_session_and_without(dense):
    rng = random.Random(12)
    first = dense["minute"] * US - 8 * US
    for i in range(40):
        interval_us = rng.choice([*WIDTHS_US, 15 * MS, 1_234])  # the last two: no rollup divides them
        lo = first + rng.randrange(0, 140 * US)
        hi = lo + rng.choice([1, 3 * MS, 15 * MS, 999_999, 11 * US, 65 * US, 150 * US]) + rng.randrange(0, 2 * US)
        session = dense["session"] if i % 2 else None
        field, sensor_id, batch = ("fz", dense["ft6_id"], dense["ft6"]) if i % 5 == 0 else ("", dense["fz_id"], dense["fz"])
        got = readings_aggregate(sensor_ids=[sensor_id], field=field, session_id=session, start_us=lo, stop_us=hi, interval_us=interval_us)

        assert exact(got) == python(batch, interval_us=interval_us, lo=lo, hi=hi, field=field), (interval_us, lo, hi, session)


def test_whole_cells_are_read_from_the_rollups_alone(dense):
    # With the readings gone, a range of whole cells still adds up: nothing came from the readings.
    minute = dense["minute"] * US
    cases = [(minute, minute + 120 * US, 60 * US), (minute + 61 * US, minute + 63 * US, 250 * MS), (minute + 61_200 * MS, minute + 61_260 * MS, 10 * MS)]
    want = [python(dense["fz"], interval_us=i, lo=lo, hi=hi) for lo, hi, i in cases]
    Reading.objects.filter(session_id=dense["session"])._raw_delete("default")

    for (lo, hi, interval_us), buckets in zip(cases, want, strict=True):
        got = readings_aggregate(sensor_ids=[dense["fz_id"]], session_id=dense["session"], start_us=lo, stop_us=hi, interval_us=interval_us)
        assert exact(got) == buckets and buckets


def test_max_points_over_a_quarter_second_a_bucket_reads_the_rollups(staff_client, dense):
    start, end = dense["minute"] + 61.0, dense["minute"] + 63.5 - 1e-6  # 2.5 s: 10 buckets of 0.25 s
    body = get(staff_client, session=dense["session"], sensor="fz", max_points=10, start_time=start, end_time=end)

    assert body["interval_seconds"] == 0.25
    same(body["data"], expected(dense["fz"], interval=0.25, start=start, end=end))


@pytest.mark.parametrize(
    ("span_s", "max_points", "unit_us"),
    # Cells of at most a tenth of the interval (whole seconds from a second up); under 10 ms, µs.
    [(2.537, 10, 10 * MS), (0.95, 100, 1), (1.9, 10, 10 * MS), (14.2, 10, US), (1234, 10, 10 * US), (7000, 10, 60 * US)],
)
def test_max_points_picks_the_shortest_whole_number_of_rollup_cells_that_fits(staff_client, dense, span_s, max_points, unit_us):
    start_us = (dense["minute"] + 61) * US
    stop_us = start_us + round(span_s * US)
    body = get(staff_client, session=dense["session"], sensor="fz", max_points=max_points, start_time=start_us / US,
               end_time=(stop_us - 1) / US)
    interval_us = round(body["interval_seconds"] * US)

    def buckets(width: int) -> int:
        return (stop_us - 1) // width - start_us // width + 1

    assert interval_us % unit_us == 0
    assert buckets(interval_us) <= max_points < buckets(interval_us - unit_us)
    assert len(body["data"]) <= max_points
    same(body["data"], expected(dense["fz"], interval=body["interval_seconds"], start=start_us / US, end=(stop_us - 1) / US))
