"""Rig tokens: `Authorization: Token rig_<40 hex>` authenticates a rig, not a user (sensors.models.RigToken).

The same `Token` keyword as a user's DRF token, so a rig's client swaps its key and nothing else;
a user's key is 40 hex digits, which never start with `rig_`, so each class knows its own keys.
The rig is a principal, not a user: `RigPrincipal` is an AnonymousUser (no role, no group, not
staff, not authenticated) that carries its rig. Every check written for users therefore refuses it,
and only a permission that names rig tokens admits it: a session's readings, of its own rig
(sessions/api/sessions.py); everything else answers 403 naming the rig (permissions.py).
"""

from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from sensors.models import RigToken

KEYWORD = "Token"
# last_used_at is written at most this often per token: not one UPDATE per ingested batch.
TOUCH_EVERY = timedelta(seconds=60)


class RigPrincipal(AnonymousUser):
    """The requester when a rig token authenticated: an anonymous user that knows its rig."""

    def __init__(self, token: RigToken) -> None:
        self.token = token
        self.rig_id = token.rig_id
        self.rig_name = token.rig.name

    def __str__(self) -> str:
        return f"rig {self.rig_name}"


def rig_principal(user) -> RigPrincipal | None:
    """The rig a request's user stands for, or None for a user (or nobody)."""
    return user if isinstance(user, RigPrincipal) else None


def _rig_key(request) -> str | None:
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != KEYWORD.lower().encode() or not parts[1].startswith(b"rig_"):
        return None
    return parts[1].decode("latin1")


class RigTokenAuthentication(BaseAuthentication):
    """`Authorization: Token rig_…`: a rig's token; any other header is left to the next class."""

    def authenticate(self, request):
        key = _rig_key(request)
        if key is None:
            return None
        token = RigToken.objects.select_related("rig").filter(digest=RigToken.digest_of(key)).first()
        if token is None:
            raise AuthenticationFailed(
                "Invalid rig token: no rig has this key (create one with manage.py create_rig_token)."
            )
        if token.revoked:
            raise AuthenticationFailed(
                f"This rig token of rig {token.rig.name!r} was revoked at {token.revoked_at.isoformat()}: "
                "ask an admin for a new one."
            )
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
            RigToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return RigPrincipal(token), token

    def authenticate_header(self, request):
        # DRF asks the first class only: a request with a rig key gets 401 and this scheme; every
        # other keeps the answer it had before rig tokens (403, from SessionAuthentication's None).
        return KEYWORD if _rig_key(request) else None


class RigTokenScheme(OpenApiAuthenticationExtension):
    """The rig token in the OpenAPI schema (drf-spectacular finds it once this module is imported)."""

    target_class = RigTokenAuthentication
    name = "rigToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A rig's key, `Token rig_<40 hex>` (manage.py create_rig_token): ingest into and "
            "read the readings of its own rig's sessions only.",
        }
