"""Redis stopped for 10 s under a recording session: daphne and run_simulators on a Redis of the module's own.

Recording goes on (the database is the record); no process dies or spins; the open WebSocket
connection stays open, readings flow again within seconds of Redis's return, and the client is
told with a `lag` frame which sequence positions it missed, which it then fetches over REST.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import AsyncExitStack

import pytest

from tests.e2e.harness import (
    RATES,
    assert_rate,
    assert_seq_contiguous,
    by_sensor,
    schedule_steps,
    wait_healthy,
    wait_worker_up,
)
from tests.e2e.instances import PrivateRedis
from tests.e2e.test_live_feed import (
    assert_same_readings,
    in_thread,
    launch_daphne,
    open_feed,
    seq_gaps,
    single_readings,
    stored_rows,
)

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 10.0
# The bound: readings reach the client again within this long of Redis answering.
RESUME_SECONDS = 5.0
# CPU a process may use during the outage beyond what it used over as long a time just before it,
# in cores. The worker records at ~160 readings/s all along (a third of a core here); a retry loop
# that does not wait shows as most of a core more.
MAX_EXTRA_CORES = 0.2
# Log lines (one JSON record each) a process may write from Redis stopping until the session
# stopped after its return: a record for each fault and its end, or one each second, is fine;
# a traceback per event (about 100 a second here) is a thousand.
MAX_OUTAGE_LOG_LINES = 100

_TICK = os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def private_redis():
    with PrivateRedis.started() as server:
        yield server


@pytest.fixture(scope="module")
def redis_url(private_redis) -> str:
    """daphne and the worker talk through the module's own Redis, which the test stops and starts."""
    return private_redis.url


@pytest.fixture(scope="module")
def daphne(production, module_procs):
    web = launch_daphne(module_procs, production.env, production.token)
    production.web, production.api = web.proc, web.api
    wait_healthy(web.api, web.proc)
    return web


@pytest.fixture(scope="module")
def daphne_b(production, module_procs):
    """A second web process, which no client uses until Redis is down."""
    web = launch_daphne(module_procs, production.env, production.token, "daphne-b")
    wait_healthy(web.api, web.proc)
    return web


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICK


def log_lines(proc) -> int:
    with open(proc.log_path, "rb") as log:
        return sum(1 for _ in log)


class Watch:
    """CPU time and log lines of the processes under test, between two instants."""

    def __init__(self, *procs) -> None:
        self.procs = procs
        self.at = time.monotonic()
        self.cpu = {p.name: cpu_seconds(p.pid) for p in procs}
        self.lines = {p.name: log_lines(p) for p in procs}

    def since(self, start: Watch) -> dict[str, dict[str, float]]:
        seconds = self.at - start.at
        return {
            p.name: {
                "cores": (self.cpu[p.name] - start.cpu[p.name]) / seconds,
                "lines": self.lines[p.name] - start.lines[p.name],
            }
            for p in self.procs
        }


def watch_outage(procs, seconds: float) -> None:
    """Wait out the outage, checking every half second that no process under test died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.alive(), f"{proc.describe()} died while Redis was down:\n{proc.tail()}"
        time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))


async def test_redis_down_for_10_s_loses_no_reading_and_the_feed_resumes_with_a_lag_frame(
    production, daphne, daphne_b, workers, private_redis
):
    db = production.db
    worker = workers.start()
    await in_thread(wait_worker_up, daphne.api, worker, daphne.proc)
    both = (daphne.proc, worker)

    def is_reading(frame: dict) -> bool:
        return frame.get("type") == "sensor_data" and frame["data"]["session_id"] == session_id

    async with AsyncExitStack() as stack:
        # One connection for the whole test, as a dashboard holds it: no subscription, every session.
        feed = await open_feed(stack, daphne, production.token)
        session_id = (await in_thread(daphne.api.start, name="e2e redis down"))["session_id"]
        await feed.wait_for(is_reading, timeout=15, what="a first reading frame")

        # A baseline as long as the outage: the same recording with Redis up.
        baseline = Watch(*both)
        await in_thread(watch_outage, both, OUTAGE_SECONDS)
        stopping = Watch(*both)
        await in_thread(private_redis.stop)
        stopped_at = len(feed.frames)
        # A dashboard opened meanwhile, on a web process whose live feed nobody used yet: accepted.
        late = await open_feed(stack, daphne_b, production.token)
        await in_thread(watch_outage, both, OUTAGE_SECONDS)
        starting = Watch(*both)

        await in_thread(private_redis.start)  # returns as soon as Redis answers PING
        answered = time.time()
        back = await feed.wait_for(is_reading, timeout=30, what="a reading frame after Redis returned",
                                   start=len(feed.frames))
        resumed = feed.frames[back][0] - answered
        late_back = await late.wait_for(is_reading, timeout=30, what="a reading frame on the late connection")
        late_resumed = late.frames[late_back][0] - answered
        # The same connection answers, and records on with Redis back until the stop.
        await feed.send({"type": "ping", "timestamp": 7.5})
        assert await feed.wait_type("pong", start=back) == {"type": "pong", "timestamp": 7.5}
        await asyncio.sleep(2.0)
        summary = await in_thread(daphne.api.stop, session_id)
        end = await feed.wait_completed(session_id)
        recovered = Watch(*both)
        assert feed.closed is None and late.closed is None, f"the server closed a connection: {feed.closed!r}, {late.closed!r}"

    for proc in (*both, daphne_b.proc):
        assert proc.alive(), f"{proc.describe()} died:\n{proc.tail()}"

    # (1) Recording never paused: every sample of every sensor stored once, on schedule.
    rows = db.readings(session_id)
    total = summary["total_readings"]
    assert total == len(rows) == db.session(session_id)["reading_count"]
    assert_seq_contiguous(rows, total)
    t0 = db.session(session_id)["started_at"]
    grouped = by_sensor(rows)
    for sensor, rate in RATES.items():
        readings = grouped[sensor]
        assert abs(readings[0].timestamp - t0) < 1e-5, f"{sensor}: the first sample is not at the start"
        assert set(schedule_steps(readings, rate)) == {1}, f"{sensor}: a hole in the recording"
        assert summary["summary_stats"][sensor]["count"] == len(readings)
        assert_rate(len(readings), rate, summary["session_duration"], sensor=sensor)

    # (2) No busy loop and no flood of logs while Redis was down (the worker kept recording).
    before, outage, after = stopping.since(baseline), starting.since(stopping), recovered.since(starting)
    for proc in both:
        name = proc.name
        assert outage[name]["cores"] - before[name]["cores"] < MAX_EXTRA_CORES, (
            f"{name} used {outage[name]['cores']:.2f} cores while Redis was down, "
            f"{before[name]['cores']:.2f} over as long before it: a busy loop?"
        )
        lines = outage[name]["lines"] + after[name]["lines"]
        assert lines < MAX_OUTAGE_LOG_LINES, f"{name} wrote {lines} log lines over the outage:\n{proc.tail(3)[:1500]}"

    # (3) The stream came back on the open connection, within RESUME_SECONDS of Redis answering.
    assert resumed < RESUME_SECONDS, f"the first reading frame came {resumed:.2f} s after Redis answered"
    assert late_resumed < RESUME_SECONDS, f"the late connection's first reading came {late_resumed:.2f} s after"

    # (4) One lag frame names exactly what the connection missed, and REST gives exactly that.
    lags = [(i, f) for i, (_, f) in enumerate(feed.frames[:end]) if f.get("type") == "lag"]
    assert len(lags) == 1, f"lag frames: {[f for _, f in lags]}"
    ((lag_at, lag),) = lags
    assert stopped_at <= lag_at, "a lag frame before Redis stopped"
    first, last = lag["data"]["from_seq"], lag["data"]["to_seq"]
    assert lag == {
        "type": "lag",
        "data": {"session_id": session_id, "dropped": 0, "missed_readings": last - first + 1,
                 "from_seq": first, "to_seq": last, "source": "channel_layer"},
    }, lag
    readings = single_readings(feed, session_id, end)
    seqs = [r["seq"] for r in readings]
    assert len(set(seqs)) == len(seqs), "a reading frame came twice"
    assert seq_gaps(seqs) == [(first - 1, last + 1)], f"gaps {seq_gaps(seqs)[:5]}, lag {first}-{last}"
    after_gap = next(i for i, (_, f) in enumerate(feed.frames) if is_reading(f) and f["data"]["seq"] == last + 1)
    assert lag_at < after_gap, "the lag frame came after the readings that follow the gap"

    response = await in_thread(
        daphne.api.get, f"/api/v1/sessions/{session_id}/readings/",
        params={"after_seq": first - 1, "limit": last - first + 1},
    )
    assert response.status_code == 200, response.text
    backfill = response.json()
    assert [r["seq"] for r in backfill] == list(range(first, last + 1))
    by_seq = stored_rows(db, session_id)
    assert_same_readings(readings, by_seq, "live frames")
    assert_same_readings(backfill, by_seq, "backfill")
    assert sorted(seqs + [r["seq"] for r in backfill]) == list(range(1, total + 1)), "frames + backfill != stored"
