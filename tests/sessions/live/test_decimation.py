"""Decimation of a live stream (sessions/live/decimation.py): each interval's extremes, in order."""

import json

import pytest

from sessions.live.decimation import Decimator
from tests.conftest import T0, line


def seqs(lines: list[str]) -> list[int]:
    return [json.loads(text)["seq"] for text in lines]


def test_decimator_keeps_the_lowest_and_highest_reading_of_each_interval_in_seq_order():
    decimator = Decimator(max_hz=1)  # intervals of 2 s
    values = [5.0, 3.0, 9.0, -2.0, 4.0, 8.5, 6.0]  # highest at seq 3, lowest at seq 4
    lines = [line(i + 1, "fz", T0 + i * 0.25, v) for i, v in enumerate(values)]
    closing = line(8, "fz", T0 + 2.0, 0.0)

    assert decimator.thin(lines) == []
    assert seqs(decimator.thin([closing])) == [3, 4]


def test_decimator_sends_an_interval_only_once_a_later_reading_of_its_sensor_shows_it_is_over():
    decimator = Decimator(max_hz=10)  # intervals of 0.2 s
    assert decimator.width == pytest.approx(0.2)

    assert decimator.thin([line(1, "fz", T0 + 0.01, 1.0), line(2, "fz", T0 + 0.05, 2.0)]) == []
    assert decimator.thin([line(3, "fz", T0 + 0.15, 1.5)]) == []  # the same interval
    # Another sensor's later reading does not close fz's interval.
    assert decimator.thin([line(4, "temp", T0 + 0.5, 20.0)]) == []
    assert seqs(decimator.thin([line(5, "fz", T0 + 0.21, 3.0)])) == [1, 2]
    assert seqs(decimator.thin([line(6, "fz", T0 + 0.45, 4.0)])) == [5]
    assert seqs(decimator.thin([line(7, "temp", T0 + 0.9, 21.0)])) == [4]


def test_decimator_keeps_each_sensors_extremes_apart():
    decimator = Decimator(max_hz=1)
    lines = [
        line(1, "fz", T0, 10.0), line(2, "temp", T0, 30.0), line(3, "fz", T0 + 0.5, 90.0),
        line(4, "temp", T0 + 0.5, -30.0), line(5, "fz", T0 + 1.0, 50.0), line(6, "temp", T0 + 1.0, 0.0),
    ]

    assert decimator.thin(lines) == []
    out = decimator.thin([line(7, "fz", T0 + 2.5, 0.0), line(8, "temp", T0 + 2.5, 0.0)])

    assert seqs(out) == [1, 3, 2, 4]


def test_decimator_sends_one_reading_for_an_interval_whose_extremes_are_one_reading():
    decimator = Decimator(max_hz=1)

    decimator.thin([line(1, "fz", T0, 5.0), line(2, "fz", T0 + 0.5, 5.0), line(3, "fz", T0 + 1, 5.0)])
    out = decimator.thin([line(4, "fz", T0 + 2.5, 5.0)])

    assert seqs(out) == [1]


def test_decimator_keeps_a_spike_that_a_plain_rate_limit_would_drop():
    decimator = Decimator(max_hz=10)
    lines = [line(i + 1, "fz", T0 + i / 1000, 500.0 if i == 1337 else -500.0 if i == 1733 else 1.0)
             for i in range(3000)]

    out = [json.loads(text) for text in decimator.thin(lines)]

    assert len(out) <= 2 * 10 * 3
    assert {r["seq"] for r in out} >= {1338, 1734}


def test_decimator_keeps_the_first_object_value_of_each_interval():
    decimator = Decimator(max_hz=1)
    lines = [line(i + 1, "cam", T0 + i * 0.5, {"image_id": i, "brightness": 100 + i}, sensor_type="camera")
             for i in range(8)]  # four per 2 s interval

    out = decimator.thin(lines) + decimator.thin([line(9, "cam", T0 + 10, {"image_id": 99}, sensor_type="camera")])

    assert [json.loads(text)["value"]["image_id"] for text in out] == [0, 4]


def test_decimator_treats_booleans_as_objects_not_numbers():
    decimator = Decimator(max_hz=1)

    decimator.thin([line(1, "door", T0, False), line(2, "door", T0 + 0.5, True), line(3, "door", T0 + 1, False)])
    out = decimator.thin([line(4, "door", T0 + 2.5, True)])

    assert seqs(out) == [1]


def test_decimator_lets_a_number_displace_an_object_as_an_interval_extreme():
    decimator = Decimator(max_hz=1)

    decimator.thin([line(1, "mixed", T0, {"x": 1}), line(2, "mixed", T0 + 0.5, 3.0), line(3, "mixed", T0 + 1, 7.0)])
    out = decimator.thin([line(4, "mixed", T0 + 2.5, 0.0)])

    assert seqs(out) == [2, 3]


def test_decimator_keeps_the_extremes_of_same_named_sensors_of_two_sessions_apart():
    decimator = Decimator(max_hz=1)
    lines = [
        line(1, "fz", T0, 100.0, session_id=1), line(1, "fz", T0, 0.0, session_id=2),
        line(2, "fz", T0 + 0.5, 50.0, session_id=1), line(2, "fz", T0 + 0.5, 20.0, session_id=2),
        line(3, "fz", T0 + 1.0, 100.0, session_id=1), line(3, "fz", T0 + 1.0, 0.0, session_id=2),
    ]
    decimator.thin(lines)

    out = [json.loads(text) for text in decimator.thin(
        [line(4, "fz", T0 + 2.5, 100.0, session_id=1), line(4, "fz", T0 + 2.5, 0.0, session_id=2)]
    )]

    by_session = {sid: {r["value"] for r in out if r["session_id"] == sid} for sid in (1, 2)}
    assert 50.0 in by_session[1]  # session 1's lowest
    assert 20.0 in by_session[2]  # session 2's highest
