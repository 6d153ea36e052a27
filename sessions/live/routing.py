"""The WebSocket routes, and the answer to a handshake on a path that has none (docs/websocket.md)."""

import json
import logging

from channels.routing import URLRouter
from django.urls import path, re_path

from sessions.live.consumers import SensorDataConsumer
from sessions.live.flow import HTTP_RESPONSE

logger = logging.getLogger(__name__)


async def not_found(scope, receive, send):
    """Refuse the handshake as not found: a client's mistake, logged as a warning, never a 500.

    Channels' router raises "No route found" for an unknown path, which daphne answers with 500.
    With the ASGI `websocket.http.response` extension (daphne gets it from sessions/live/flow.py)
    the refusal is an HTTP 404; a server without it can only close, which is an HTTP 403.
    """
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    where = scope.get("path", "")
    logger.warning("WebSocket handshake refused: no route for %s", where)
    if HTTP_RESPONSE not in scope.get("extensions", {}):
        await send({"type": "websocket.close"})
        return
    body = json.dumps({"detail": f"no WebSocket route for {where}: the live feed is /ws/sensor-data"}).encode()
    await send({
        "type": "websocket.http.response.start",
        "status": 404,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "websocket.http.response.body", "body": body})


websocket_router = URLRouter([
    path("ws/sensor-data", SensorDataConsumer.as_asgi()),
    re_path(r"", not_found),
])
