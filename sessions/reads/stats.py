"""Per-sensor statistics of a recording session, kept current without rereading all its readings.

A GROUP BY over every reading of a session takes about a second per million readings, and a
recording session at 1 kHz per sensor grows by millions in minutes. So each process keeps, per
recording session, the partial sums up to the highest reading id it has seen, and each request
adds only the readings stored since. That is exact because a session's batches are stored one at
a time under its row lock (sessions.recording.pipeline): a reading committed later has a higher id.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import Avg, Count, Max, Min, Sum

from sensors.models import Sensor
from sessions.models import Reading, RecordingSession
from sessions.recording.expressions import JsonNumber


def sensor_stats(*, session_id: int) -> dict[str, dict]:
    """Per-sensor count, first/last time and, for numbers, min/max/mean, computed in SQL."""
    rows = (
        Reading.objects.filter(session_id=session_id)
        .values("sensor_id")
        .annotate(
            count=Count("id"),
            first=Min("timestamp"),
            last=Max("timestamp"),
            min=Min(JsonNumber("value")),
            max=Max(JsonNumber("value")),
            mean=Avg(JsonNumber("value")),
        )
    )
    by_id = {row["sensor_id"]: row for row in rows}
    session = RecordingSession.objects.only("rig_id").get(pk=session_id)
    return stats_by_sensor(rig_id=session.rig_id, rows=by_id)


def stats_by_sensor(*, rig_id: int, rows: dict[int, dict]) -> dict[str, dict]:
    """Each sensor of the rig: its statistics from `rows` ({sensor id: count, first, last, min, max, mean})."""
    stats = {}
    for sensor in Sensor.objects.filter(rig_id=rig_id):
        row = rows.get(sensor.pk)
        stats[sensor.name] = {
            "sensor_type": sensor.sensor_type,
            "unit": sensor.unit,
            "count": row["count"] if row else 0,
            "first_timestamp": row["first"].timestamp() if row else None,
            "last_timestamp": row["last"].timestamp() if row else None,
            "min": row["min"] if row else None,
            "max": row["max"] if row else None,
            "mean": round(row["mean"], 6) if row and row["mean"] is not None else None,
        }
    return stats


# Sessions remembered per process; a forgotten one costs one full GROUP BY.
_MAX_SESSIONS = 64


@dataclass
class _Partial:
    count: int = 0
    numbers: int = 0
    total: float = 0.0
    min: float | None = None
    max: float | None = None
    first: datetime | None = None
    last: datetime | None = None

    def add(self, row: dict) -> None:
        self.count += row["count"]
        self.numbers += row["numbers"]
        self.total += row["total"] or 0.0
        self.min = _pick(min, self.min, row["min"])
        self.max = _pick(max, self.max, row["max"])
        self.first = _pick(min, self.first, row["first"])
        self.last = _pick(max, self.last, row["last"])

    def as_row(self) -> dict:
        mean = self.total / self.numbers if self.numbers else None
        return {"count": self.count, "first": self.first, "last": self.last, "min": self.min, "max": self.max, "mean": mean}


def _pick(choose, a, b):
    return b if a is None else a if b is None else choose(a, b)


# {(session id, started_at): (highest reading id counted, {sensor id: partial})}. The start time
# keeps a session id that SQLite hands out again from inheriting a deleted session's sums.
_cache: OrderedDict[tuple, tuple[int, dict[int, _Partial]]] = OrderedDict()
_lock = threading.Lock()


def sensor_stats_current(*, session: RecordingSession) -> dict[str, dict]:
    """sensor_stats of a recording session, reading only what was stored since the last call."""
    key = (session.pk, session.started_at)
    with _lock:
        through, cached = _cache.get(key, (0, {}))
    partials = {sensor_id: replace(partial) for sensor_id, partial in cached.items()}
    rows = (
        Reading.objects.filter(session_id=session.pk, id__gt=through)
        .values("sensor_id")
        .annotate(
            count=Count("id"), numbers=Count(JsonNumber("value")), total=Sum(JsonNumber("value")),
            min=Min(JsonNumber("value")), max=Max(JsonNumber("value")),
            first=Min("timestamp"), last=Max("timestamp"), through=Max("id"),
        )
        .order_by()
    )
    for row in rows:
        partials.setdefault(row["sensor_id"], _Partial()).add(row)
        through = max(through, row["through"])
    with _lock:
        if _cache.get(key, (-1,))[0] < through:
            _cache[key] = (through, partials)
        _cache.move_to_end(key)
        while len(_cache) > _MAX_SESSIONS:
            _cache.popitem(last=False)
    return stats_by_sensor(rig_id=session.rig_id, rows={k: p.as_row() for k, p in partials.items()})
