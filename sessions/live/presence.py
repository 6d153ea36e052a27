"""Live clients and dropped frames: counted in each web process, summed across them.

Each process keeps its counters in memory and writes them to its LiveServer row every few
seconds, so `/health` and the status endpoints can show every daphne's clients.
"""

import asyncio
import logging
import os
import socket
from datetime import timedelta

from channels.db import database_sync_to_async
from django.utils import timezone

logger = logging.getLogger(__name__)

NAME = f"{socket.gethostname()}:{os.getpid()}"
BEAT_SECONDS = 2.0
# A process that has not written for this long is gone; its clients went with it.
STALE_SECONDS = 10.0

# dropped: frames a slow client's outbox let go; lost: readings the channel layer never delivered
# to this process (seen as skipped sequence positions, hub.py).
_state = {"clients": 0, "dropped": 0, "lost": 0}
_beat: asyncio.Task | None = None


def connected() -> None:
    _state["clients"] += 1
    _ensure_beat()


def disconnected() -> None:
    _state["clients"] = max(0, _state["clients"] - 1)


def dropped(count: int) -> None:
    _state["dropped"] += count


def layer_lost(count: int) -> None:
    _state["lost"] += count


def local() -> dict:
    return {"clients": _state["clients"], "dropped_frames": _state["dropped"], "layer_lost_readings": _state["lost"]}


def totals() -> dict:
    """Clients and dropped frames of every live web process (this one counted from memory)."""
    from sessions.models import LiveServer

    horizon = timezone.now() - timedelta(seconds=STALE_SECONDS)
    rows = (
        LiveServer.objects.filter(beat_at__gte=horizon)
        .exclude(name=NAME)
        .values_list("clients", "dropped_frames", "lost_readings")
    )
    clients, dropped_frames, lost = _state["clients"], _state["dropped"], _state["lost"]
    processes = 1
    for c, d, n in rows:
        clients += c
        dropped_frames += d
        lost += n
        processes += 1
    return {"clients": clients, "dropped_frames": dropped_frames, "layer_lost_readings": lost, "processes": processes}


def total_clients() -> int:
    return totals()["clients"]


def _ensure_beat() -> None:
    global _beat
    loop = asyncio.get_running_loop()
    if _beat is not None and not _beat.done() and _beat.get_loop() is loop:
        return
    _beat = loop.create_task(_beat_loop())


async def _beat_loop() -> None:
    while True:
        try:
            await _write(_state["clients"], _state["dropped"], _state["lost"])
        except Exception:
            logger.warning("could not record the live clients of %s", NAME, exc_info=True)
        await asyncio.sleep(BEAT_SECONDS)


@database_sync_to_async
def _write(clients: int, dropped_frames: int, lost_readings: int) -> None:
    from sessions.models import LiveServer

    LiveServer.objects.update_or_create(
        name=NAME,
        defaults={
            "clients": clients, "dropped_frames": dropped_frames, "lost_readings": lost_readings,
            "beat_at": timezone.now(),
        },
    )
