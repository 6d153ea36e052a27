"""Channel-layer events: group names and the small JSON-safe events the pipeline publishes.

The live feed is a view of the database: events go out after commit, and a lost one is never
a lost reading (clients backfill over REST).
"""

import logging
import time
import weakref
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection

from sessions.recording.pipeline import RecordResult

logger = logging.getLogger(__name__)

# Every recording session's readings; clients with no subscription listen here.
LIVE_GROUP = "sessions.live"
# The simulator engines: told to look at the sessions table now instead of at the next poll,
# through PostgreSQL's NOTIFY on this channel, or (SQLite: one process) the layer's group.
ENGINE_CHANNEL = "robotest_engine"
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


# After a failed publish, events are dropped unsent for this long before the layer is tried again.
# During a Redis outage every event would otherwise cost a connection attempt and a traceback
# (a hundred a second from one busy session); what is dropped reaches clients as a `lag` frame
# naming its sequence positions (hub.py), and the database holds it.
PAUSE_SECONDS = 0.5


@dataclass
class _Outage:
    """One layer's publishing fault, from its first failed send until a send succeeds again."""

    since: float
    retry_at: float
    unsent: int = 1


_outages: "weakref.WeakKeyDictionary[object, _Outage]" = weakref.WeakKeyDictionary()


async def publish(layer, session_id: int, event: dict) -> None:
    """Send one event to the live group, which every consumer joins; a layer fault is logged, not raised.

    A consumer filters by session itself (its Subscription, sessions/live/frames.py): one group
    keeps a publish to one layer round trip, whatever the sessions a client follows. While the
    layer fails, events are dropped without trying it more than once every PAUSE_SECONDS, and the
    fault is logged once when it starts and once when it ends.
    """
    outage = _outages.get(layer)
    now = time.monotonic()
    if outage is not None and now < outage.retry_at:
        outage.unsent += 1
        return
    try:
        try:
            await layer.group_send(LIVE_GROUP, event)
        except (TypeError, ValueError):
            raise
        except Exception:
            if outage is not None:
                raise
            # Once more at once: after Redis restarted, each connection its pool kept fails once
            # (a stale socket) while the server answers; only a second failure is an outage.
            await layer.group_send(LIVE_GROUP, event)
    except (TypeError, ValueError):
        # An event the layer cannot encode is a bug of its own, not an outage: loud, and alone.
        logger.exception("could not publish %s of session %s", event.get("type"), session_id)
        return
    except Exception:
        if outage is None:
            _outages[layer] = _Outage(since=now, retry_at=now + PAUSE_SECONDS)
            logger.warning(
                "could not publish %s of session %s; live events are dropped until the channel layer answers "
                "(tried every %g s)", event.get("type"), session_id, PAUSE_SECONDS, exc_info=True,
            )
        else:
            outage.unsent += 1
            outage.retry_at = now + PAUSE_SECONDS
        return
    if outage is not None:
        del _outages[layer]
        logger.warning(
            "publishing again after %.1f s: %d live events were not sent (clients are told with a lag frame)",
            now - outage.since, outage.unsent,
        )


def publish_sync(session_id: int, *events: dict) -> None:
    """`publish` for sync code (views, services), typically from `transaction.on_commit`."""
    layer = get_channel_layer()
    if layer is not None and events:
        async_to_sync(_publish_all)(layer, session_id, events)


async def _publish_all(layer, session_id: int, events) -> None:
    for event in events:
        await publish(layer, session_id, event)


def engine_wake() -> None:
    """Tell the engines to look at the sessions table now (start and stop take effect sooner).

    Called after the commit of a start, stop or reset. On PostgreSQL a NOTIFY on the request's own
    connection (one statement; the engines LISTEN, sessions/engine.py): the layer's group_send
    would cost the request a hop to the event loop and a few Redis round trips before the
    engine hears of the session, on the way to its first frame.
    """
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"NOTIFY {ENGINE_CHANNEL}")
            return
        except DatabaseError:
            # The engines poll anyway; waking them is only a shortcut.
            logger.warning("could not wake the engines", exc_info=True)
            return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(ENGINE_GROUP, {"type": "engine.wake"})
    except Exception:
        # The engines poll anyway; waking them is only a shortcut.
        logger.warning("could not wake the engines", exc_info=True)
