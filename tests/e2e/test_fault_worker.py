"""Worker faults with real processes and exact counts: kill -9, a frozen worker, two workers sharing.

Each session's stored readings are compared with an independent simulation of it from its start
to its stop (`assert_simulated_exactly`): every sample due is stored once, with the value the
session's simulators give it, whichever worker stored it and whatever happened between.
"""

import signal
import socket
import time
from datetime import datetime

import pytest

from tests.e2e.harness import (
    LOCAL,
    RATES,
    assert_seq_contiguous,
    assert_simulated_exactly,
    process_env,
    run_manage,
    wait_until,
)
from tests.e2e.test_worker import wait_for_readings

pytestmark = pytest.mark.e2e

# The workers of the frozen-worker test give up on a silent peer after this long.
SHORT_TIMEOUT = 2.0


def engine_name(proc) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def session_engine(db, session_id: int) -> str:
    return db.execute("SELECT engine FROM recording_recordingsession WHERE id = %s", (session_id,))[0][0]


def stopped_at(summary: dict) -> float:
    return datetime.fromisoformat(summary["stopped_at"]).timestamp()


def assert_complete(db, summary: dict, *, t0: float) -> list:
    """The stopped session holds every sample from its start to its stop once, and says so."""
    session_id = summary["session_id"]
    rows = db.readings(session_id)
    assert summary["total_readings"] == len(rows) == db.session(session_id)["reading_count"]
    assert_seq_contiguous(rows, len(rows))
    assert_simulated_exactly(rows, session_id=session_id, t0=t0, until=stopped_at(summary))
    assert summary["lost_readings"] == 0
    for sensor in RATES:
        assert summary["summary_stats"][sensor]["count"] == sum(1 for r in rows if r.sensor == sensor)
    return rows


def test_kill_9_then_a_new_worker_simulates_the_downtime_and_stores_every_sample_once(web, production, workers):
    db = production.db
    first = workers.start()
    production.wait_worker_up(first)
    session_id = web.start(name="e2e kill -9")["session_id"]
    t0 = db.session(session_id)["started_at"]
    wait_for_readings(db, session_id, after=t0 + 1.5, procs=(first,))

    killed = time.time()
    first.signal(signal.SIGKILL)
    assert first.wait(timeout=5.0) == -signal.SIGKILL
    time.sleep(3.0)  # nobody records: three seconds of samples are due and not stored
    second = workers.start()
    back = production.wait_worker_up(second)
    # Recording carries on by itself, the downtime included: no API call between the kill and these.
    wait_for_readings(db, session_id, after=back + 1.0, procs=(second,))
    summary = web.stop(session_id)

    rows = assert_complete(db, summary, t0=t0)
    assert summary["verdict"] != "error"
    downtime = [r for r in rows if killed + 0.2 < r.timestamp < back - 0.2]
    assert len(downtime) >= sum(RATES.values()) * 2, "the samples of the downtime are stored too"


def test_a_second_worker_takes_over_a_killed_workers_session_within_seconds(web, production, workers):
    db = production.db
    first, second = workers.start(), workers.start()
    wait_until(
        lambda: {engine_name(first), engine_name(second)} <= live_engines(db),
        timeout=30, what="both workers' heartbeats", procs=(first, second),
    )
    session_id = web.start(name="e2e takeover")["session_id"]
    t0 = db.session(session_id)["started_at"]
    wait_for_readings(db, session_id, after=t0 + 1.5, procs=(first, second))

    by_name = {engine_name(p): p for p in (first, second)}
    victim = by_name.pop(session_engine(db, session_id))
    (survivor,) = by_name.values()
    killed = time.monotonic()
    victim.signal(signal.SIGKILL)
    assert victim.wait(timeout=5.0) == -signal.SIGKILL
    # The bound: within 5 s of the heartbeat expiring (5 s by default). On one host the
    # survivor sees the victim's process is gone and does not wait for the heartbeat at all.
    wait_until(lambda: session_engine(db, session_id) == engine_name(survivor), timeout=10.0,
               interval=0.05, what="the survivor's claim", procs=(survivor,))
    assert time.monotonic() - killed <= 5.0 + 5.0
    wait_for_readings(db, session_id, after=time.time() + 0.5, procs=(survivor,))
    summary = web.stop(session_id)
    assert_complete(db, summary, t0=t0)


def test_a_frozen_worker_loses_its_session_and_stores_nothing_when_it_wakes(web, production, procs):
    db = production.db
    workers = [production.start_worker(procs, ROBOTEST_HEARTBEAT_TIMEOUT=str(SHORT_TIMEOUT)) for _ in range(2)]
    try:
        wait_until(lambda: {engine_name(w) for w in workers} <= live_engines(db), timeout=30,
                   what="both workers' heartbeats", procs=tuple(workers))
        session_id = web.start(name="e2e frozen worker")["session_id"]
        t0 = db.session(session_id)["started_at"]
        wait_for_readings(db, session_id, after=t0 + 1.0, procs=tuple(workers))

        by_name = {engine_name(w): w for w in workers}
        frozen = by_name.pop(session_engine(db, session_id))
        (other,) = by_name.values()
        # A stalled process (a long GC, a swapped-out VM): alive, silent, holding readings it will flush.
        frozen.signal(signal.SIGSTOP)
        stalled = time.monotonic()
        try:
            wait_until(lambda: session_engine(db, session_id) == engine_name(other),
                       timeout=SHORT_TIMEOUT + 5.0, interval=0.05, what="the other worker's claim", procs=(other,))
            took = time.monotonic() - stalled
            wait_for_readings(db, session_id, after=time.time() + 0.5, procs=(other,))
        finally:
            frozen.signal(signal.SIGCONT)
        # Its last heartbeat was up to a second old when it froze (engines beat every second).
        assert SHORT_TIMEOUT - 1.2 <= took <= SHORT_TIMEOUT + 5.0, f"taken over after {took:.2f} s"
        # The frozen worker wakes with seconds of samples due, and flushes them or lets go of the
        # session first: either way it stores nothing of it (its flushes carry its name).
        woke = time.time()
        wait_until(lambda: beat_since(db, engine_name(frozen), woke), timeout=10, what="the woken worker's heartbeat",
                   procs=(frozen, other))
        time.sleep(1.0)
        summary = web.stop(session_id)
        assert_complete(db, summary, t0=t0)
        assert frozen.alive() and other.alive()
    finally:
        for worker in workers:
            worker.stop()
        production.cleanup()


def test_two_workers_split_four_sessions_two_and_two_and_store_no_sample_twice(web, production, workers):
    db = production.db
    rigs = [f"e2e-split-{i}" for i in range(3)]
    create_simulated_rigs(production, rigs)
    first, second = workers.start(), workers.start()
    wait_until(lambda: {engine_name(first), engine_name(second)} <= live_engines(db), timeout=30,
               what="both workers' heartbeats", procs=(first, second))
    started = [web.start(name="e2e split")] + [web.start(rig=rig, name="e2e split") for rig in rigs]
    ids = [s["session_id"] for s in started]
    t0s = {i: db.session(i)["started_at"] for i in ids}
    for session_id in ids:
        wait_for_readings(db, session_id, after=t0s[session_id] + 1.5, procs=(first, second))

    owners = [session_engine(db, i) for i in ids]
    assert sorted(owners.count(engine_name(w)) for w in (first, second)) == [2, 2], owners
    summaries = [web.stop(i) for i in ids]
    for summary in summaries:
        # Only the default rig's sensors are named in RATES; the others copy them.
        assert_complete(db, summary, t0=t0s[summary["session_id"]])
    duplicates = db.execute(
        "SELECT session_id, sensor_id, timestamp, count(*) FROM recording_reading WHERE session_id = ANY(%s) "
        "GROUP BY 1, 2, 3 HAVING count(*) > 1 LIMIT 5", (ids,)
    )
    assert duplicates == []


def create_simulated_rigs(production, names: list[str]) -> None:
    """Simulated rigs like the default one (rigs made over the API are external)."""
    code = (
        "from sensors.models import Rig, Sensor, DEFAULT_RIG\n"
        "base = Rig.objects.get(name=DEFAULT_RIG)\n"
        f"for name in {names!r}:\n"
        "    rig = Rig.objects.create(name=name, source=Rig.Source.SIMULATED)\n"
        "    for s in base.sensors.all():\n"
        "        Sensor.objects.create(rig=rig, name=s.name, sensor_type=s.sensor_type, unit=s.unit, rate_hz=s.rate_hz)\n"
    )
    run_manage(["shell", "-c", code], env=process_env(settings=LOCAL, database_url=production.db.url))


def beat_since(db, name: str, since: float) -> bool:
    rows = db.execute("SELECT extract(epoch FROM beat_at), sessions FROM recording_engineheartbeat WHERE name = %s",
                      (name,))
    return bool(rows) and float(rows[0][0]) > since and rows[0][1] == 0


def live_engines(db) -> set[str]:
    rows = db.execute("SELECT name FROM recording_engineheartbeat WHERE beat_at > now() - interval '2 seconds'")
    return {name for (name,) in rows}
