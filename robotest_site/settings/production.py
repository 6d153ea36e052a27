"""Production: PostgreSQL + Redis, daphne and `run_simulators` as separate processes, behind a proxy.

HTTPS by default: a proxy terminates TLS and says so in `X-Forwarded-Proto` (docs/deployment.md,
deploy/nginx.conf); `manage.py check --deploy` prints no warning. `ROBOTEST_HTTPS=false` is the one
switch for a plain-HTTP lab network.
"""

from django.core.exceptions import ImproperlyConfigured

from robotest_site import config
from robotest_site.settings.base import *  # noqa: F401,F403
from robotest_site.settings.base import DATABASES, REDIS_URL

if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is required in production: run_simulators and daphne talk through it"
    )
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must name PostgreSQL (postgres://…) in production")

# A pool of PostgreSQL connections per process (Django's, psycopg_pool). CONN_MAX_AGE cannot keep
# one: daphne runs every request's sync code in a thread of its own, whose connection dies with it,
# so each request connected anew (1.00 connections a request, issue 12; docs/benchmarks.md).
# ROBOTEST_DB_POOL_MAX=0 turns the pool off: a connection per request, as before.
ROBOTEST_DB_POOL_MIN = config.integer("ROBOTEST_DB_POOL_MIN", 2, minimum=0)
ROBOTEST_DB_POOL_MAX = config.integer("ROBOTEST_DB_POOL_MAX", 10, minimum=0)
# run_simulators keeps 2-3 connections for its lifetime (its engine's database and control threads
# keep theirs): a smaller pool would leave it waiting on itself.
if ROBOTEST_DB_POOL_MAX and ROBOTEST_DB_POOL_MAX < max(4, ROBOTEST_DB_POOL_MIN):
    raise ImproperlyConfigured(
        f"ROBOTEST_DB_POOL_MAX must be 0 (no pool) or at least 4 and ROBOTEST_DB_POOL_MIN "
        f"({ROBOTEST_DB_POOL_MIN}), got {ROBOTEST_DB_POOL_MAX}"
    )
# A copy: these settings change it, and base's stays as it was should Django read them twice (after
# a start-up error, manage.py tries again in the same process).
DATABASES = {"default": {**DATABASES["default"], "OPTIONS": dict(DATABASES["default"]["OPTIONS"])}}
DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django refuses both
if ROBOTEST_DB_POOL_MAX:
    # Django's backend, whose pool tries a connection before lending it and, at the first dead one
    # (a server restart, a failover), replaces every dead one at once: robotest_site/postgresql/.
    DATABASES["default"]["ENGINE"] = "robotest_site.postgresql"
    # Off: it would have psycopg_pool check each connection as well, pausing between dead ones.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    # While the server is down the pool only says so when a request's wait for a connection runs
    # out, at each query a request tries (/health tries two): a wait of at most 2 s (and never more
    # than the connect timeout) keeps such a request a 503 within seconds. A reconnection that keeps
    # failing gives up after the connect timeout and the next request that waits starts another:
    # the back-off (1, 2, 4 s …) never grows past it, so the pool is back within seconds of the server.
    _connect = float(DATABASES["default"]["OPTIONS"]["connect_timeout"])
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": ROBOTEST_DB_POOL_MIN,
        "max_size": ROBOTEST_DB_POOL_MAX,
        "timeout": min(2.0, _connect),
        "reconnect_timeout": _connect,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- HTTPS behind a proxy ------------------------------------------------------------------
# The proxy must set X-Forwarded-Proto itself (overwriting a client's), and daphne must be
# reachable through the proxy only: anyone who reaches daphne directly can claim https.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# false: a plain-HTTP lab network. No redirect, cookies sent over HTTP, no HSTS; `check --deploy`
# then warns security.W004, W008, W012 and W016. They are left unsilenced on purpose: they are
# true of such a deployment, and whoever runs the check should read them.
ROBOTEST_HTTPS = config.boolean("ROBOTEST_HTTPS", True)
SECURE_SSL_REDIRECT = ROBOTEST_HTTPS
# Health probes and metrics scrapers ask daphne over plain HTTP from inside the network; a
# redirect would send them to a TLS port daphne does not have.
SECURE_REDIRECT_EXEMPT = [r"^(health|ready|metrics)$"]
SESSION_COOKIE_SECURE = ROBOTEST_HTTPS
CSRF_COOKIE_SECURE = ROBOTEST_HTTPS

# HSTS: a year by default. A first roll-out may start smaller (300), since browsers remember it;
# 0 turns it off (check --deploy then warns W004). Subdomains and `preload` come with it: the
# preload directive does nothing until someone submits the domain to hstspreload.org.
ROBOTEST_HSTS_SECONDS = config.integer(
    "ROBOTEST_HSTS_SECONDS", 31_536_000 if ROBOTEST_HTTPS else 0, minimum=0
)
if ROBOTEST_HSTS_SECONDS and not ROBOTEST_HTTPS:
    raise ImproperlyConfigured(
        f"ROBOTEST_HSTS_SECONDS={ROBOTEST_HSTS_SECONDS} needs HTTPS, but ROBOTEST_HTTPS=false: "
        "unset ROBOTEST_HSTS_SECONDS (or set it to 0), or serve over HTTPS"
    )
SECURE_HSTS_SECONDS = ROBOTEST_HSTS_SECONDS
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
