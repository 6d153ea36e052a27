"""Streamed exports of a session: CSV (long or wide), a JSON test record, MCAP.

Each is an async iterable of ~64 KB chunks with a real await between them (see `chunks`), so
memory stays flat whatever the session's size; each has a filename that names the session.
"""

from sessions.exports.csv import csv_stream
from sessions.exports.mcap import mcap_stream
from sessions.exports.record import record_stream
from sessions.models import RecordingSession

LAYOUTS = ("long", "wide")


def export_filename(session: RecordingSession, extension: str, *, suffix: str = "") -> str:
    """`robotest-session-<id>-<rig>[-<suffix>].<extension>`: rig names are slugs, safe in a header."""
    tail = f"-{suffix}" if suffix else ""
    return f"robotest-session-{session.pk}-{session.rig.name}{tail}.{extension}"


def csv_filename(session: RecordingSession, *, layout: str = "long") -> str:
    return export_filename(session, "csv", suffix="wide" if layout == "wide" else "")


__all__ = ["LAYOUTS", "csv_filename", "csv_stream", "export_filename", "mcap_stream", "record_stream"]
