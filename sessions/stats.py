"""Per-sensor statistics of a recording session, kept current without rereading all its readings.

A GROUP BY over every reading of a session takes about a second per million readings, and a
recording session at 1 kHz per sensor grows by millions in minutes. So each process keeps, per
recording session, the partial sums up to the highest reading id it has seen, and each request
adds only the readings stored since. That is exact because a session's batches are stored one at
a time under its row lock (sessions.pipeline): a reading committed later has a higher id.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import Count, Max, Min, Sum

from .db import JsonNumber
from .models import Reading, RecordingSession
from .selectors import stats_by_sensor

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
    """selectors.sensor_stats of a recording session, reading only what was stored since the last call."""
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
