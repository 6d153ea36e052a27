"""PostgreSQL faults under a recording worker: restart, an outage past the buffer, a statement
timeout, a full disk. A PostgreSQL server of the module's own (tests/e2e/instances.py); the
machine's shared one is never touched.

Each test ends with exact counts: every sample due from the session's start to its stop is
stored once with its simulated value, or (past the buffer) counted in `lost_readings`.
"""

import secrets
import time
from collections import Counter
from datetime import datetime

import psycopg
import pytest

from sessions.engine import RETRY_MAX_SECONDS
from tests.e2e.harness import (
    LOCAL,
    RATES,
    ProductionStack,
    assert_seq_contiguous,
    assert_simulated_exactly,
    claim_redis_db,
    create_token,
    process_env,
    release_redis_db,
    run_manage,
    wait_until,
)
from tests.e2e.instances import PrivatePostgres
from tests.e2e.test_worker import wait_for_readings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server():
    with PrivatePostgres.started() as pg:
        yield pg


@pytest.fixture(scope="module")
def stack(server, module_procs):
    """daphne on the private server; workers with extra settings are started per test (`recording`)."""
    database = server.database(f"robotest_fault_{secrets.token_hex(3)}")
    redis_url, claim = claim_redis_db()
    env = process_env(settings=LOCAL, database_url=database.url)
    run_manage(["migrate", "--noinput", "-v", "0"], env=env)
    stack = ProductionStack(module_procs, database=database, redis_url=redis_url, token=create_token(env))
    stack.start_web()
    try:
        yield stack
    finally:
        module_procs.stop_all()
        release_redis_db(redis_url, claim)


def recording(stack, procs, name: str, **settings):
    """A worker with `settings` up, and a session it has recorded for a second: (worker, session id, t0)."""
    worker = stack.start_worker(procs, **settings)
    stack.wait_worker_up(worker)
    session_id = stack.api.start(name=name)["session_id"]
    t0 = stack.db.session(session_id)["started_at"]
    wait_for_readings(stack.db, session_id, after=t0 + 1.0, procs=(worker,))
    return worker, session_id, t0


@pytest.fixture
def fresh(stack, procs):
    yield stack
    procs.stop_all()
    stack.cleanup()


def stopped(summary: dict) -> float:
    return datetime.fromisoformat(summary["stopped_at"]).timestamp()


def stop_and_read(fresh, session_id: int) -> tuple[dict, list]:
    """Stop the session; its summary and stored rows, which the summary counts and seq numbers 1..n."""
    summary = fresh.api.stop(session_id)
    rows = fresh.db.readings(session_id)
    assert summary["total_readings"] == len(rows)
    assert_seq_contiguous(rows, len(rows))
    return summary, rows


def log_lines(proc, text: str) -> int:
    return sum(text in line for line in proc.output().splitlines())


def test_a_restart_mid_session_loses_nothing_and_the_worker_carries_on(fresh, server, procs):
    worker, session_id, t0 = recording(fresh, procs, "e2e pg restart")
    server.restart()  # pg_ctl restart -m fast: every connection is cut
    back = time.time()
    wait_for_readings(fresh.db, session_id, after=back + 1.0, procs=(worker,))
    summary, rows = stop_and_read(fresh, session_id)
    assert_simulated_exactly(rows, session_id=session_id, t0=t0, until=stopped(summary))
    assert summary["lost_readings"] == 0 and summary["verdict"] != "error"
    assert worker.alive() and fresh.web.alive()


def test_an_outage_longer_than_the_buffer_drops_the_oldest_counts_them_and_the_verdict_is_error(fresh, server, procs):
    # A buffer of one second of the session's rates (160 readings), and four seconds without the database.
    worker, session_id, t0 = recording(fresh, procs, "e2e pg outage", ROBOTEST_ENGINE_BUFFER_SECONDS="1")
    server.stop()
    down = time.time()
    try:
        wait_until(lambda: log_lines(worker, "buffer is full") > 0, timeout=15, what="the worker's drop message",
                   procs=(worker,))
        time.sleep(2.0)
    finally:
        server.start()
    back = time.time()
    wait_for_readings(fresh.db, session_id, after=back + 1.0, procs=(worker,))
    summary, rows = stop_and_read(fresh, session_id)
    lost = summary["lost_readings"]
    due = due_samples(session_id, t0, stopped(summary))
    stored = Counter((r.sensor, round(r.timestamp * 1_000_000)) for r in rows)
    assert not stored - due, "a stored sample that was never due"
    assert max(stored.values()) == 1, "a sample stored twice"
    # Stored and lost add up to what the session's rates imply from its start to its stop, exactly.
    assert len(rows) + lost == sum(due.values())
    assert lost >= sum(RATES.values()) * 1.5, f"only {lost} lost in {back - down:.1f} s with a 1 s buffer"
    assert summary["verdict"] == "error"
    # What was dropped lies inside the outage, up to the worker's next retry (backoff of at most
    # RETRY_MAX_SECONDS) less the buffer's second; the rest is stored.
    missing = sorted(ts / 1e6 for (_, ts) in due - stored)
    assert down - 1.0 < missing[0] and missing[-1] < back + RETRY_MAX_SECONDS + 0.5
    # /health says it too, from the worker's next heartbeat on.
    wait_until(lambda: fresh.api.health()["services"]["worker"]["lost_readings"] == lost, timeout=5,
               what=f"/health showing the {lost} lost readings", procs=(worker,))
    assert log_lines(worker, "buffer is full") <= 3, "the drops are logged, not once per reading"
    assert worker.alive() and fresh.web.alive()


def test_a_statement_timeout_rolls_the_flush_back_whole_and_the_worker_retries(fresh, procs):
    worker, session_id, t0 = recording(fresh, procs, "e2e statement timeout", ROBOTEST_DB_STATEMENT_TIMEOUT="0.5")
    # Another client holds the session's row for three seconds: each flush waits for it past the timeout.
    with psycopg.connect(fresh.db.url.replace("postgres://", "postgresql://")) as conn:
        conn.execute("SELECT id FROM recording_recordingsession WHERE id = %s FOR UPDATE", (session_id,))
        wait_until(lambda: log_lines(worker, "statement timeout") > 0, timeout=10, what="the worker's timeout",
                   procs=(worker,))
        time.sleep(2.5)
        count_while_locked = fresh.db.execute("SELECT count(*) FROM recording_reading WHERE session_id = %s",
                                              (session_id,))[0][0]
    released = time.time()
    wait_for_readings(fresh.db, session_id, after=released + 1.0, procs=(worker,))
    summary, rows = stop_and_read(fresh, session_id)
    assert count_while_locked < len(rows)
    assert_simulated_exactly(rows, session_id=session_id, t0=t0, until=stopped(summary))
    assert summary["lost_readings"] == 0
    # One clear line when it starts, and no more than one a REPEAT_LOG_SECONDS after.
    assert 1 <= log_lines(worker, "could not store the readings") <= 2
    assert worker.alive()


def test_a_full_disk_refuses_flushes_whole_until_space_returns(fresh, server, procs):
    worker, session_id, t0 = recording(fresh, procs, "e2e disk full")
    # Fill the readings table to over a megabyte (the WAL's segments are 1 MB), then let no file grow.
    fresh.db.execute(
        "INSERT INTO recording_reading (session_id, sensor_id, seq, timestamp, value) "
        "SELECT 0, 0, g, now(), '0'::jsonb FROM generate_series(1, 30000) g"
    )
    sizes = fresh.db.execute(
        "SELECT pg_relation_size('recording_reading'), pg_relation_size('reading_session_sensor_time')"
    )[0]
    server.limit_file_size(max(*sizes, 1 << 20) + 16 * 8192)
    try:
        wait_until(lambda: log_lines(worker, "could not store the readings") > 0, timeout=30,
                   what="a flush refused for want of space", procs=(worker,))
        full = time.time()
        time.sleep(1.0)
        error_line = next(line for line in worker.output().splitlines() if "could not store the readings" in line)
    finally:
        server.limit_file_size(None)
    wait_for_readings(fresh.db, session_id, after=time.time() + 1.0, procs=(worker,))
    summary, rows = stop_and_read(fresh, session_id)
    assert "File too large" in error_line or "space" in error_line, error_line
    assert_simulated_exactly(rows, session_id=session_id, t0=t0, until=stopped(summary))
    assert summary["lost_readings"] == 0 and full > t0
    assert worker.alive()


def due_samples(session_id: int, t0: float, until: float) -> Counter:
    """(sensor, microsecond) of every sample due from `t0` to `until` at the test rates."""
    due = Counter()
    for sensor, rate in RATES.items():
        n = 0
        while t0 + n / rate <= until:
            due[(sensor, round((t0 + n / rate) * 1_000_000))] += 1
            n += 1
    return due

