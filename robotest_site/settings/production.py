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

# Keep connections across requests; the pooled PostgreSQL connection is the expensive part.
DATABASES["default"]["CONN_MAX_AGE"] = 60
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
