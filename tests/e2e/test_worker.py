"""run_simulators as a real process: SIGTERM, kill -9 and restart, no Redis, no worker at all.

One daphne serves the module; each test starts its own workers on the module's PostgreSQL
database and Redis.
"""

import signal
import socket
import subprocess
import threading
import time
from datetime import datetime

import pytest

from tests.e2e.harness import (
    LOCAL,
    PYTHON,
    RATES,
    REPO,
    assert_rate,
    assert_seq_contiguous,
    by_sensor,
    process_env,
    schedule_steps,
    wait_until,
)

pytestmark = pytest.mark.e2e

# Longer than the engine's catch-up (sessions/engine.py CATCH_UP_SECONDS = 2): a restarted worker
# leaves the time nobody ran as a gap, which the kill -9 test then measures.
DOWNTIME_SECONDS = 2.5


def wait_for_readings(db, session_id: int, *, after: float, procs=(), timeout: float = 20.0) -> None:
    """Wait until every sensor has a stored reading stamped later than `after` (Unix time)."""

    def ready():
        grouped = by_sensor(db.readings(session_id))
        return all(sensor in grouped and grouped[sensor][-1].timestamp > after for sensor in RATES)

    wait_until(ready, timeout=timeout, interval=0.1, what=f"readings of session {session_id} after {after:.3f}", procs=procs)


def recording_for(web, production, workers, *, name: str, seconds: float):
    """A worker up and a session it has recorded for `seconds`: (worker, session id, started_at)."""
    worker = workers.start()
    production.wait_worker_up(worker)
    session_id = web.start(name=name)["session_id"]
    t0 = production.db.session(session_id)["started_at"]
    wait_for_readings(production.db, session_id, after=t0 + seconds, procs=(worker,))
    return worker, session_id, t0


def test_sigterm_stores_every_reading_and_exits_0_and_a_new_worker_resumes(web, production, workers):
    db = production.db
    worker, session_id, t0 = recording_for(web, production, workers, name="e2e sigterm", seconds=1.5)

    signalled = time.time()
    worker.signal(signal.SIGTERM)
    code = worker.wait(timeout=5.0)
    assert code is not None, "run_simulators did not exit within 5 s of SIGTERM"
    assert code == 0, f"run_simulators exited {code} after SIGTERM"

    rows = db.readings(session_id)
    session = db.session(session_id)
    assert session["status"] == "recording", "SIGTERM leaves the session recording, for the next worker"
    assert_seq_contiguous(rows, session["reading_count"])
    grouped = by_sensor(rows)
    for sensor, rate in RATES.items():
        readings = grouped[sensor]
        assert abs(readings[0].timestamp - t0) < 1e-5, f"{sensor}: the first sample is not at the start"
        assert set(schedule_steps(readings, rate)) == {1}, f"{sensor}: a hole before the SIGTERM"
        # Everything due before the signal was flushed on the way out.
        assert readings[-1].timestamp >= signalled - 1.0 / rate - 0.2, (
            f"{sensor}: last stored reading at {readings[-1].timestamp:.3f}, SIGTERM at {signalled:.3f}"
        )

    second = workers.start()
    back = production.wait_worker_up(second)
    wait_for_readings(db, session_id, after=back + 0.5, procs=(second,))
    summary = web.stop(session_id)
    assert summary["session_id"] == session_id

    rows = db.readings(session_id)
    assert summary["total_readings"] == len(rows) == db.session(session_id)["reading_count"]
    assert_seq_contiguous(rows, summary["total_readings"])
    grouped = by_sensor(rows)
    for sensor, rate in RATES.items():
        readings = grouped[sensor]
        assert summary["summary_stats"][sensor]["count"] == len(readings)
        steps = schedule_steps(readings, rate)
        # At most one hole: the time between the two workers that the second did not catch up.
        assert sum(step > 1 for step in steps) <= 1, f"{sensor}: holes of {[s for s in steps if s > 1]} periods"
        missing = (max(steps) - 1) / rate
        assert missing <= back - signalled, f"{sensor}: {missing:.3f} s missing, the worker was away {back - signalled:.3f} s"
        assert_rate(len(readings), rate, summary["session_duration"] - missing, sensor=sensor)


def test_kill_9_and_restart_lose_at_most_a_second_besides_the_downtime(web, production, workers):
    db = production.db
    worker, session_id, t0 = recording_for(web, production, workers, name="e2e kill -9", seconds=2.0)

    killed = time.time()
    worker.signal(signal.SIGKILL)
    assert worker.wait(timeout=5.0) == -signal.SIGKILL
    time.sleep(DOWNTIME_SECONDS)
    second = workers.start()
    # The restart counts from when the new worker is up: its own heartbeat, seen in /health.
    back = production.wait_worker_up(second)
    # Recording carries on by itself: no API call between the kill and these readings.
    wait_for_readings(db, session_id, after=back, procs=(second,))
    wait_for_readings(db, session_id, after=back + 2.0, procs=(second,))
    summary = web.stop(session_id)
    assert summary["session_id"] == session_id

    rows = db.readings(session_id)
    assert summary["total_readings"] == len(rows) == db.session(session_id)["reading_count"]
    assert_seq_contiguous(rows, summary["total_readings"])
    stopped = datetime.fromisoformat(summary["stopped_at"]).timestamp()
    grouped = by_sensor(rows)
    for sensor, rate in RATES.items():
        readings = grouped[sensor]
        assert summary["summary_stats"][sensor]["count"] == len(readings)
        steps = schedule_steps(readings, rate)
        holes = [i for i, step in enumerate(steps) if step > 1]
        assert len(holes) <= 1, f"{sensor}: holes of {[steps[i] for i in holes]} periods"
        if not holes:
            continue
        (hole,) = holes
        before, after = readings[: hole + 1], readings[hole + 1 :]
        gap = after[0].timestamp - before[-1].timestamp
        assert before[-1].timestamp < killed < after[0].timestamp
        assert gap <= (back - killed) + 1.0, (
            f"{sensor}: {gap:.3f} s between the last reading before the kill and the first after the "
            f"restart, the worker was away {back - killed:.3f} s"
        )
        # Outside the gap the rate holds: before it from the start, after it up to the stop.
        assert_rate(len(before), rate, before[-1].timestamp - t0 + 1.0 / rate, sensor=f"{sensor} before the kill")
        assert_rate(len(after), rate, stopped - after[0].timestamp, sensor=f"{sensor} after the restart")
    # The downtime is longer than the catch-up: some sensor must show the hole, or the test proved nothing.
    assert any(max(schedule_steps(grouped[s], r)) > 1 for s, r in RATES.items())


def test_run_simulators_refuses_to_start_without_redis(pg_database, production):
    env = process_env(settings=LOCAL, database_url=pg_database.url)  # no REDIS_URL: the in-memory layer
    result = subprocess.run(
        [PYTHON, "manage.py", "run_simulators"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "REDIS_URL" in result.stderr, output
    assert "Traceback" not in output, "a clear message, not a crash"
    assert pg_database.execute("SELECT count(*) FROM recording_engineheartbeat") == [(0,)], "it ran an engine"


def test_stop_without_a_worker_completes_the_session_itself(web, production, workers):
    assert web.health()["services"]["worker"]["status"] != "up", "a worker is running"
    session_id = web.start(name="e2e no worker")["session_id"]
    time.sleep(1.0)
    health = web.health()
    assert health["status"] == "degraded" and health["services"]["worker"]["needed"] is True, health

    asked = time.monotonic()
    summary = web.stop(session_id, timeout=10)
    # Had it waited for an engine it would take STOP_WAIT_SECONDS (15 s).
    assert time.monotonic() - asked < 10

    assert summary["session_id"] == session_id
    assert summary["status"] == "completed"
    assert summary["total_readings"] == 0
    assert {s: stats["count"] for s, stats in summary["summary_stats"].items()} == {s: 0 for s in RATES}
    assert summary["verdict"] == "error", "a sensor that produced nothing makes the verdict error"
    assert production.db.session(session_id)["status"] == "completed"


def test_a_worker_that_hears_of_the_stop_late_stores_nothing_after_it(web, production, workers):
    db = production.db
    worker, session_id, t0 = recording_for(web, production, workers, name="e2e late worker", seconds=1.0)

    # The worker stalls for a second (CPU starvation, a long GC, a slow disk) just as stop
    # arrives: when it resumes it has a second of samples due that belong after the stop.
    answer = {}
    stopper = threading.Thread(target=lambda: answer.update(summary=web.stop(session_id)))
    worker.signal(signal.SIGSTOP)
    try:
        stopper.start()
        time.sleep(1.0)
    finally:
        worker.signal(signal.SIGCONT)
    stopper.join(timeout=30)
    summary = answer["summary"]
    assert summary["session_id"] == session_id

    stopped = datetime.fromisoformat(summary["stopped_at"]).timestamp()
    rows = db.readings(session_id)
    late = [row for row in rows if row.timestamp > stopped + 1e-6]
    assert not late, (
        f"{len(late)} readings stamped after the session stopped ({stopped:.6f}), "
        f"the last {late[-1].timestamp - stopped:.3f} s after it; its duration is {summary['session_duration']} s"
    )
    assert summary["total_readings"] == len(rows)
    assert_seq_contiguous(rows, summary["total_readings"])
    grouped = by_sensor(rows)
    for sensor, rate in RATES.items():
        readings = grouped[sensor]
        assert set(schedule_steps(readings, rate)) == {1}, f"{sensor}: a hole in the recording"
        assert readings[-1].timestamp >= stopped - 1.0 / rate - 1e-5, f"{sensor}: readings before the stop are missing"
        assert summary["summary_stats"][sensor]["count"] == len(readings)
        assert_rate(len(readings), rate, summary["session_duration"], sensor=sensor)


def test_a_second_worker_takes_over_a_killed_workers_session_without_a_hole(web, production, workers):
    db = production.db
    first, second = workers.start(), workers.start()
    wait_until(
        lambda: {engine_name(first), engine_name(second)} <= live_engines(db),
        timeout=30, what="both workers' heartbeats", procs=(first, second),
    )
    session_id = web.start(name="e2e two workers")["session_id"]
    t0 = db.session(session_id)["started_at"]
    wait_for_readings(db, session_id, after=t0 + 1.5, procs=(first, second))

    owner = session_engine(db, session_id)
    by_name = {engine_name(p): p for p in (first, second)}
    assert owner in by_name, f"session owned by {owner!r}, not by one of the workers"
    victim = by_name.pop(owner)
    (survivor,) = by_name.values()
    killed = time.time()
    victim.signal(signal.SIGKILL)
    assert victim.wait(timeout=5.0) == -signal.SIGKILL
    wait_for_readings(db, session_id, after=killed + 1.0, procs=(survivor,))
    summary = web.stop(session_id)

    rows = db.readings(session_id)
    assert summary["total_readings"] == len(rows)
    assert_seq_contiguous(rows, summary["total_readings"])
    grouped = by_sensor(rows)
    for sensor, rate in RATES.items():
        readings = grouped[sensor]
        # Each sample once (two workers never both record it) and none lost: the survivor took
        # over within the engine's catch-up, from the last stored sample on.
        assert set(schedule_steps(readings, rate)) == {1}, f"{sensor}: steps {sorted(set(schedule_steps(readings, rate)))}"
        assert summary["summary_stats"][sensor]["count"] == len(readings)
        assert_rate(len(readings), rate, summary["session_duration"], sensor=sensor)
    assert session_engine(db, session_id) == engine_name(survivor)


def engine_name(proc) -> str:
    """The name an engine beats under (sessions/engine.py): host and pid."""
    return f"{socket.gethostname()}:{proc.pid}"


def session_engine(db, session_id: int) -> str:
    return db.execute("SELECT engine FROM recording_recordingsession WHERE id = %s", (session_id,))[0][0]


def live_engines(db) -> set[str]:
    rows = db.execute("SELECT name FROM recording_engineheartbeat WHERE beat_at > now() - interval '5 seconds'")
    return {name for (name,) in rows}
