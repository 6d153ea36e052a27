"""Pipeline throughput (validate + store + publish) beside a raw bulk insert of the same rows.

Two measurements, on PostgreSQL (default) or SQLite (`--db sqlite`), publishing through the real
Redis channel layer (redis://127.0.0.1:6379/12):

  pipeline  Pre-generated simulator readings (N force sensors at 1 kHz) go through
            `readings_record` in batches, each batch's events through `events.publish`; in the
            same run the same rows are written by a raw bulk insert (psycopg 3 binary COPY with
            `write_row`, or sqlite3 `executemany`), timed the same way. Ratio = pipeline / raw.
  engine    The real `sessions.engine.Engine` in real time with N x 1 kHz sensors, for each N
            given: does it keep up (stored readings/s = N x 1000, bounded lag) and is every
            reading stored?

    .venv/bin/python benchmarks/pipeline_throughput.py pipeline --db pg --repeat 3 --breakdown
    .venv/bin/python benchmarks/pipeline_throughput.py pipeline --db pg --compare as-is,results-binary
    .venv/bin/python benchmarks/pipeline_throughput.py engine --db pg --sensors 10,20,30,40,50

The database (robotest_bench, or <tmp>/robotest_bench.sqlite3) is dropped, created and migrated
at start; benchmark rows are deleted before every timed run so each inserts into an empty table.
"""

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench
from variants import SWITCHABLE, VARIANTS, install_variant, use_switchable

SQLITE_URL = f"sqlite:///{tempfile.gettempdir()}/robotest_bench.sqlite3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("pipeline", "engine"))
    parser.add_argument("--db", choices=("pg", "sqlite"), default="pg")
    parser.add_argument("--database-url", help="override the benchmark database URL (it is dropped and recreated)")
    parser.add_argument("--sensors", default="50", help="force sensors at --rate; engine mode: a comma list to ramp")
    parser.add_argument("--rate", type=float, default=1000.0, help="samples per second per sensor")
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated (pipeline) or wall (engine) seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="engine: seconds left out of the steady rate")
    parser.add_argument("--batch", default="10000", help="pipeline: readings per batch (a comma list to compare)")
    parser.add_argument("--repeat", type=int, default=3, help="pipeline: repetitions (order alternates)")
    parser.add_argument("--subscribers", type=int, default=1,
                        help="channels in the session's group, as if that many server processes had a client watching")
    parser.add_argument("--no-publish", action="store_true", help="pipeline: store only (isolates publishing's cost)")
    parser.add_argument("--rules", choices=("default", "none"), default="default",
                        help="pipeline: the session's rule snapshot; none isolates validation's cost")
    parser.add_argument("--breakdown", action="store_true",
                        help="pipeline: time the steps of readings_record (wrappers called once per batch)")
    parser.add_argument("--variant", default="as-is", metavar="|".join(VARIANTS),
                        help="swap in a candidate change for this process only (see variants.py)")
    parser.add_argument("--compare", metavar="as-is,results-copy",
                        help="pipeline: run each of these variants on the same readings in every repetition")
    parser.add_argument("--profile", metavar="FILE", help="pipeline: cProfile the database thread into FILE (.pstats)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    url = args.database_url or (_bench.PG_URL if args.db == "pg" else SQLITE_URL)
    _bench.configure(url, fresh=True)
    facts = _bench.machine()
    print("machine:", json.dumps(facts))
    install_variant(args.variant)
    if args.mode == "pipeline":
        results = pipeline_mode(args)
    else:
        results = engine_mode(args)
    _bench.save_json(args.json, facts, args, results)


# --- shared ---------------------------------------------------------------------------------

def _vendor() -> str:
    from django.db import connection

    return connection.vendor


def _bench_rig(name: str, sensors: int, rate: float, source: str):
    from sensors.services import rig_create

    return rig_create(
        name=name, source=source,
        sensors=[{"name": f"f{i:03d}", "sensor_type": "force", "unit": "N", "rate_hz": rate} for i in range(sensors)],
    )


def _start(rig, name: str):
    from sessions.models import RecordingSession
    from sessions.services import session_start

    RecordingSession.objects.filter(rig=rig, status=RecordingSession.Status.RECORDING).update(
        status=RecordingSession.Status.COMPLETED
    )
    return session_start(rig=rig, name=name)


def _end(session_id: int) -> None:
    # Not session_complete: its per-sensor statistics are a read benchmark of their own.
    from sessions.models import RecordingSession

    RecordingSession.objects.filter(pk=session_id).update(status=RecordingSession.Status.COMPLETED)


async def _subscribe(layer, group: str, count: int) -> None:
    # Channels nobody drains: group_send serializes and stores one message per channel, as it
    # would for that many daphne processes; the layer's expiry (10 s) bounds what piles up.
    for _ in range(count):
        await layer.group_add(group, await layer.new_channel())


def _check_stored(session_id: int, expected: int | None) -> dict:
    """Table count, the session's counter and seq continuity; `expected` is what was generated."""
    from django.db.models import Count, Max, Min

    from sessions.models import Reading, RecordingSession, ValidationResult

    stored = Reading.objects.filter(session_id=session_id).aggregate(
        n=Count("id"), seqs=Count("seq", distinct=True), top=Max("seq"), low=Min("seq")
    )
    counter = RecordingSession.objects.values_list("reading_count", flat=True).get(pk=session_id)
    check = {
        "table_count": stored["n"],
        "reading_count": counter,
        "distinct_seq": stored["seqs"],
        "max_seq": stored["top"],
        "results": ValidationResult.objects.filter(session_id=session_id).count(),
    }
    ok = stored["n"] == counter == stored["seqs"] == (stored["top"] or 0) and (stored["low"] in (1, None))
    if expected is not None:
        ok = ok and stored["n"] == expected
        check["expected"] = expected
    check["ok"] = ok
    return check


# --- pipeline mode ------------------------------------------------------------------------

def pipeline_mode(args) -> list[dict]:
    from channels.layers import get_channel_layer
    from django.conf import settings

    from sensors.simulators import rng_for, simulator_for

    sensors = int(args.sensors)
    batches = [int(b) for b in args.batch.split(",")]
    # Pipeline sides: the installed code, or several switchable variants compared in one run.
    sides = args.compare.split(",") if args.compare else [args.variant]
    if args.compare:
        bad = [s for s in sides if s not in SWITCHABLE] + [v for v in args.variant.split("+") if v in SWITCHABLE[1:]]
        if bad:
            raise SystemExit(f"--compare takes {', '.join(SWITCHABLE)}; --variant must not name them then ({bad})")
    stamp = time.strftime("%H%M%S")
    rig = _bench_rig(f"bench-pipe-{stamp}", sensors, args.rate, "simulated")
    sensor_names = list(rig.sensors.order_by("name").values_list("name", flat=True))
    sensor_ids = dict(rig.sensors.values_list("name", "id"))
    print(f"vendor={_vendor()} sensors={sensors}x{args.rate:g} Hz simulated_seconds={args.seconds:g} "
          f"batches={batches} repeat={args.repeat} subscribers={args.subscribers} publish={not args.no_publish} "
          f"rules={args.rules} variant={args.variant} sides={sides}")
    results = []
    for batch in batches:
        for rep in range(args.repeat):
            # Rotate the order, so no side always runs right after another's writes.
            everyone = [*sides, "raw"]
            order = everyone[rep % len(everyone):] + everyone[:rep % len(everyone)]
            t0 = time.time()
            sims = [
                (name, simulator_for("force", rate_hz=args.rate, t0=t0,
                                     rng=rng_for(settings.ROBOTEST_SIMULATOR_SEED, "bench", batch, rep, name)))
                for name in sensor_names
            ]
            items_batches = _pregenerate(sims, t0, args.seconds, batch, sensors * args.rate)
            generated = sum(len(b) for b in items_batches)
            row = {"batch": batch, "rep": rep, "generated": generated, "order": "/".join(order), "sides": {}}
            session_id = None
            for side in order:
                _bench.clear_readings()
                if side == "raw":
                    if session_id is None:
                        session_id = _start(rig, f"bench raw {batch} #{rep}").pk
                        _end(session_id)
                    row["raw_s"] = _run_raw(session_id, items_batches, sensor_ids)
                    continue
                if args.compare:
                    use_switchable(side)
                session = _start(rig, f"bench {side} {batch} #{rep}")
                session_id = session.pk
                if args.rules == "none":
                    type(session).objects.filter(pk=session.pk).update(rules=[])
                timing = asyncio.run(_run_pipeline(session.pk, items_batches, get_channel_layer(), args))
                timing["check"] = _check_stored(session.pk, generated)
                _end(session.pk)
                row["sides"][side] = timing
            row["raw_rate"] = generated / row["raw_s"]
            for side, timing in row["sides"].items():
                timing["rate"] = generated / timing["pipeline_s"]
                timing["record_rate"] = generated / timing["record_s"]
                timing["ratio"] = timing["rate"] / row["raw_rate"]
            results.append(row)
            for side in sides:
                timing = row["sides"][side]
                vs_first = "" if side == sides[0] else f" vs {sides[0]}={timing['rate'] / row['sides'][sides[0]]['rate']:.2f}x"
                print(
                    f"batch={batch:>6} rep={rep} order={row['order']} n={generated:,} [{side}] "
                    f"pipeline={_bench.fmt_rate(timing['rate'])}/s (record {_bench.fmt_rate(timing['record_rate'])}/s, "
                    f"publish {timing['publish_s']:.2f} s) raw={_bench.fmt_rate(row['raw_rate'])}/s "
                    f"ratio={timing['ratio']:.0%}{vs_first} stored_ok={timing['check']['ok']} "
                    f"results={timing['check']['results']}",
                    flush=True,
                )
                if timing.get("steps"):
                    print("    steps (s): " + ", ".join(f"{k}={v:.2f}" for k, v in timing["steps"].items()), flush=True)
        mine = [r for r in results if r["batch"] == batch]
        for side in sides:
            timings = [r["sides"][side] for r in mine]
            vs_first = "" if side == sides[0] else (
                f", vs {sides[0]} {_bench.median([r['sides'][side]['rate'] / r['sides'][sides[0]]['rate'] for r in mine]):.2f}x"
            )
            print(
                f"MEDIAN batch={batch} [{side}]: pipeline {_bench.fmt_rate(_bench.median([t['rate'] for t in timings]))}/s, "
                f"record only {_bench.fmt_rate(_bench.median([t['record_rate'] for t in timings]))}/s, "
                f"raw {_bench.fmt_rate(_bench.median([r['raw_rate'] for r in mine]))}/s, "
                f"ratio {_bench.median([t['ratio'] for t in timings]):.0%}{vs_first}, "
                f"all stored: {all(t['check']['ok'] for t in timings)}",
                flush=True,
            )
            if timings[0].get("steps"):
                keys = timings[0]["steps"].keys()
                print("    median steps (s): " + ", ".join(
                    f"{k}={_bench.median([t['steps'][k] for t in timings]):.2f}" for k in keys), flush=True)
    return results


def _pregenerate(sims, t0: float, seconds: float, batch: int, per_second: float) -> list[list[tuple]]:
    """Slices of the schedule of `batch` readings each, taken as the engine takes them (`due`)."""
    step = batch / per_second
    out = []
    k = 1
    while True:
        horizon = t0 + min(k * step, seconds)
        items = []
        for name, sim in sims:
            for ts, value in sim.due(horizon):
                items.append((name, ts, value))
        if items:
            out.append(items)
        if k * step >= seconds:
            return out
        k += 1


async def _run_pipeline(session_id: int, items_batches, layer, args) -> dict:
    from django.db import connection

    from sessions.live import events
    from sessions.recording.pipeline import SessionRecorder, readings_record

    await _subscribe(layer, events.LIVE_GROUP, args.subscribers)
    recorder = SessionRecorder(session_id)
    loop = asyncio.get_running_loop()
    # Like the engine: one database thread that keeps its connection; the loop publishes.
    db = ThreadPoolExecutor(max_workers=1)
    profiler = cProfile.Profile() if args.profile else None
    await loop.run_in_executor(db, recorder.reload)

    def record(items):
        if profiler is not None:
            profiler.enable()
        try:
            return readings_record(recorder=recorder, items=items)
        finally:
            if profiler is not None:
                profiler.disable()

    steps = _Steps() if args.breakdown else None
    if steps is not None:
        steps.install()
    record_s = publish_s = 0.0
    start = time.perf_counter()
    for items in items_batches:
        t1 = time.perf_counter()
        result = await loop.run_in_executor(db, record, items)
        t2 = time.perf_counter()
        if not args.no_publish:
            for event in events.batch_events(result):
                await events.publish(layer, session_id, event)
        t3 = time.perf_counter()
        record_s += t2 - t1
        publish_s += t3 - t2
    total = time.perf_counter() - start
    if steps is not None:
        steps.uninstall()
    await loop.run_in_executor(db, lambda: connection.close())
    db.shutdown()
    if profiler is not None:
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(25)
    out = {"pipeline_s": total, "record_s": record_s, "publish_s": publish_s}
    if steps is not None:
        out["steps"] = {**steps.seconds, "rest_of_record": record_s - sum(steps.seconds.values()), "publish": publish_s}
    return out


class _Steps:
    """Wall time of readings_record's steps, by wrapping the functions it calls once per batch.

    rest_of_record is what is left: locking the session, sorting, the columns, the values' JSON,
    and the wait for the COPY to end (what the database takes longer than the Python work beside it).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo = []

    def install(self) -> None:
        from django.db.backends.base.base import BaseDatabaseWrapper

        from sensors.rules import Validator
        from sessions.recording import pipeline, rollups, storage

        self._patch(pipeline, "_take_positions", "take_positions")
        # Python work done while the COPY runs (pipeline._store): encoding, validation, rollup sums, lines.
        self._patch(storage, "_binary_rows", "copy_encode")
        self._patch(Validator, "feed_batch", "validate")
        self._patch(rollups, "rollup_columns", "rollup_sums")
        self._patch(pipeline, "_lines", "live_lines")
        self._patch(rollups, "rollups_write", "rollups_write")
        self._patch(pipeline, "results_save", "results_save")
        self._patch(BaseDatabaseWrapper, "commit", "commit")

    def _patch(self, owner, attr: str, key: str) -> None:
        original = getattr(owner, attr)
        self.seconds[key] = 0.0

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - t

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def uninstall(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)


def _run_raw(session_id: int, items_batches, sensor_ids: dict[str, int]) -> float:
    """The same rows by the plainest bulk insert the database offers, one transaction a batch."""
    from django.db import connection

    from sessions.models import Reading

    table = Reading._meta.db_table
    seq = 0
    prepared = []
    if connection.vendor == "postgresql":
        for items in items_batches:
            rows = []
            for name, ts, value in items:
                seq += 1
                rows.append((session_id, sensor_ids[name], seq, datetime.fromtimestamp(ts, tz=UTC), value))
            prepared.append(rows)
        return _copy_rows(table, prepared)
    epoch = datetime(1970, 1, 1)
    for items in items_batches:
        rows = []
        for name, ts, value in items:
            seq += 1
            rows.append((session_id, sensor_ids[name], seq, str(epoch + timedelta(microseconds=round(ts * 1e6))),
                         repr(value) if type(value) is float else json.dumps(value)))
        prepared.append(rows)
    return _sqlite_rows(table, prepared)


def _copy_rows(table: str, prepared) -> float:
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    connection.close()
    sql = f"COPY {table} (session_id, sensor_id, seq, timestamp, value) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as conn:
        start = time.perf_counter()
        for rows in prepared:
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(sql) as copy:
                copy.set_types(["int8", "int8", "int8", "timestamptz", "jsonb"])
                for row in rows:
                    copy.write_row(row)
        return time.perf_counter() - start


def _sqlite_rows(table: str, prepared) -> float:
    import sqlite3

    from django.db import connection

    path = connection.settings_dict["NAME"]
    connection.close()
    sql = f"INSERT INTO {table} (session_id, sensor_id, seq, timestamp, value) VALUES (?, ?, ?, ?, ?)"
    conn = sqlite3.connect(path, isolation_level=None)
    # The same PRAGMAs as the application's connection (robotest_site.config.database).
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # Django turns foreign keys on for every SQLite connection; checking them is part of the cost.
    conn.execute("PRAGMA foreign_keys=ON")
    try:
        start = time.perf_counter()
        for rows in prepared:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


# --- engine mode --------------------------------------------------------------------------

class CountingLayer:
    """The real channel layer, noting each published flush: when, how big, how old its newest reading.

    A flush goes out as events of at most `events.MAX_EVENT_READINGS` readings, back to back
    and in seq order: an event shorter than that (or the next event not following on) ends one.
    """

    def __init__(self, inner) -> None:
        from sessions.live import events

        self.inner = inner
        self.batches: list[tuple[float, int, float]] = []
        self.events = 0
        self._limit = getattr(events, "MAX_EVENT_READINGS", None)
        self._open: list = []  # [size, next first_seq] of the flush being published

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def group_send(self, group, message):
        from sessions.live import events

        # Events carry "readings" (dicts) or, since 16ee18a, "lines" (each reading's JSON text).
        readings = message.get("readings") or message.get("lines") if message.get("type") == "sensor.batch" else None
        if readings and group == events.LIVE_GROUP:
            self.events += 1
            if self._open and self._open[1] != message["first_seq"]:
                self._open = []
            size = (self._open[0] if self._open else 0) + len(readings)
            if self._limit is not None and len(readings) == self._limit:
                self._open = [size, message["last_seq"] + 1]
            else:
                self._open = []
                newest = readings[-1]
                newest = json.loads(newest) if isinstance(newest, str) else newest
                self.batches.append((time.time(), size, newest["timestamp"]))
        await self.inner.group_send(group, message)


def engine_mode(args) -> list[dict]:
    ns = [int(n) for n in args.sensors.split(",")]
    print(f"vendor={_vendor()} engine wall seconds={args.seconds:g} warmup={args.warmup:g} "
          f"rate={args.rate:g} Hz subscribers={args.subscribers} variant={args.variant}")
    results = []
    stamp = time.strftime("%H%M%S")
    for n in ns:
        _bench.clear_readings()
        rig = _bench_rig(f"bench-engine-{n}-{stamp}", n, args.rate, "simulated")
        session = _start(rig, f"engine {n}")
        row = asyncio.run(_run_engine(session.pk, n, args))
        _end(session.pk)
        row["check"] = _check_stored(session.pk, None)
        row["gaps"], row["span_s"] = _schedule_gaps(session.pk, args.rate)
        row["check"]["ok"] = row["check"]["ok"] and row["gaps"] == 0
        results.append(row)
        print(
            f"N={n:>4} due={_bench.fmt_rate(row['due_rate'])}/s stored={_bench.fmt_rate(row['stored_rate'])}/s "
            f"({row['stored_rate'] / row['due_rate']:.1%}) batch median={row['batch_median']:.0f} "
            f"lag median={row['lag_median']:.3f}s p95={row['lag_p95']:.3f}s max={row['lag_max']:.3f}s "
            f"end={row['lag_end']:.3f}s dropped_events={row['dropped_events']} keeps_up={row['keeps_up']} "
            f"stored={row['check']['table_count']:,} ok={row['check']['ok']} "
            f"(at stop {row['stored_at_stop']:,} after {row['run_s']:.1f} s; stop took {row['stop_s']:.1f} s; "
            f"schedule span {row['span_s']:.1f} s; largest flush {row['flush_max'][0]:,} readings in "
            f"{row['flush_max'][1]:.1f} s; flushes from the stop on (start, s, readings): {row['flushes_after_stop']})",
            flush=True,
        )
    return results


async def _run_engine(session_id: int, n: int, args) -> dict:
    from channels.layers import channel_layers

    from sessions import engine as engine_module
    from sessions.engine import Engine
    from sessions.live import events

    # A layer of its own per event loop: channels_redis binds its receive lock to the first loop
    # that receives, and each N runs on a new loop (asyncio.run).
    layer = CountingLayer(channel_layers.make_backend("default"))
    await _subscribe(layer, events.LIVE_GROUP, args.subscribers)
    # Each flush the engine makes: (start, seconds, readings offered), noted in its database thread.
    flushes: list[tuple[float, float, int]] = []
    recorded = engine_module.readings_record

    def traced(**kwargs):
        t = time.time()
        try:
            return recorded(**kwargs)
        finally:
            flushes.append((t, time.time() - t, len(kwargs["items"])))

    engine_module.readings_record = traced
    engine = Engine(layer=layer)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    samples: list[tuple[float, int]] = []
    start = time.time()
    dropped = 0
    while time.time() - start < args.seconds:
        await asyncio.sleep(0.25)
        runner = engine.runners.get(session_id)
        if runner is not None and runner.recorder.next_seq > 0:
            samples.append((time.time(), runner.recorder.next_seq - 1))
            dropped = runner.dropped_events
    stopped_at = time.time()
    stored_at_stop = samples[-1][1] if samples else 0
    stop.set()
    await task
    stop_s = time.time() - stopped_at
    engine_module.readings_record = recorded
    after_stop = [(round(t - stopped_at, 2), round(d, 2), n) for t, d, n in flushes if t + d >= stopped_at]
    window = [(t, c) for t, c in samples if t - start >= args.warmup]
    (ta, ca), (tb, cb) = window[0], window[-1]
    stored_rate = (cb - ca) / (tb - ta)
    lags = [t - newest for t, _, newest in layer.batches if t - start >= args.warmup and t - start <= args.seconds]
    sizes = [size for t, size, _ in layer.batches if t - start >= args.warmup and t - start <= args.seconds]
    lags_sorted = sorted(lags)
    due_rate = n * args.rate
    p95 = lags_sorted[int(0.95 * (len(lags_sorted) - 1))] if lags_sorted else float("inf")
    lag_end = lags[-1] if lags else float("inf")
    return {
        "sensors": n,
        "due_rate": due_rate,
        "stored_rate": stored_rate,
        "batches": len(sizes),
        "batch_median": _bench.median(sizes),
        "lag_median": _bench.median(lags),
        "lag_p95": p95,
        "lag_max": max(lags, default=float("inf")),
        "lag_end": lag_end,
        "dropped_events": dropped,
        "run_s": stopped_at - start,
        "stored_at_stop": stored_at_stop,
        "stop_s": stop_s,
        # Flushes running at or started after the stop: (start − stop s, seconds, readings).
        "flushes_after_stop": after_stop,
        "flush_max": max(((n, round(d, 2)) for _, d, n in flushes), default=(0, 0.0)),
        # Keeping up: storing what falls due, with a lag that stays small rather than growing.
        "keeps_up": stored_rate >= 0.98 * due_rate and lag_end < 1.0 and p95 < 1.0,
    }


def _schedule_gaps(session_id: int, rate: float) -> tuple[int, float]:
    """Readings missing from each sensor's schedule between its first and last stored reading,
    and the longest such span in seconds."""
    from django.db.models import Count, Max, Min

    from sessions.models import Reading

    missing = 0
    span = 0.0
    for row in (
        Reading.objects.filter(session_id=session_id)
        .values("sensor_id")
        .annotate(n=Count("id"), lo=Min("timestamp"), hi=Max("timestamp"))
    ):
        expected = round((row["hi"] - row["lo"]).total_seconds() * rate) + 1
        missing += abs(expected - row["n"])
        span = max(span, (row["hi"] - row["lo"]).total_seconds())
    return missing, span


if __name__ == "__main__":
    main()
