"""Who may open `/ws/sensor-data`: credentials (Django session or token) and the browser's Origin.

Channels' AllowedHostsOriginValidator admits any origin when ALLOWED_HOSTS is `*` and refuses
scripts that send no Origin; the contract asks the opposite. A handshake that carries an Origin is
accepted when it is the server's own (the Host it was sent to) or listed in CSRF_TRUSTED_ORIGINS;
one without is judged by its credentials alone. The verdict goes into the scope; the consumer
accepts and then closes with 4401/4403 and a reason, which a browser can read (a refused
handshake would only show a bare 403).
"""

from fnmatch import fnmatchcase
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from sensors.models import RigToken

REJECTION = "robotest.rejection"
# A rig's key ingests (robotest_site/api/authentication.py); it never opens the feed, even a public one.
RIG_TOKEN = (4403, "a rig token may only ingest its rig's readings: the live feed needs a user's token or a login")


class WebSocketAccess:
    """ASGI middleware (inside AuthMiddlewareStack): token auth, then the origin and auth verdict."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        headers = {name.decode("latin1").lower(): value.decode("latin1") for name, value in scope.get("headers", [])}
        user = scope.get("user")
        key = None
        if user is None or not user.is_authenticated:
            key = _token(headers, scope.get("query_string", b""))
            if key:
                user = await _token_user(key) or AnonymousUser()
                scope["user"] = user
        rig_key = bool(key) and key.startswith(RigToken.PREFIX)
        scope[REJECTION] = RIG_TOKEN if rig_key else _verdict(headers, scope.get("user"))
        return await self.app(scope, receive, send)


def _token(headers: dict[str, str], query_string: bytes) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("token "):
        return auth[6:].strip() or None
    values = parse_qs(query_string.decode("latin1")).get("token")
    return values[0] if values else None


@database_sync_to_async
def _token_user(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def _verdict(headers: dict[str, str], user) -> tuple[int, str] | None:
    origin = headers.get("origin")
    if origin and not origin_allowed(origin, headers.get("host", "")):
        return 4403, f"origin {origin} is not allowed: it is not this server and not in CSRF_TRUSTED_ORIGINS"
    if settings.ROBOTEST_PUBLIC_READ or (user is not None and user.is_authenticated):
        return None
    return 4401, "authentication required: log in, or send 'Authorization: Token <key>' or ?token=<key>"


def origin_allowed(origin: str, host: str) -> bool:
    """The server's own origin (same host and port as the request's Host) or a trusted one."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if host and parts.netloc.lower() == host.lower():
        return True
    normalized = f"{parts.scheme}://{parts.netloc}".lower()
    return any(fnmatchcase(normalized, trusted.lower()) for trusted in settings.CSRF_TRUSTED_ORIGINS)
