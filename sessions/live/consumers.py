"""The live feed: `/ws/sensor-data`, one consumer per client (the protocol: docs/websocket.md)."""

import asyncio
import json
import logging
import time
from collections import deque

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from robotest_site.observability import metrics
from sessions.live import presence
from sessions.live.access import REJECTION
from sessions.live.flow import EXTENSION, SEND, SEND_WIRE, text_frames
from sessions.live.frames import BatchPart, EventFrames, FrameGroup, Subscription, SubscriptionError
from sessions.live.hub import hub_for

logger = logging.getLogger(__name__)

# Frames, and bytes of them, a client may have waiting; past either the oldest go and the client
# gets a `lag` frame. The bytes bound a batch-mode client: its frames are each up to ~150 KB.
OUTBOX_FRAMES = 5000
OUTBOX_BYTES = 16 << 20
# Queued batch parts of one session are joined into frames of up to this many bytes: below the
# 1 MiB a `websockets` client accepts by default.
JOIN_BYTES = 512 << 10
_VALIDATION = '{"type":"validation"'
# Bytes daphne may hold unsent for one client before its frames wait in the outbox instead.
HIGH_WATER = 1 << 20


# Client → server frames are ping, get_status and subscribe: a few hundred bytes. The defaults of
# ROBOTEST_WS_MAX_MESSAGE_BYTES and ROBOTEST_WS_MAX_MESSAGES_PER_SECOND (docs/websocket.md, "Limits").
MAX_MESSAGE_BYTES = 64 << 10
MAX_MESSAGES_PER_SECOND = 20
# Close codes, as 4401/4403 mirror HTTP: autobahn lets an application close with 1000 or 3000-4999
# only, not 1009 (message too big). Past daphne's websocket_max_message_size (1 MiB) autobahn drops
# the connection itself before the message is read (tests/e2e/test_ws_limits.py).
TOO_BIG = 4413
TOO_MANY = 4429


def _dumps(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


class SensorDataConsumer(AsyncWebsocketConsumer):
    """Streams readings, validation results and session status to one client."""

    # Events come from the process's hub, never to a consumer's own channel: an alias no layer
    # is configured under gives the consumer none, and spares Redis a blocking read per client.
    channel_layer_alias = "robotest.hub-only"

    async def connect(self):
        self.max_bytes = getattr(settings, "ROBOTEST_WS_MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES)
        self.messages = MessageRate(getattr(settings, "ROBOTEST_WS_MAX_MESSAGES_PER_SECOND", MAX_MESSAGES_PER_SECOND))
        self.closing = False
        rejection = self.scope.get(REJECTION)
        await self.accept()
        if rejection is not None:
            code, reason = rejection
            await self.send(text_data=_dumps({"type": "error", "message": reason, "code": code}))
            await self.close(code=code)
            return
        self.subscription = Subscription()
        extensions = self.scope.get("extensions", {})
        self.outbox = Outbox(
            _direct_send(extensions.get(SEND)) or self.send, extensions.get(EXTENSION), extensions.get(SEND_WIRE)
        )
        # Events reach consumers through this process's hub, not a layer channel each (hub.py).
        self.hub = hub_for(get_channel_layer())
        await self.hub.join(self)
        presence.connected()
        metrics.LIVE_CLIENTS.inc()
        await self.send(
            text_data=_dumps(
                {
                    "type": "connection_established",
                    "data": {"message": "Connected to the RoboTest live feed", "timestamp": time.time()},
                }
            )
        )

    async def disconnect(self, code):
        outbox = getattr(self, "outbox", None)
        if outbox is None:
            return
        outbox.close()
        presence.disconnected()  # its drops were counted as they happened (presence.dropped)
        metrics.LIVE_CLIENTS.dec()
        await self.hub.leave(self)

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing:  # messages that were on their way when it was closed for a limit
            return
        size = _size(text_data, bytes_data, self.max_bytes)
        if size > self.max_bytes:
            await self._refuse(TOO_BIG, f"a message of {size} bytes is over this server's limit of {self.max_bytes} "
                                        "bytes (ROBOTEST_WS_MAX_MESSAGE_BYTES): the connection is closed")
            return
        if not self.messages.take():
            await self._too_many()
            return
        try:
            message = json.loads(text_data if text_data is not None else bytes_data)
        except (TypeError, ValueError):
            await self._error("invalid JSON: send a JSON object with a 'type'")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._error("a message is a JSON object with a 'type'")
            return
        kind = message["type"]
        if kind == "ping":
            await self.send(text_data=_dumps({"type": "pong", "timestamp": message.get("timestamp")}))
        elif kind == "get_status":
            status = await _status()
            await self.send(text_data=_dumps({"type": "system_status", "data": status}))
        elif kind == "subscribe":
            await self._subscribe(message.get("data"))
        else:
            await self._error(f"unknown message type {kind!r}: use ping, get_status or subscribe")

    async def _subscribe(self, data) -> None:
        try:
            subscription = Subscription.parse(data)
        except SubscriptionError as exc:
            await self._error(f"bad subscription: {exc}")
            return
        # Every client stays in the live group and filters by session itself: moving between groups
        # would repeat or skip the readings published while it moves.
        self.subscription = subscription
        await self.send(text_data=_dumps({"type": "subscription_confirmed", "data": subscription.describe()}))

    async def _error(self, text: str) -> None:
        await self.send(text_data=_dumps({"type": "error", "message": text}))

    async def _too_many(self) -> None:
        """The first message over the rate gets an error frame; a further second's worth, a close."""
        rate = self.messages.rate
        if self.messages.refused == 1:
            await self.send(text_data=_dumps({
                "type": "error", "code": TOO_MANY,
                "message": f"too many messages: at most {rate:g} a second (bursts of {self.messages.burst:g}); "
                           f"this one and those over the rate are dropped, and {rate:g} more close the connection",
            }))
        elif self.messages.refused > rate:
            await self._refuse(TOO_MANY, f"too many messages: {self.messages.refused} dropped in a row over the "
                                         f"limit of {rate:g} a second (ROBOTEST_WS_MAX_MESSAGES_PER_SECOND)")

    async def _refuse(self, code: int, text: str) -> None:
        self.closing = True
        await self.send(text_data=_dumps({"type": "error", "code": code, "message": text}))
        await self.close(code=code)

    # The hub's calls (hub.Member): synchronous, they only queue frames.

    def live_batch(self, event: dict, frames: EventFrames) -> None:
        subscription = self.subscription
        if not subscription.everything():
            self.outbox.put(subscription.frames(event, frames))
        elif subscription.wants(event["session_id"]):
            self.outbox.put_group(frames.group(batch=subscription.batch))

    def live_status(self, event: dict, frame: str) -> None:
        if self.subscription.wants(event.get("session_id")):
            self.outbox.put([frame])

    def live_gap(self, session_id: int, frame: str) -> None:
        if self.subscription.wants(session_id):
            self.outbox.put([frame])


def _size(text_data: str | None, bytes_data: bytes | None, limit: int) -> int:
    """The message's size in bytes (UTF-8 for text), counted only when it may be over `limit`."""
    if text_data is None:
        return len(bytes_data or b"")
    return len(text_data) if len(text_data) * 4 <= limit else len(text_data.encode())


class MessageRate:
    """A token bucket over one client's messages: `rate` a second, bursts of twice that.

    `refused` counts the messages dropped since the last one let through.
    """

    def __init__(self, rate: float, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = 2 * rate
        self._tokens = self.burst
        self._clock = clock
        self._at = clock()
        self.refused = 0

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            self.refused = 0
            return True
        self.refused += 1
        return False


def _direct_send(send):
    """daphne's own send for this connection (sessions/live/flow.py), as `send(text_data=…)`; None elsewhere."""
    if send is None:
        return None

    async def send_text(text_data: str) -> None:
        await send({"type": "websocket.send", "text": text_data})

    return send_text


class Outbox:
    """One client's bounded send queue, drained by its own task.

    While daphne holds more than HIGH_WATER bytes for the client (it is not reading), frames wait
    here; when more than OUTBOX_FRAMES wait, the oldest are dropped and counted, and the client is
    told with a `lag` frame before the next one it gets. Recording and other clients never wait.
    Batch parts that queued up while the client (or the server) was busy go out joined, as one
    frame, with the validation frames that came between them after it.

    Under daphne (`send_wire`, sessions/live/flow.py) frames for a client that keeps up, with
    nothing queued, are written at once as WebSocket bytes: no task switch per client and event,
    and an unfiltered client's bytes are the ones built once for every such client (`FrameGroup`).
    What a client behind gets (its own joined frames) is framed for it and written in one go too.
    """

    def __init__(self, send, unsent_bytes=None, send_wire=None) -> None:
        self._send = send
        self._unsent = unsent_bytes
        self._send_wire = send_wire
        self._frames: deque[str | BatchPart] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self.dropped = 0
        self.total_dropped = 0
        self._task = asyncio.create_task(self._drain())

    def _can_send_now(self) -> bool:
        """Nothing queued or to report, and the client reads: frames may skip the queue."""
        return (
            self._send_wire is not None and not self._frames and not self.dropped
            and (self._unsent is None or self._unsent() <= HIGH_WATER)
        )

    def _sent_now(self, texts: list[str], wire) -> bool:
        if self._send_wire(wire()):
            metrics.LIVE_FRAMES_SENT.inc(len(texts))
            return True
        self._send_wire = None  # a connection that needs text (compression) needs it for good
        return False

    def put_group(self, group: FrameGroup) -> None:
        """Queue one event's frames as every unfiltered client gets them (sent at once when possible)."""
        if not group.texts:
            return
        if not (self._can_send_now() and self._sent_now(group.texts, group.wire)):
            self.put(group.items)

    def put(self, frames: list[str | BatchPart]) -> None:
        if not frames:
            return
        if self._can_send_now():
            texts = [frame.frame() if isinstance(frame, BatchPart) else frame for frame in frames]
            if self._sent_now(texts, lambda: text_frames(texts)):
                return
        self._frames.extend(frames)
        self._bytes += sum(map(len, frames))
        excess = 0
        while len(self._frames) > OUTBOX_FRAMES or (self._bytes > OUTBOX_BYTES and len(self._frames) > 1):
            self._bytes -= len(self._frames.popleft())
            excess += 1
        if excess:
            self.dropped += excess
            self.total_dropped += excess
            presence.dropped(excess)
            metrics.LIVE_FRAMES_DROPPED.inc(excess)
        self._ready.set()

    def close(self) -> None:
        self._task.cancel()

    async def _drain(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._frames:
                    if self._unsent is not None and self._unsent() > HIGH_WATER:
                        await asyncio.sleep(0.05)
                        continue
                    if self.dropped:
                        lag, self.dropped = self.dropped, 0
                        await self._send(text_data=_dumps({"type": "lag", "data": {"dropped": lag}}))
                        metrics.LIVE_FRAMES_SENT.inc()
                    frames = self._next()
                    if not (self._send_wire is not None and self._sent_now(frames, lambda: text_frames(frames))):
                        for frame in frames:
                            await self._send(text_data=frame)
                        metrics.LIVE_FRAMES_SENT.inc(len(frames))  # once per group, not per frame
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("live feed writer failed")

    def _take(self) -> "str | BatchPart":
        item = self._frames.popleft()
        self._bytes -= len(item)
        return item

    def _next(self) -> list[str]:
        """The next frame to send, or a batch joined from the parts waiting and the validation
        frames between them (each still after the readings it is about)."""
        first = self._take()
        if not isinstance(first, BatchPart):
            return [first]
        parts: list[BatchPart] = []
        after: list[str] = []
        size = len(first)
        while self._frames:
            item = self._frames[0]
            if isinstance(item, BatchPart):
                if item.session_id != first.session_id or size + len(item) > JOIN_BYTES:
                    break
                parts.append(item)
            elif not item.startswith(_VALIDATION):
                break
            else:
                after.append(item)
            size += len(item)
            self._take()
        return [first.frame(*parts), *after]


@database_sync_to_async
def _status() -> dict:
    from sensors.models import Rig
    from sessions.reads.sessions import recording_status

    statuses = [recording_status(rig=rig) for rig in Rig.objects.all()]
    recording = [s for s in statuses if s["recording"]]
    return {
        "recording": bool(recording),
        "sessions": recording,
        "connected_clients": presence.total_clients(),
        "timestamp": time.time(),
    }
