"""The test suite: PostgreSQL and Redis for real, unless the environment names others."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/robotest")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")

from robotest_site.settings.base import *  # noqa: E402,F401,F403

STATIC_ROOT.mkdir(exist_ok=True)  # noqa: F405 (whitenoise warns on every request without it)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
