"""Validation rules: the defaults from the settings, a rig's rule snapshot, and the validator.

A rule is a JSON-safe dict (it is stored with a recording session as the rule set in force):

    code, sensor_type ("" when it targets one sensor), sensor (a sensor name or None), field ("" or
    the key checked in an object value), kind ("range" | "delta"), warning_low, warning_high,
    error_low, error_high (float | None), lag (int, delta rules only), message ("" = generated)

`range` flags a value outside a bound (exceeding is strict: a value equal to a bound passes);
`delta` flags a reading whose absolute difference from the reading `lag` readings before it (same
sensor) exceeds the high bound. A rule with both a warning and an error band gives one result whose
status is the worst band reached.
"""

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from numbers import Real
from operator import itemgetter

import numpy as np
from django.conf import settings

from sensors import columnar

logger = logging.getLogger(__name__)

RANGE = "range"
DELTA = "delta"
WARNING = "warning"
ERROR = "error"

RULE_KEYS = (
    "code", "sensor_type", "sensor", "field", "kind",
    "warning_low", "warning_high", "error_low", "error_high", "lag", "message",
)
_BOUND_KEYS = ("warning_low", "warning_high", "error_low", "error_high")
_STATUS = (None, WARNING, ERROR)  # indexed by band rank
_INF = float("inf")


def _rule(code: str, sensor_type: str, *, field: str = "", kind: str = RANGE, warning_low=None,
          warning_high=None, error_low=None, error_high=None, lag: int = 0, message: str = "") -> dict:
    return {
        "code": code, "sensor_type": sensor_type, "sensor": None, "field": field, "kind": kind,
        "warning_low": warning_low, "warning_high": warning_high,
        "error_low": error_low, "error_high": error_high, "lag": lag, "message": message,
    }


def default_rules() -> list[dict]:
    """The seed's rules, built from the settings as they are now."""
    force_high = float(settings.FORCE_THRESHOLD_HIGH)
    motor = float(settings.MOTOR_THRESHOLD)
    return [
        _rule("force_threshold", "force", warning_high=0.8 * force_high, error_high=force_high),
        _rule("force_spike", "force", kind=DELTA, warning_high=50.0, lag=2, message="Force spike"),
        _rule("motor_threshold", "motor", warning_low=-motor, warning_high=motor),
        _rule("camera_brightness_low", "camera", field="brightness", warning_low=30.0,
              message="Insufficient lighting"),
        _rule("camera_brightness_high", "camera", field="brightness", warning_high=240.0,
              message="Overexposure"),
    ]


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def rules_snapshot(*, rig) -> list[dict]:
    """The rule set in force for a session of `rig`: the defaults merged with the stored rules.

    Stored rules that apply are those for a sensor type and those for a sensor of this rig. A stored
    rule whose code is a default's replaces that default (a disabled one only removes it); a
    disabled rule never applies; other codes add to the defaults.
    """
    from django.db.models import Q

    from sensors.models import ValidationRule

    stored = list(
        ValidationRule.objects.filter(Q(sensor__isnull=True) | Q(sensor__rig=rig))
        .select_related("sensor")
        .order_by("code", "id")
    )
    replaced = {row.code for row in stored}
    rules = [rule for rule in default_rules() if rule["code"] not in replaced]
    for row in stored:
        if not row.enabled:
            continue
        rules.append({
            "code": row.code,
            "sensor_type": "" if row.sensor_id else row.sensor_type,
            "sensor": row.sensor.name if row.sensor_id else None,
            "field": row.field,
            "kind": row.kind,
            **{key: _optional_float(getattr(row, key)) for key in _BOUND_KEYS},
            "lag": int(row.lag),
            "message": row.message,
        })
    return rules


@dataclass
class Episode:
    """One validation result as it grows: consecutive violations of one rule on one sensor."""

    rule: str
    sensor: str
    sensor_type: str
    status: str
    message: str
    first_timestamp: float
    last_timestamp: float
    count: int
    peak: float
    details: dict
    is_open: bool = True
    result_id: int | None = None

    def as_json(self, *, session_id: int) -> dict:
        """The one shape of a validation result: the ingest answer, the live feed and `/api/v1/results/`."""
        return {
            "id": self.result_id,
            "session_id": session_id,
            "sensor_type": self.sensor_type,
            "sensor": self.sensor,
            "rule": self.rule,
            "status": self.status,
            "message": self.message,
            "timestamp": self.last_timestamp,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "count": self.count,
            "peak": self.peak,
            "details": self.details,
            "open": self.is_open,
        }


def _format_value(value) -> str:
    if type(value) is int and abs(value) < 10**12:
        return str(value)
    # Two decimals as the seed wrote them; huge values in short scientific form (messages are bounded).
    return f"{value:.2f}" if abs(value) < 1e12 else f"{value:.6g}"


def _format_bound(bound: float) -> str:
    return repr(round(bound, 6))


class _Check:
    """One rule as applied to one sensor, with the episode it has open there."""

    __slots__ = (
        "code", "sensor", "sensor_type", "unit", "field", "delta", "lag", "message",
        "warning_low", "warning_high", "error_low", "error_high",
        "wl", "wh", "el", "eh", "inner_low", "inner_high", "details",
        "episode", "peak_rank", "peak_excess", "words",
    )

    def __init__(self, rule: dict, sensor: str, sensor_type: str, unit: str) -> None:
        kind = rule.get("kind", RANGE)
        if kind not in (RANGE, DELTA):
            raise ValueError(f"rule {rule.get('code')!r}: kind must be 'range' or 'delta', got {kind!r}")
        self.code = rule["code"]
        self.sensor = sensor
        self.sensor_type = sensor_type
        self.unit = unit
        self.field = rule.get("field") or ""
        self.delta = kind == DELTA
        self.lag = int(rule.get("lag") or 0)
        self.message = rule.get("message") or ""
        for key in _BOUND_KEYS:
            setattr(self, key, _optional_float(rule.get(key)))
        # Infinite stand-ins for missing bounds keep the hot path free of None tests.
        self.wl = -_INF if self.warning_low is None else self.warning_low
        self.wh = _INF if self.warning_high is None else self.warning_high
        self.el = -_INF if self.error_low is None else self.error_low
        self.eh = _INF if self.error_high is None else self.error_high
        # A violation's distance outside the band is measured from the innermost bound of its side.
        self.inner_low = max(self.wl, self.el)
        self.inner_high = min(self.wh, self.eh)
        self.details = {"kind": kind, "field": self.field, **{key: getattr(self, key) for key in _BOUND_KEYS}}
        if self.delta:
            self.details["lag"] = self.lag
        self.episode: Episode | None = None
        self.peak_rank = 0
        self.peak_excess = 0.0
        self.words: dict[tuple[str, bool], tuple[str, str]] = {}

    def excess(self, peak: float) -> float:
        if self.delta:
            return abs(peak)
        return peak - self.inner_high if peak > self.inner_high else self.inner_low - peak

    def new_peak(self, episode: Episode, rank: int, excess: float, peak) -> None:
        """The open episode's peak is now `peak`: its status and message follow it."""
        self.peak_rank = rank
        self.peak_excess = excess
        episode.peak = peak
        episode.status = status = _STATUS[rank]
        episode.message = self.describe(status, peak)

    def describe(self, status: str, peak: float) -> str:
        """The result's message: the peak between words that depend only on the rule, status and side."""
        if self.delta:
            above = True
        elif status == ERROR:
            # The side of the band the peak crossed (bands that overlap oddly, say a warning high
            # below the error low, can have a peak above one band and below the other).
            above = peak > self.eh
        else:
            above = peak > self.wh
        words = self.words.get((status, above))
        if words is None:
            words = self.words[(status, above)] = self._words(status, above)
        return words[0] + _format_value(peak) + words[1]

    def _words(self, status: str, above: bool) -> tuple[str, str]:
        unit = f" {self.unit}" if self.unit else ""
        name = f"{self.sensor} {self.field}" if self.field else self.sensor
        lead = f"{self.message}: " if self.message else ""
        if self.delta:
            bound = self.error_high if status == ERROR else self.warning_high
            return (f"{lead}{name} changed by ",
                    f"{unit} over {self.lag} readings, above {status} limit {_format_bound(bound)}")
        if status == ERROR:
            bound = self.error_high if above else self.error_low
        else:
            bound = self.warning_high if above else self.warning_low
        return f"{lead}{name} ", f"{unit} {'above' if above else 'below'} {status} limit {_format_bound(bound)}"


# Touches are (batch position, rule order, episode).
_touch_order = itemgetter(0, 1)


class Validator:
    """Checks readings against a session's rule snapshot and groups violations into episodes."""

    def __init__(self, rules: list[dict], sensors: dict[str, str], *, units: dict[str, str] | None = None) -> None:
        """`sensors` maps each sensor name to its type; `units` (optional) names units for messages."""
        units = units or {}
        self._checks: dict[str, list[_Check]] = {}
        self._kinds: dict[str, tuple] = {}
        self._sensors: dict[str, tuple[tuple[_Check, ...], deque | None]] = {}
        self._changes: dict[int, Episode] = {}
        self._max_lag = 0
        for sensor, sensor_type in sensors.items():
            # One rule per code on a sensor: a rule for the sensor itself beats one for its type.
            chosen: dict[str, dict] = {}
            for rule in rules:
                if rule.get("sensor"):
                    if rule["sensor"] == sensor:
                        chosen[rule["code"]] = rule
                elif rule.get("sensor_type") == sensor_type and rule["code"] not in chosen:
                    chosen[rule["code"]] = rule
            checks = []
            for rule in chosen.values():
                check = _Check(rule, sensor, sensor_type, units.get(sensor, ""))
                if check.delta and check.lag < 1:
                    logger.warning("Rule %s ignored on sensor %s: a delta rule needs lag >= 1", check.code, sensor)
                    continue
                checks.append(check)
            lag = max((check.lag for check in checks if check.delta), default=0)
            self._max_lag = max(self._max_lag, lag)
            self._checks[sensor] = checks
            # Sensors whose checks are alike (same rules, bounds and lags) are checked together by feed_batch.
            self._kinds[sensor] = tuple(
                (c.code, c.field, c.delta, c.lag, c.wl, c.wh, c.el, c.eh) for c in checks
            )
            # Recent values are kept only for a sensor a delta rule looks back on.
            self._sensors[sensor] = (tuple(checks), deque(maxlen=lag) if lag else None)

    def feed(self, sensor: str, timestamp: float, value) -> None:
        """Check one reading; readings of one sensor must come in timestamp order."""
        state = self._sensors.get(sensor)
        if state is None:
            return
        checks, history = state
        for check in checks:
            field = check.field
            if field:
                x = value.get(field) if isinstance(value, dict) else None
            else:
                x = value
            kind = type(x)
            if kind is not float and kind is not int:
                if kind is bool or not isinstance(x, Real):
                    continue
                x = float(x)
            if x - x != 0:  # NaN or infinite: not a measurement
                continue
            if check.delta:
                lag = check.lag
                if len(history) < lag:
                    continue
                before = history[-lag]
                if field:
                    before = before.get(field) if isinstance(before, dict) else None
                kind = type(before)
                if kind is not float and kind is not int:
                    if kind is bool or not isinstance(before, Real):
                        continue
                if before - before != 0:
                    continue
                x = abs(x - before)
                if x > check.eh:
                    rank = 2
                elif x > check.wh:
                    rank = 1
                else:
                    rank = 0
                excess = x
            else:
                if x > check.eh or x < check.el:
                    rank = 2
                elif x > check.wh or x < check.wl:
                    rank = 1
                else:
                    rank = 0
                excess = x - check.inner_high if x > check.inner_high else check.inner_low - x
            episode = check.episode
            if not rank:
                if episode is not None:
                    episode.is_open = False
                    check.episode = None
                    self._changes[id(episode)] = episode
                continue
            if episode is None:
                status = _STATUS[rank]
                episode = check.episode = Episode(
                    rule=check.code, sensor=sensor, sensor_type=check.sensor_type, status=status,
                    message=check.describe(status, x), first_timestamp=timestamp, last_timestamp=timestamp,
                    count=1, peak=x, details=dict(check.details),
                )
                check.peak_rank = rank
                check.peak_excess = excess
            else:
                episode.count += 1
                episode.last_timestamp = timestamp
                # The peak is the worst band first, then the furthest outside it; so the status
                # (worst band reached) is always the peak's band.
                if rank > check.peak_rank or (rank == check.peak_rank and excess > check.peak_excess):
                    check.new_peak(episode, rank, excess, x)
            self._changes[id(episode)] = episode
        if history is not None:
            history.append(value)

    def feed_batch(self, sensors: Sequence[str], timestamps: Sequence[float], values: Sequence) -> None:
        """Check a batch in timestamp order: the same episodes and changes as `feed` on each reading in turn.

        Sensors under the same rules are checked together, as arrays (sensors.columnar); a sensor
        whose values an array cannot compare exactly goes through `feed`, reading by reading.
        """
        positions: dict[str, list[int]] = {}
        for k, name in enumerate(sensors):
            group = positions.get(name)
            if group is None:
                positions[name] = [k]
            else:
                group.append(k)
        alike: dict[tuple, list[str]] = {}
        for name in positions:
            state = self._sensors.get(name)
            if state is not None and state[0]:
                alike.setdefault(self._kinds[name], []).append(name)
        touches: list[tuple[int, int, Episode]] = []
        for names in alike.values():
            found = self._check_columns(names, positions, timestamps, values)
            if found is None:  # one of them cannot be compared as arrays: each on its own
                found = []
                for name in names:
                    mine = self._check_columns([name], positions, timestamps, values)
                    if mine is None:
                        mine = self._check_one_by_one(name, positions[name], timestamps, values)
                    found.extend(mine)
            touches.extend(found)
        # The order `feed` would have noted them in: by the reading that first touched each, then by rule.
        touches.sort(key=_touch_order)
        changes = self._changes
        for _, _, episode in touches:
            changes.setdefault(id(episode), episode)

    def _check_columns(self, names: list[str], positions: dict[str, list[int]], timestamps: Sequence[float],
                       values: Sequence):
        """Sensors under the same rules as one set of arrays: (position, rule order, episode) of each episode touched.

        None when some value cannot be compared exactly as float64; nothing has changed then.
        """
        states = [self._sensors[name] for name in names]
        segments, pos, vals_of, past_lengths = [], [], [], []
        for name, (_, history) in zip(names, states, strict=True):
            mine = positions[name]
            vals = [values[k] for k in mine]
            past = list(history) if history is not None else []
            segments.append(past + vals)
            vals_of.append(vals)
            pos.extend(mine)
            past_lengths.append(len(past))
        counts = np.array([len(v) for v in vals_of])
        pos_array = np.array(pos)
        h = np.array(past_lengths)
        owner = np.repeat(np.arange(len(names)), counts)
        # Each batch reading's place in the segments laid end to end (a sensor's past values, then its batch).
        seg_starts = np.concatenate(([0], np.cumsum(h + counts)[:-1]))
        local = np.arange(len(pos)) - np.repeat(np.cumsum(counts) - counts, counts)
        at = seg_starts[owner] + h[owner] + local
        checks = states[0][0]
        extracted: dict[str, tuple] = {}
        for check in checks:
            if check.field not in extracted:
                everything = [v for segment in segments for v in segment]
                if check.field:
                    field = check.field
                    everything = [v.get(field) if isinstance(v, dict) else None for v in everything]
                arrays = columnar.numbers(everything)
                if arrays is None:
                    return None
                extracted[check.field] = (everything, *arrays)
        touches = []
        for order, kind in enumerate(checks):
            xs, x, ok = extracted[kind.field]
            if kind.delta:
                lag = kind.lag
                valid = ok[at] & (h[owner] + local >= lag)
                valid[valid] &= ok[at[valid] - lag]
                idx = np.flatnonzero(valid)
                excess = np.abs(x[at[idx]] - x[at[idx] - lag])
                rank = columnar.delta_ranks(excess, kind)
            else:
                idx = np.flatnonzero(ok[at])
                rank, excess = columnar.range_ranks(x[at[idx]], kind)
            if not idx.size:
                continue
            group = owner[idx]
            starts, ends, peaks = columnar.runs(rank, excess, group)
            sensors_at = np.arange(len(names))
            firsts = np.searchsorted(group, sensors_at)
            lasts = np.searchsorted(group, sensors_at, side="right") - 1
            # Per run, as plain lists: where it starts and ends in the batch, its peak's value index and band.
            where = pos_array[idx]
            first_at, last_at = where[starts].tolist(), where[ends].tolist()
            peak_j, bands = at[idx[peaks]].tolist(), rank[peaks].tolist()
            run_group = group[starts].tolist()
            open_at_end = (ends == lasts[group[starts]]).tolist()
            # A sensor's episode open before the batch continues into the run starting at its first check.
            has_values = firsts <= lasts
            runs_from = dict(zip(starts.tolist(), range(len(starts))))
            lag = kind.lag
            continued = set()
            for g in np.flatnonzero(has_values).tolist():
                check = states[g][0][order]
                episode = check.episode
                if episode is None:
                    continue
                first = int(firsts[g])
                touches.append((pos[int(idx[first])], order, episode))
                n = runs_from.get(first)
                if n is None:
                    episode.is_open = False
                    check.episode = None
                    continue
                continued.add(n)
                episode.count += int(ends[n]) - first + 1
                episode.last_timestamp = timestamps[last_at[n]]
                band, j = bands[n], peak_j[n]
                peak = abs(xs[j] - xs[j - lag]) if check.delta else xs[j]
                excess_at = peak if check.delta else check.excess(peak)
                if band > check.peak_rank or (band == check.peak_rank and excess_at > check.peak_excess):
                    check.new_peak(episode, band, excess_at, peak)
                if not open_at_end[n]:
                    episode.is_open = False
                    check.episode = None
            delta = kind.delta
            counts_of = (ends - starts + 1).tolist()
            for n, j in enumerate(peak_j):
                if n in continued:
                    continue
                check = states[run_group[n]][0][order]
                band = bands[n]
                status = _STATUS[band]
                if delta:
                    peak = excess_at = abs(xs[j] - xs[j - lag])
                else:
                    peak = xs[j]
                    excess_at = check.excess(peak)
                still_open = open_at_end[n]
                episode = Episode(
                    check.code, check.sensor, check.sensor_type, status, check.describe(status, peak),
                    timestamps[first_at[n]], timestamps[last_at[n]], counts_of[n], peak, dict(check.details),
                    still_open,
                )
                if still_open:
                    check.episode = episode
                    check.peak_rank = band
                    check.peak_excess = excess_at
                touches.append((first_at[n], order, episode))
        for (_, history), vals in zip(states, vals_of, strict=True):
            if history is not None:
                history.extend(vals[-history.maxlen:])
        return touches

    def _check_one_by_one(self, sensor: str, pos: list[int], timestamps: Sequence[float], values: Sequence):
        """One sensor's readings through `feed`, noting which reading first touched each episode."""
        saved, self._changes = self._changes, {}
        touches = []
        try:
            for k in pos:
                value = values[k]
                seen = len(self._changes)
                self.feed(sensor, timestamps[k], value)
                grown = len(self._changes) - seen
                if grown:
                    noted = list(islice(reversed(self._changes.values()), grown))[::-1]
                    touches.extend((k, order, episode) for order, episode in enumerate(noted))
        finally:
            self._changes = saved
        return touches

    def take_changes(self) -> list[Episode]:
        """Episodes opened, grown or closed since the last call, each once; then forget them."""
        changes = list(self._changes.values())
        self._changes.clear()
        return changes

    def open_episodes(self) -> list[Episode]:
        return [check.episode for checks in self._checks.values() for check in checks if check.episode]

    def close_all(self) -> list[Episode]:
        """Close every open episode (the session ends) and return them.

        The episodes returned here are no longer pending for `take_changes`; other pending changes are.
        """
        closed = []
        for checks in self._checks.values():
            for check in checks:
                episode = check.episode
                if episode is not None:
                    episode.is_open = False
                    check.episode = None
                    self._changes.pop(id(episode), None)
                    closed.append(episode)
        return closed

    def restore(self, *, open_episodes: list[Episode], recent: dict[str, list]) -> None:
        """Resume after a restart with the episodes still open and each sensor's last values.

        `recent` maps a sensor name to its last values, oldest first (`max_lag()` of them suffice).
        An episode whose sensor or rule this validator does not have cannot continue: it is closed
        and reported by the next `take_changes`.
        """
        for sensor, values in recent.items():
            state = self._sensors.get(sensor)
            if state is not None and state[1] is not None:
                state[1].extend(values)
        for episode in open_episodes:
            check = next((c for c in self._checks.get(episode.sensor, ()) if c.code == episode.rule), None)
            if check is None:
                episode.is_open = False
                self._changes[id(episode)] = episode
                continue
            episode.is_open = True
            check.episode = episode
            check.peak_rank = 2 if episode.status == ERROR else 1
            check.peak_excess = check.excess(episode.peak)

    def max_lag(self) -> int:
        """How many recent values per sensor `restore` needs for the delta rules."""
        return self._max_lag
