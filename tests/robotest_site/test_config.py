"""Configuration from the environment (robotest_site.config, settings) and `manage.py ensure_admin`."""

import io
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from robotest_site import config

ROOT = Path(__file__).resolve().parents[2]
BASE_SETTINGS = ROOT / "robotest_site" / "settings" / "base.py"
SETTINGS_VARIABLES = sorted(
    set(re.findall(r'config\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', BASE_SETTINGS.read_text()))
)


def settings_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """An environment for a child process on the local settings, isolated from this one and `.env`.

    Every variable the settings read is set empty (empty means unset, and the process environment
    wins over `.env`), so neither pytest's test settings nor a developer's `.env` leak in.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("DJANGO_")}
    env.update({name: "" for name in SETTINGS_VARIABLES})
    env.update(
        DJANGO_SETTINGS_MODULE="robotest_site.settings.local",
        DATABASE_URL=f"sqlite:///{tmp_path}/x.sqlite3",
        SECRET_KEY="x",
    )
    env.update(overrides)
    return env


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def setting_in_child(tmp_path: Path, name: str, **overrides: str) -> str:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        f"print(repr(settings.{name}))"
    )
    result = run_python(settings_env(tmp_path, **overrides), "-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def clean_environ():
    """os.environ restored afterwards, keys that `load_dotenv` adds included."""
    with mock.patch.dict(os.environ):
        yield os.environ


@pytest.mark.parametrize(
    "name, value",
    [
        ("FORCE_SENSOR_HZ", "fast"),
        ("MOTOR_SENSOR_HZ", "-1"),
        ("CAMERA_SENSOR_HZ", "0"),
        ("DEBUG", "maybe"),
        ("PORT", "eighty"),
        ("DATABASE_URL", "mysql://x"),
        ("ROBOTEST_PUBLIC_READ", "sometimes"),
    ],
)
def test_malformed_value_stops_start_up_naming_the_variable(tmp_path, name, value):
    result = run_python(settings_env(tmp_path, **{name: value}), "manage.py", "check")
    assert result.returncode != 0
    assert re.search(rf"ImproperlyConfigured: {name} ", result.stderr), result.stderr


def test_missing_secret_key_without_debug_is_a_clear_error(tmp_path):
    result = run_python(settings_env(tmp_path, SECRET_KEY="", DEBUG="False"), "manage.py", "check")
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG=False" in result.stderr


def test_debug_runs_without_a_secret_key(tmp_path):
    assert setting_in_child(tmp_path, "DEBUG", SECRET_KEY="", DEBUG="true") == "True"


def test_empty_value_means_the_default(tmp_path):
    assert setting_in_child(tmp_path, "FORCE_SENSOR_HZ", FORCE_SENSOR_HZ="") == "10.0"


def test_set_value_reaches_the_settings(tmp_path):
    assert setting_in_child(tmp_path, "FORCE_SENSOR_HZ", FORCE_SENSOR_HZ="25") == "25.0"


def test_process_environment_wins_over_dotenv(tmp_path, clean_environ):
    dotenv = tmp_path / ".env"
    dotenv.write_text("FORCE_SENSOR_HZ=99\nMOTOR_SENSOR_HZ=7\n")
    clean_environ["FORCE_SENSOR_HZ"] = "20"
    clean_environ.pop("MOTOR_SENSOR_HZ", None)

    config.load_dotenv(dotenv)

    assert config.number("FORCE_SENSOR_HZ", 10.0) == 20.0
    assert config.number("MOTOR_SENSOR_HZ", 5.0) == 7.0


def test_empty_value_in_the_environment_is_unset_even_when_dotenv_sets_it(tmp_path, clean_environ):
    dotenv = tmp_path / ".env"
    dotenv.write_text("FORCE_SENSOR_HZ=99\n")
    clean_environ["FORCE_SENSOR_HZ"] = ""

    config.load_dotenv(dotenv)

    assert config.number("FORCE_SENSOR_HZ", 10.0) == 10.0


def test_missing_dotenv_is_not_an_error(tmp_path, clean_environ):
    config.load_dotenv(tmp_path / "absent.env")


def test_config_error_names_the_variable(clean_environ):
    clean_environ["MOTOR_SENSOR_HZ"] = "-1"
    with pytest.raises(ImproperlyConfigured, match="MOTOR_SENSOR_HZ"):
        config.number("MOTOR_SENSOR_HZ", 5.0, positive=True)


def test_env_example_as_dotenv_gives_the_documented_defaults(clean_environ):
    for name in SETTINGS_VARIABLES:
        clean_environ.pop(name, None)
    clean_environ["SECRET_KEY"] = "x"  # the example leaves it empty, and DEBUG=False needs one

    config.load_dotenv(ROOT / ".env.example")
    values = runpy.run_path(str(BASE_SETTINGS))

    assert values["PROJECT_NAME"] == "Robotic Testing System"
    assert values["DEBUG"] is False
    assert values["FORCE_SENSOR_HZ"] == 10.0
    assert values["MAX_DATA_POINTS"] == 10000
    assert values["ALLOWED_HOSTS"] == ["*"]
    assert values["REDIS_URL"] is None
    assert values["ROBOTEST_ADMIN_PASSWORD"] is None


def ensure_admin() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_ensure_admin_creates_admin_with_the_configured_password(db, settings):
    settings.ROBOTEST_ADMIN_PASSWORD = "configured-pass-123"

    output = ensure_admin()

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("configured-pass-123")
    assert "configured-pass-123" not in output
    assert "ROBOTEST_ADMIN_PASSWORD" in output


def test_ensure_admin_prints_a_random_password_once_when_none_is_configured(db, settings):
    settings.ROBOTEST_ADMIN_PASSWORD = None

    output = ensure_admin()

    match = re.search(r"Created admin user 'admin' with password: (\S+)", output)
    assert match, output
    assert get_user_model().objects.get(username="admin").check_password(match.group(1))
    assert match.group(1) not in ensure_admin()


def test_ensure_admin_is_idempotent(db, settings):
    settings.ROBOTEST_ADMIN_PASSWORD = "first-pass-123"
    ensure_admin()
    settings.ROBOTEST_ADMIN_PASSWORD = "second-pass-456"

    output = ensure_admin()

    admins = get_user_model().objects.filter(username="admin")
    assert admins.count() == 1
    assert admins.get().check_password("first-pass-123")
    assert "first-pass-123" not in output and "second-pass-456" not in output


def test_ensure_admin_refuses_an_admin_that_is_not_a_superuser(db):
    get_user_model().objects.create_user(username="admin", password="whatever-123")

    with pytest.raises(CommandError, match="not a superuser"):
        ensure_admin()


# --- The production settings' PostgreSQL pool (issue 12; tests/e2e/test_db_pool.py runs it under daphne) ---

def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The production settings on a PostgreSQL URL (nothing connects: the settings are only read)."""
    env = settings_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="robotest_site.settings.production",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/robotest_pool",
        REDIS_URL="redis://127.0.0.1:6379/15",
        ROBOTEST_HTTPS="",
        ROBOTEST_HSTS_SECONDS="",
        ROBOTEST_DB_POOL_MIN="",
        ROBOTEST_DB_POOL_MAX="",
    )
    env.update(overrides)
    return env


def database_in_child(env: dict[str, str]) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; d = settings.DATABASES['default']; "
        "print(json.dumps({k: d[k] for k in ('ENGINE', 'CONN_MAX_AGE', 'CONN_HEALTH_CHECKS', 'OPTIONS')}))"
    )
    result = run_python(env, "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_pools_postgresql_connections_and_checks_them_before_lending(tmp_path):
    database = database_in_child(production_env(tmp_path))

    assert database["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 10, "timeout": 2.0, "reconnect_timeout": 5.0}
    # Django refuses a pool beside persistent connections; the backend checks what the pool lends
    # (psycopg_pool's own check, which pauses between dead connections, stays off).
    assert (database["CONN_MAX_AGE"], database["CONN_HEALTH_CHECKS"]) == (0, False)
    assert database["ENGINE"] == "robotest_site.postgresql"


def test_pool_sizes_and_its_waits_follow_the_environment(tmp_path):
    env = production_env(tmp_path, ROBOTEST_DB_POOL_MIN="0", ROBOTEST_DB_POOL_MAX="6", ROBOTEST_DB_CONNECT_TIMEOUT="1")

    # A request never waits for a pooled connection longer than for a new one.
    assert database_in_child(env)["OPTIONS"]["pool"] == {
        "min_size": 0, "max_size": 6, "timeout": 1.0, "reconnect_timeout": 1.0
    }


def test_pool_max_zero_is_a_connection_per_request(tmp_path):
    database = database_in_child(production_env(tmp_path, ROBOTEST_DB_POOL_MAX="0"))

    assert "pool" not in database["OPTIONS"]
    assert (database["ENGINE"], database["CONN_MAX_AGE"], database["CONN_HEALTH_CHECKS"]) == (
        "django.db.backends.postgresql", 0, True
    )


def test_the_test_and_local_settings_keep_a_connection_per_request_on_postgresql(tmp_path):
    # The in-process tests point the connection elsewhere between requests (api/test_unavailable.py),
    # which a pool made at the first query would ignore.
    for module in ("robotest_site.settings.local", "robotest_site.settings.test"):
        env = settings_env(tmp_path, DJANGO_SETTINGS_MODULE=module,
                           DATABASE_URL="postgres://postgres@127.0.0.1:5432/robotest_pool")
        assert "pool" not in database_in_child(env)["OPTIONS"], module


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ROBOTEST_DB_POOL_MAX": "3"}, "ROBOTEST_DB_POOL_MAX must be 0 (no pool) or at least 4"),
        ({"ROBOTEST_DB_POOL_MIN": "8", "ROBOTEST_DB_POOL_MAX": "6"}, "ROBOTEST_DB_POOL_MAX must be 0 (no pool) or at least 4 and ROBOTEST_DB_POOL_MIN (8)"),
        ({"ROBOTEST_DB_POOL_MAX": "many"}, "ROBOTEST_DB_POOL_MAX must be a whole number"),
        ({"ROBOTEST_DB_POOL_MIN": "-1"}, "ROBOTEST_DB_POOL_MIN must be at least 0"),
    ],
)
def test_a_pool_that_cannot_work_stops_start_up_naming_the_variable(tmp_path, overrides, message):
    result = run_python(production_env(tmp_path, **overrides), "manage.py", "check")

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr, result.stderr
