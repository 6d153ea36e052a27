"""The dependency checks behind `/health` (liveness, with detail) and `/ready` (readiness).

Each check answers a JSON-safe dict with a `status` of up, down or unknown, and never raises.
"""

import asyncio
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from sessions.models import EngineHeartbeat, RecordingSession


def dependencies() -> dict:
    """Database, channel layer and worker heartbeat, each checked once."""
    return {"database": database(), "channel_layer": channel_layer(), "worker": worker()}


def overall(services: dict) -> str:
    """unhealthy: the database or the layer is down; degraded: simulated sessions record and no worker beats."""
    if services["database"]["status"] != "up" or services["channel_layer"]["status"] != "up":
        return "unhealthy"
    if services["worker"]["status"] == "up" or not services["worker"]["needed"]:
        return "healthy"
    return "degraded"


def database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": "down", "vendor": connection.vendor, "error": str(exc)[:200]}
    return {"status": "up", "vendor": connection.vendor, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def channel_layer() -> dict:
    layer = get_channel_layer()
    name = type(layer).__name__
    started = time.perf_counter()
    try:
        async_to_sync(_layer_roundtrip)(layer)
    except Exception as exc:
        return {"status": "down", "backend": name, "error": str(exc)[:200]}
    return {"status": "up", "backend": name, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def _layer_roundtrip(layer) -> None:
    # The default prefix: channels_redis reads one process's prefixed channels under one lock,
    # which a live consumer waiting on its own channel holds.
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    await asyncio.wait_for(layer.receive(channel), timeout=2.0)


def worker() -> dict:
    """The freshest engine heartbeat; `needed` when a simulated rig's session records."""
    try:
        beat = EngineHeartbeat.objects.order_by("-beat_at").first()
        needed = RecordingSession.objects.filter(
            status=RecordingSession.Status.RECORDING, rig__source="simulated"
        ).exists()
        horizon = timezone.now() - timedelta(seconds=settings.ROBOTEST_HEARTBEAT_TIMEOUT)
        # Over every live engine: readings waiting for the database, and dropped since each started.
        totals = EngineHeartbeat.objects.filter(beat_at__gte=horizon).aggregate(
            buffered=Coalesce(Sum("buffered"), 0), lost=Coalesce(Sum("lost_readings"), 0)
        )
    except Exception as exc:
        return {"status": "unknown", "needed": True, "error": str(exc)[:200]}
    if beat is None:
        return {"status": "down", "needed": needed, "last_heartbeat": None}
    age = (timezone.now() - beat.beat_at).total_seconds()
    alive = age <= settings.ROBOTEST_HEARTBEAT_TIMEOUT
    return {
        "status": "up" if alive else "down",
        "needed": needed,
        "name": beat.name,
        "last_heartbeat": beat.beat_at.timestamp(),
        "age_seconds": round(age, 3),
        "sessions": beat.sessions,
        "buffered_readings": totals["buffered"],
        "lost_readings": totals["lost"],
    }
