"""Production: PostgreSQL + Redis, daphne and `run_simulators` as separate processes."""

from django.core.exceptions import ImproperlyConfigured

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
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
