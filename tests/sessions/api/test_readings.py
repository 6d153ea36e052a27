"""Reading readings back: `GET /api/v1/sensors/readings` and `GET /api/v1/sessions/{id}/readings/`.

The seed's `/api/v1/sensors/readings/latest`: each sensor's newest reading in one session.
"""

import re
from datetime import UTC, datetime

import pytest

from sessions.models import RecordingSession
from tests.conftest import T0, assert_named, ft6_value, readings

pytestmark = pytest.mark.django_db

READINGS = "/api/v1/sensors/readings"


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def next_link(response) -> str | None:
    header = response.headers.get("Link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', header)
    assert match, header
    return match.group(1)


@pytest.fixture
def recorded(ingest, bench_session):
    """fz every 0.1 s from T0 (5 readings), temp at the same instants (5), one ft6 reading."""
    batch = (
        readings("fz", [10.0, 11.0, 12.0, 13.0, 14.0])
        + readings("temp", [20, 21, 22, 23, 24])
        + readings("ft6", [ft6_value(0)], t0=T0 + 0.25)
    )
    assert ingest(bench_session, batch).status_code == 201
    return bench_session


def test_readings_have_the_seed_shape_in_timestamp_order(staff_client, recorded):
    response = staff_client.get(READINGS, {"session": recorded})

    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 11
    assert all({"timestamp", "sensor_type", "value", "sensor", "session_id"} <= set(r) for r in rows)
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    assert rows[0]["timestamp"] == T0
    assert all(isinstance(r["timestamp"], float) for r in rows)
    ft6 = next(r for r in rows if r["sensor"] == "ft6")
    assert ft6 == {**ft6, "sensor_type": "force_torque", "value": ft6_value(0), "session_id": recorded}


def test_the_session_readings_path_answers_like_the_seed_path(staff_client, recorded):
    seed = staff_client.get(READINGS, {"session": recorded, "sensor": "fz"}).json()
    nested = staff_client.get(f"/api/v1/sessions/{recorded}/readings/", {"sensor": "fz"}).json()

    assert nested == seed
    assert [r["value"] for r in nested] == [10.0, 11.0, 12.0, 13.0, 14.0]


def test_readings_filter_by_session(staff_client, recorded, start, ingest, sim_rig):
    staff_client.post("/api/v1/sessions/stop", {"session_id": recorded}, format="json")
    other = start("bench")["session_id"]
    ingest(other, readings("fz", [99.0], t0=T0 + 100))

    rows = staff_client.get(READINGS, {"session": other}).json()

    assert [(r["session_id"], r["value"]) for r in rows] == [(other, 99.0)]
    assert len(staff_client.get(READINGS).json()) == 12


def test_readings_filter_by_sensor(staff_client, recorded):
    rows = staff_client.get(READINGS, {"sensor": "temp"}).json()

    assert [r["value"] for r in rows] == [20, 21, 22, 23, 24]
    assert {r["sensor"] for r in rows} == {"temp"}


def test_readings_filter_by_sensor_type(staff_client, recorded):
    rows = staff_client.get(READINGS, {"sensor_type": "force_torque"}).json()

    assert [r["sensor"] for r in rows] == ["ft6"]


def test_an_unused_sensor_type_matches_nothing(staff_client, recorded):
    response = staff_client.get(READINGS, {"sensor_type": "humidity"})

    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("as_iso", [False, True], ids=["unix", "iso"])
def test_readings_filter_by_a_time_range(staff_client, recorded, as_iso):
    start, end = T0 + 0.1, T0 + 0.3
    query = {"sensor": "fz", "start_time": iso(start) if as_iso else start, "end_time": iso(end) if as_iso else end}

    rows = staff_client.get(READINGS, query).json()

    # Both ends are included.
    assert [r["value"] for r in rows] == [11.0, 12.0, 13.0]


def test_a_naive_iso_time_is_utc(staff_client, recorded):
    rows = staff_client.get(READINGS, {"sensor": "fz", "start_time": "2023-11-14T22:13:20.350"}).json()

    assert [r["value"] for r in rows] == [14.0]


def test_limit_defaults_to_100(staff_client, ingest, bench_session):
    ingest(bench_session, readings("temp", [float(i) for i in range(150)]))

    response = staff_client.get(READINGS)

    assert len(response.json()) == 100
    assert next_link(response) is not None


def test_limit_bounds_the_number_of_readings(staff_client, recorded):
    response = staff_client.get(READINGS, {"limit": 3})

    assert [r["value"] for r in response.json()] == [10.0, 20, 11.0]


def test_a_limit_up_to_max_data_points_is_accepted(staff_client, recorded, settings):
    settings.MAX_DATA_POINTS = 11

    response = staff_client.get(READINGS, {"limit": 11})

    assert response.status_code == 200
    assert len(response.json()) == 11


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "10001", "99999999999999999999999"])
def test_a_bad_limit_is_a_400_naming_limit(staff_client, recorded, limit):
    response = staff_client.get(READINGS, {"limit": limit})

    assert response.status_code == 400
    assert "limit" in response.json()["detail"]
    assert "limit" in response.json()["errors"]


def test_a_limit_above_a_lowered_max_data_points_is_a_400(staff_client, recorded, settings):
    settings.MAX_DATA_POINTS = 50

    response = staff_client.get(READINGS, {"limit": 51})

    assert response.status_code == 400
    assert "limit" in response.json()["detail"]
    assert "50" in response.json()["detail"]


@pytest.mark.parametrize("name", ["start_time", "end_time"])
@pytest.mark.parametrize("value", ["yesterday", "2024-13-45", "nan", "-5", "1e400"])
def test_a_bad_time_is_a_400_naming_it(staff_client, recorded, name, value):
    response = staff_client.get(READINGS, {name: value})

    assert response.status_code == 400
    assert name in response.json()["detail"]
    assert name in response.json()["errors"]


def test_an_end_before_the_start_is_a_400(staff_client, recorded):
    response = staff_client.get(READINGS, {"start_time": T0 + 1, "end_time": T0})

    assert response.status_code == 400
    assert "end_time" in response.json()["detail"]


@pytest.mark.parametrize("session", ["abc", "0", "-2", "1.5"])
def test_a_bad_session_is_a_400_naming_it(staff_client, recorded, session):
    response = staff_client.get(READINGS, {"session": session})

    assert response.status_code == 400
    assert "session" in response.json()["detail"]


def test_an_unknown_session_is_a_404(staff_client, recorded):
    response = staff_client.get(READINGS, {"session": 99999})

    assert response.status_code == 404
    assert "99999" in response.json()["detail"]


def test_an_unknown_session_path_is_a_404(staff_client, recorded):
    for path in ("/api/v1/sessions/99999/readings/", "/api/v1/sessions/abc/readings/"):
        response = staff_client.get(path)
        assert response.status_code == 404, path


def test_an_unknown_sensor_is_a_404(staff_client, recorded):
    response = staff_client.get(READINGS, {"sensor": "nope"})

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_a_sensor_of_another_rig_is_a_404_within_a_session(staff_client, recorded, sim_rig):
    response = staff_client.get(f"/api/v1/sessions/{recorded}/readings/", {"sensor": "force"})

    assert response.status_code == 404
    assert "force" in response.json()["detail"]


@pytest.mark.parametrize("after", ["abc", "1.2.3", "-5.1", "99999999999999999999999999.1", "1700000000000000"])
def test_a_forged_paging_position_is_a_400_naming_after(staff_client, recorded, after):
    response = staff_client.get(READINGS, {"after": after})

    assert response.status_code == 400
    assert "after" in response.json()["detail"]


def test_the_last_page_has_no_next_link(staff_client, recorded):
    response = staff_client.get(READINGS, {"limit": 20})

    assert len(response.json()) == 11
    assert "Link" not in response.headers


def test_paging_through_next_links_returns_every_reading_once_in_order(staff_client, ingest, bench_session):
    # 2,500 readings; fz and temp share every timestamp, and runs of 7 readings share one instant.
    batch = []
    for i in range(1250):
        t = T0 + (i // 7) * 0.01
        batch.append({"sensor": "fz", "timestamp": t, "value": float(i)})
        batch.append({"sensor": "temp", "timestamp": t, "value": i})
    assert ingest(bench_session, batch).status_code == 201

    pages = []
    response = staff_client.get(f"/api/v1/sessions/{bench_session}/readings/", {"limit": 300})
    while True:
        assert response.status_code == 200
        pages.append(response.json())
        link = next_link(response)
        if link is None:
            break
        assert "limit=300" in link
        response = staff_client.get(link)

    rows = [row for page in pages for row in page]
    assert [len(page) for page in pages[:-1]] == [300] * (len(pages) - 1)
    assert len(rows) == 2500
    assert sorted(r["seq"] for r in rows) == list(range(1, 2501))
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    assert rows == staff_client.get(f"/api/v1/sessions/{bench_session}/readings/", {"limit": 10000}).json()


def test_paging_keeps_the_filters(staff_client, recorded):
    response = staff_client.get(READINGS, {"sensor": "temp", "limit": 2})
    values = [r["value"] for r in response.json()]
    while (link := next_link(response)) is not None:
        assert "sensor=temp" in link
        response = staff_client.get(link)
        values += [r["value"] for r in response.json()]

    assert values == [20, 21, 22, 23, 24]


def test_readings_need_credentials(anon_client, recorded):
    response = anon_client.get(READINGS)

    assert response.status_code in (401, 403)
    assert anon_client.get(f"/api/v1/sessions/{recorded}/readings/").status_code in (401, 403)


def test_readings_are_public_with_robotest_public_read(anon_client, recorded, settings):
    settings.ROBOTEST_PUBLIC_READ = True

    assert len(anon_client.get(READINGS).json()) == 11
    assert len(anon_client.get(f"/api/v1/sessions/{recorded}/readings/").json()) == 11


def test_paging_100000_readings_returns_each_once_in_order_while_another_session_records(
    staff_client, ingest, bench_session, start
):
    # Session A: 100,000 readings, two sensors sharing each instant, in batches of 10,000.
    for first in range(0, 50_000, 5_000):
        batch = []
        for i in range(first, first + 5_000):
            batch.append({"sensor": "fz", "timestamp": T0 + i * 0.001, "value": float(i)})
            batch.append({"sensor": "temp", "timestamp": T0 + i * 0.001, "value": i})
        assert ingest(bench_session, batch).status_code == 201
    from sensors.models import Rig
    from sensors.services import rig_create

    rig_create(name="bench-2", source=Rig.Source.EXTERNAL, sensors=[{"name": "fz", "sensor_type": "force"}])
    other = start("bench-2")["session_id"]

    rows = []
    response = staff_client.get(f"/api/v1/sessions/{bench_session}/readings/", {"limit": 5000})
    page = 0
    while True:
        assert response.status_code == 200
        rows.extend(response.json())
        # Between pages: the other session records readings at A's instants, and A itself gets a
        # few later ones, ahead of the pager.
        spread = [{"sensor": "fz", "timestamp": T0 + (page * 2_500 + k) * 0.001, "value": -1.0} for k in range(1000)]
        assert ingest(other, spread).status_code == 201
        if page < 3:
            late = [{"sensor": "fz", "timestamp": T0 + 60 + page + k * 0.1, "value": -2.0} for k in range(5)]
            assert ingest(bench_session, late).status_code == 201
        page += 1
        link = next_link(response)
        if link is None:
            break
        response = staff_client.get(link)

    assert {r["session_id"] for r in rows} == {bench_session}
    original = [r for r in rows if r["value"] != -2.0]
    assert len(original) == 100_000
    assert sorted(r["seq"] for r in original) == list(range(1, 100_001))
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    # The readings stored ahead of the pager while it paged were reached too, once each, last.
    assert [r["value"] for r in rows[100_000:]] == [-2.0] * 15


def latest(api, query: str = "") -> dict:
    response = api.get(f"/api/v1/sensors/readings/latest{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_latest_of_sim_without_any_session_names_its_sensors(staff_client, sim_rig):
    body = latest(staff_client)

    assert body["latest_readings"] == {"camera": None, "force": None, "motor": None}
    assert body["total_readings"] == 0
    assert body["session_id"] is None
    assert isinstance(body["timestamp"], float)


def test_latest_gives_each_sensors_newest_reading(staff_client, ingest, bench_session):
    ingest(bench_session, readings("fz", [1.0, 2.0, 3.0]) + readings("ft6", [ft6_value(1), ft6_value(2)]))
    # Out of order across batches: the newest by time wins, not the last stored.
    assert ingest(bench_session, readings("fz", [0.5], t0=T0 - 10)).status_code == 201

    body = latest(staff_client, "?rig=bench")

    assert body["session_id"] == bench_session
    assert body["total_readings"] == 6
    got = body["latest_readings"]
    assert got["temp"] is None
    assert got["fz"].pop("seq") >= 1
    assert got["fz"] == {"timestamp": T0 + 0.2, "sensor_type": "force", "value": 3.0, "sensor": "fz", "session_id": bench_session}
    assert (got["ft6"]["value"], got["ft6"]["timestamp"]) == (ft6_value(2), T0 + 0.1)


def test_latest_matches_the_readings_endpoint(staff_client, ingest, bench_session):
    ingest(bench_session, readings("fz", [1.0, 2.0]) + readings("temp", [20.0]))

    got = latest(staff_client, f"?session={bench_session}")["latest_readings"]
    rows = staff_client.get(f"/api/v1/sessions/{bench_session}/readings/").json()

    assert got["fz"] == [r for r in rows if r["sensor"] == "fz"][-1]
    assert got["temp"] == [r for r in rows if r["sensor"] == "temp"][-1]


def test_latest_defaults_to_the_recording_session_then_the_most_recent(staff_client, start, ingest, bench):
    first = start("bench")["session_id"]
    ingest(first, readings("fz", [1.0]))
    staff_client.post("/api/v1/sessions/stop", {"session_id": first}, format="json")
    assert latest(staff_client, "?rig=bench")["session_id"] == first

    second = start("bench")["session_id"]
    # Even when an older session started later on paper, the recording one is chosen.
    RecordingSession.objects.filter(pk=first).update(started_at=RecordingSession.objects.get(pk=second).started_at)
    body = latest(staff_client, "?rig=bench")

    assert body["session_id"] == second
    assert body["latest_readings"]["fz"] is None and body["total_readings"] == 0


def test_latest_of_an_older_session_by_id(staff_client, start, ingest, bench):
    first = start("bench")["session_id"]
    ingest(first, readings("fz", [7.0]))
    staff_client.post("/api/v1/sessions/stop", {"session_id": first}, format="json")
    start("bench")

    body = latest(staff_client, f"?session={first}")

    assert (body["session_id"], body["rig"], body["latest_readings"]["fz"]["value"]) == (first, "bench", 7.0)


def test_latest_of_sim_is_its_recording_session(staff_client, start, sim_rig):
    session_id = start()["session_id"]

    assert latest(staff_client)["session_id"] == session_id


@pytest.mark.parametrize(
    ("query", "name", "code"),
    [
        ("?session=abc", "session", 400),
        ("?session=0", "session", 400),
        ("?session=99999", "session", 404),
        ("?rig=nope", "rig", 404),
    ],
)
def test_a_bad_latest_parameter_is_named(staff_client, sim_rig, query, name, code):
    response = staff_client.get(f"/api/v1/sensors/readings/latest{query}")

    assert_named(response, code, name)


def test_a_session_of_another_rig_than_named_is_a_400(staff_client, bench_session, sim_rig):
    response = staff_client.get(f"/api/v1/sensors/readings/latest?session={bench_session}&rig=sim")

    assert_named(response, 400, "rig")


def test_latest_needs_a_user_unless_reads_are_public(anon_client, sim_rig, settings):
    assert anon_client.get("/api/v1/sensors/readings/latest").status_code in (401, 403)

    settings.ROBOTEST_PUBLIC_READ = True

    assert anon_client.get("/api/v1/sensors/readings/latest").status_code == 200


def page_through(api, path: str, query: dict) -> list[dict]:
    """Every reading a query gives, following its Link headers to the end."""
    response = api.get(path, query)
    rows = []
    while True:
        assert response.status_code == 200, response.content
        rows += response.json()
        link = next_link(response)
        if link is None:
            return rows
        response = api.get(link)


def stored(session_id: int, **filters) -> list[tuple[float, int, object]]:
    """(timestamp, seq, value) of a session's readings in (timestamp, id) order, read by one plain query."""
    from sessions.models import Reading

    rows = Reading.objects.filter(session_id=session_id, **filters).order_by("timestamp", "id")
    return [(r.timestamp.timestamp(), r.seq, r.value) for r in rows]


def tied_batch() -> list[dict]:
    """fz, temp and ft6 at shared instants, and runs of three readings of one sensor at one instant."""
    batch = []
    for i in range(60):
        t = T0 + (i // 3) * 0.01
        batch.append({"sensor": "fz", "timestamp": t, "value": float(i)})
        batch.append({"sensor": "temp", "timestamp": t, "value": i})
        if i % 4 == 0:
            batch.append({"sensor": "ft6", "timestamp": t, "value": ft6_value(i)})
    return batch


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ({}, {}),
        ({"sensor": "fz"}, {"sensor__name": "fz"}),
        ({"sensor_type": "force_torque"}, {"sensor__sensor_type": "force_torque"}),
        # Both ends fall on instants shared by several readings: all of them are in.
        ({"start_time": T0 + 0.05, "end_time": T0 + 0.15}, {"timestamp__gte": T0 + 0.05, "timestamp__lte": T0 + 0.15}),
        ({"sensor": "temp", "start_time": T0 + 0.1}, {"sensor__name": "temp", "timestamp__gte": T0 + 0.1}),
    ],
    ids=["all", "sensor", "sensor_type", "time_range", "sensor_and_start"],
)
@pytest.mark.parametrize("limit", [1, 4, 7, 100])
def test_pages_of_a_session_are_its_readings_in_timestamp_and_id_order(
    staff_client, ingest, bench_session, query, filters, limit
):
    assert ingest(bench_session, tied_batch()).status_code == 201
    filters = {k: datetime.fromtimestamp(v, tz=UTC) if k.startswith("timestamp") else v for k, v in filters.items()}

    rows = page_through(staff_client, f"/api/v1/sessions/{bench_session}/readings/", {**query, "limit": limit})

    expected = stored(bench_session, **filters)
    assert expected  # every case selects something
    assert [(r["timestamp"], r["seq"], r["value"]) for r in rows] == expected
    assert rows == page_through(staff_client, READINGS, {"session": bench_session, **query, "limit": limit})


def test_paging_a_growing_session_reaches_each_reading_stored_after_the_position_once(
    staff_client, ingest, bench_session
):
    assert ingest(bench_session, readings("fz", [1.0, 2.0, 3.0]) + readings("temp", [10, 20, 30])).status_code == 201
    path = f"/api/v1/sessions/{bench_session}/readings/"
    first = staff_client.get(path, {"limit": 3})
    assert [r["value"] for r in first.json()] == [1.0, 10, 2.0]
    position = first.json()[-1]["timestamp"]  # T0 + 0.1, where fz's 2.0 and temp's 20 both are

    # While the client reads: readings behind its position, at it (stored later, so after it in
    # (timestamp, id) order), and ahead of it, from a sensor that had none before.
    grown = [
        {"sensor": "fz", "timestamp": T0 - 1, "value": -1.0},
        {"sensor": "temp", "timestamp": position, "value": 21},
        {"sensor": "ft6", "timestamp": T0 + 5, "value": ft6_value(5)},
    ]
    assert ingest(bench_session, grown).status_code == 201
    rest = page_through(staff_client, next_link(first), {})

    assert [r["value"] for r in rest] == [20, 21, 3.0, 30, ft6_value(5)]
    assert sorted(r["seq"] for r in first.json() + rest) == [1, 2, 3, 4, 5, 6, 8, 9]
    # The one behind the position is there for a reader who starts again.
    assert [r["value"] for r in staff_client.get(path, {"limit": 1}).json()] == [-1.0]


def test_a_session_without_readings_has_an_empty_page_and_no_link(staff_client, bench_session):
    response = staff_client.get(f"/api/v1/sessions/{bench_session}/readings/", {"sensor": "fz"})

    assert response.status_code == 200
    assert response.json() == []
    assert "Link" not in response.headers
