import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
from django.conf import settings as django_settings

from sensors.models import Rig, Sensor, ValidationRule
from sensors.rules import Episode, Validator, default_rules, rules_snapshot

SIM_SENSORS = {"force": "force", "motor": "motor", "camera": "camera"}


@pytest.fixture
def seed_settings(settings):
    settings.FORCE_THRESHOLD_HIGH = 80.0
    settings.MOTOR_THRESHOLD = 55.0
    return settings


def validator(rules=None, sensors=None, **kwargs):
    return Validator(default_rules() if rules is None else rules, SIM_SENSORS if sensors is None else sensors, **kwargs)


def feed_all(v, sensor, values, start=0.0):
    for i, value in enumerate(values):
        v.feed(sensor, start + i * 0.1, value)


def by_rule(episodes):
    return {(e.sensor, e.rule): e for e in episodes}


def statuses_of(sensor, value, rule):
    """The status a single reading gets from one default rule (None when it passes)."""
    v = validator()
    v.feed(sensor, 1.0, value)
    episode = by_rule(v.open_episodes()).get((sensor, rule))
    return episode.status if episode else None


def test_default_rules_reproduce_the_seed(seed_settings):
    rules = {rule["code"]: rule for rule in default_rules()}
    assert set(rules) == {
        "force_threshold", "force_spike", "motor_threshold", "camera_brightness_low", "camera_brightness_high"
    }
    assert rules["force_threshold"] | {} == {
        "code": "force_threshold", "sensor_type": "force", "sensor": None, "field": "", "kind": "range",
        "warning_low": None, "warning_high": 64.0, "error_low": None, "error_high": 80.0, "lag": 0, "message": "",
    }
    spike = rules["force_spike"]
    assert (spike["kind"], spike["lag"], spike["warning_high"], spike["error_high"]) == ("delta", 2, 50.0, None)
    motor = rules["motor_threshold"]
    assert (motor["warning_low"], motor["warning_high"], motor["error_low"], motor["error_high"]) == (
        -55.0, 55.0, None, None
    )
    assert rules["camera_brightness_low"]["field"] == "brightness"
    assert rules["camera_brightness_low"]["warning_low"] == 30.0
    assert "lighting" in rules["camera_brightness_low"]["message"].lower()
    assert rules["camera_brightness_high"]["warning_high"] == 240.0
    assert "overexposure" in rules["camera_brightness_high"]["message"].lower()
    json.dumps(default_rules())  # JSON-safe


@pytest.mark.parametrize(
    ("value", "expected"),
    [(63.99, None), (64.0, None), (64.01, "warning"), (79.99, "warning"), (80.0, "warning"),
     (80.01, "error"), (500, "error"), (-1000.0, None)],
)
def test_force_threshold_warns_above_80_percent_and_errors_above_the_threshold(seed_settings, value, expected):
    assert statuses_of("force", value, "force_threshold") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(54.99, None), (55.0, None), (55.01, "warning"), (-54.99, None), (-55.0, None), (-55.01, "warning"),
     (0, None), (10_000, "warning")],
)
def test_motor_threshold_warns_on_the_absolute_value(seed_settings, value, expected):
    assert statuses_of("motor", value, "motor_threshold") == expected


@pytest.mark.parametrize(
    ("brightness", "low", "high"),
    [(29, "warning", None), (29.99, "warning", None), (30, None, None), (31, None, None),
     (239, None, None), (240, None, None), (240.01, None, "warning"), (241, None, "warning")],
)
def test_camera_brightness_warns_below_30_and_above_240(seed_settings, brightness, low, high):
    value = {"image_id": 1, "resolution": "640x480", "brightness": brightness, "exposure": 1.0}
    assert statuses_of("camera", value, "camera_brightness_low") == low
    assert statuses_of("camera", value, "camera_brightness_high") == high


@pytest.mark.parametrize(
    ("values", "expected"),
    [([10.0, 20.0, 60.0], None), ([10.0, 20.0, 60.01], "warning"), ([10.0, 20.0, -40.0], None),
     ([10.0, 20.0, -40.01], "warning"), ([60.0, 0.0, 10.0], None)],
)
def test_force_spike_compares_with_the_reading_two_before(seed_settings, values, expected):
    v = validator()
    feed_all(v, "force", values)
    episode = by_rule(v.open_episodes()).get(("force", "force_spike"))
    assert (episode.status if episode else None) == expected


def test_spike_uses_lag_two_not_lag_one(seed_settings):
    v = validator()
    feed_all(v, "force", [0.0, 30.0, 60.0])  # steps of 30, but 60 over two readings
    spike = by_rule(v.open_episodes())[("force", "force_spike")]
    assert (spike.count, spike.peak, spike.first_timestamp) == (1, 60.0, 0.2)

    v = validator()
    feed_all(v, "force", [0.0, 60.0, 10.0])  # a jump of 60 from one reading to the next is not a spike
    assert ("force", "force_spike") not in by_rule(v.open_episodes())


def test_spike_peak_is_the_largest_absolute_difference(seed_settings):
    v = validator()
    feed_all(v, "force", [40.0, 40.0, -15.0, -40.0, -35.0])  # diffs -55, -80, -20
    spike = by_rule(v.take_changes())[("force", "force_spike")]
    assert (spike.count, spike.peak, spike.is_open) == (2, 80.0, False)
    assert spike.details["lag"] == 2
    assert spike.details["warning_high"] == 50.0


def test_worst_band_wins_in_one_episode(seed_settings):
    v = validator()
    v.feed("force", 1.0, 64.5)
    v.feed("force", 2.0, 85.0)
    v.feed("force", 3.0, 70.0)
    [episode] = [e for e in v.take_changes() if e.rule == "force_threshold"]
    assert episode.status == "error"
    assert (episode.count, episode.peak) == (3, 85.0)
    assert (episode.first_timestamp, episode.last_timestamp) == (1.0, 3.0)
    assert episode.is_open
    assert episode.sensor == "force" and episode.sensor_type == "force"


def test_message_names_sensor_value_and_bound(seed_settings):
    v = validator(units={"force": "N"})
    v.feed("force", 1.0, 70.0)
    [episode] = v.open_episodes()
    assert episode.message == "force 70.00 N above warning limit 64.0"
    v.feed("force", 2.0, 95.2)
    assert episode.message == "force 95.20 N above error limit 80.0"
    assert episode.details == {
        "kind": "range", "field": "", "warning_low": None, "warning_high": 64.0,
        "error_low": None, "error_high": 80.0,
    }

    v.feed("camera", 1.0, {"brightness": 12})
    [camera] = [e for e in v.open_episodes() if e.sensor == "camera"]
    assert "lighting" in camera.message.lower()
    assert "camera brightness 12 below warning limit 30.0" in camera.message


def test_motor_peak_keeps_its_sign(seed_settings):
    v = validator()
    feed_all(v, "motor", [60.0, -70.0, 65.0])
    [episode] = v.open_episodes()
    assert (episode.peak, episode.count, episode.status) == (-70.0, 3, "warning")
    assert "below warning limit -55.0" in episode.message


def test_a_passing_reading_closes_the_episode_and_the_next_violation_opens_a_new_one(seed_settings):
    v = validator()
    feed_all(v, "force", [70.0, 72.0])
    first = v.open_episodes()[0]
    v.feed("force", 5.0, 64.0)  # equal to the bound: passes
    assert first.is_open is False
    assert first.count == 2 and first.last_timestamp == 0.1
    assert v.open_episodes() == []
    v.feed("force", 6.0, 66.0)
    [second] = v.open_episodes()
    assert second is not first
    assert (second.first_timestamp, second.count) == (6.0, 1)


def test_episodes_are_per_sensor_and_per_rule(seed_settings):
    v = validator(sensors={"left": "force", "right": "force", "motor": "motor"})
    v.feed("left", 1.0, 0.0)
    v.feed("left", 2.0, 0.0)
    v.feed("left", 3.0, 90.0)  # threshold (error) and spike in one reading
    v.feed("right", 3.0, 70.0)
    v.feed("motor", 3.0, 90.0)
    episodes = by_rule(v.open_episodes())
    assert set(episodes) == {
        ("left", "force_threshold"), ("left", "force_spike"), ("right", "force_threshold"), ("motor", "motor_threshold")
    }
    assert episodes[("left", "force_threshold")].status == "error"
    assert episodes[("right", "force_threshold")].status == "warning"
    v.feed("right", 4.0, 0.0)  # closes right's episode only
    assert set(by_rule(v.open_episodes())) == {
        ("left", "force_threshold"), ("left", "force_spike"), ("motor", "motor_threshold")
    }


def test_unknown_sensors_are_ignored(seed_settings):
    v = validator()
    v.feed("nobody", 1.0, 1e9)
    assert v.take_changes() == [] and v.open_episodes() == []


@pytest.mark.parametrize("value", ["95", None, True, [95.0], {"value": 95.0}, float("nan"), float("inf")])
def test_values_that_are_not_numbers_are_not_checked(seed_settings, value):
    v = validator()
    v.feed("force", 1.0, value)
    assert v.open_episodes() == []
    v.feed("force", 2.0, 70.0)
    v.feed("force", 3.0, value)  # neither a violation nor a pass: the episode stays open
    [episode] = v.open_episodes()
    assert episode.count == 1 and episode.is_open


def test_booleans_are_not_numbers_in_object_fields(seed_settings):
    v = validator()
    v.feed("camera", 1.0, {"brightness": False})  # False == 0 would be below 30
    v.feed("camera", 2.0, {"exposure": 1.0})  # lacks the field
    v.feed("camera", 3.0, 12)  # not an object
    assert v.open_episodes() == []


def test_object_field_rules_check_one_field():
    rules = [
        {"code": "fz_range", "sensor_type": "ft6", "sensor": None, "field": "fz", "kind": "range",
         "warning_low": -100.0, "warning_high": 100.0, "error_low": -200.0, "error_high": 200.0, "lag": 0, "message": ""},
        {"code": "fx_jump", "sensor_type": "ft6", "sensor": None, "field": "fx", "kind": "delta",
         "warning_low": None, "warning_high": 5.0, "error_low": None, "error_high": None, "lag": 1, "message": ""},
    ]
    v = Validator(rules, {"wrist": "ft6"})
    axes = dict.fromkeys(("fx", "fy", "fz", "tx", "ty", "tz"), 0.0)
    v.feed("wrist", 1.0, axes | {"fy": 500.0})  # an unchecked field
    assert v.open_episodes() == []
    v.feed("wrist", 2.0, axes | {"fz": -150.0})
    v.feed("wrist", 3.0, axes | {"fz": -250.0, "fx": 6.0})
    episodes = by_rule(v.open_episodes())
    fz = episodes[("wrist", "fz_range")]
    assert (fz.status, fz.count, fz.peak) == ("error", 2, -250.0)
    assert fz.details["field"] == "fz"
    assert "wrist fz -250.00 below error limit -200.0" in fz.message
    assert episodes[("wrist", "fx_jump")].peak == 6.0
    assert v.max_lag() == 1


def test_thresholds_changed_through_settings_change_the_defaults(settings):
    settings.FORCE_THRESHOLD_HIGH = 100.0
    settings.MOTOR_THRESHOLD = 10.0
    rules = {rule["code"]: rule for rule in default_rules()}
    assert (rules["force_threshold"]["warning_high"], rules["force_threshold"]["error_high"]) == (80.0, 100.0)
    assert (rules["motor_threshold"]["warning_low"], rules["motor_threshold"]["warning_high"]) == (-10.0, 10.0)
    assert statuses_of("force", 90.0, "force_threshold") == "warning"
    assert statuses_of("motor", 10.5, "motor_threshold") == "warning"


def test_a_snapshot_taken_before_a_settings_change_keeps_the_old_bounds(seed_settings):
    snapshot = json.loads(json.dumps(default_rules()))  # as stored with the session
    seed_settings.FORCE_THRESHOLD_HIGH = 200.0
    v = Validator(snapshot, SIM_SENSORS)
    v.feed("force", 1.0, 90.0)
    [episode] = v.open_episodes()
    assert episode.status == "error"
    assert episode.details["error_high"] == 80.0
    assert statuses_of("force", 90.0, "force_threshold") is None  # a new session sees the new bounds


def test_thresholds_can_be_changed_through_the_environment():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "robotest_site.settings.test", "FORCE_THRESHOLD_HIGH": "50"}
    code = "import django, json; django.setup(); from sensors.rules import default_rules; print(json.dumps(default_rules()))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=django_settings.BASE_DIR,
        capture_output=True, text=True, timeout=60, check=True,
    )
    rules = {rule["code"]: rule for rule in json.loads(out.stdout)}
    assert rules["force_threshold"]["error_high"] == 50.0
    assert rules["force_threshold"]["warning_high"] == 40.0


def test_snapshot_is_the_defaults_without_stored_rules(sim_rig, seed_settings):
    assert rules_snapshot(rig=sim_rig) == default_rules()


def test_a_stored_rule_with_a_defaults_code_replaces_it(sim_rig, seed_settings):
    ValidationRule.objects.create(code="force_threshold", sensor_type="force", warning_high=90.0, error_high=120.0)
    rules = [rule for rule in rules_snapshot(rig=sim_rig) if rule["code"] == "force_threshold"]
    assert rules == [{
        "code": "force_threshold", "sensor_type": "force", "sensor": None, "field": "", "kind": "range",
        "warning_low": None, "warning_high": 90.0, "error_low": None, "error_high": 120.0, "lag": 2, "message": "",
    }]


def test_a_disabled_stored_rule_removes_the_default(sim_rig, seed_settings):
    ValidationRule.objects.create(code="force_spike", sensor_type="force", kind="delta", warning_high=50.0, enabled=False)
    ValidationRule.objects.create(code="extra_off", sensor_type="force", warning_high=1.0, enabled=False)
    codes = [rule["code"] for rule in rules_snapshot(rig=sim_rig)]
    assert "force_spike" not in codes and "extra_off" not in codes
    assert "force_threshold" in codes


def test_a_stored_rule_with_a_new_code_adds_to_the_defaults(sim_rig, seed_settings):
    force = sim_rig.sensors.get(name="force")
    ValidationRule.objects.create(code="camera_exposure", sensor_type="camera", field="exposure", warning_high=1.8)
    ValidationRule.objects.create(code="force_negative", sensor=force, error_low=-5.0, message="Pulled")
    rules = {rule["code"]: rule for rule in rules_snapshot(rig=sim_rig)}
    assert len(rules) == len(default_rules()) + 2
    assert rules["camera_exposure"]["field"] == "exposure"
    assert (rules["force_negative"]["sensor"], rules["force_negative"]["sensor_type"]) == ("force", "")
    json.dumps(list(rules.values()))

    v = Validator(list(rules.values()), SIM_SENSORS)
    v.feed("force", 1.0, -6.0)
    [episode] = v.open_episodes()
    assert (episode.rule, episode.status) == ("force_negative", "error")
    assert episode.message.startswith("Pulled: force -6.00 below error limit -5.0")


def test_a_rule_for_a_sensor_of_another_rig_is_not_in_the_snapshot(sim_rig, seed_settings):
    other = Rig.objects.create(name="bench", source="external")
    other_force = Sensor.objects.create(rig=other, name="force", sensor_type="force")
    ValidationRule.objects.create(code="bench_only", sensor=other_force, warning_high=1.0)
    ValidationRule.objects.create(code="force_threshold", sensor=other_force, error_high=1.0)
    sim_codes = [rule["code"] for rule in rules_snapshot(rig=sim_rig)]
    assert "bench_only" not in sim_codes
    assert [r for r in rules_snapshot(rig=sim_rig) if r["code"] == "force_threshold"][0]["error_high"] == 80.0
    bench = {rule["code"]: rule for rule in rules_snapshot(rig=other)}
    assert bench["bench_only"]["sensor"] == "force"
    assert bench["force_threshold"]["error_high"] == 1.0


def test_a_rule_for_one_sensor_beats_a_rule_of_the_same_code_for_its_type(seed_settings):
    own = {"code": "force_threshold", "sensor_type": "", "sensor": "left", "field": "", "kind": "range",
           "warning_low": None, "warning_high": None, "error_low": None, "error_high": 200.0, "lag": 0, "message": ""}
    v = Validator(default_rules() + [own], {"left": "force", "right": "force"})
    v.feed("left", 1.0, 150.0)
    v.feed("right", 1.0, 150.0)
    assert set(by_rule(v.open_episodes())) == {("right", "force_threshold")}


def test_take_changes_reports_each_changed_episode_once(seed_settings):
    v = validator()
    feed_all(v, "motor", [60.0, 61.0, 62.0])
    [episode] = v.take_changes()
    assert episode.count == 3
    assert v.take_changes() == []
    v.feed("motor", 1.0, 63.0)
    assert v.take_changes() == [episode]  # the live object, grown
    assert v.take_changes() == []
    v.feed("motor", 2.0, 10.0)
    [closed] = v.take_changes()
    assert closed is episode and not closed.is_open
    v.feed("motor", 3.0, 90.0)  # opened and closed within one window: reported once, closed
    v.feed("motor", 4.0, 10.0)
    [brief] = v.take_changes()
    assert brief is not episode
    assert (brief.count, brief.is_open, brief.peak) == (1, False, 90.0)
    assert v.open_episodes() == [] and v.take_changes() == []


def test_close_all_closes_every_open_episode(seed_settings):
    v = validator()
    v.feed("force", 1.0, 70.0)
    v.feed("motor", 1.0, 70.0)
    closed = v.close_all()
    assert {e.sensor for e in closed} == {"force", "motor"}
    assert all(not e.is_open for e in closed)
    assert v.open_episodes() == [] and v.take_changes() == []
    v.feed("force", 2.0, 70.0)  # a later violation opens a new episode
    assert [e.first_timestamp for e in v.open_episodes()] == [2.0]


def test_restore_continues_an_open_episode_and_the_spike_history(seed_settings):
    before = validator()
    feed_all(before, "force", [0.0, 10.0, 70.0])
    stored = {e.rule: e for e in before.take_changes()}
    assert set(stored) == {"force_threshold", "force_spike"}
    assert before.max_lag() == 2

    # The process restarts: the episodes come back from the database with their result ids.
    after = validator()
    episodes = [replace(e, result_id=i) for i, e in enumerate(stored.values(), start=1)]
    after.restore(open_episodes=episodes, recent={"force": [10.0, 70.0], "nobody": [1.0]})
    assert {e.result_id for e in after.open_episodes()} == {1, 2}
    after.feed("force", 0.3, 66.0)  # 66 - 10 = 56: still a spike; 66 is still a warning
    changed = by_rule(after.take_changes())
    threshold, spike = changed[("force", "force_threshold")], changed[("force", "force_spike")]
    assert (threshold.result_id, threshold.count, threshold.peak, threshold.first_timestamp) == (1, 2, 70.0, 0.2)
    assert (spike.result_id, spike.count, spike.peak) == (2, 2, 70.0)
    after.feed("force", 0.4, 100.0)
    assert (threshold.status, threshold.peak, threshold.count) == ("error", 100.0, 3)


def test_restore_closes_an_episode_whose_rule_is_gone(seed_settings):
    v = validator()
    ghost = Episode(rule="removed", sensor="force", sensor_type="force", status="warning", message="",
                    first_timestamp=1.0, last_timestamp=1.0, count=1, peak=1.0, details={}, result_id=9)
    v.restore(open_episodes=[ghost], recent={})
    assert v.open_episodes() == []
    assert v.take_changes() == [ghost] and ghost.is_open is False


def test_max_lag_is_zero_without_delta_rules(seed_settings):
    rules = [rule for rule in default_rules() if rule["kind"] == "range"]
    assert Validator(rules, SIM_SENSORS).max_lag() == 0
