"""Validation alone: `Validator.feed` reading by reading beside `Validator.feed_batch` on the same batches.

The seed's force signal (the real simulators, N sensors at 1 kHz, the default rules: threshold
and spike) cut into batches as the engine cuts them; each side gets a fresh validator and takes
its changes after every batch, as the pipeline does. CPU seconds of this process
(`time.process_time`), so other work on the machine moves the figures less; both sides run in
every repetition, in alternating order, with the cycle collector on (as Python runs by default)
and paused (as the pipeline runs `feed_batch`). No database.

    .venv/bin/python benchmarks/validation.py --repeat 5
"""

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated seconds")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    _bench.configure("sqlite:///:memory:", fresh=False)  # settings only: no database is used
    print("machine:", _bench.machine())

    from sensors.rules import Validator, default_rules
    from sensors.simulators import rng_for, simulator_for

    sensors = {f"f{i:03d}": "force" for i in range(args.sensors)}
    t0 = 1_700_000_000.0
    sims = [(name, simulator_for("force", rate_hz=1000, t0=t0, rng=rng_for(1, "validation", name))) for name in sensors]
    step = args.batch / (args.sensors * 1000)
    batches = []
    k = 1
    while (k - 1) * step < args.seconds:
        items = sorted(((name, ts, value) for name, sim in sims for ts, value in sim.due(t0 + k * step)),
                       key=lambda item: item[1])
        batches.append(tuple(zip(*items)))
        k += 1
    readings = sum(len(names) for names, _, _ in batches)
    rules = default_rules()

    def one_by_one() -> int:
        validator = Validator(rules, sensors)
        changes = 0
        for names, stamps, values in batches:
            feed = validator.feed
            for name, stamp, value in zip(names, stamps, values):
                feed(name, stamp, value)
            changes += len(validator.take_changes())
        return changes

    def as_arrays() -> int:
        validator = Validator(rules, sensors)
        changes = 0
        for names, stamps, values in batches:
            validator.feed_batch(names, stamps, values)
            changes += len(validator.take_changes())
        return changes

    sides = {"feed": one_by_one, "feed_batch": as_arrays}
    seconds: dict[tuple[str, bool], list[float]] = {}
    counts = {}
    for rep in range(args.repeat):
        order = list(sides) if rep % 2 == 0 else list(sides)[::-1]
        for collector in (True, False):
            for side in order:
                gc.collect()
                if not collector:
                    gc.disable()
                start = time.process_time()
                counts[side] = sides[side]()
                seconds.setdefault((side, collector), []).append(time.process_time() - start)
                gc.enable()
    assert counts["feed"] == counts["feed_batch"], counts
    print(f"{readings:,} readings in batches of {args.batch:,}, {counts['feed']:,} result changes, "
          f"median of {args.repeat}:")
    for collector in (True, False):
        base = statistics.median(seconds[("feed", collector)])
        for side in sides:
            median = statistics.median(seconds[(side, collector)])
            print(f"  collector {'on ' if collector else 'off'} {side:>10}: {median * 1e6 / readings:.2f} µs CPU a reading "
                  f"({readings / median:,.0f}/s), {base / median:.2f}x feed")


if __name__ == "__main__":
    main()
