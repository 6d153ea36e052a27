"""What one live client receives (sessions/live/frames.py): its subscription and its frames."""

import json

import pytest

from sessions.live.frames import BatchPart, EventFrames, Subscription, SubscriptionError
from tests.conftest import T0, line
from tests.sessions.live.wire import websocket_texts


def event(lines: list[str], *, validation=(), session_id: int = 7) -> dict:
    readings = [json.loads(text) for text in lines]
    return {
        "type": "sensor.batch",
        "session_id": session_id,
        "first_seq": readings[0]["seq"] if readings else 0,
        "last_seq": readings[-1]["seq"] if readings else -1,
        "lines": lines,
        "sensors": [r["sensor"] for r in readings],
        "validation": list(validation),
    }


def result(sensor: str, status: str = "warning") -> dict:
    return {"id": 3, "session_id": 7, "sensor": sensor, "sensor_type": "force", "rule": "force_threshold",
            "status": status, "message": "high", "count": 1, "peak": 70.0, "open": True}


def decoded(frames) -> list[dict]:
    """The frames as a client gets them, each batch part framed on its own (as when it keeps up)."""
    return [json.loads(frame.frame() if isinstance(frame, BatchPart) else frame) for frame in frames]


# --- Subscription.parse ------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, {}])
def test_no_subscription_data_means_everything(data):
    sub = Subscription.parse(data)

    assert (sub.session, sub.sensors, sub.batch, sub.max_hz) == (None, None, False, None)


def test_parse_accepts_every_field():
    sub = Subscription.parse({"session": 12, "sensors": ["fz", "temp"], "batch": True, "max_hz": 5})

    assert sub.session == 12
    assert sub.sensors == frozenset({"fz", "temp"})
    assert sub.batch is True
    assert sub.max_hz == 5.0
    assert isinstance(sub.max_hz, float)


@pytest.mark.parametrize("sensors", [[], None])
def test_no_sensors_or_an_empty_list_means_every_sensor(sensors):
    assert Subscription.parse({"sensors": sensors}).sensors is None


@pytest.mark.parametrize("max_hz", [0.5, 1, 10_000])
def test_parse_accepts_a_max_hz_above_0_and_at_most_10000(max_hz):
    assert Subscription.parse({"max_hz": max_hz}).max_hz == float(max_hz)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"session": "abc"}, "session"),
        ({"session": 0}, "session"),
        ({"session": -3}, "session"),
        ({"session": 1.5}, "session"),
        ({"session": True}, "session"),
        ({"sensors": "fz"}, "sensors"),
        ({"sensors": [1, 2]}, "sensors"),
        ({"sensors": [""]}, "sensors"),
        ({"sensors": {"fz": True}}, "sensors"),
        ({"batch": "yes"}, "batch"),
        ({"batch": 1}, "batch"),
        ({"max_hz": 0}, "max_hz"),
        ({"max_hz": -1}, "max_hz"),
        ({"max_hz": "fast"}, "max_hz"),
        ({"max_hz": True}, "max_hz"),
        ({"max_hz": float("inf")}, "max_hz"),
        ({"max_hz": float("nan")}, "max_hz"),
        ({"max_hz": 10_001}, "max_hz"),
        ({"colour": "red"}, "colour"),
        ({"session": 1, "rate": 5, "zoom": 2}, "rate, zoom"),
    ],
)
def test_parse_rejects_a_bad_field_and_names_it(data, field):
    with pytest.raises(SubscriptionError, match=field):
        Subscription.parse(data)


@pytest.mark.parametrize("data", [[1, 2], "session", 5, True])
def test_parse_rejects_data_that_is_not_an_object(data):
    with pytest.raises(SubscriptionError, match="object"):
        Subscription.parse(data)


def test_describe_echoes_the_subscription_with_sorted_sensors():
    sub = Subscription.parse({"session": 4, "sensors": ["temp", "fz", "temp"], "batch": True, "max_hz": 2})

    assert sub.describe() == {"session": 4, "sensors": ["fz", "temp"], "batch": True, "max_hz": 2.0}


def test_describe_of_everything():
    assert Subscription.parse({}).describe() == {"session": None, "sensors": None, "batch": False, "max_hz": None}


# --- Subscription.frames -----------------------------------------------------------------------


def test_frames_are_one_sensor_data_frame_per_reading_built_from_the_encoded_lines():
    lines = [line(1, "fz", T0, 1.5), line(2, "ft6", T0 + 0.1, {"fx": 1, "fy": 2}, sensor_type="force_torque")]

    frames = Subscription().frames(event(lines))

    assert frames == ['{"type":"sensor_data","data":' + text + "}" for text in lines]
    assert decoded(frames)[1]["data"]["value"] == {"fx": 1, "fy": 2}


def test_batch_frames_put_the_readings_of_an_event_in_one_sensor_data_batch_frame():
    lines = [line(1, "fz", T0, 1.0), line(2, "fz", T0 + 0.1, 2.0), line(3, "temp", T0 + 0.2, 20.0)]

    frames = Subscription.parse({"batch": True}).frames(event(lines))

    assert decoded(frames) == [
        {"type": "sensor_data_batch", "session_id": 7, "data": [json.loads(text) for text in lines]}
    ]


def test_the_sensors_filter_keeps_only_the_named_sensors_in_order():
    lines = [line(1, "fz", T0, 1.0), line(2, "temp", T0, 20.0), line(3, "fz", T0 + 0.1, 2.0), line(4, "ft6", T0, {})]

    frames = Subscription.parse({"sensors": ["fz", "ft6"]}).frames(event(lines))

    assert [f["data"]["seq"] for f in decoded(frames)] == [1, 3, 4]


def test_the_sensors_filter_in_batch_mode():
    lines = [line(1, "fz", T0, 1.0), line(2, "temp", T0, 20.0)]

    frames = Subscription.parse({"sensors": ["temp"], "batch": True}).frames(event(lines))

    assert [r["seq"] for r in decoded(frames)[0]["data"]] == [2]


def test_an_event_with_nothing_for_the_client_gives_no_frame():
    lines = [line(1, "fz", T0, 1.0)]

    assert Subscription.parse({"sensors": ["temp"]}).frames(event(lines)) == []
    assert Subscription.parse({"sensors": ["temp"], "batch": True}).frames(event(lines)) == []
    assert Subscription().frames(event([])) == []


def test_validation_results_follow_the_readings_as_validation_frames():
    lines = [line(1, "fz", T0, 70.0)]
    results = [result("fz"), result("temp", "error")]

    frames = decoded(Subscription().frames(event(lines, validation=results)))

    assert [f["type"] for f in frames] == ["sensor_data", "validation", "validation"]
    assert [f["data"] for f in frames[1:]] == results


def test_the_sensors_filter_also_filters_validation_results():
    results = [result("fz"), result("temp", "error")]

    frames = decoded(Subscription.parse({"sensors": ["temp"]}).frames(event([], validation=results)))

    assert frames == [{"type": "validation", "data": results[1]}]


def test_validation_results_go_out_even_when_decimation_holds_every_reading():
    sub = Subscription.parse({"max_hz": 1, "batch": True})
    results = [result("fz")]

    frames = decoded(sub.frames(event([line(1, "fz", T0, 70.0)], validation=results)))

    assert frames == [{"type": "validation", "data": results[0]}]


def test_max_hz_thins_the_readings_of_a_subscription():
    sub = Subscription.parse({"max_hz": 2})  # intervals of 1 s
    lines = [line(i + 1, "fz", T0 + i * 0.01, float(i % 10)) for i in range(300)]

    frames = decoded(sub.frames(event(lines)))

    # Two intervals are over (the third is still open): their lowest and highest, in seq order.
    assert [(f["data"]["seq"], f["data"]["value"]) for f in frames] == [(1, 0.0), (10, 9.0), (101, 0.0), (110, 9.0)]


def test_each_subscription_decimates_on_its_own():
    seen_everything = Subscription.parse({"max_hz": 1})  # intervals of 2 s
    joined_late = Subscription.parse({"max_hz": 1})
    lines = [line(i + 1, "fz", T0 + i, float(i)) for i in range(6)]

    seen_everything.frames(event(lines[:3]))

    # The first knows the interval seq 3 opened; the second only sees it from seq 4 on.
    assert [f["data"]["seq"] for f in decoded(seen_everything.frames(event(lines[3:])))] == [3, 4]
    assert [f["data"]["seq"] for f in decoded(joined_late.frames(event(lines[3:])))] == [4]


# --- EventFrames.group: what every unfiltered client gets, built once ---------------------------


@pytest.mark.parametrize("batch", [False, True])
def test_a_group_holds_an_unfiltered_clients_frames_and_its_bytes_are_those_frames(batch):
    lines = [line(1, "fz", T0, 1.5), line(2, "temp", T0 + 0.1, 20.0), line(3, "fz", T0 + 0.2, 90.5)]
    shared = EventFrames(event(lines, validation=[result("fz"), result("temp", "error")]))
    subscription = Subscription.parse({"batch": batch})

    group = shared.group(batch=batch)

    assert [json.loads(text) for text in group.texts] == decoded(subscription.frames(shared.event, shared))
    assert websocket_texts(group.wire()) == group.texts
    assert shared.group(batch=batch) is group and group.wire() is group.wire()


def test_a_group_of_an_event_with_no_readings_holds_its_validation_frames_only():
    shared = EventFrames(event([], validation=[result("fz", "ok")]))

    assert [json.loads(text)["type"] for text in shared.group(batch=True).texts] == ["validation"]


def test_a_frame_longer_than_64_kib_keeps_its_length_on_the_wire():
    lines = [line(seq, "fz", T0 + seq / 1000, float(seq)) for seq in range(1, 2001)]
    group = EventFrames(event(lines)).group(batch=True)

    assert len(group.texts[0]) > 0xFFFF
    assert websocket_texts(group.wire()) == group.texts
