"""The per-second rollups the pipeline keeps: what they hold, and that they go with their readings."""

import math

import pytest

from sessions.models import ReadingRollup
from sessions.recording.rollups import rollup_rebuild
from tests.conftest import T0, ft6_value

pytestmark = pytest.mark.django_db


def rollups(session_id: int) -> dict[tuple, tuple]:
    return {
        (r.sensor.name, r.field, r.bucket): (r.count, r.sum, r.min, r.max)
        for r in ReadingRollup.objects.filter(session_id=session_id).select_related("sensor")
    }


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
    assert ReadingRollup.objects.filter(session_id=other).count() == 1


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
