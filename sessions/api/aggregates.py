"""`GET /api/v1/sensors/readings/aggregated`: time-bucketed count, average, min and max of readings."""

import time

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from robotest_site.api import params
from robotest_site.api.errors import error_responses
from sensors.models import Sensor
from sessions.api.lookups import rig_or_404, session_param
from sessions.models import RecordingSession
from sessions.reads import aggregates
from sessions.recording.expressions import FIELD_NAME
from sessions.recording.rollups import FINEST, RESOLUTIONS

US = aggregates.US
MAX_POINTS = 10_000
# A few tries past the first guess usually find an interval whose epoch-aligned buckets fit.
_INTERVAL_TRIES = 8


def _param(name: str, kind, description: str, **extra) -> OpenApiParameter:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, description=description, **extra)


_BUCKET = inline_serializer(
    "AggregateBucket",
    {
        "interval_start": serializers.FloatField(help_text="Unix seconds; buckets are aligned to the epoch."),
        "interval_end": serializers.FloatField(help_text="interval_start + interval_seconds (exclusive)."),
        "count": serializers.IntegerField(),
        "average": serializers.FloatField(),
        "min": serializers.FloatField(),
        "max": serializers.FloatField(),
        "timestamp": serializers.FloatField(help_text="The bucket's start, as the seed sent it."),
    },
    many=True,
)


class AggregatedReadingsView(APIView):
    """Count, average, min and max of a sensor's (or a sensor type's) numbers per time bucket.

    Buckets are `interval_seconds` long, or as short as lets at most `max_points` of them cover
    the range, rounded up to whole cells of the rollups (10 ms to 1 min; at most a tenth, whole
    seconds from a second up) so the rollups can answer; they are aligned to the Unix epoch and empty ones are left out. The range is the
    last `hours_back` hours (default 1, to the end of the current second), `start_time` /
    `end_time` (both inclusive; an open end is now, or with a session the session's last
    reading), or a whole session; `session` also narrows any range to that session's readings. With `max_points` and a session's open-ended range, the range is the whole
    seconds that hold the data.

    `sensor` names a sensor of the session's rig, or of `rig`; without either, a name that
    several rigs use is a 400 asking for one. Object values need `field` (a numeric top-level
    field); scalar values take none.
    """

    @extend_schema(
        parameters=[
            _param("sensor_type", str, "Aggregate every sensor of this type (one of sensor_type, sensor is required)."),
            _param("sensor", str, "Aggregate this sensor, by name (in the session's rig, or in `rig`)."),
            _param("rig", str, "The rig whose sensor `sensor` names, when several rigs use the name."),
            _param("field", str, "For object values: the numeric field to aggregate (brightness, fz)."),
            _param("interval_seconds", int, "Bucket length, 1-3600 s (default 60). Not with max_points."),
            _param("max_points", int, "At most this many buckets (1-10000): the interval is picked to fit."),
            _param("hours_back", int, "The last 1-24 hours (default 1 when there is no session and no start_time)."),
            _param("session", int, "Only this session's readings; alone, its whole range."),
            _param("start_time", OpenApiTypes.STR, "Range start, inclusive: Unix seconds or ISO 8601."),
            _param("end_time", OpenApiTypes.STR, "Range end, inclusive: Unix seconds or ISO 8601 (default now)."),
        ],
        responses={
            200: inline_serializer(
                "AggregatedReadings",
                {
                    "sensor_type": serializers.CharField(allow_null=True),
                    "sensor": serializers.CharField(allow_null=True),
                    "field": serializers.CharField(allow_null=True),
                    "session": serializers.IntegerField(allow_null=True),
                    "interval_seconds": serializers.FloatField(allow_null=True),
                    "hours_back": serializers.FloatField(allow_null=True),
                    "total_intervals": serializers.IntegerField(),
                    "data": _BUCKET,
                },
            ),
            **error_responses(
                _400="a bad or missing parameter, named in the message", _403="no credentials",
                _404="an unknown session, rig or sensor",
            ),
        },
    )
    def get(self, request):
        query = request.query_params
        session = session_param(query)
        sensor_ids, label, sensor_type = _sensors(query, session)
        field = query.get("field") or ""
        if field and not FIELD_NAME.match(field):
            raise params.bad("field", f"is not a field name (letters, digits, _): {field!r}")
        interval_s = params.integer(query, "interval_seconds", default=None, minimum=1, maximum=3600)
        max_points = params.integer(query, "max_points", default=None, minimum=1, maximum=MAX_POINTS)
        if interval_s is not None and max_points is not None:
            raise params.bad("max_points", "give interval_seconds or max_points, not both")
        start_us, stop_us, hours_back = _range(query, session)
        session_id = session.pk if session else None
        scope = dict(sensor_ids=sensor_ids, field=field, session_id=session_id)
        if max_points is None:
            interval_us = (interval_s or 60) * US
        else:
            interval_us = _interval_for(max_points, scope, start_us, stop_us)
        buckets = []
        if interval_us is not None:
            buckets = aggregates.readings_aggregate(**scope, start_us=start_us, stop_us=stop_us, interval_us=interval_us)
        if not buckets and sensor_ids:
            _explain_empty(field, label, sensor_ids, session_id)
        if hours_back is None and start_us is not None and stop_us is not None:
            hours_back = round((stop_us - start_us) / US / 3600, 6)
        return Response(
            {
                "sensor_type": sensor_type,
                "sensor": query.get("sensor") or None,
                "field": field or None,
                "session": session_id,
                "interval_seconds": None if interval_us is None else _seconds(interval_us),
                "hours_back": hours_back,
                "total_intervals": len(buckets),
                "data": [
                    {
                        "interval_start": b.start,
                        "interval_end": b.end,
                        "count": b.count,
                        "average": b.average,
                        "min": b.min,
                        "max": b.max,
                        "timestamp": b.start,
                    }
                    for b in buckets
                ],
            }
        )


def _sensors(query, session: RecordingSession | None) -> tuple[list[int], str, str | None]:
    """The sensors to aggregate, how to name them in a message, and their type."""
    name, sensor_type = query.get("sensor") or None, query.get("sensor_type") or None
    if not name and not sensor_type:
        raise params.bad("sensor_type", "give sensor_type or sensor (a sensor's name)")
    sensors = Sensor.objects.all()
    rig_name = query.get("rig") or None
    if rig_name:
        rig = rig_or_404(rig_name)
        if session is not None and session.rig_id != rig.pk:
            raise params.bad("rig", f"session {session.pk} records rig {session.rig.name!r}, not {rig_name!r}")
        sensors = sensors.filter(rig=rig)
    if session is not None:
        sensors = sensors.filter(rig_id=session.rig_id)
    if sensor_type:
        sensors = sensors.filter(sensor_type=sensor_type)
    if not name:
        return list(sensors.values_list("id", flat=True)), f"sensors of type {sensor_type!r}", sensor_type
    found = list(sensors.filter(name=name).values_list("id", "sensor_type", "rig__name"))
    if not found:
        if sensor_type and Sensor.objects.filter(name=name).exists():
            return [], f"sensor {name!r}", sensor_type  # named, but of another type: matches nothing
        where = f" in session {session.pk}'s rig {session.rig.name!r}" if session else f" in rig {rig_name!r}" if rig_name else ""
        raise NotFound(f"no sensor named {name!r}{where}")
    if len(found) > 1:
        rigs = ", ".join(sorted(r for _, _, r in found))
        raise params.bad("sensor", f"rigs {rigs} each have a sensor {name!r}: give rig or session")
    return [found[0][0]], f"sensor {name!r}", found[0][1]


def _range(query, session: RecordingSession | None) -> tuple[int | None, int | None, int | None]:
    """[start_us, stop_us) and the hours_back it came from, if it did."""
    start = params.time_param(query, "start_time")
    end = params.time_param(query, "end_time")
    if start and end and end < start:
        raise params.bad("end_time", "must not be before start_time")
    hours = params.integer(query, "hours_back", default=None, minimum=1, maximum=24)
    if hours is not None and start is not None:
        raise params.bad("hours_back", "give hours_back or start_time, not both")
    if end is not None:
        stop_us = _micros(end) + 1
    elif session is None or hours is not None:
        # To the end of the current second: whole seconds need no partial edge from the readings.
        stop_us = (int(time.time()) + 1) * US
    else:
        stop_us = None
    if start is not None:
        return _micros(start), stop_us, None
    if hours is None and session is not None:
        return None, stop_us, None
    hours = hours or 1
    return max(0, stop_us - hours * 3600 * US), stop_us, hours


def _micros(moment) -> int:
    return round(moment.timestamp() * US)


def _interval_for(max_points: int, scope: dict, start_us: int | None, stop_us: int | None) -> int | None:
    """The shortest interval (in whole rollup cells, see _round_up) whose buckets over the range number at most max_points."""
    if start_us is None or stop_us is None:
        extent = aggregates.data_extent(**scope, start_us=start_us, stop_us=stop_us)
        if extent is None:
            return None
        start_us = extent[0] if start_us is None else start_us
        stop_us = extent[1] if stop_us is None else stop_us
    if stop_us <= start_us:
        return None

    def fits(interval: int) -> bool:
        return (stop_us - 1) // interval - start_us // interval + 1 <= max_points

    span = stop_us - start_us
    interval = _round_up(-(-span // max_points))
    for _ in range(_INTERVAL_TRIES):
        if fits(interval):
            return interval
        interval = _round_up(interval + 1)
    if max_points > 1:
        # No more than max_points - 1 intervals in the span: the buckets it touches number at most max_points.
        return _round_up(-(-span // (max_points - 1)))
    while not fits(interval):
        interval *= 2
    return interval


def _round_up(interval_us: int) -> int:
    """Up to whole rollup cells no longer than a tenth of it (whole seconds from a second up), so the
    rollups answer with at most a few dozen cells a bucket; under the finest cell, µs (the readings answer)."""
    if interval_us < FINEST:
        return interval_us
    unit = max((r for r in RESOLUTIONS if 10 * r <= interval_us), default=FINEST)
    if interval_us >= US:
        unit = max(unit, US)
    return -(-interval_us // unit) * unit


def _seconds(interval_us: int) -> float | int:
    return interval_us // US if interval_us % US == 0 else interval_us / US


def _explain_empty(field: str, label: str, sensor_ids: list[int], session_id: int | None) -> None:
    """Nothing in range: a 400 if the field does not fit what the sensors hold at all."""
    if aggregates.has_field(sensor_ids=sensor_ids, field=field, session_id=session_id):
        return
    present = aggregates.fields_present(sensor_ids=sensor_ids, session_id=session_id)
    fields = [f for f in present if f]
    if field and "" in present and not fields:
        raise params.bad("field", f"{label} holds numbers, not objects: leave field out")
    if field and fields:
        raise params.bad("field", f"{label} has no numeric field {field!r}; its fields: {', '.join(fields)}")
    if not field and fields:
        raise params.bad("field", f"{label} holds objects: give field, one of {', '.join(fields)}")
