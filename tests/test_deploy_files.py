"""The deployment files (compose, Dockerfile, Makefile, .ci/run, .env.example) name real things."""

import ast
import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("web", "worker", "db", "redis")


def read(name: str) -> str:
    return (ROOT / name).read_text()


def compose() -> dict:
    return yaml.safe_load(read("docker-compose.yml"))


def settings_variables() -> set[str]:
    """Every variable base.py reads through `config.<fn>("NAME"`."""
    base = read("robotest_site/settings/base.py")
    return set(re.findall(r'config\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', base))


def make_recipe(target: str) -> str:
    """The recipe of one Makefile rule, with backslash continuations joined."""
    lines = read("Makefile").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}\s*:(?!=)", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return re.sub(r"\\\s+", " ", "\n".join(recipe))


def test_compose_file_parses_and_has_the_four_services():
    services = compose()["services"]
    assert set(SERVICES) <= set(services)


@pytest.mark.parametrize("service", SERVICES)
def test_every_compose_service_has_a_healthcheck(service):
    healthcheck = compose()["services"][service].get("healthcheck")
    assert healthcheck and healthcheck.get("test"), f"{service} has no healthcheck"


def test_web_and_worker_wait_for_healthy_database_and_redis():
    services = compose()["services"]
    for name in ("web", "worker"):
        depends_on = services[name]["depends_on"]
        for backing in ("db", "redis"):
            assert depends_on[backing]["condition"] == "service_healthy", (name, backing)


def test_worker_gets_time_to_flush_before_sigkill():
    grace = compose()["services"]["worker"]["stop_grace_period"]
    assert re.fullmatch(r"\d+s", grace) and int(grace[:-1]) >= 10


def test_compose_runs_the_production_settings_on_postgres_and_redis():
    for name in ("web", "worker"):
        environment = compose()["services"][name]["environment"]
        assert environment["DJANGO_SETTINGS_MODULE"] == "robotest_site.settings.production"
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert "@db:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["SECRET_KEY"].startswith("${SECRET_KEY")


def test_dockerfile_runs_production_settings_as_a_non_root_user():
    dockerfile = read("Dockerfile")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "DJANGO_SETTINGS_MODULE=robotest_site.settings.production" in dockerfile
    assert "collectstatic" in dockerfile
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")


@pytest.mark.parametrize("name", ["docker-compose.yml", "Dockerfile", "Makefile", "README.md"])
def test_every_named_management_command_exists(name):
    named = set(re.findall(r"manage\.py\s+([a-z][a-z0-9_]*)", read(name)))
    assert named, f"{name} names no manage.py command"
    missing = named - set(get_commands())
    assert not missing, f"{name} names management commands that do not exist: {sorted(missing)}"


@pytest.mark.parametrize("name", ["docker-compose.yml", "Dockerfile", "README.md"])
def test_daphne_application_path_names_a_module_with_an_application(name):
    daphne_lines = [line for line in read(name).splitlines() if "daphne" in line]
    paths = {
        match
        for line in daphne_lines
        for match in re.findall(r"([A-Za-z_]\w*(?:\.\w+)+):([A-Za-z_]\w*)", line)
    }
    assert paths, f"{name} starts no daphne application"
    for module, attribute in paths:
        assert (module, attribute) == ("robotest_site.asgi", "application")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"{module} does not exist"
        tree = ast.parse(Path(spec.origin).read_text())
        assigned = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        assert attribute in assigned, f"{module} defines no {attribute}"


def test_make_run_ends_by_serving():
    recipe = make_recipe("run")
    assert re.search(r"\bexec\s+\S+\s+manage\.py serve\b[^;&|\n]*$", recipe), recipe


def test_make_test_runs_pytest():
    assert re.search(r"-m pytest \$\(PYTEST_ARGS\)", make_recipe("test"))


def test_ci_run_is_executable_and_calls_make_test():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    lines = [line.strip() for line in script.read_text().splitlines()]
    commands = [line for line in lines if not line.startswith("#")]
    assert any(re.fullmatch(r"(exec\s+)?make test(\s*\|\|\s*rc=\$\?)?", line) for line in commands)


def test_env_example_names_every_variable_the_settings_read():
    example = read(".env.example")
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.M))
    missing = (settings_variables() | {"DJANGO_SETTINGS_MODULE"}) - named
    assert not missing, f".env.example does not document {sorted(missing)}"


def test_readme_configuration_table_names_every_variable_the_settings_read():
    readme = read("README.md")
    expected = settings_variables() | {"DJANGO_SETTINGS_MODULE"}
    missing = {name for name in expected if f"| `{name}` |" not in readme}
    assert not missing, f"README.md's configuration table lacks {sorted(missing)}"
