"""Site-level views: the root (JSON or the dashboard) and the health check."""

import asyncio
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django.views.defaults import page_not_found

from sessions.live import presence
from sessions.models import EngineHeartbeat, RecordingSession
from sessions.pages.dashboard import dashboard


@vary_on_headers("Accept")
def root(request):
    """JSON for API clients; the dashboard for a browser."""
    if "text/html" in request.headers.get("Accept", ""):
        return dashboard(request)
    return JsonResponse(
        {"message": f"{settings.PROJECT_NAME} API", "version": settings.VERSION, "status": "running"}
    )


def not_found(request, exception):
    """A path nothing routes: JSON under /api/ (API errors are JSON, docs/errors.md), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"no such path: {request.path}"}, status=404)
    return page_not_found(request, exception)


def health(request):
    """Database, channel layer and worker heartbeat; 503 when the database or the layer is down."""
    services = {
        "database": _database(), "channel_layer": _channel_layer(), "worker": _worker(), "live_feed": _live_feed()
    }
    if services["database"]["status"] != "up" or services["channel_layer"]["status"] != "up":
        overall = "unhealthy"
    elif services["worker"]["status"] == "up" or not services["worker"]["needed"]:
        overall = "healthy"
    else:
        overall = "degraded"
    body = {"status": overall, "timestamp": timezone.now().timestamp(), "version": settings.VERSION, "services": services}
    return JsonResponse(body, status=503 if overall == "unhealthy" else 200)


def _database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": "down", "vendor": connection.vendor, "error": str(exc)[:200]}
    return {"status": "up", "vendor": connection.vendor, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _channel_layer() -> dict:
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


def _live_feed() -> dict:
    try:
        totals = presence.totals()
    except Exception as exc:
        return {"status": "unknown", "error": str(exc)[:200]}
    return {"status": "up", "connected_clients": totals["clients"], "dropped_frames": totals["dropped_frames"],
            "layer_lost_readings": totals["layer_lost_readings"], "server_processes": totals["processes"]}


def _worker() -> dict:
    try:
        beat = EngineHeartbeat.objects.order_by("-beat_at").first()
        needed = RecordingSession.objects.filter(
            status=RecordingSession.Status.RECORDING, rig__source="simulated"
        ).exists()
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
    }
