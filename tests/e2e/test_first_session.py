"""A fresh worker's first session streams: real daphne, run_simulators, PostgreSQL and Redis.

The start's commit wakes the worker (PostgreSQL NOTIFY, sessions/live/events.py); a session
started the moment a worker is up, or before any worker runs, reaches a connected client from its
first reading on, every reading once, in order, and ends with its completed status.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from tests.e2e.harness import RATES

pytestmark = pytest.mark.e2e

RECORD_SECONDS = 1.5


@pytest.fixture(scope="module")
def redis_url(private_redis_url) -> str:
    """The clients check every frame: no other run's processes may publish to this module's Redis."""
    return private_redis_url


async def _session_frames(production, web, *, start_session) -> tuple[int, list[dict], list[str]]:
    """Connect a client, start a session with `start_session()`, stop it after RECORD_SECONDS;
    returns (session id, its readings as the client got them, the types of every frame)."""
    url = web.base_url.replace("http://", "ws://") + "/ws/sensor-data"
    async with connect(url, additional_headers={"Authorization": f"Token {production.token}"}, proxy=None,
                       compression=None, open_timeout=10) as ws:
        assert json.loads(await ws.recv())["type"] == "connection_established"
        session_id = await asyncio.to_thread(start_session)
        await asyncio.sleep(RECORD_SECONDS)
        await asyncio.to_thread(web.stop, session_id)
        readings, kinds = [], []
        async with asyncio.timeout(20):
            while True:
                frame = json.loads(await ws.recv())
                kinds.append(frame["type"])
                data = frame.get("data")
                if frame["type"] == "sensor_data" and data["session_id"] == session_id:
                    readings.append(data)
                elif frame["type"] == "system_status" and data.get("session_id") == session_id \
                        and data.get("status") == "completed":
                    return session_id, readings, kinds


def _assert_streamed_whole(production, session_id: int, readings: list[dict], kinds: list[str]) -> None:
    stored = production.db.readings(session_id)
    assert stored, "the session stored no readings"
    assert "lag" not in kinds
    assert [r["seq"] for r in readings] == list(range(1, len(stored) + 1)), "not every reading once, in order"
    assert [(r["sensor"], round(r["timestamp"], 6)) for r in readings] == [
        (row.sensor, round(row.timestamp, 6)) for row in stored
    ]
    assert {r["sensor"] for r in readings} == set(RATES)


def test_a_session_started_as_soon_as_the_worker_is_up_streams_from_its_first_reading(web, production, workers):
    worker = workers.start()
    production.wait_worker_up(worker)

    session_id, readings, kinds = asyncio.run(
        _session_frames(production, web, start_session=lambda: web.start(name="first after start")["session_id"])
    )

    _assert_streamed_whole(production, session_id, readings, kinds)
    assert worker.alive


def test_a_session_started_before_any_worker_runs_streams_once_one_starts(web, production, workers):
    def start_then_worker() -> int:
        session_id = web.start(name="before the worker")["session_id"]
        production.wait_worker_up(workers.start())
        return session_id

    session_id, readings, kinds = asyncio.run(_session_frames(production, web, start_session=start_then_worker))

    _assert_streamed_whole(production, session_id, readings, kinds)
