"""Reads RoboTest's configuration from the environment, once, with clear errors.

The process environment wins over `.env`; an empty value means unset; a malformed value stops
start-up with an `ImproperlyConfigured` that names the variable, never a silent default.
"""

import ipaddress
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def load_dotenv(path: Path = BASE_DIR / ".env") -> None:
    """Read `.env` into the environment without overriding what the process already has."""
    if path.is_file():
        # read_env uses setdefault: the process environment wins.
        environ.Env.read_env(str(path))


def raw(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def string(name: str, default: str | None = None) -> str | None:
    value = raw(name)
    return default if value is None else value


def boolean(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def number(name: str, default: float, *, minimum: float | None = None, positive: bool = False) -> float:
    value = raw(name)
    if value is None:
        return default
    try:
        parsed = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if parsed != parsed or parsed in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {value!r}")
    if positive and parsed <= 0:
        raise ImproperlyConfigured(f"{name} must be greater than 0, got {value!r}")
    if minimum is not None and parsed < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value!r}")
    return parsed


def integer(name: str, default: int, *, minimum: int = 1) -> int:
    value = raw(name)
    if value is None:
        return default
    try:
        parsed = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None
    if parsed < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value!r}")
    return parsed


def string_list(name: str, default: list[str]) -> list[str]:
    value = raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw(name)
    if value is None:
        return default
    if value.lower() not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value.lower()


def networks(name: str, default: list[str]) -> list:
    """A comma-separated list of addresses or CIDR networks (`10.0.0.0/8,::1/128`)."""
    found = []
    for item in string_list(name, default):
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be addresses or CIDR networks separated by commas (10.0.0.0/8,::1/128), got {item!r}"
            ) from None
    return found


def database(name: str, default: str) -> dict:
    """Parse DATABASE_URL; a relative SQLite path is relative to the project, not the cwd."""
    url = string(name, default)
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises several kinds for a bad URL
        raise ImproperlyConfigured(f"{name} is not a database URL ({exc}): {url!r}") from None
    engine = config.get("ENGINE", "")
    if engine == "django.db.backends.sqlite3":
        path = Path(config["NAME"])
        if not path.is_absolute():
            path = BASE_DIR / path
        path.parent.mkdir(parents=True, exist_ok=True)
        config["NAME"] = str(path)
        config["OPTIONS"] = {
            # One writer (the recorder) beside many readers: WAL, a busy timeout and
            # IMMEDIATE transactions, or "database is locked" under load.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    elif engine in ("django.db.backends.postgresql",):
        options = config.setdefault("OPTIONS", {})
        # A database that does not answer is an error in seconds (HTTP 503, the engine buffers and
        # retries), not a request hanging for the kernel's TCP timeout.
        options.setdefault("connect_timeout", integer("ROBOTEST_DB_CONNECT_TIMEOUT", 5))
        # A statement running longer than this is cancelled (its transaction rolls back whole):
        # a lock held by a stuck client or a runaway query costs one request, not the server.
        timeout = number("ROBOTEST_DB_STATEMENT_TIMEOUT", 300.0, minimum=0.0)
        if timeout:
            flags = [options.get("options", ""), f"-c statement_timeout={round(timeout * 1000)}"]
            options["options"] = " ".join(flag for flag in flags if flag)
    else:
        raise ImproperlyConfigured(f"{name} must be a sqlite:// or postgres:// URL, got {url!r}")
    return config
