"""One live-group member per web process: receives each event once and fans it out in memory.

With a layer channel per consumer, channels_redis carries every event through Redis once per
client, each consumer pays its own receive, and the layer drops events silently once a process's
channels are full (capacity counts per process). Here the process joins the live group once; its
clients' frames are built from the event once (`live.EventFrames`) and go into each client's own
bounded outbox, so a slow client still costs nobody else anything.

The hub also sees every session's sequence positions: an event that starts past the last
position it saw means the layer lost events, and the clients of that session are told so in a
`lag` frame naming the missing positions (they backfill them over REST with `after_seq`).
"""

import asyncio
import json
import logging
import time
import weakref
from typing import Protocol

from robotest_site.observability import metrics
from sessions.live import presence
from sessions.live.events import LIVE_GROUP
from sessions.live.frames import EventFrames

logger = logging.getLogger(__name__)

# channels_redis forgets group members after its group_expiry (a day by default): renew well before.
RENEW_SECONDS = 600.0
# After a layer fault (Redis restarting), wait this long before listening again.
RETRY_SECONDS = 0.5


class Member(Protocol):
    """A live client: the consumer side of the hub."""

    def live_batch(self, event: dict, frames: EventFrames) -> None: ...

    def live_status(self, event: dict, frame: str) -> None: ...

    def live_gap(self, session_id: int, frame: str) -> None: ...


class LiveHub:
    """The live group's member for one process (one event loop and channel layer)."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.members: set[Member] = set()
        self.channel: str | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        # session id -> highest sequence position delivered, to see what the layer lost.
        self._last_seq: dict[int, int] = {}

    async def join(self, member: Member) -> None:
        async with self._lock:
            self.members.add(member)
            if self._task is None or self._task.done():
                # The default prefix: channels_redis reads all of a process's channels through
                # one Redis list, named by the prefix; a second prefix would never be read.
                self.channel = await self.layer.new_channel()
                try:
                    await self.layer.group_add(LIVE_GROUP, self.channel)
                    failing_since = None
                except Exception:
                    # Redis is down: the client is still welcome, and gets readings once it is back.
                    failing_since = time.monotonic()
                    logger.warning("live feed: could not join the live group; trying again every %g s",
                                   RETRY_SECONDS, exc_info=True)
                self._last_seq.clear()
                self._task = asyncio.create_task(self._run(self.channel, failing_since), name="live-hub")

    async def leave(self, member: Member) -> None:
        async with self._lock:
            self.members.discard(member)
            if self.members or self._task is None:
                return
            # Nobody left to feed: stop listening, or the layer would fill this channel for nothing.
            task, channel, self._task, self.channel = self._task, self.channel, None, None
            task.cancel()
            try:
                await self.layer.group_discard(LIVE_GROUP, channel)
            except Exception:
                logger.warning("could not leave the live group", exc_info=True)

    async def _run(self, channel: str, failing_since: float | None) -> None:
        """Receive and deliver; `failing_since`: the layer failed at that instant and the group is not joined."""
        renewed = time.monotonic()
        joined = failing_since is None
        while True:
            try:
                if not joined or time.monotonic() - renewed > RENEW_SECONDS:
                    await self.layer.group_add(LIVE_GROUP, channel)
                    renewed, joined = time.monotonic(), True
                    if failing_since is not None:
                        logger.warning("live feed: listening again after %.1f s without the channel layer",
                                       time.monotonic() - failing_since)
                        failing_since = None
                event = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Join again before the next receive: a restarted Redis has forgotten the group.
                joined = False
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.warning("live feed: the channel layer failed; trying again every %g s", RETRY_SECONDS,
                                   exc_info=True)
                else:
                    # One line per outage, not one per attempt (a Redis restart is a known, passing fault).
                    logger.debug("live feed: the channel layer still fails", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                self.deliver(event)
            except Exception:
                # One bad event (say, from a worker of another release) costs that event, not the feed.
                logger.exception("live feed: skipped a malformed %s event", event.get("type"))

    def deliver(self, event: dict) -> None:
        """Hand one layer event to every member; never awaits, so members see events in layer order."""
        kind = event.get("type")
        if kind == "sensor.batch":
            self._check_gap(event)
            frames = EventFrames(event)
            for member in list(self.members):
                member.live_batch(event, frames)
        elif kind == "system.status":
            data = event["data"]
            if data.get("status") not in (None, "recording"):
                self._last_seq.pop(event.get("session_id"), None)
            frame = json.dumps({"type": "system_status", "data": data}, separators=(",", ":"))
            for member in list(self.members):
                member.live_status(event, frame)

    def _check_gap(self, event: dict) -> None:
        session_id, first, last = event["session_id"], event["first_seq"], event["last_seq"]
        seen = self._last_seq.get(session_id)
        if seen is None or last > seen:
            self._last_seq[session_id] = last
        if seen is None or first <= seen + 1:
            # Also an event older than one already seen (two web processes ingesting for one
            # session publish in their own order): it is delivered, nothing is lost.
            return
        missing = first - seen - 1
        presence.layer_lost(missing)
        metrics.LIVE_LOST.inc(missing)
        frame = json.dumps(
            {
                "type": "lag",
                "data": {
                    "session_id": session_id, "dropped": 0, "missed_readings": missing,
                    "from_seq": seen + 1, "to_seq": first - 1, "source": "channel_layer",
                },
            },
            separators=(",", ":"),
        )
        logger.warning("live feed: the channel layer lost readings %d-%d of session %d", seen + 1, first - 1, session_id)
        for member in list(self.members):
            member.live_gap(session_id, frame)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, LiveHub]]" = weakref.WeakKeyDictionary()


def hub_for(layer) -> LiveHub:
    """This process's hub for `layer` on the running loop (tests run each on a loop of its own)."""
    by_layer = _hubs.setdefault(asyncio.get_running_loop(), {})
    hub = by_layer.get(id(layer))
    if hub is None or hub.layer is not layer:
        hub = by_layer[id(layer)] = LiveHub(layer)
    return hub
