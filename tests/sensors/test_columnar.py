"""`Validator.feed_batch` (arrays) against `Validator.feed` (reading by reading): the same results.

The proof the vectorised validator may replace the reading-by-reading one: over random rule sets
and random batches (numbers near and on the bounds, ints, huge ints, booleans, text, objects,
NaN and infinities), both see the same episodes, in the same order, with the same counts, peaks
(an int peak stays an int), statuses and messages, batch after batch, and across a restart.
"""

import json
import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.rules import Validator

SENSORS = {"f1": "force", "f2": "force", "cam": "camera"}
BOUNDS = st.one_of(st.none(), st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]))

rule = st.fixed_dictionaries({
    "code": st.sampled_from(["a", "b", "c", "d"]),
    "sensor_type": st.sampled_from(["force", "camera"]),
    "sensor": st.one_of(st.none(), st.sampled_from(list(SENSORS))),
    "field": st.sampled_from(["", "", "fz"]),
    "kind": st.sampled_from(["range", "delta"]),
    "warning_low": BOUNDS, "warning_high": BOUNDS, "error_low": BOUNDS, "error_high": BOUNDS,
    "lag": st.integers(0, 3),
    "message": st.sampled_from(["", "Spike"]),
})

number = st.one_of(
    st.sampled_from([-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]),
    st.floats(-5, 5),
    st.integers(-4, 4),
)
# Ties: the same distance outside the band on either side, and an int beside its float.
tie = st.sampled_from([-2.0, 2.0, -2, 2, 0.0, 2.0, -2.0])
value = st.one_of(
    number,
    number,
    tie,
    tie,
    st.sampled_from([math.nan, math.inf, -math.inf, True, False, None, "3.0", [1.0]]),
    st.integers(2**60, 2**61),  # beyond float64's exact ints: that sensor goes reading by reading
    st.fixed_dictionaries({"fz": st.one_of(number, st.none(), st.just(True))}),
    st.fixed_dictionaries({"other": number}),
)
reading = st.tuples(st.sampled_from(list(SENSORS) + ["unknown"]), value)
batches = st.lists(st.lists(reading, max_size=40), min_size=1, max_size=5)


def as_text(episodes, session_id=7) -> str:
    # json.dumps tells 1 from 1.0: a peak must keep its type, as `feed` leaves it.
    return json.dumps([e.as_json(session_id=session_id) for e in episodes], sort_keys=True)


def store(episodes, ids) -> None:
    """What the pipeline does with the changes: new episodes get result ids, in order."""
    for episode in episodes:
        if episode.result_id is None:
            episode.result_id = next(ids)


def restarted(validator: Validator, rules, recent) -> Validator:
    """A fresh validator resumed as the pipeline resumes one: the open episodes and recent values."""
    fresh = Validator(rules, SENSORS, units={"f1": "N"})
    fresh.restore(open_episodes=[replace(e, details=dict(e.details)) for e in validator.open_episodes()],
                  recent={name: list(values) for name, values in recent.items()})
    return fresh


@settings(max_examples=400, deadline=None)
@given(rules=st.lists(rule, max_size=5), batches=batches, restart_at=st.integers(0, 5))
def test_feed_batch_finds_what_feed_finds(rules, batches, restart_at):
    one = Validator(rules, SENSORS, units={"f1": "N"})
    many = Validator(rules, SENSORS, units={"f1": "N"})
    one_ids, many_ids = iter(range(1, 10**6)), iter(range(1, 10**6))
    recent: dict[str, list] = {name: [] for name in SENSORS}
    t = 1_700_000_000.0
    for number_, batch in enumerate(batches):
        if number_ == restart_at:
            one = restarted(one, rules, recent)
            many = restarted(many, rules, recent)
        names, stamps, values = [], [], []
        for name, item in batch:
            t += 0.001
            names.append(name)
            stamps.append(t)
            values.append(item)
            if name in recent:
                recent[name].append(item)
        for name, stamp, item in zip(names, stamps, values, strict=True):
            one.feed(name, stamp, item)
        many.feed_batch(names, stamps, values)
        expected, got = one.take_changes(), many.take_changes()
        assert as_text(got) == as_text(expected)
        store(expected, one_ids)
        store(got, many_ids)
        assert as_text(many.open_episodes()) == as_text(one.open_episodes())
    assert as_text(many.close_all()) == as_text(one.close_all())


def test_a_spike_run_across_two_batches_is_one_episode_with_the_worst_peak():
    rules = [{"code": "t", "sensor_type": "force", "sensor": None, "field": "", "kind": "range",
              "warning_low": None, "warning_high": 64.0, "error_low": None, "error_high": 80.0, "lag": 0,
              "message": ""}]
    validator = Validator(rules, {"f1": "force"}, units={"f1": "N"})
    validator.feed_batch(["f1"] * 4, [1.0, 2.0, 3.0, 4.0], [10.0, 70.0, 90.0, 85.0])
    (opened,) = validator.take_changes()
    assert (opened.status, opened.count, opened.peak, opened.is_open) == ("error", 3, 90.0, True)
    assert opened.message == "f1 90.00 N above error limit 80.0"
    validator.feed_batch(["f1"] * 3, [5.0, 6.0, 7.0], [95.0, 20.0, 99.0])
    closed, reopened = validator.take_changes()
    assert closed is opened
    assert (closed.count, closed.peak, closed.last_timestamp, closed.is_open) == (4, 95.0, 5.0, False)
    assert (reopened.first_timestamp, reopened.count, reopened.is_open) == (7.0, 1, True)
