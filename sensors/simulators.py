"""Simulated sensors: the seed's signals, sampled on a fixed schedule `t0 + n / rate`."""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from typing import ClassVar

from django.conf import settings

Value = float | dict
Reading = tuple[float, Value]

# The settings that give a sensor type its rate when the sensor has none of its own.
_RATE_SETTINGS = {
    "force": "FORCE_SENSOR_HZ",
    "motor": "MOTOR_SENSOR_HZ",
    "camera": "CAMERA_SENSOR_HZ",
}


# With a seed key, the random stream is seeded again every BLOCK samples from the key and the
# block's number: sample n's value depends on (key, n) only, so a simulator started at any n (a
# worker taking over a killed one's session) gives the values the first would have given.
BLOCK = 1000
_NEVER = float("inf")


class Simulator(ABC):
    """A simulated sensor whose n-th sample falls at `t0 + n / rate_hz`, however late it is asked for.

    Given a `seed_key` (see `seed_key_for`), its values are a function of the key and n: two
    simulators of one sensor give the same value for sample n whatever index each started at.
    """

    sensor_type: ClassVar[str]

    def __init__(
        self, *, rate_hz: float, t0: float, rng: random.Random, start_n: int = 0, seed_key: str | None = None
    ) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be a positive finite number of samples per second, got {rate_hz!r}")
        if start_n < 0:
            raise ValueError(f"start_n must be 0 or more (use start_index() to resume), got {start_n!r}")
        self.rate_hz = float(rate_hz)
        self.t0 = float(t0)
        self.rng = rng
        self._n = start_n
        self._seed_key = seed_key
        self._block_end: float = _NEVER
        if seed_key is not None:
            # Seed the block start_n falls in, then draw (and drop) its samples before start_n.
            first = start_n - start_n % BLOCK
            self._reseed(first)
            for n in range(first, start_n):
                self.sample(n, n / self.rate_hz)

    def _reseed(self, n: int) -> None:
        self.rng.seed(f"{self._seed_key}:{n // BLOCK}")
        self._block_end = n + BLOCK

    @property
    def next_index(self) -> int:
        """Index of the next sample not yet returned (store it to resume exactly where this one stopped)."""
        return self._n

    @property
    def next_time(self) -> float:
        """Unix timestamp of the next sample not yet returned."""
        return self.t0 + self._n / self.rate_hz

    def due(self, now: float) -> list[Reading]:
        """Return every not-yet-returned sample scheduled at or before `now`, in order, and move past them."""
        # Hot path (many 1 kHz sensors): locals only, and each timestamp is t0 + n / rate,
        # never a running sum, so a million samples later it has not drifted by a single ulp.
        n = self._n
        rate = self.rate_hz
        t0 = self.t0
        t = n / rate
        if t0 + t > now:
            return []
        sample = self.sample
        readings: list[Reading] = []
        append = readings.append
        while t0 + t <= now:
            if n == self._block_end:
                self._reseed(n)
            end = self._block_end
            while n < end and t0 + t <= now:
                append((t0 + t, sample(n, t)))
                n += 1
                t = n / rate
        self._n = n
        return readings

    @abstractmethod
    def sample(self, n: int, t: float) -> Value:
        """Value of sample `n`, taken `t` seconds after t0; called once per sample, in order."""


class ForceSimulator(Simulator):
    """Force in newtons: a slow sine around 10 with noise, and a 5 % chance of a spike to 80–200."""

    sensor_type = "force"

    def sample(self, n: int, t: float) -> float:
        rng = self.rng
        if rng.random() < 0.05:
            return round(rng.uniform(80.0, 200.0), 2)
        force = 10.0 + 3.0 * math.sin(0.1 * t) + rng.gauss(0.0, 2.0)
        # Conditionals rather than max(): this runs per sample, and the builtin call costs ~10×.
        return round(force, 2) if force > 0.0 else 0.0


class MotorSimulator(Simulator):
    """Motor signal: a 0.5 Hz sine of amplitude 50 with unit noise; it goes negative."""

    sensor_type = "motor"

    def sample(self, n: int, t: float) -> float:
        # 50·sin(2π·0.5·t) is 50·sin(π·t).
        return 50.0 * math.sin(math.pi * t) + self.rng.gauss(0.0, 1.0)


class CameraSimulator(Simulator):
    """Camera frame metadata: image ids from 1001, a drifting noisy brightness and the exposure it implies."""

    sensor_type = "camera"

    def sample(self, n: int, t: float) -> dict:
        raw = 150.0 + self.rng.gauss(0.0, 30.0) + 50.0 * math.sin(0.05 * t)
        # Conditionals rather than min(max()): per sample, and the builtin calls cost ~10×.
        brightness = 50 if raw < 50.0 else 255 if raw > 255.0 else int(raw)
        exposure = 1.0 - (brightness - 128) / 255
        # Never binds for brightness in [50, 255] (exposure stays in 0.50–1.31); kept as specified.
        exposure = 0.1 if exposure < 0.1 else 2.0 if exposure > 2.0 else exposure
        return {
            # From n, not a counter, so a simulator resumed with start_n continues the numbering.
            "image_id": 1001 + n,
            "resolution": "640x480",
            "brightness": brightness,
            "exposure": round(exposure, 3),
        }


SIMULATORS: dict[str, type[Simulator]] = {
    cls.sensor_type: cls for cls in (ForceSimulator, MotorSimulator, CameraSimulator)
}


def has_simulator(sensor_type: str) -> bool:
    """Whether the engine can simulate sensors of this type."""
    return sensor_type in SIMULATORS


def simulator_for(
    sensor_type: str, *, rate_hz: float, t0: float, rng: random.Random, start_n: int = 0, seed_key: str | None = None
) -> Simulator:
    """Build the simulator for a sensor type; ValueError for a type with no simulator."""
    try:
        cls = SIMULATORS[sensor_type]
    except KeyError:
        known = ", ".join(sorted(SIMULATORS))
        raise ValueError(f"No simulator for sensor type {sensor_type!r} (simulated types: {known})") from None
    return cls(rate_hz=rate_hz, t0=t0, rng=rng, start_n=start_n, seed_key=seed_key)


def rate_for(sensor_type: str, rate_hz: float | None) -> float:
    """The sensor's own rate if it has one, else the settings' rate for its type (FORCE_SENSOR_HZ, …)."""
    if rate_hz is not None:
        return float(rate_hz)
    try:
        name = _RATE_SETTINGS[sensor_type]
    except KeyError:
        raise ValueError(
            f"Sensor type {sensor_type!r} has no default rate: give the sensor its own rate_hz"
        ) from None
    # Read on every call rather than at import, so a changed setting (or a test's) takes effect.
    return float(getattr(settings, name))


def rng_for(seed: int | None, *keys: object) -> random.Random:
    """A Random seeded from `seed` and `keys` (session id, sensor name…), or an unseeded one if seed is None."""
    if seed is None:
        return random.Random()
    # A string seed is hashed with SHA-512 by Random itself, so the stream is the same in every
    # process; hash() of a tuple would change with PYTHONHASHSEED.
    return random.Random(f"{seed}:{keys!r}")


def seed_key_for(seed: int | None, *keys: object) -> str | None:
    """The `seed_key` of a simulator whose values depend on `seed`, `keys` and the sample's index only."""
    return None if seed is None else f"{seed}:{keys!r}"


def session_seed_key(seed: int | None, *, session_id: int, sensor: str, started_at: float) -> str:
    """The seed key of a session's sensor: ROBOTEST_SIMULATOR_SEED's if set, else the session's start instant.

    Either way every engine that runs the session simulates the same values for it, so one that
    takes over a killed one's session stores the samples that one would have stored.
    """
    return seed_key_for(seed if seed is not None else repr(started_at), session_id, sensor)


def start_index(*, rate_hz: float, t0: float, now: float) -> int:
    """Index of the first sample scheduled at or after `now`, to resume without back-filling downtime."""
    if now <= t0:
        return 0
    n = math.ceil((now - t0) * rate_hz)
    # The product above can round either way; settle it against the schedule itself.
    while n > 0 and t0 + (n - 1) / rate_hz >= now:
        n -= 1
    while t0 + n / rate_hz < now:
        n += 1
    return n
