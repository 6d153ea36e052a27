"""A batch of readings checked as arrays: the episodes `Validator.feed` finds reading by reading.

`Validator.feed_batch` hands each (sensor, rule) pair's values here as one float array. A rule's
band gives every reading a rank (0 passes, 1 warning, 2 error); an episode is a run of non-zero
ranks, so episodes open, continue and close at run boundaries, and each run's peak is its first
reading of the highest rank, furthest outside the band. Python then touches each episode once,
not each reading.

Exactness: values are compared as float64, as Python compares floats. An int is exact in float64
below 2**52 (a delta of two such ints too); a value of any other type that Python would treat as
a number (a huge int, a Fraction) makes `numbers` answer None, and the caller checks that sensor's
readings one by one instead.
"""

import numpy as np

_EXACT_INT = 2**52
# Types that are never a measurement (bool is an int subclass, but not a number to a rule).
_NOT_NUMBERS = frozenset((bool, str, dict, list, type(None)))
_INF = float("inf")


def numbers(xs: list) -> tuple[np.ndarray, np.ndarray] | None:
    """`xs` as float64 beside a mask of the finite numbers among them; None when an array cannot be exact."""
    kinds = set(map(type, xs))
    if kinds <= {float}:
        x = np.array(xs, dtype=np.float64)
        return x, np.isfinite(x)
    if kinds <= {float, int} and not any(type(v) is int and not -_EXACT_INT < v < _EXACT_INT for v in xs):
        x = np.array(xs, dtype=np.float64)
        return x, np.isfinite(x)
    if not kinds <= _NOT_NUMBERS | {float, int}:
        return None
    x = np.zeros(len(xs))
    ok = np.zeros(len(xs), dtype=bool)
    for i, v in enumerate(xs):
        kind = type(v)
        if kind is float:
            if v - v == 0:
                x[i] = v
                ok[i] = True
        elif kind is int:
            if not -_EXACT_INT < v < _EXACT_INT:
                return None
            x[i] = v
            ok[i] = True
    return x, ok


def range_ranks(x: np.ndarray, check) -> tuple[np.ndarray, np.ndarray]:
    """Each value's band rank and its distance outside the band, for a range rule."""
    rank = np.where((x > check.eh) | (x < check.el), 2, np.where((x > check.wh) | (x < check.wl), 1, 0))
    excess = np.where(x > check.inner_high, x - check.inner_high, check.inner_low - x)
    return rank.astype(np.int8), excess


def delta_ranks(change: np.ndarray, check) -> np.ndarray:
    """Each absolute change's band rank, for a delta rule (its excess is the change itself)."""
    return np.where(change > check.eh, 2, np.where(change > check.wh, 1, 0)).astype(np.int8)


def runs(rank: np.ndarray, excess: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of non-zero rank within each group (sensor): (first index, last index, index of the peak) of each.

    `group` is non-decreasing: each sensor's values lie together. The peak is the run's first value
    of its highest rank and, within that rank, of the largest excess: what updating the peak only on
    a strictly worse value, reading by reading, keeps.
    """
    flagged = rank > 0
    joined = np.zeros(len(rank), dtype=bool)  # flagged, and so is the value before it of the same group
    joined[1:] = flagged[1:] & flagged[:-1] & (group[1:] == group[:-1])
    begins = flagged & ~joined
    starts = np.flatnonzero(begins)
    if not starts.size:
        return starts, starts, starts
    ending = flagged.copy()
    ending[:-1] &= ~joined[1:]
    ends = np.flatnonzero(ending)
    inside = np.flatnonzero(flagged)
    lengths = ends - starts + 1
    offsets = np.zeros(len(starts), dtype=np.intp)
    np.cumsum(lengths[:-1], out=offsets[1:])
    run_of = np.repeat(np.arange(len(starts)), lengths)
    rank_in = rank[inside]
    excess_in = excess[inside]
    top_rank = np.maximum.reduceat(rank_in, offsets)
    at_top = rank_in == top_rank[run_of]
    top_excess = np.maximum.reduceat(np.where(at_top, excess_in, -_INF), offsets)
    best = np.flatnonzero(at_top & (excess_in == top_excess[run_of]))
    first_best = best[np.concatenate(([True], run_of[best][1:] != run_of[best][:-1]))]
    return starts, ends, inside[first_best]
