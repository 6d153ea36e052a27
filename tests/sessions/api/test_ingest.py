"""Ingest: `POST /api/v1/sessions/{id}/readings/` by an external rig."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from sessions.live.events import LIVE_GROUP
from sessions.models import Reading
from tests.conftest import T0, ft6_value, reading_count, readings, stored

pytestmark = pytest.mark.django_db


def test_ingest_accepts_a_batch_and_answers_201_with_the_count(ingest, bench_session):
    batch = readings("fz", [10.0, 11.5, 12]) + readings("temp", [21.25]) + readings("ft6", [ft6_value(1)])

    response = ingest(bench_session, batch)

    assert response.status_code == 201
    body = response.json()
    assert body["accepted"] == 5
    assert body["validation"] == []
    assert reading_count(bench_session) == 5


def test_ingested_readings_are_readable_as_sent(staff_client, ingest, bench_session):
    batch = readings("fz", [10.0, 11.5, 12]) + readings("ft6", [ft6_value(1)], t0=T0 + 0.05)
    ingest(bench_session, batch)

    got = staff_client.get(f"/api/v1/sessions/{bench_session}/readings/").json()

    assert [(r["sensor"], r["timestamp"], r["value"]) for r in got] == [
        ("fz", T0, 10.0), ("ft6", T0 + 0.05, ft6_value(1)), ("fz", T0 + 0.1, 11.5), ("fz", T0 + 0.2, 12),
    ]
    assert {r["sensor_type"] for r in got} == {"force", "force_torque"}
    assert {r["session_id"] for r in got} == {bench_session}


def test_ingest_takes_iso_8601_and_unix_timestamps(staff_client, ingest, bench_session):
    batch = [
        {"sensor": "temp", "timestamp": "2023-11-14T22:13:20Z", "value": 1},
        {"sensor": "temp", "timestamp": "2023-11-14T23:13:20.250000+01:00", "value": 2},
        {"sensor": "temp", "timestamp": "2023-11-14T22:13:20.500", "value": 3},  # naive means UTC
        {"sensor": "temp", "timestamp": int(T0) + 1, "value": 4},
        {"sensor": "temp", "timestamp": T0 + 1.5, "value": 5},
        {"sensor": "temp", "timestamp": str(T0 + 2), "value": 6},
    ]

    assert ingest(bench_session, batch).status_code == 201

    got = staff_client.get(f"/api/v1/sessions/{bench_session}/readings/").json()
    assert [(r["timestamp"], r["value"]) for r in got] == [
        (T0, 1), (T0 + 0.25, 2), (T0 + 0.5, 3), (T0 + 1, 4), (T0 + 1.5, 5), (T0 + 2, 6)
    ]


def test_ingest_numbers_readings_from_1_across_batches(ingest, bench_session):
    first = ingest(bench_session, readings("fz", [1.0, 2.0])).json()
    second = ingest(bench_session, readings("temp", [3.0, 4.0, 5.0])).json()

    assert (first["first_seq"], first["last_seq"]) == (1, 2)
    assert (second["first_seq"], second["last_seq"]) == (3, 5)
    assert [seq for *_, seq in stored(bench_session)] == [1, 2, 3, 4, 5]


def test_ingest_returns_the_validation_results_of_the_batch(ingest, bench_session):
    # fz is of type "force": the default force rules apply.
    response = ingest(bench_session, readings("fz", [95.0], t0=T0))

    results = response.json()["validation"]
    assert len(results) == 1
    result = results[0]
    assert (result["sensor"], result["sensor_type"], result["status"]) == ("fz", "force", "error")
    assert result["rule"] == "force_threshold"
    assert result["peak"] == 95.0
    assert result["count"] == 1
    assert result["first_timestamp"] == T0
    assert "95" in result["message"]


def test_ingest_reports_a_result_growing_and_closing_in_later_batches(ingest, bench_session):
    opened = ingest(bench_session, readings("fz", [95.0, 96.0])).json()["validation"]
    grown = ingest(bench_session, readings("fz", [97.0], t0=T0 + 1)).json()["validation"]
    closed = ingest(bench_session, readings("fz", [96.0, 90.0, 20.0], t0=T0 + 2, step=0.01)).json()["validation"]

    threshold = [r for r in opened + grown + closed if r["rule"] == "force_threshold"]
    assert {r["id"] for r in threshold} == {opened[0]["id"]}
    assert [(r["count"], r["open"]) for r in threshold] == [(2, True), (3, True), (5, False)]
    assert threshold[-1]["peak"] == 97.0


def test_ingest_of_a_warning_value_returns_a_warning(ingest, bench_session):
    results = ingest(bench_session, readings("fz", [70.0])).json()["validation"]

    assert [(r["rule"], r["status"]) for r in results] == [("force_threshold", "warning")]


def test_a_sensor_type_without_rules_returns_no_results(ingest, bench_session):
    response = ingest(bench_session, readings("temp", [1e6, -1e6]) + readings("ft6", [ft6_value(99)]))

    assert response.json()["validation"] == []


def test_ingest_by_a_user_who_is_not_staff_is_accepted(plain_client, ingest, bench_session):
    assert ingest(bench_session, readings("fz", [1.0]), api=plain_client).status_code == 201


def test_ingested_readings_are_published_to_the_live_group(ingest, bench_session):
    layer = get_channel_layer()
    group = LIVE_GROUP
    expected = [("fz", 1.0, 1), ("fz", 95.0, 2)]

    async def listen():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        return channel

    async def receive(channel):
        # The layer is shared (Redis): skip anything that is not this batch.
        try:
            async with asyncio.timeout(5):
                while True:
                    event = await layer.receive(channel)
                    readings = [json.loads(line) for line in event.get("lines", [])]
                    got = [(r["sensor"], r["value"], r["seq"]) for r in readings]
                    if event.get("type") == "sensor.batch" and got == expected:
                        return event
        finally:
            await layer.group_discard(group, channel)

    channel = async_to_sync(listen)()
    ingest(bench_session, readings("fz", [1.0, 95.0]))

    event = async_to_sync(receive)(channel)
    assert event["session_id"] == bench_session
    assert [r["status"] for r in event["validation"]] == ["error"]


# --- rejected batches: all or nothing --------------------------------------------------------


def _assert_rejected(response, session_id, *, index, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"]
    assert {"index": index, "field": field} in [{"index": e["index"], "field": e["field"]} for e in body["errors"]]
    assert all(e["message"] for e in body["errors"])
    assert reading_count(session_id) == 0
    assert not Reading.objects.filter(session_id=session_id).exists()


GOOD = {"sensor": "fz", "timestamp": T0, "value": 1.0}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"sensor": "nope", "timestamp": T0, "value": 1.0}, "sensor"),
        ({"sensor": "force", "timestamp": T0, "value": 1.0}, "sensor"),  # sim's sensor, not this rig's
        ({"sensor": 5, "timestamp": T0, "value": 1.0}, "sensor"),
        ({"timestamp": T0, "value": 1.0}, "sensor"),
        ({"sensor": "fz", "value": 1.0}, "timestamp"),
        ({"sensor": "fz", "timestamp": T0}, "value"),
        ({"sensor": "fz", "timestamp": "yesterday", "value": 1.0}, "timestamp"),
        ({"sensor": "fz", "timestamp": "2023-13-45T00:00:00", "value": 1.0}, "timestamp"),
        ({"sensor": "fz", "timestamp": -1, "value": 1.0}, "timestamp"),
        ({"sensor": "fz", "timestamp": True, "value": 1.0}, "timestamp"),
        ({"sensor": "fz", "timestamp": None, "value": 1.0}, "timestamp"),
        ({"sensor": "fz", "timestamp": [T0], "value": 1.0}, "timestamp"),
        ({"sensor": "fz", "timestamp": "nan", "value": 1.0}, "timestamp"),
        ({"sensor": "fz", "timestamp": T0, "value": "abc"}, "value"),
        ({"sensor": "fz", "timestamp": T0, "value": "12.5"}, "value"),
        ({"sensor": "fz", "timestamp": T0, "value": True}, "value"),
        ({"sensor": "fz", "timestamp": T0, "value": None}, "value"),
        ({"sensor": "fz", "timestamp": T0, "value": [1, 2]}, "value"),
        ({"sensor": "fz", "timestamp": T0, "value": 1.0, "unit": "N"}, "unit"),
    ],
    ids=lambda p: repr(p) if isinstance(p, str) else None,
)
@pytest.mark.parametrize("position", [0, 2])
def test_one_bad_item_rejects_the_whole_batch_naming_its_index_and_field(ingest, bench_session, bad, field, position):
    batch = [GOOD, {**GOOD, "timestamp": T0 + 1}]
    batch.insert(position, bad)

    _assert_rejected(ingest(bench_session, batch), bench_session, index=position, field=field)


def test_an_item_that_is_not_an_object_is_rejected_by_index(ingest, bench_session):
    response = ingest(bench_session, [GOOD, "fz,1700000000,1.0"])

    _assert_rejected(response, bench_session, index=1, field="")


def test_every_bad_item_is_named(ingest, bench_session):
    batch = [GOOD, {"sensor": "nope", "timestamp": T0, "value": 1}, GOOD, {"sensor": "fz", "timestamp": T0, "value": "x"}]

    errors = ingest(bench_session, batch).json()["errors"]

    assert [(e["index"], e["field"]) for e in errors] == [(1, "sensor"), (3, "value")]


def test_a_rejected_batch_leaves_earlier_readings_and_numbering_alone(ingest, bench_session):
    ingest(bench_session, readings("fz", [1.0, 2.0]))

    rejected = ingest(bench_session, [GOOD, {**GOOD, "value": None}])
    accepted = ingest(bench_session, readings("fz", [3.0], t0=T0 + 5)).json()

    assert rejected.status_code == 400
    assert reading_count(bench_session) == 3
    assert accepted["first_seq"] == 3
    assert [value for _, _, value, _ in stored(bench_session)] == [1.0, 2.0, 3.0]


def test_a_batch_of_more_than_10000_readings_is_rejected(ingest, bench_session):
    batch = readings("temp", [1.0] * 10_001, step=0.001)

    response = ingest(bench_session, batch)

    assert response.status_code == 400
    assert "10000" in response.json()["detail"].replace(",", "")
    assert reading_count(bench_session) == 0


def test_a_batch_of_exactly_10000_readings_is_accepted(ingest, bench_session):
    batch = readings("temp", [float(i) for i in range(10_000)], step=0.001)

    response = ingest(bench_session, batch)

    assert response.status_code == 201
    assert response.json()["accepted"] == 10_000
    assert Reading.objects.filter(session_id=bench_session).count() == 10_000


@pytest.mark.parametrize("body", [{"sensor": "fz", "timestamp": T0, "value": 1.0}, "readings", 42, []])
def test_a_body_that_is_not_a_list_of_readings_is_a_400(ingest, bench_session, body):
    response = ingest(bench_session, body)

    assert response.status_code == 400
    assert response.json()["detail"]
    assert reading_count(bench_session) == 0


def test_a_body_that_is_not_json_is_a_400(staff_client, bench_session):
    response = staff_client.post(
        f"/api/v1/sessions/{bench_session}/readings/", data="[{oops", content_type="application/json"
    )

    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_ingest_into_a_completed_session_is_a_409(staff_client, ingest, bench_session):
    ingest(bench_session, readings("fz", [1.0]))
    staff_client.post("/api/v1/sessions/stop", {"session_id": bench_session}, format="json")

    response = ingest(bench_session, readings("fz", [2.0], t0=T0 + 1))

    assert response.status_code == 409
    assert "completed" in response.json()["detail"]
    assert reading_count(bench_session) == 1


def test_ingest_into_an_aborted_session_is_a_409(staff_client, ingest, bench_session):
    staff_client.post("/api/v1/sessions/reset", {"rig": "bench"}, format="json")

    response = ingest(bench_session, readings("fz", [2.0]))

    assert response.status_code == 409
    assert not Reading.objects.filter(session_id=bench_session).exists()


def test_ingest_into_a_simulated_rigs_session_is_a_409(ingest, start, sim_rig):
    session_id = start()["session_id"]

    response = ingest(session_id, readings("force", [1.0]))

    assert response.status_code == 409
    assert "sim" in response.json()["detail"]
    assert reading_count(session_id) == 0


def test_ingest_into_an_unknown_session_is_a_404(ingest, bench):
    response = ingest(99999, readings("fz", [1.0]))

    assert response.status_code == 404
    assert "99999" in response.json()["detail"]


def test_ingest_without_credentials_is_refused(anon_client, ingest, bench_session):
    response = ingest(bench_session, readings("fz", [1.0]), api=anon_client)

    assert response.status_code in (401, 403)
    assert reading_count(bench_session) == 0


def test_ingest_without_credentials_is_refused_even_when_reads_are_public(anon_client, ingest, bench_session, settings):
    settings.ROBOTEST_PUBLIC_READ = True

    response = ingest(bench_session, readings("fz", [1.0]), api=anon_client)

    assert response.status_code in (401, 403)
    assert reading_count(bench_session) == 0


# --- known bugs ------------------------------------------------------------------------------


def test_a_timestamp_too_large_for_a_float_is_rejected_naming_it(staff_client, bench_session):
    staff_client.raise_request_exception = False
    body = '[{"sensor": "fz", "timestamp": 1' + "0" * 400 + ', "value": 1.0}]'

    response = staff_client.post(f"/api/v1/sessions/{bench_session}/readings/", data=body, content_type="application/json")

    _assert_rejected(response, bench_session, index=0, field="timestamp")


@pytest.mark.parametrize(
    "timestamp", ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"]
)
def test_an_iso_timestamp_outside_the_unix_range_is_rejected_like_unix_seconds(
    staff_client, ingest, bench_session, timestamp
):
    staff_client.raise_request_exception = False
    response = ingest(bench_session, [{"sensor": "temp", "timestamp": timestamp, "value": 1}])

    _assert_rejected(response, bench_session, index=0, field="timestamp")


@pytest.mark.parametrize("sensor", ["fz", "temp"])
def test_an_integer_value_too_large_for_a_float_is_rejected_naming_it(staff_client, bench_session, sensor):
    staff_client.raise_request_exception = False
    body = f'[{{"sensor": "{sensor}", "timestamp": {T0}, "value": 1' + "0" * 400 + "}]"

    response = staff_client.post(f"/api/v1/sessions/{bench_session}/readings/", data=body, content_type="application/json")

    _assert_rejected(response, bench_session, index=0, field="value")


def test_a_huge_finite_value_on_a_ruled_sensor_gives_an_error_result(staff_client, ingest, bench_session):
    staff_client.raise_request_exception = False

    response = ingest(bench_session, readings("fz", [1e300]))

    assert response.status_code == 201
    assert [r["status"] for r in response.json()["validation"]] == ["error"]


@pytest.mark.parametrize("text", ['{"label": "a\\u0000b"}', '{"a\\u0000": 1}', '{"label": "\\ud800"}'])
def test_an_object_value_postgresql_cannot_store_is_rejected_naming_it(staff_client, bench_session, text):
    staff_client.raise_request_exception = False
    body = f'[{{"sensor": "ft6", "timestamp": {T0}, "value": {text}}}]'

    response = staff_client.post(f"/api/v1/sessions/{bench_session}/readings/", data=body, content_type="application/json")

    _assert_rejected(response, bench_session, index=0, field="value")
