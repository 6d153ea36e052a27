import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from sensors.simulators import (
    CameraSimulator,
    ForceSimulator,
    MotorSimulator,
    Simulator,
    has_simulator,
    rate_for,
    rng_for,
    seed_key_for,
    simulator_for,
    start_index,
)

START = 1_700_000_000.123  # a realistic Unix time, so float precision is tested where it is tight


class _Index(Simulator):
    """Returns the sample index, so schedule tests cost nothing per sample."""

    sensor_type = "index"

    def sample(self, n, t):
        return n


class _FixedRandom(random.Random):
    """A Random whose draws are fixed, to drive a signal to its bounds."""

    def __init__(self, *, uniform01=0.5, gauss=0.0, uniform=100.0):
        super().__init__(0)
        self._uniform01, self._gauss, self._uniform = uniform01, gauss, uniform

    def random(self):
        return self._uniform01

    def gauss(self, mu=0.0, sigma=1.0):
        return mu + self._gauss

    def uniform(self, a, b):
        return self._uniform


def _values(sim, seconds):
    return [value for _, value in sim.due(sim.t0 + seconds)]


# --- Rates and the schedule ------------------------------------------------------------------

@pytest.mark.parametrize("rate", [1.0, 5.0, 7.0, 10.0, 1000.0])
def test_a_sensor_yields_exactly_rate_times_ten_readings_over_ten_seconds_of_schedule(rate):
    sim = _Index(rate_hz=rate, t0=START, rng=random.Random(0))
    assert len(sim.due(START)) == 1  # sample 0 falls at t0 itself
    assert len(sim.due(START + 10.0)) == rate * 10


def test_a_1khz_sensor_yields_1000_readings_per_second_of_schedule():
    sim = ForceSimulator(rate_hz=1000.0, t0=START, rng=random.Random(0))
    sim.due(START)
    for second in range(1, 6):
        assert len(sim.due(START + second)) == 1000


def test_nothing_is_due_before_the_next_scheduled_sample():
    sim = _Index(rate_hz=10.0, t0=START, rng=random.Random(0))
    assert sim.due(START - 1.0) == []
    assert sim.due(START) == [(START, 0)]
    assert sim.due(START + 0.099) == []
    assert sim.next_time == START + 1 / 10.0


def test_a_late_call_gets_every_overdue_sample_with_its_scheduled_timestamp():
    sim = _Index(rate_hz=100.0, t0=START, rng=random.Random(0))
    sim.due(START)
    readings = sim.due(START + 2.5)
    assert [n for _, n in readings] == list(range(1, 251))
    assert [ts for ts, _ in readings] == [START + n / 100.0 for n in range(1, 251)]
    assert sim.next_time == START + 251 / 100.0


def test_timestamps_do_not_drift_after_a_million_samples():
    sim = _Index(rate_hz=1000.0, t0=START, rng=random.Random(0))
    count, last = 0, None
    # Uneven ticks, as a busy event loop would make them.
    for k in range(1, 20_001):
        readings = sim.due(START + k * 0.05 - 0.0003 * (k % 7))
        count += len(readings)
        if readings:
            last = readings[-1]
    assert count == 1_000_000
    assert last == (START + 999_999 / 1000.0, 999_999)
    assert sim.next_time == START + 1000.0


def test_a_simulator_refuses_a_rate_that_is_not_positive():
    with pytest.raises(ValueError, match="rate_hz"):
        ForceSimulator(rate_hz=0.0, t0=START, rng=random.Random(0))


# --- Signal ranges ---------------------------------------------------------------------------

def test_force_is_never_negative_and_has_two_decimals():
    values = _values(ForceSimulator(rate_hz=100.0, t0=START, rng=random.Random(1)), 200)
    assert len(values) == 20_001
    assert min(values) >= 0.0
    assert all(round(v, 2) == v for v in values)
    assert 0.0 in values  # the floor is reached, not just approached


def test_force_spikes_lie_in_80_to_200_about_5_percent_of_the_time():
    values = _values(ForceSimulator(rate_hz=100.0, t0=START, rng=random.Random(2)), 400)
    # Without a spike the signal is 10 ± 3 plus N(0, 2): reaching 80 would take a 33σ draw.
    spikes = [v for v in values if v >= 80.0]
    assert all(80.0 <= v <= 200.0 for v in spikes)
    # 40,001 samples: the spike share has σ ≈ 0.11 %, so ±1 % is a loose bound.
    assert 0.04 < len(spikes) / len(values) < 0.06


def test_force_follows_its_formula_when_the_draws_are_fixed():
    quiet = ForceSimulator(rate_hz=1.0, t0=START, rng=_FixedRandom(uniform01=0.5, gauss=0.0))
    assert quiet.sample(0, 15.0) == round(10 + 3 * math.sin(1.5), 2)
    floored = ForceSimulator(rate_hz=1.0, t0=START, rng=_FixedRandom(uniform01=0.5, gauss=-100.0))
    assert floored.sample(0, 0.0) == 0.0
    spiking = ForceSimulator(rate_hz=1.0, t0=START, rng=_FixedRandom(uniform01=0.01, uniform=123.456))
    assert spiking.sample(0, 0.0) == 123.46


def test_motor_stays_within_its_amplitude_plus_six_sigma_and_goes_negative():
    values = _values(MotorSimulator(rate_hz=100.0, t0=START, rng=random.Random(3)), 200)
    assert all(-56.0 <= v <= 56.0 for v in values)
    assert min(values) < -45.0 and max(values) > 45.0


def test_motor_is_a_half_hertz_sine_when_the_noise_is_fixed():
    sim = MotorSimulator(rate_hz=4.0, t0=START, rng=_FixedRandom(gauss=0.0))
    values = _values(sim, 2)  # t = 0, 0.25, …, 2.0: one full period
    assert values == pytest.approx([0, 35.355, 50, 35.355, 0, -35.355, -50, -35.355, 0], abs=1e-3)


def test_camera_frames_have_their_fields_within_their_clamps():
    frames = _values(CameraSimulator(rate_hz=1.0, t0=START, rng=random.Random(4)), 2000)
    assert [f["image_id"] for f in frames] == list(range(1001, 1001 + len(frames)))
    for frame in frames:
        assert set(frame) == {"image_id", "resolution", "brightness", "exposure"}
        assert frame["resolution"] == "640x480"
        assert isinstance(frame["brightness"], int) and 50 <= frame["brightness"] <= 255
        expected = round(min(max(1 - (frame["brightness"] - 128) / 255, 0.1), 2.0), 3)
        assert frame["exposure"] == expected
    brightness = {f["brightness"] for f in frames}
    assert 50 in brightness and 255 in brightness  # both clamps are reached


@pytest.mark.parametrize(
    ("noise", "brightness", "exposure"),
    [(-1000.0, 50, 1.306), (0.0, 150, 0.914), (1000.0, 255, 0.502)],
)
def test_camera_brightness_is_clamped_and_sets_the_exposure(noise, brightness, exposure):
    sim = CameraSimulator(rate_hz=1.0, t0=START, rng=_FixedRandom(gauss=noise))
    assert sim.sample(0, 0.0) == {
        "image_id": 1001, "resolution": "640x480", "brightness": brightness, "exposure": exposure,
    }


# --- Reproducibility -------------------------------------------------------------------------

def _run(sensor_type, rng, seconds=30):
    return simulator_for(sensor_type, rate_hz=10.0, t0=START, rng=rng).due(START + seconds)


@pytest.mark.parametrize("sensor_type", ["force", "motor", "camera"])
def test_the_same_seed_and_keys_give_the_same_readings(sensor_type):
    assert _run(sensor_type, rng_for(42, 7, "force")) == _run(sensor_type, rng_for(42, 7, "force"))


def test_different_keys_or_seeds_give_different_readings():
    base = _run("force", rng_for(42, 7, "force"))
    assert _run("force", rng_for(42, 8, "force")) != base
    assert _run("force", rng_for(42, 7, "motor")) != base
    assert _run("force", rng_for(43, 7, "force")) != base


def test_readings_do_not_depend_on_how_the_schedule_is_polled():
    whole = ForceSimulator(rate_hz=10.0, t0=START, rng=rng_for(1, "x")).due(START + 30)
    sim = ForceSimulator(rate_hz=10.0, t0=START, rng=rng_for(1, "x"))
    pieces = [r for k in range(1, 31) for r in sim.due(START + k - 0.37)] + sim.due(START + 30)
    assert pieces == whole


def test_a_seeded_rng_is_the_same_in_another_process():
    code = "from sensors.simulators import rng_for; print(repr(rng_for(42, 7, 'force').random()))"
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert outputs == {repr(rng_for(42, 7, "force").random())}


def test_without_a_seed_each_rng_is_different():
    assert rng_for(None, 7, "force").random() != rng_for(None, 7, "force").random()


# --- Factory and rates from settings ---------------------------------------------------------

def test_the_factory_builds_the_simulator_for_each_type():
    for sensor_type, cls in [("force", ForceSimulator), ("motor", MotorSimulator), ("camera", CameraSimulator)]:
        sim = simulator_for(sensor_type, rate_hz=2.0, t0=START, rng=random.Random(0), start_n=5)
        assert type(sim) is cls and sim.sensor_type == sensor_type
        assert sim.next_time == START + 5 / 2.0
        assert has_simulator(sensor_type)


def test_the_factory_refuses_a_type_with_no_simulator_and_names_it():
    assert not has_simulator("temperature")
    with pytest.raises(ValueError, match="temperature"):
        simulator_for("temperature", rate_hz=1.0, t0=START, rng=random.Random(0))


def test_the_rate_comes_from_settings_unless_the_sensor_has_its_own(settings):
    settings.FORCE_SENSOR_HZ = 250.0
    settings.MOTOR_SENSOR_HZ = 40.0
    settings.CAMERA_SENSOR_HZ = 3.0
    assert rate_for("force", None) == 250.0
    assert rate_for("motor", None) == 40.0
    assert rate_for("camera", None) == 3.0
    assert rate_for("force", 12.5) == 12.5
    assert rate_for("temperature", 2.0) == 2.0


def test_a_changed_settings_rate_drives_the_schedule(settings):
    settings.FORCE_SENSOR_HZ = 250.0
    sim = simulator_for("force", rate_hz=rate_for("force", None), t0=START, rng=random.Random(0))
    sim.due(START)
    assert len(sim.due(START + 10.0)) == 2500


def test_a_type_without_a_default_rate_needs_its_own(settings):
    with pytest.raises(ValueError, match="temperature"):
        rate_for("temperature", None)


# --- Resuming --------------------------------------------------------------------------------

def test_start_index_is_the_first_sample_at_or_after_now():
    assert start_index(rate_hz=10.0, t0=START, now=START - 5.0) == 0
    assert start_index(rate_hz=10.0, t0=START, now=START) == 0
    assert start_index(rate_hz=10.0, t0=START, now=START + 0.35) == 4
    rng = random.Random(5)
    for rate in (1.0, 3.0, 7.0, 10.0, 1000.0):
        for _ in range(2000):
            now = START + rng.uniform(0, 100_000)
            n = start_index(rate_hz=rate, t0=START, now=now)
            assert START + n / rate >= now
            assert n == 0 or START + (n - 1) / rate < now


def test_start_index_includes_a_sample_that_falls_exactly_on_now():
    for n in (1, 3, 999, 123_457):
        assert start_index(rate_hz=1000.0, t0=START, now=START + n / 1000.0) == n


def test_a_resumed_simulator_continues_the_schedule_without_back_filling():
    now = START + 3600.42
    n = start_index(rate_hz=1.0, t0=START, now=now)
    sim = CameraSimulator(rate_hz=1.0, t0=START, rng=random.Random(0), start_n=n)
    assert sim.next_index == n == 3601
    assert sim.due(now) == []
    (timestamp, frame), = sim.due(START + 3601.0)
    assert timestamp == START + 3601.0
    assert frame["image_id"] == 1001 + 3601


def test_start_n_continues_the_numbering_where_a_stopped_simulator_left_off():
    first = CameraSimulator(rate_hz=5.0, t0=START, rng=random.Random(0))
    before = first.due(START + 10.0)
    second = CameraSimulator(rate_hz=5.0, t0=START, rng=random.Random(0), start_n=first.next_index)
    after = second.due(START + 20.0)
    assert [f["image_id"] for _, f in before + after] == list(range(1001, 1001 + 101))
    assert [ts for ts, _ in before + after] == [START + n / 5.0 for n in range(101)]


@pytest.mark.parametrize("sensor_type", ["force", "motor", "camera"])
@pytest.mark.parametrize("start_n", [0, 1, 999, 1000, 1001, 2500])
def test_with_a_seed_key_a_simulator_started_anywhere_gives_the_values_of_one_that_ran_from_the_start(sensor_type, start_n):
    # A worker that takes over a killed one's session starts its simulators at the first sample
    # not stored: the samples it simulates must be those the killed worker would have stored.
    key = seed_key_for(42, 7, sensor_type)
    whole = simulator_for(sensor_type, rate_hz=100.0, t0=START, rng=random.Random(), seed_key=key).due(START + 35.0)
    # Asked in uneven steps, so block boundaries fall inside and between calls.
    resumed = simulator_for(sensor_type, rate_hz=100.0, t0=START, rng=random.Random(), start_n=start_n, seed_key=key)
    later = []
    for seconds in (0.026, 14.0, 19.98, 35.0):
        later += resumed.due(START + seconds)
    assert later == whole[start_n:]
    assert len(whole) == 3501


def test_seed_keys_of_other_sensors_or_seeds_give_other_values():
    def values(key):
        return [v for _, v in simulator_for("motor", rate_hz=10.0, t0=START, rng=random.Random(), seed_key=key).due(START + 10)]

    base = values(seed_key_for(42, 7, "motor"))
    assert base == values(seed_key_for(42, 7, "motor"))
    assert base != values(seed_key_for(42, 8, "motor"))
    assert base != values(seed_key_for(43, 7, "motor"))
    assert seed_key_for(None, 7, "motor") is None
