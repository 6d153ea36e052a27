"""run_simulators as a real process: SIGTERM and restart, no Redis, no worker at all (kill -9: test_fault_worker.py).

One daphne serves the module; each test starts its own workers on the module's PostgreSQL
database and Redis.
"""

import signal
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
    assert_simulated_exactly,
    by_sensor,
    process_env,
    schedule_steps,
    wait_until,
)

pytestmark = pytest.mark.e2e


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
    # The second worker simulated the time between the two from the last stored sample on.
    assert_simulated_exactly(rows, session_id=session_id, t0=t0, until=datetime.fromisoformat(summary["stopped_at"]).timestamp())


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
