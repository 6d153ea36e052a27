"""Streamed exports of a session's readings.

Under daphne an async generator is sent as it goes only if it really awaits, so rows are read
with `aiterator` and sent in chunks of about 64 KB with a yield to the loop between them; memory
stays flat whatever the session's size.
"""

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC

from sensors.models import Sensor

from .models import Reading, RecordingSession

CSV_COLUMNS = ["timestamp", "sensor_type", "value", "datetime", "session_time", "session_id", "sensor"]
CHUNK_BYTES = 64 * 1024
FETCH_ROWS = 2000


def csv_filename(session: RecordingSession) -> str:
    return f"robotest-session-{session.pk}-{session.rig.name}.csv"


async def csv_stream(session: RecordingSession) -> AsyncIterator[bytes]:
    """The session's readings as CSV, in time order, in ~64 KB chunks."""
    sensors = {
        pk: (name, kind)
        async for pk, name, kind in Sensor.objects.filter(rig_id=session.rig_id).values_list("id", "name", "sensor_type")
    }
    started = session.started_at.timestamp()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = (
        Reading.objects.filter(session_id=session.pk)
        .order_by("timestamp", "id")
        .values("timestamp", "value", "sensor_id")
        .aiterator(chunk_size=FETCH_ROWS)
    )
    async for row in rows:
        ts = row["timestamp"]
        unix = ts.timestamp()
        value = row["value"]
        name, kind = sensors[row["sensor_id"]]
        writer.writerow(
            [
                repr(unix),
                kind,
                value if isinstance(value, int | float) else json.dumps(value, separators=(",", ":")),
                ts.astimezone(UTC).isoformat(),
                f"{unix - started:.6f}",
                session.pk,
                name,
            ]
        )
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            await asyncio.sleep(0)
    yield buffer.getvalue().encode()
