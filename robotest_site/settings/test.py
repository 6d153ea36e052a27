"""The test suite: PostgreSQL and Redis for real, unless the environment names others."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/robotest")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
# Generous API rates: no test is throttled by accident (tests/robotest_site/security/ set their own).
for _rate in ("ROBOTEST_INGEST_RATE", "ROBOTEST_ANON_RATE", "ROBOTEST_AUTH_FAILURE_RATE"):
    os.environ.setdefault(_rate, "100000/min")

from robotest_site.settings.base import *  # noqa: E402,F401,F403

STATIC_ROOT.mkdir(exist_ok=True)  # noqa: F405 (whitenoise warns on every request without it)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Django's test client logs in without a request, which django-axes refuses: its tests switch it on.
AXES_ENABLED = False
