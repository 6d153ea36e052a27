"""A session as a JSON test record, in the spirit of OpenHTF's: what ran, against what, and how it went.

An OpenHTF test record holds the run's metadata, its measurements and their outcomes, not the raw
signal; likewise this record holds the session's metadata, the rig and its sensors, the rule
snapshot and rates it ran with, its verdict, every validation result (its "measurements that
failed", with first/last time, count, peak and who acknowledged it) and per-sensor statistics.
The readings themselves are not in it: a 1 kHz hour is 3.6 million of them, which would drown
the summary and duplicate the CSV and MCAP exports. `readings` gives their count and the links
to those exports instead.

It is one JSON document streamed in chunks: the head (everything but the results) first, then
the results, read from the database in batches (a spiky signal can open one for every few
readings, so there may be many).
"""

import json
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.utils import timezone

from sensors.models import Sensor
from sessions.exports.chunks import rechunk
from sessions.models import RecordingSession, ValidationResult
from sessions.reads.stats import sensor_stats

FORMAT = "robotest.test-record/1"
FETCH_RESULTS = 1000
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _head(session: RecordingSession, links: dict[str, str]) -> dict:
    """Everything but the validation results (sync: a few small queries)."""
    rig = session.rig
    sensors = list(Sensor.objects.filter(rig=rig).order_by("name"))
    end = session.stopped_at or timezone.now()
    return {
        "format": FORMAT,
        "session": {
            "id": session.pk,
            "name": session.name,
            "description": session.description,
            "operator": session.operator.get_username() if session.operator else None,
            "rig": rig.name,
            "status": session.status,
            "started_at": _iso(session.started_at),
            "stopped_at": _iso(session.stopped_at),
            "duration_seconds": round((end - session.started_at).total_seconds(), 6),
            "verdict": session.verdict or None,
            "reading_count": session.reading_count,
            "alert_count": session.alert_count,
            "summary_stats": session.summary_stats,
        },
        "rig": {
            "name": rig.name,
            "source": rig.source,
            "description": rig.description,
            "sensors": [
                {"name": s.name, "sensor_type": s.sensor_type, "unit": s.unit, "rate_hz": s.rate_hz} for s in sensors
            ],
        },
        "rules": session.rules,
        "rates": session.rates,
        "verdict": session.verdict or None,
        "statistics": sensor_stats(session_id=session.pk),
        "readings": {"count": session.reading_count, **links},
    }


def result_record(result: dict) -> dict:
    """One validation result (a `values()` row with its sensor's name and type) in the record."""
    return {
        "id": result["id"],
        "sensor": result["sensor__name"],
        "sensor_type": result["sensor__sensor_type"],
        "rule": result["rule"],
        "status": result["status"],
        "message": result["message"],
        "first_timestamp": result["first_timestamp"].timestamp(),
        "last_timestamp": result["last_timestamp"].timestamp(),
        "count": result["count"],
        "peak": result["peak"],
        "details": result["details"],
        "open": result["is_open"],
        "acknowledged": result["acknowledged_at"] is not None,
        "acknowledged_by": result["acknowledged_by__username"],
        "acknowledged_at": _iso(result["acknowledged_at"]),
        "acknowledge_comment": result["acknowledge_comment"],
    }


RESULT_FIELDS = (
    "id", "sensor__name", "sensor__sensor_type", "rule", "status", "message", "first_timestamp",
    "last_timestamp", "count", "peak", "details", "is_open", "acknowledged_at", "acknowledged_by__username",
    "acknowledge_comment",
)


def results_values(session: RecordingSession):
    """The session's validation results (values() rows) in the order they opened."""
    return ValidationResult.objects.filter(session_id=session.pk).order_by("first_timestamp", "id").values(*RESULT_FIELDS)


def results_in_order(session: RecordingSession):
    """The session's validation results in the order they opened, read in batches."""
    return results_values(session).aiterator(chunk_size=FETCH_RESULTS)


async def _pieces(session: RecordingSession, links: dict[str, str]) -> AsyncIterator[bytes]:
    head = await sync_to_async(_head)(session, links)
    # The head's closing brace is replaced by the results array, streamed.
    yield _dumps(head)[:-1].encode() + b',"validation_results":['
    separator = b""
    async for result in results_in_order(session):
        yield separator + _dumps(result_record(result)).encode()
        separator = b","
    yield b"]}"


def record_stream(session: RecordingSession, *, links: dict[str, str]) -> AsyncIterator[bytes]:
    """The JSON test record of a session, in ~64 KB chunks; `links` name its other exports."""
    return rechunk(_pieces(session, links))
