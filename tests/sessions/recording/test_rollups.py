"""The rollups the pipeline keeps at each resolution: what they hold, and that they go with their readings."""

import math
import random

import pytest

from sessions.models import ReadingRollup
from sessions.recording.pipeline import SessionRecorder, readings_record
from sessions.recording.rollups import RESOLUTIONS, SECOND, rollup_rebuild
from tests.conftest import T0, ft6_value

pytestmark = pytest.mark.django_db

US = 1_000_000


def rollups(session_id: int, resolution: int = SECOND) -> dict[tuple, tuple]:
    return {
        (r.sensor.name, r.field, r.bucket): (r.count, r.sum, r.min, r.max)
        for r in ReadingRollup.objects.filter(session_id=session_id, resolution=resolution).select_related("sensor")
    }


def cells(batch: list[dict], resolution: int) -> dict[tuple, tuple]:
    """The rollups as they should be, summed here from the readings sent."""
    acc: dict[tuple, list] = {}
    for r in batch:
        values = r["value"] if isinstance(r["value"], dict) else {"": r["value"]}
        for field, v in values.items():
            if type(v) in (int, float):
                acc.setdefault((r["sensor"], field, round(r["timestamp"] * US) // resolution), []).append(float(v))
    return {key: (len(vs), math.fsum(vs), min(vs), max(vs)) for key, vs in acc.items()}


def close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k][0] == b[k][0] and a[k][2:] == b[k][2:] and math.isclose(a[k][1], b[k][1], rel_tol=1e-12) for k in a
    )


def test_each_second_of_each_sensor_and_field_is_summed(ingest, bench_session):
    batch = [
        {"sensor": "fz", "timestamp": T0 + 0.1, "value": 10.0},
        {"sensor": "fz", "timestamp": T0 + 0.9, "value": 4},
        {"sensor": "fz", "timestamp": T0 + 1.0, "value": -2.5},
        {"sensor": "ft6", "timestamp": T0 + 0.5, "value": ft6_value(0)},
        {"sensor": "ft6", "timestamp": T0 + 0.6, "value": {**ft6_value(2), "ok": True, "name": "x", "nested": {"a": 1}}},
    ]
    assert ingest(bench_session, batch).status_code == 201

    held = rollups(bench_session)

    assert held[("fz", "", int(T0))] == (2, 14.0, 4.0, 10.0)
    assert held[("fz", "", int(T0) + 1)] == (1, -2.5, -2.5, -2.5)
    assert held[("ft6", "fx", int(T0))] == (2, 5.0, 1.5, 3.5)
    assert held[("ft6", "ty", int(T0))] == (2, 2.0, 0.0, 2.0)
    # Booleans, strings and nested objects are not numbers.
    assert {f for (_, f, _) in held} == {"", "fx", "fy", "fz", "tx", "ty", "tz"}


def test_later_batches_add_to_the_same_second(ingest, bench_session):
    assert ingest(bench_session, [{"sensor": "fz", "timestamp": T0 + 0.1, "value": 5.0}]).status_code == 201
    assert ingest(bench_session, [{"sensor": "fz", "timestamp": T0 + 0.2, "value": 1.0},
                                  {"sensor": "fz", "timestamp": T0 + 0.3, "value": 9.0}]).status_code == 201

    assert rollups(bench_session)[("fz", "", int(T0))] == (3, 15.0, 1.0, 9.0)


def test_rebuilding_from_the_readings_gives_what_the_pipeline_kept(ingest, bench_session):
    batch = [
        {"sensor": name, "timestamp": T0 + i * 0.013, "value": ft6_value(i) if name == "ft6" else i * 0.37 - 20}
        for i in range(600)
        for name in ("fz", "temp", "ft6")
    ]
    for part in (batch[:1000], batch[1000:]):
        assert ingest(bench_session, part).status_code == 201
    kept = rollups(bench_session)

    rollup_rebuild(session_id=bench_session)

    assert close(rollups(bench_session), kept)
    assert sum(n for (name, field, _), (n, *_) in kept.items() if name == "fz") == 600
    for resolution in RESOLUTIONS:
        assert close(rollups(bench_session, resolution), cells(batch, resolution)), resolution


def test_every_resolution_holds_each_number_once_in_its_cell(ingest, bench_session):
    # Values in sixteenths: every sum is exact in a double, whatever the order it is added in.
    rng = random.Random(5)
    batch = [
        {"sensor": "fz", "timestamp": round(T0 + rng.uniform(0, 130), 6), "value": rng.randint(-800, 1600) / 16}
        for _ in range(3000)
    ] + [
        {"sensor": "ft6", "timestamp": round(T0 + rng.uniform(0, 70), 6), "value": {**ft6_value(i), "fz": rng.randint(0, 960) / 16}}
        for i in range(500)
    ]
    for part in (batch[:1700], batch[1700:]):  # the second batch adds to cells the first left
        assert ingest(bench_session, part).status_code == 201

    for resolution in RESOLUTIONS:
        held = rollups(bench_session, resolution)
        assert held == cells(batch, resolution), resolution
        assert sum(n for (name, field, _), (n, *_) in held.items() if name == "fz") == 3000


def test_a_reading_on_a_cell_edge_goes_to_the_later_cell(ingest, bench_session):
    minute = int(T0) + 40  # a multiple of 60
    offsets = [-0.01, 0.0, 0.009999, 0.01, 0.1, 1.0]
    batch = [{"sensor": "fz", "timestamp": minute + dt, "value": float(i)} for i, dt in enumerate(offsets)]
    assert ingest(bench_session, batch).status_code == 201

    assert minute % 60 == 0
    assert rollups(bench_session, 60 * US) == {
        ("fz", "", minute // 60 - 1): (1, 0.0, 0.0, 0.0), ("fz", "", minute // 60): (5, 15.0, 1.0, 5.0),
    }
    hundredths = minute * 100
    assert rollups(bench_session, 10_000) == {
        ("fz", "", hundredths - 1): (1, 0.0, 0.0, 0.0),
        ("fz", "", hundredths): (2, 3.0, 1.0, 2.0),
        ("fz", "", hundredths + 1): (1, 3.0, 3.0, 3.0),
        ("fz", "", hundredths + 10): (1, 4.0, 4.0, 4.0),
        ("fz", "", hundredths + 100): (1, 5.0, 5.0, 5.0),
    }


def test_a_reset_takes_the_rollups_with_the_readings(staff_client, ingest, bench_session):
    assert ingest(bench_session, [{"sensor": "fz", "timestamp": T0, "value": 1.0}]).status_code == 201

    assert staff_client.post("/api/v1/sessions/reset", {"rig": "bench"}, format="json").status_code == 200

    assert not ReadingRollup.objects.filter(session_id=bench_session).exists()


def test_deleting_a_session_takes_its_rollups(staff_client, ingest, bench_session, start):
    assert ingest(bench_session, [{"sensor": "fz", "timestamp": T0, "value": 1.0}]).status_code == 201
    assert staff_client.post("/api/v1/sessions/stop", {"session_id": bench_session}, format="json").status_code == 200
    other = start("bench")["session_id"]
    assert ingest(other, [{"sensor": "fz", "timestamp": T0, "value": 2.0}]).status_code == 201

    assert staff_client.delete(f"/api/v1/sessions/{bench_session}/").status_code == 204

    assert not ReadingRollup.objects.filter(session_id=bench_session).exists()
    assert ReadingRollup.objects.filter(session_id=other).count() == len(RESOLUTIONS)


def test_a_batch_that_is_refused_leaves_no_rollups(ingest, bench_session):
    response = ingest(bench_session, [{"sensor": "fz", "timestamp": T0, "value": 1.0}, {"sensor": "nope", "timestamp": T0, "value": 1.0}])

    assert response.status_code == 400
    assert not ReadingRollup.objects.exists()


def test_sums_past_the_largest_double_do_not_refuse_a_batch(ingest, bench_session):
    for offset in (0.1, 0.2):
        response = ingest(bench_session, [{"sensor": "fz", "timestamp": T0 + offset, "value": 1.5e308}])
        assert response.status_code == 201, response.content

    count, total, low, high = rollups(bench_session)[("fz", "", int(T0))]

    assert (count, low, high) == (2, 1.5e308, 1.5e308)
    assert total >= 1.7e308


def _record_as(recorder, batch: list[dict]) -> None:
    readings_record(recorder=recorder, items=[(r["sensor"], r["timestamp"], r["value"]) for r in batch])


def test_two_writers_and_batches_out_of_order_add_to_the_same_cells(bench_session):
    # Cells past the last one a writer stored go in by COPY: a second writer in between (two
    # server processes taking a rig's batches), or a batch older than the last, must find the
    # cells the other wrote and add to them, not meet them as duplicates.
    rng = random.Random(9)
    # Part n spans [10n, 10n + 25) s: each overlaps the two before it.
    parts = [
        sorted(({"sensor": "fz", "timestamp": round(T0 + rng.uniform(10 * n, 10 * n + 25), 6),
                 "value": rng.randint(-800, 800) / 16} for _ in range(400)), key=lambda r: r["timestamp"])
        for n in range(6)
    ]
    batch = [r for part in parts for r in part]
    one, other = SessionRecorder(bench_session), SessionRecorder(bench_session)
    for n, part in enumerate(parts):
        _record_as(one if n % 3 else other, part)
    late = SessionRecorder(bench_session)  # knows nothing of what the others stored
    extra = [{"sensor": "fz", "timestamp": T0 + 0.5 + i, "value": 1.0} for i in range(30)]
    _record_as(late, extra)

    for resolution in RESOLUTIONS:
        assert close(rollups(bench_session, resolution), cells(batch + extra, resolution)), resolution
