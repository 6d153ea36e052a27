"""`batch_loads`: the body parsed once, and again name by name only when a name may have come twice."""

import json

import pytest

from sessions.recording.ingest import BatchError, batch_loads


@pytest.mark.parametrize("body", [
    b'[{"sensor": "fz", "timestamp": 1.5, "value": 2.0, "value": 3.0}]',
    b'[{"sensor": "fz", "timestamp": 1.5, "value": {"a": 1, "b": {"c": 1, "c": 2}}}]',
    # A colon inside a string and a name twice: the counts differ either way, and the check finds it.
    b'[{"sensor": "a:b", "timestamp": 1.5, "value": 1}, {"sensor": "x", "sensor": "y", "timestamp": 2, "value": 1}]',
    b'{"k": 1, "k": 2}',
])
def test_a_name_twice_in_one_object_is_refused_at_any_depth(body):
    with pytest.raises(BatchError, match="appears twice"):
        batch_loads(body)


@pytest.mark.parametrize("data", [
    [{"sensor": "fz", "timestamp": 1.5, "value": 2.0}] * 3,
    [{"sensor": "cam:1", "timestamp": 1.5, "value": {"note": "a:b:c", "n": [1, {"x": 2}]}}],
    [{"sensor": "fz", "timestamp": 1.5, "value": "::"}, [], {}],
    {"sensor": "fz"},
    [],
])
def test_bodies_without_repeated_names_parse_as_json_does(data):
    assert batch_loads(json.dumps(data).encode()) == data
