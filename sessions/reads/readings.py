"""Reads of readings: a page in time order, each sensor's newest, and the backfill after a sequence position."""

import json

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
    if sensor_ids is not None and not sensor_ids:
        return []
    if session_id is not None and connection.vendor == "postgresql":
        return _session_page(session_id, sensor_ids, start, end, after, limit)
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
    rows = list(qs.order_by("timestamp", "id").values(*fields)[:limit])
    readings = _as_readings(rows)
    for reading, row in zip(readings, rows):
        reading["_key"] = (row["timestamp"], row["id"])
    return readings


# One session's page: each sensor's first `limit` readings after the position, merged.
# The readings' one index is (session, sensor, timestamp): it gives each sensor's readings in
# time order, not the session's, so a page of the whole session read and sorted every row of it
# (0.7-0.9 s at 1,000,000 readings, benchmarks/read_api.py). Per sensor (the LATERAL) the rows
# are a short index range; the page is the first `limit` of them. No second index: each one slows
# COPY (models.Reading). One statement built as text, not a UNION of querysets: building that
# through the ORM cost more than the database's work (issue 12, docs/benchmarks.md).
_PAGE_SQL = """
SELECT r.id, r.timestamp, r.value, r.seq, s.name, s.sensor_type
FROM {sensor} s
CROSS JOIN LATERAL (
    SELECT id, timestamp, value, seq FROM {reading}
    WHERE session_id = %(session)s AND sensor_id = s.id{conditions}
    ORDER BY timestamp, id LIMIT %(limit)s
) r
WHERE {sensors}
ORDER BY r.timestamp, r.id LIMIT %(limit)s
"""


def _session_page(session_id: int, sensor_ids, start, end, after, limit: int) -> list[dict]:
    """readings_list of one session on PostgreSQL: one statement, sensors' names and types joined in."""
    params = {"session": session_id, "limit": limit, "sensors": sensor_ids, "start": start, "end": end}
    conditions = ""
    if start is not None:
        conditions += " AND timestamp >= %(start)s"
    if end is not None:
        conditions += " AND timestamp <= %(end)s"
    if after is not None:
        params["after_time"], params["after_id"] = after
        # The >= is the index range; the OR picks out what follows the position within it.
        conditions += (
            " AND timestamp >= %(after_time)s"
            " AND (timestamp > %(after_time)s OR (timestamp = %(after_time)s AND id > %(after_id)s))"
        )
    if sensor_ids is None:
        sensors = f"s.rig_id = (SELECT rig_id FROM {RecordingSession._meta.db_table} WHERE id = %(session)s)"
    else:
        sensors = "s.id = ANY(%(sensors)s)"
    sql = _PAGE_SQL.format(
        sensor=Sensor._meta.db_table, reading=Reading._meta.db_table, conditions=conditions, sensors=sensors
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # Django has the driver read jsonb as text and decodes it in JSONField: so here.
    return [
        {
            "timestamp": timestamp.timestamp(),
            "sensor_type": sensor_type,
            "value": json.loads(value),
            "sensor": name,
            "session_id": session_id,
            "seq": seq,
            "_key": (timestamp, pk),
        }
        for pk, timestamp, value, seq, name, sensor_type in rows
    ]


def _as_readings(rows: list[dict]) -> list[dict]:
    """Reading rows (values()) in the REST shape, with their sensors' names and types."""
    sensors = {
        pk: (name, kind)
        for pk, name, kind in Sensor.objects.filter(pk__in={r["sensor_id"] for r in rows}).values_list(
            "id", "name", "sensor_type"
        )
    }
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
