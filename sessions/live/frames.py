"""What one WebSocket client receives: its subscription and frame building.

Layer events carry each reading already encoded as JSON text (`lines`), so a frame is built by
joining strings; the frames every unfiltered client gets (and the validation frames) are built
once per event in a process (`EventFrames`), not once per client: as text, and under daphne as
the WebSocket bytes every such client is sent (`FrameGroup`). Only a client that asks for
`max_hz` has its readings parsed, to keep each interval's extremes (sessions/live/decimation.py).
"""

import json
import math
from dataclasses import dataclass, field

from sessions.live.decimation import Decimator

_SINGLE = '{"type":"sensor_data","data":%s}'
_BATCH = '{"type":"sensor_data_batch","session_id":%d,"data":[%s]}'


@dataclass(frozen=True, slots=True)
class BatchPart:
    """Readings of one session bound for a `sensor_data_batch` frame, not yet framed.

    A client's outbox frames them as it sends, joining the parts that queued up meanwhile into one
    frame: a client (or a server) that falls behind gets fewer, larger frames instead of a backlog
    of small ones, and each frame sent costs the server the same whatever its size.
    """

    session_id: int
    readings: str  # the readings' JSON texts, comma-separated

    def __len__(self) -> int:
        return len(self.readings)

    def frame(self, *more: "BatchPart") -> str:
        readings = ",".join([self.readings, *(part.readings for part in more)]) if more else self.readings
        return _BATCH % (self.session_id, readings)


class SubscriptionError(ValueError):
    """A subscribe message the server cannot honour; its text names the field."""


@dataclass
class Subscription:
    """A client's choice: one session or all, some sensors or all, frames one by one or in batches."""

    session: int | None = None
    sensors: frozenset[str] | None = None
    batch: bool = False
    max_hz: float | None = None
    _decimator: Decimator | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, data: object) -> "Subscription":
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SubscriptionError("data must be an object {session, sensors, batch, max_hz}")
        unknown = sorted(set(data) - {"session", "sensors", "batch", "max_hz"})
        if unknown:
            raise SubscriptionError(f"unknown field(s): {', '.join(unknown)}")
        session = data.get("session")
        if session is not None and (type(session) is not int or session < 1):
            raise SubscriptionError("session must be a session id (a positive integer) or null for all")
        sensors = data.get("sensors")
        if sensors is not None:
            if not isinstance(sensors, list) or not all(isinstance(s, str) and s for s in sensors):
                raise SubscriptionError("sensors must be a list of sensor names")
            sensors = frozenset(sensors) if sensors else None
        batch = data.get("batch", False)
        if not isinstance(batch, bool):
            raise SubscriptionError("batch must be true or false")
        max_hz = data.get("max_hz")
        if max_hz is not None:
            if isinstance(max_hz, bool) or not isinstance(max_hz, int | float) or not math.isfinite(max_hz) or not 0 < max_hz <= 10_000:
                raise SubscriptionError("max_hz must be a number of readings per second per sensor, above 0 and at most 10000")
            max_hz = float(max_hz)
        sub = cls(session=session, sensors=sensors, batch=batch, max_hz=max_hz)
        if max_hz is not None:
            sub._decimator = Decimator(max_hz)
        return sub

    def everything(self) -> bool:
        """Every sensor, every reading: the frames are the ones every such client gets (`EventFrames.group`)."""
        return self.sensors is None and self._decimator is None

    def describe(self) -> dict:
        return {
            "session": self.session,
            "sensors": sorted(self.sensors) if self.sensors is not None else None,
            "batch": self.batch,
            "max_hz": self.max_hz,
        }

    def wants(self, session_id: int) -> bool:
        return self.session is None or self.session == session_id

    def frames(self, event: dict, shared: "EventFrames | None" = None) -> list["str | BatchPart"]:
        """The frames one `sensor.batch` event becomes for this client (batch mode: a BatchPart)."""
        if not self.wants(event["session_id"]):
            return []
        shared = shared or EventFrames(event)
        if self.everything():
            # Everything, as every such client gets it: built once per event, not once per client.
            frames = list(shared.batch() if self.batch else shared.singles())
        else:
            lines = event["lines"]
            if self.sensors is not None:
                wanted = self.sensors
                lines = [line for line, name in zip(lines, event["sensors"]) if name in wanted]
            if self._decimator is not None:
                lines = self._decimator.thin(lines)
            frames = _batch_frames(event["session_id"], lines) if self.batch else [_SINGLE % line for line in lines]
        for sensor, frame in shared.validation():
            if self.sensors is None or sensor in self.sensors:
                frames.append(frame)
        return frames


def _batch_frames(session_id: int, lines: list[str]) -> list[BatchPart]:
    return [BatchPart(session_id, ",".join(lines))] if lines else []


@dataclass(eq=False, slots=True)
class FrameGroup:
    """One event's frames as every unfiltered client of one mode gets them: readings, then validation.

    `items` are what a client's outbox queues when it cannot send at once (batch parts stay
    joinable with the parts queued beside them); `wire()` is the frames as WebSocket bytes,
    built the first time a client is sent them and shared by every client after it.
    """

    texts: list[str]
    items: list["str | BatchPart"]
    _wire: bytes | None = None

    def wire(self) -> bytes:
        if self._wire is None:
            from sessions.live.flow import text_frames

            self._wire = text_frames(self.texts)
        return self._wire


class EventFrames:
    """The frames of one layer event that do not depend on who gets them, each built at most once."""

    def __init__(self, event: dict) -> None:
        self.event = event
        self._batch: list[BatchPart] | None = None
        self._singles: list[str] | None = None
        self._validation: list[tuple[str | None, str]] | None = None
        self._groups: dict[bool, FrameGroup] = {}

    def group(self, *, batch: bool) -> FrameGroup:
        """What every client of this mode with `Subscription.everything()` gets, validation included."""
        group = self._groups.get(batch)
        if group is None:
            readings = self.batch() if batch else self.singles()
            validation = [frame for _, frame in self.validation()]
            texts = [part.frame() for part in readings] if batch else list(readings)
            group = self._groups[batch] = FrameGroup(texts + validation, [*readings, *validation])
        return group

    def batch(self) -> list[BatchPart]:
        if self._batch is None:
            self._batch = _batch_frames(self.event["session_id"], self.event["lines"])
        return self._batch

    def singles(self) -> list[str]:
        if self._singles is None:
            self._singles = [_SINGLE % line for line in self.event["lines"]]
        return self._singles

    def validation(self) -> list[tuple[str | None, str]]:
        if self._validation is None:
            self._validation = [
                (result.get("sensor"), json.dumps({"type": "validation", "data": result}, separators=(",", ":")))
                for result in self.event.get("validation", ())
            ]
        return self._validation
