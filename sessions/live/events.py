"""Channel-layer events: group names and the small JSON-safe events the pipeline publishes.

The live feed is a view of the database: events go out after commit, and a lost one is never
a lost reading (clients backfill over REST).
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from sessions.recording.pipeline import RecordResult

logger = logging.getLogger(__name__)

# Every recording session's readings; clients with no subscription listen here.
LIVE_GROUP = "sessions.live"
# The simulator engines: told to look at the sessions table now instead of at the next poll.
ENGINE_GROUP = "engine"


# Readings per layer message: a flush that fell behind (tens of thousands of readings) goes out
# as several events, each small enough for Redis to pass without stalling the other clients.
MAX_EVENT_READINGS = 2000


def batch_events(result: RecordResult) -> list[dict]:
    """A stored batch as layer events, in sequence order; its validation results ride with the first."""
    lines = result.lines
    events = []
    for start in range(0, max(len(lines), 1), MAX_EVENT_READINGS):
        chunk = lines[start:start + MAX_EVENT_READINGS]
        events.append(
            {
                "type": "sensor.batch",
                "session_id": result.session_id,
                "first_seq": result.first_seq + start,
                "last_seq": result.first_seq + start + len(chunk) - 1,
                "lines": chunk,
                "sensors": result.sensors[start:start + MAX_EVENT_READINGS],
                "validation": result.validation if start == 0 else [],
            }
        )
    return events


def status_event(summary: dict) -> dict:
    return {"type": "system.status", "session_id": summary.get("session_id"), "data": summary}


async def publish(layer, session_id: int, event: dict) -> None:
    """Send one event to the live group, which every consumer joins; a layer fault is logged, not raised.

    A consumer filters by session itself (its Subscription, sessions/live/frames.py): one group
    keeps a publish to one layer round trip, whatever the sessions a client follows.
    """
    try:
        await layer.group_send(LIVE_GROUP, event)
    except Exception:
        logger.exception("could not publish %s of session %s", event.get("type"), session_id)


def publish_sync(session_id: int, *events: dict) -> None:
    """`publish` for sync code (views, services), typically from `transaction.on_commit`."""
    layer = get_channel_layer()
    if layer is not None and events:
        async_to_sync(_publish_all)(layer, session_id, events)


async def _publish_all(layer, session_id: int, events) -> None:
    for event in events:
        await publish(layer, session_id, event)


def engine_wake() -> None:
    """Tell the engines to look at the sessions table now (start and stop take effect sooner)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(ENGINE_GROUP, {"type": "engine.wake"})
    except Exception:
        # The engines poll anyway; waking them is only a shortcut.
        logger.warning("could not wake the engines", exc_info=True)
