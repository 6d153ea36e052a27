"""ASGI entry point: HTTP through Django, WebSocket `/ws/sensor-data` through Channels."""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "robotest_site.settings.local")

# Django must be set up before anything imports models (consumers, routing).
django_asgi_app = get_asgi_application()

from sessions.live import flow  # noqa: E402
from sessions.live.access import WebSocketAccess  # noqa: E402
from sessions.live.routing import websocket_router  # noqa: E402

flow.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(WebSocketAccess(websocket_router)),
    }
)
