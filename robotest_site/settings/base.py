"""Settings shared by every mode; every value comes from the environment (see `.env.example`)."""

import base64
import hashlib
import os
import re
from datetime import timedelta

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from robotest_site import config
from robotest_site.config import BASE_DIR
from robotest_site.observability import logs

config.load_dotenv()

# --- The seed's names, meanings and defaults -------------------------------------------------
PROJECT_NAME = config.string("PROJECT_NAME", "Robotic Testing System")
VERSION = config.string("VERSION", "1.0.0")
DEBUG = config.boolean("DEBUG", False)
HOST = config.string("HOST", "0.0.0.0")
PORT = config.integer("PORT", 8000, minimum=1)
FORCE_SENSOR_HZ = config.number("FORCE_SENSOR_HZ", 10.0, positive=True)
MOTOR_SENSOR_HZ = config.number("MOTOR_SENSOR_HZ", 5.0, positive=True)
CAMERA_SENSOR_HZ = config.number("CAMERA_SENSOR_HZ", 1.0, positive=True)
FORCE_THRESHOLD_HIGH = config.number("FORCE_THRESHOLD_HIGH", 80.0)
MOTOR_THRESHOLD = config.number("MOTOR_THRESHOLD", 55.0, minimum=0)
MAX_DATA_POINTS = config.integer("MAX_DATA_POINTS", 10000, minimum=1)
DATA_EXPORT_PATH = config.string("DATA_EXPORT_PATH", "./data/exports/")
ALLOWED_HOSTS = config.string_list("ALLOWED_HOSTS", ["*"])

# --- Added by RoboTest ---------------------------------------------------------------------
SECRET_KEY = config.string("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG=False: set it in the environment or .env "
            "(`make run` keeps a generated one in data/secret_key)"
        )
    SECRET_KEY = "insecure-debug-only-key"

# On PostgreSQL with a connect timeout (ROBOTEST_DB_CONNECT_TIMEOUT, 5 s: a server that does not
# answer is a 503 within seconds, robotest_site/api/unavailable.py) and a statement timeout
# (ROBOTEST_DB_STATEMENT_TIMEOUT, 300 s): robotest_site/config.py.
DATABASES = {"default": config.database("DATABASE_URL", "sqlite:///data/robotest.sqlite3")}
REDIS_URL = config.string("REDIS_URL")
CSRF_TRUSTED_ORIGINS = config.string_list("CSRF_TRUSTED_ORIGINS", [])
ROBOTEST_ADMIN_PASSWORD = config.string("ROBOTEST_ADMIN_PASSWORD")
ROBOTEST_PUBLIC_READ = config.boolean("ROBOTEST_PUBLIC_READ", False)
# Makes the simulators reproducible: the same seed gives the same signals.
ROBOTEST_SIMULATOR_SEED = config.raw("ROBOTEST_SIMULATOR_SEED")
if ROBOTEST_SIMULATOR_SEED is not None:
    ROBOTEST_SIMULATOR_SEED = config.integer("ROBOTEST_SIMULATOR_SEED", 0, minimum=0)
# A worker whose heartbeat is older than this is considered gone.
ROBOTEST_HEARTBEAT_TIMEOUT = config.number("ROBOTEST_HEARTBEAT_TIMEOUT", 5.0, positive=True)
# While the database is away the engine keeps this many seconds of each session's readings (at its
# rates) and drops the oldest beyond; a session that lost any has the verdict error (docs/operations.md).
ROBOTEST_ENGINE_BUFFER_SECONDS = config.number("ROBOTEST_ENGINE_BUFFER_SECONDS", 60.0, positive=True)
# A session taken over (or noticed) late has at most this much of its past simulated; the time
# before stays a gap, counted in its lost readings.
ROBOTEST_CATCH_UP_SECONDS = config.number("ROBOTEST_CATCH_UP_SECONDS", 3600.0, minimum=0.0)
# What one live-feed client may send (docs/websocket.md "Limits"); what it receives is not limited.
ROBOTEST_WS_MAX_MESSAGE_BYTES = config.integer("ROBOTEST_WS_MAX_MESSAGE_BYTES", 64 * 1024, minimum=1024)
ROBOTEST_WS_MAX_MESSAGES_PER_SECOND = config.integer("ROBOTEST_WS_MAX_MESSAGES_PER_SECOND", 20, minimum=1)
# Observability (docs/operations.md): who may scrape /metrics, and the log lines' format. JSON is the
# production default; the settings module is chosen by DJANGO_SETTINGS_MODULE before this runs.
ROBOTEST_METRICS_ALLOW = config.networks("ROBOTEST_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"])
ROBOTEST_METRICS_TOKEN = config.string("ROBOTEST_METRICS_TOKEN")
ROBOTEST_LOG_FORMAT = config.choice(
    "ROBOTEST_LOG_FORMAT",
    "json" if os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production") else "text",
    logs.FORMATS,
)

# Security (README "Security"). The largest body Django reads, for every request: an ingest batch is
# the largest the API takes (10,000 readings of a 6-axis sensor are about 1.2 MB). A larger body is a
# JSON 413 naming this limit; daphne spools it to a temporary file first (a proxy's
# client_max_body_size, above this, bounds that).
ROBOTEST_INGEST_MAX_BYTES = config.integer("ROBOTEST_INGEST_MAX_BYTES", 4 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = ROBOTEST_INGEST_MAX_BYTES
# The Retry-After of the 503 a request gets while the database cannot be reached.
ROBOTEST_RETRY_AFTER_SECONDS = 5
# API rate limits (robotest_site/api/throttling.py), as DRF rates: N/s, N/min, N/hour, N/day.
ROBOTEST_INGEST_RATE = config.string("ROBOTEST_INGEST_RATE", "600/min")
ROBOTEST_ANON_RATE = config.string("ROBOTEST_ANON_RATE", "300/min")
ROBOTEST_AUTH_FAILURE_RATE = config.string("ROBOTEST_AUTH_FAILURE_RATE", "60/min")
for _name, _rate in [("ROBOTEST_INGEST_RATE", ROBOTEST_INGEST_RATE), ("ROBOTEST_ANON_RATE", ROBOTEST_ANON_RATE),
                     ("ROBOTEST_AUTH_FAILURE_RATE", ROBOTEST_AUTH_FAILURE_RATE)]:
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|m|min|h|hour|d|day)", _rate):
        raise ImproperlyConfigured(f"{_name} must be a rate such as 600/min (N/s, /min, /hour or /day), got {_rate!r}")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # Above channels_redis' 5 s blocking read (BZPOPMIN): redis-py 8's default 5 s
                # socket timeout would fire first and drop every idle live client.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 10}],
                # The live feed is lossy by design (the database is the record): a bounded
                # channel, and messages older than the expiry are not worth delivering.
                "capacity": 1000,
                "expiry": 10,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Lock-out after failed logins (django-axes) at /login/ and /admin/login/, per username and address:
# a locked user still logs in from elsewhere, and one address cannot lock everybody out.
ROBOTEST_LOGIN_FAILURES = config.integer("ROBOTEST_LOGIN_FAILURES", 5)
_cooloff = config.string("ROBOTEST_LOGIN_COOLOFF", "15m")
_duration = re.fullmatch(r"([1-9][0-9]*)([smhd])", _cooloff)
if _duration is None:
    raise ImproperlyConfigured(f"ROBOTEST_LOGIN_COOLOFF must be a duration such as 15m (s, m, h or d), got {_cooloff!r}")
ROBOTEST_LOGIN_COOLOFF = timedelta(
    **{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[_duration[2]]: int(_duration[1])}
)
AXES_FAILURE_LIMIT = ROBOTEST_LOGIN_FAILURES
AXES_COOLOFF_TIME = ROBOTEST_LOGIN_COOLOFF
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
# The client address is REMOTE_ADDR (daphne's --proxy-headers behind a proxy), never a header.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

# The pages' content security policy (django-csp): scripts, styles, fonts and images from this site
# only, no inline script or style attribute (scripts setting element.style are fine), no framing.
# connect-src 'self' covers the live feed's ws:/wss: on the same host (CSP 3; Chromium checked by
# the browser tests). The API docs' styles: 'self' 'unsafe-inline', for their one <style> (urls.py).
def _style_hashes(template) -> list[str]:
    """CSP hashes of a template's <style> blocks (no template tags inside them: the source is what renders)."""
    blocks = re.findall(r"<style>(.*?)</style>", template.read_text(), re.S)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'" for block in blocks]


# The admin's branding template keeps a few rules in a <style> block: allowed by its hash, computed
# here so that an edit of the block keeps it allowed, while any other inline style stays refused.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, *_style_hashes(BASE_DIR / "templates" / "admin" / "base_site.html")],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# The throttles' counts. Django's default LocMemCache is per process: with N daphne
# processes each would allow N times the rate. With Redis every process shares them.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "robotest_site.cache.SharedPoolRedisCache", "LOCATION": REDIS_URL}}

# --- Django --------------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "csp",
    "django_filters",
    "drf_spectacular",
    # The docs page's JS and CSS from our own static files: the machine may be offline (no CDN).
    "drf_spectacular_sidecar",
    "sensors",
    "sessions.apps.RecordingConfig",
    "robotest_site",
]

MIDDLEWARE = [
    # First: its request id is on every line the others log, and its latency covers them all.
    "robotest_site.observability.middleware.request_context",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "robotest_site.api.middleware.api_query_text",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "robotest_site.api.unavailable.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a login its backend refused into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "robotest_site.urls"
ASGI_APPLICATION = "robotest_site.asgi.application"
WSGI_APPLICATION = "robotest_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "robotest_site.context.site",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve static files straight from the app folders when nobody ran collectstatic (embedded mode).
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# No trailing-slash redirects: the seed's paths have none, and a redirected POST loses its body.
APPEND_SLASH = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: a rig's `Token rig_…` key (robotest_site/api/authentication.py); users' keys pass on.
        "robotest_site.api.authentication.RigTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["robotest_site.api.permissions.ReadPublicOrAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "robotest_site.api.errors.exception_handler",
    # Every resource list (rigs, sessions, rules, results) pages the same way and filters with
    # django-filter; the seed's paths are plain APIViews and keep their plain lists.
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "robotest_site.api.filters.StrictOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "robotest_site.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": [
        "robotest_site.api.throttling.IngestRateThrottle",
        "robotest_site.api.throttling.AnonymousRateThrottle",
        "robotest_site.api.throttling.FailedAuthThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "ingest": ROBOTEST_INGEST_RATE,
        "anon": ROBOTEST_ANON_RATE,
        "auth_failure": ROBOTEST_AUTH_FAILURE_RATE,
    },
    # The client address is REMOTE_ADDR: behind a proxy, daphne's --proxy-headers sets it (Dockerfile);
    # an X-Forwarded-For the client wrote itself must not pick its own bucket.
    "NUM_PROXIES": 0,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "RoboTest API",
    "VERSION": VERSION,
    "DESCRIPTION": (
        "Recording sessions of robotic test rigs: start and stop them, ingest readings from external "
        "rigs, read readings back (keyset pages through a `Link` header), export them. Writes need "
        "`Authorization: Token <key>` or a logged-in session; reads too unless "
        "`ROBOTEST_PUBLIC_READ=true`. Every bad parameter or body is a 4xx naming it. "
        "Outside this schema: `GET /`, `GET /health` and `GET /ready` (plain Django views, public), "
        "`GET /metrics` (Prometheus, docs/operations.md) and the WebSocket `/ws/sensor-data` (see README.md)."
    ),
    # Tags and operation ids from the path after it: `sessions`, `sensors`, `rigs`.
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # Several models have a `status`: one enum name for each.
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "sessions.models.RecordingSession.Status",
        "ResultStatusEnum": "sessions.models.ValidationResult.Status",
        "VerdictEnum": "sessions.models.RecordingSession.Verdict",
    },
    # The schema endpoint serves the schema; it does not describe itself.
    "SERVE_INCLUDE_SCHEMA": False,
    # Public like `/`: the schema and its docs describe the API and hold no data, and client
    # generators and schema checkers fetch them without a token.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = logs.logging_config(ROBOTEST_LOG_FORMAT)
