"""The API's rate limits (README "Security"): ingest per user, anonymous use and failed credentials per address.

Each is a DRF throttle counting in Django's cache (Redis when REDIS_URL is set, so every daphne
process shares the counts; without it each process counts for itself). Rates are read when a
request is checked, so a test's `settings` override takes effect. A refusal is a 429 in the JSON
error shape with `Retry-After` (robotest_site/api/errors.py).

Failed credentials cannot be a plain throttle: DRF authenticates and checks permissions before it
checks throttles, so a bad token or no token is a 401/403 before any throttle runs. The exception
handler records those failures (`FailedAuthThrottle.record`); the throttle itself only reads the
count, and refuses every request from that address while it is over the rate, a right token
included, so that a guess cannot tell a hit from the refusal.
"""

from rest_framework import throttling
from rest_framework.settings import api_settings

INGEST_URL_NAME = "session-readings"


class _Rate(throttling.SimpleRateThrottle):
    # What the 429's detail calls the limit: "ingest requests per user".
    what = ""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def describe(self) -> str:
        return f"too many {self.what}: the limit is {self.rate}"

    def allow_request(self, request, view):
        return self._noted(request, super().allow_request(request, view))

    def _noted(self, request, allowed: bool) -> bool:
        # DRF's Throttled names no limit: the exception handler reads this one's description.
        if not allowed:
            request.robotest_throttle = self.describe()
        return allowed


class IngestRateThrottle(_Rate):
    """Ingest batches (POST to a session's readings) per user, or per rig for rig tokens.

    A default throttle that picks its requests by URL name, rather than `throttle_classes` on the
    action: the action also serves the readings' GET, which only the general limits cover.
    """

    scope = "ingest"
    what = "ingest requests per user or rig"

    def get_cache_key(self, request, view):
        match = request.resolver_match
        if request.method != "POST" or match is None or match.url_name != INGEST_URL_NAME:
            return None
        requester = _requester(request)
        return None if requester is None else self.cache_format % {"scope": self.scope, "ident": requester}


def _requester(request) -> str | None:
    """`user.<pk>`, `rig.<id>` for a rig token (an anonymous user that knows its rig), else None."""
    user = request.user
    if user is not None and user.is_authenticated:
        return f"user.{user.pk}"
    rig_id = getattr(user, "rig_id", None)  # robotest_site/api/authentication.py's RigPrincipal
    return f"rig.{rig_id}" if rig_id is not None else None


class AnonymousRateThrottle(_Rate):
    """Anonymous API requests per client address (the public reads, the schema)."""

    scope = "anon"
    what = "anonymous API requests from this address"

    def get_cache_key(self, request, view):
        if _requester(request) is not None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class FailedAuthThrottle(_Rate):
    """Requests refused for missing or wrong credentials, per client address (see the module's docstring)."""

    scope = "auth_failure"
    what = "requests with missing or wrong credentials from this address"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view):
        self.key = self.get_cache_key(request, view)
        self.history = self._recent()
        return self._noted(request, len(self.history) < self.num_requests)

    def record(self, request) -> bool:
        """Count one failure; False when the address is now over the rate."""
        self.key = self.get_cache_key(request, None)
        self.history = self._recent()
        if len(self.history) >= self.num_requests:
            return False
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)
        return True

    def _recent(self) -> list[float]:
        self.now = self.timer()
        return [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]


def refusal(request) -> tuple[str, float] | None:
    """After a 401/403 for credentials: (the limit's description, seconds to wait) once over the rate."""
    throttle = FailedAuthThrottle()
    if throttle.record(request):
        return None
    return throttle.describe(), throttle.wait() or throttle.duration
