"""Reads of readings: a page in time order, each sensor's newest, and the backfill after a sequence position."""

from django.db import connection
from django.db.models import Q

from sensors.models import Sensor
from sessions.models import Reading, RecordingSession


def readings_latest(*, session: RecordingSession) -> dict[str, dict | None]:
    """Each sensor of the session's rig: its newest reading in the session, or None.

    One `ORDER BY timestamp DESC LIMIT 1` per sensor, each a backward scan of the
    (session, sensor, timestamp) index: a handful of rows read however many the table holds.
    """
    sensors = list(Sensor.objects.filter(rig_id=session.rig_id).order_by("name").values_list("id", "name"))
    rows = []
    for sensor_id, _name in sensors:
        row = (
            Reading.objects.filter(session_id=session.pk, sensor_id=sensor_id)
            .order_by("-timestamp", "-seq")  # the seq only breaks a tie of timestamps
            .values("timestamp", "value", "seq", "session_id", "sensor_id")
            .first()
        )
        if row is not None:
            rows.append(row)
    latest: dict[str, dict | None] = dict.fromkeys(name for _id, name in sensors)
    for reading in _as_readings(rows):
        latest[reading["sensor"]] = reading
    return latest


def readings_list(
    *,
    session_id: int | None = None,
    sensor_ids: list[int] | None = None,
    start=None,
    end=None,
    after: tuple | None = None,
    limit: int,
) -> list[dict]:
    """Readings in (timestamp, id) order, at most `limit`, after the keyset position `after`."""
    qs = Reading.objects.all()
    if session_id is not None:
        qs = qs.filter(session_id=session_id)
    if sensor_ids is not None:
        qs = qs.filter(sensor_id__in=sensor_ids)
    if start is not None:
        qs = qs.filter(timestamp__gte=start)
    if end is not None:
        qs = qs.filter(timestamp__lte=end)
    if after is not None:
        after_time, after_id = after
        # The >= lets the index range start at the position; the Q picks out what follows it.
        qs = qs.filter(Q(timestamp__gt=after_time) | Q(timestamp=after_time, id__gt=after_id), timestamp__gte=after_time)
    fields = ("id", "timestamp", "value", "seq", "session_id", "sensor_id")
    if session_id is not None and connection.vendor == "postgresql":
        qs = _merged_by_sensor(qs, session_id, sensor_ids, limit)
    rows = list(qs.order_by("timestamp", "id").values(*fields)[:limit])
    readings = _as_readings(rows)
    for reading, row in zip(readings, rows):
        reading["_key"] = (row["timestamp"], row["id"])
    return readings


def _merged_by_sensor(qs, session_id: int, sensor_ids: list[int] | None, limit: int):
    """The same page as one UNION ALL of each sensor's first `limit` rows.

    The readings' one index is (session, sensor, timestamp): it gives each sensor's readings in
    time order, not the session's, so a page of the whole session read and sorted every row of it
    (0.7-0.9 s at 1,000,000 readings, benchmarks/read_api.py). Each sensor's `limit` rows are a
    short index range; the page is the first `limit` of their union. No second index: each one
    slows COPY (models.Reading).
    """
    if sensor_ids is None:
        sensor_ids = list(
            Sensor.objects.filter(rig__sessions=session_id).order_by("id").values_list("id", flat=True)
        )
    if not sensor_ids:
        return qs.none()
    parts = [qs.filter(sensor_id=pk).order_by("timestamp", "id").values("pk")[:limit] for pk in sensor_ids]
    # Reading ids of every sensor's first rows; the outer query orders and cuts them.
    union = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return Reading.objects.filter(pk__in=union)


def _as_readings(rows: list[dict]) -> list[dict]:
    """Reading rows (values()) in the REST shape, with their sensors' names and types."""
    sensors = dict(
        (pk, (name, kind))
        for pk, name, kind in Sensor.objects.filter(pk__in={r["sensor_id"] for r in rows}).values_list(
            "id", "name", "sensor_type"
        )
    )
    return [
        {
            "timestamp": r["timestamp"].timestamp(),
            "sensor_type": sensors[r["sensor_id"]][1],
            "value": r["value"],
            "sensor": sensors[r["sensor_id"]][0],
            "session_id": r["session_id"],
            "seq": r["seq"],
        }
        for r in rows
    ]


def readings_after_seq(*, session_id: int, sensor_ids: list[int] | None, after_seq: int, limit: int) -> list[dict]:
    """A session's readings after a sequence position, in sequence order (backfill of a live gap)."""
    qs = Reading.objects.filter(session_id=session_id, seq__gt=after_seq)
    if sensor_ids is not None:
        qs = qs.filter(sensor_id__in=sensor_ids)
    return _as_readings(list(qs.order_by("seq").values("timestamp", "value", "seq", "session_id", "sensor_id")[:limit]))
