"""The deployment files (compose, Dockerfile, deploy/, Makefile, .ci/run, .env.example) name real things.

There is no Docker engine here. The compose file is checked by `docker compose config` when a client
is installed, and parsed either way: every command and healthcheck starts something its image has,
and the ones that can run here are run against local PostgreSQL, Redis and Mosquitto. The image's
build is replayed on a copy of its build context (the Dockerfile's own collectstatic step), and
deploy/nginx.conf proxies a real daphne over TLS when an nginx binary is at hand.
"""

import ast
import fnmatch
import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml
from django.core.management import get_commands

from tests.e2e.harness import PRODUCTION, free_port, process_env, run_manage

ROOT = Path(__file__).resolve().parent.parent
LONG_RUNNING = ("web", "worker", "db", "redis", "mosquitto")
ONE_SHOT = ("migrate",)
# What the public images start, from their documentation; the commands that can run here are run
# below against the Debian packages of the same software.
IMAGE_COMMANDS = {
    "postgres:15": {"postgres", "pg_isready", "psql"},
    "redis:7": {"redis-server", "redis-cli"},
    "eclipse-mosquitto:2": {"mosquitto", "mosquitto_sub", "mosquitto_pub"},
}


def read(name: str) -> str:
    return (ROOT / name).read_text()


def compose() -> dict:
    return yaml.safe_load(read("docker-compose.yml"))


def settings_variables(*modules: str) -> set[str]:
    """Every variable the settings modules read through `config.<fn>("NAME"`."""
    return {
        name
        for module in modules
        for name in re.findall(r'config\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', read(f"robotest_site/settings/{module}"))
    }


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


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", read("Dockerfile"))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def image_commands(service: dict) -> set[str]:
    """The programs a service's image has that a command may start."""
    if "build" in service:
        # python:3.11-slim: python and a POSIX sh; pip puts the requirements' console scripts on PATH.
        commands = {"python", "sh"}
        if re.search(r"^daphne==", read("requirements.txt"), re.M):
            commands.add("daphne")
        return commands
    return IMAGE_COMMANDS[service["image"]]


def started_programs(argv: list[str]) -> set[str]:
    """The programs an argv starts: itself, or each step of an `sh -c` script."""
    if argv[:2] == ["sh", "-c"]:
        return {shlex.split(step)[0] for step in re.split(r"&&|\|\||;", argv[2]) if step.strip()}
    return {argv[0]}


def healthcheck_argv(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", f"healthcheck {test!r}: use the exec form, the image may have no shell"
    return test[1:]


# --- docker-compose.yml ----------------------------------------------------------------------


def test_compose_file_has_the_services():
    assert set(LONG_RUNNING + ONE_SHOT) <= set(compose()["services"])


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy(name):
    service = compose()["services"][name]
    assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert service.get("restart") == "unless-stopped", f"{name} does not restart"


@pytest.mark.parametrize("name", LONG_RUNNING + ONE_SHOT)
def test_every_command_and_healthcheck_starts_a_program_its_image_has(name):
    service = compose()["services"][name]
    available = image_commands(service)
    argvs = [service["command"]] if "command" in service else []
    if "healthcheck" in service:
        argvs.append(healthcheck_argv(service))
    for argv in argvs:
        assert isinstance(argv, list), f"{name}: {argv!r} is not in the exec form"
        missing = started_programs(argv) - available
        assert not missing, f"{name} starts {sorted(missing)}, which its image does not have"


@pytest.mark.parametrize("name", ["web", "worker"])
def test_python_healthchecks_are_valid_python(name):
    argv = healthcheck_argv(compose()["services"][name])
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], f"{name} healthcheck", "exec")


def test_migrate_runs_once_before_web_and_worker():
    services = compose()["services"]
    migrate = services["migrate"]
    steps = [shlex.split(step) for step in re.split(r"&&", migrate["command"][2])]
    assert steps == [["python", "manage.py", "migrate", "--noinput"], ["python", "manage.py", "ensure_admin"]]
    assert migrate["restart"] == "no", "a failed migration must stop, not loop"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert "migrate" not in " ".join(map(str, services[name]["command"])), f"{name} migrates too"


def test_web_and_worker_wait_for_healthy_database_and_redis():
    services = compose()["services"]
    for name in ("web", "worker"):
        depends_on = services[name]["depends_on"]
        for backing in ("db", "redis"):
            assert depends_on[backing]["condition"] == "service_healthy", (name, backing)


def test_web_and_worker_run_their_programs_as_pid_1():
    services = compose()["services"]
    assert services["web"]["command"][0] == "daphne"
    assert services["worker"]["command"] == ["python", "manage.py", "run_simulators"]


def test_worker_gets_time_to_flush_before_sigkill():
    grace = compose()["services"]["worker"]["stop_grace_period"]
    assert re.fullmatch(r"\d+s", grace) and int(grace[:-1]) >= 10


def test_compose_runs_the_production_settings_on_postgres_and_redis():
    for name in ("migrate", "web", "worker"):
        environment = compose()["services"][name]["environment"]
        assert environment["DJANGO_SETTINGS_MODULE"] == "robotest_site.settings.production"
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert "@db:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
        assert environment["ROBOTEST_HTTPS"] == "${ROBOTEST_HTTPS:-true}", "HTTPS is the default"


def test_volumes_are_named_and_declared_and_bind_mounts_exist():
    document = compose()
    declared = set(document["volumes"])
    mounts = {}
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                assert (ROOT / source).is_file(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in declared, f"{name} uses volume {source}, which is not declared"
            mounts[target] = source
    assert mounts["/var/lib/postgresql/data"] == "pgdata"
    assert mounts["/mosquitto/data"] == "mosquitto-data"
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto.conf"


def test_web_is_published_on_the_loopback_by_default():
    # Only the proxy on this host reaches daphne: it trusts X-Forwarded-Proto and -For.
    (port,) = compose()["services"]["web"]["ports"]
    assert re.fullmatch(r"\$\{ROBOTEST_PUBLISH:-127\.0\.0\.1:8000\}:8000", port), port


def compose_client() -> list[str] | None:
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) and subprocess.run([*argv, "version"], capture_output=True).returncode == 0:
            return argv
    return None


def compose_config(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    client = compose_client()
    if client is None:
        pytest.skip("no docker compose client installed (apt-get install docker-compose gives one)")
    env_file = tmp_path / "empty.env"  # not the developer's .env beside the compose file
    env_file.write_text("")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **variables}
    return subprocess.run(
        [*client, "--env-file", str(env_file), "config"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_docker_compose_config_accepts_the_file(tmp_path):
    result = compose_config(tmp_path, SECRET_KEY="k" * 50, ROBOTEST_PUBLISH="0.0.0.0:8000")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(LONG_RUNNING + ONE_SHOT) <= set(resolved["services"])
    assert resolved["services"]["web"]["environment"]["ROBOTEST_HTTPS"] == "true"
    assert resolved["services"]["worker"]["environment"]["SECRET_KEY"] == "k" * 50


def test_docker_compose_refuses_to_start_without_a_secret_key(tmp_path):
    result = compose_config(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


# The healthchecks of the public images, run here against the Debian packages of the same
# software (with the host added: in the container they talk to their own server).
@pytest.mark.parametrize("name, host_args", [("db", ["-h", "127.0.0.1"]), ("redis", ["-h", "127.0.0.1"])])
def test_database_and_redis_healthchecks_pass_against_a_running_server(name, host_args):
    argv = healthcheck_argv(compose()["services"][name])
    if not shutil.which(argv[0]):
        pytest.skip(f"{argv[0]} is not installed here")
    result = subprocess.run([*argv, *host_args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def shared_tmp():
    """A directory others may enter: mosquitto started as root writes as its own user."""
    path = Path(tempfile.mkdtemp(prefix="robotest-mosquitto-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_mosquitto_runs_the_repository_config_and_passes_its_healthcheck(shared_tmp):
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(mosquitto, os.X_OK) or not shutil.which("mosquitto_sub"):
        pytest.skip("mosquitto and mosquitto-clients are not installed here")
    tmp_path = shared_tmp
    port = free_port()
    # The repository's file, with a free port on the loopback and a data directory of its own.
    config = read("deploy/mosquitto.conf")
    config = re.sub(r"^listener 1883 0\.0\.0\.0$", f"listener {port} 127.0.0.1", config, flags=re.M)
    config = re.sub(r"^persistence_location .*$", f"persistence_location {tmp_path}/", config, flags=re.M)
    assert f"listener {port}" in config and str(tmp_path) in config
    (tmp_path / "mosquitto.conf").write_text(config)
    broker = subprocess.Popen([mosquitto, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        argv = healthcheck_argv(compose()["services"]["mosquitto"])
        argv = [f"{port}" if arg == "1883" else arg.replace("$$", "$") for arg in argv]
        deadline = time.monotonic() + 10
        while True:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            if result.returncode == 0 or time.monotonic() > deadline or broker.poll() is not None:
                break
            time.sleep(0.2)
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"\d+ seconds", result.stdout.strip()), result.stdout
    finally:
        broker.terminate()
        output = broker.communicate(timeout=10)[0].decode()
    assert "Error" not in output, output


# --- Dockerfile and its build context --------------------------------------------------------


def test_dockerfile_runs_production_settings_as_a_non_root_user():
    instructions = dockerfile_instructions()
    assert re.match(r"python:3\.11-slim\b", instructions[0][1]) and instructions[0][0] == "FROM"
    env = " ".join(args for kind, args in instructions if kind == "ENV")
    assert "DJANGO_SETTINGS_MODULE=robotest_site.settings.production" in env
    assert "SECRET_KEY" not in env, "the build's placeholder key must not stay in the image"
    kinds = [kind for kind, _ in instructions]
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    collect = next(i for i, (kind, args) in enumerate(instructions) if kind == "RUN" and "collectstatic" in args)
    last_user = max(i for i, kind in enumerate(kinds) if kind == "USER")
    assert collect < last_user < kinds.index("CMD")


def dockerignore_patterns() -> list[str]:
    return [line.strip() for line in read(".dockerignore").splitlines() if line.strip() and not line.startswith("#")]


def ignored(relative: str) -> bool:
    """Whether Docker leaves this path (relative to the context) out: it or a parent matches."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in dockerignore_patterns():
        pattern = pattern.rstrip("/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:])
            ):
                return True
    return False


@pytest.mark.parametrize("path", [".venv/bin/python", "data/robotest.sqlite3", ".git/HEAD", ".env",
                                  "staticfiles/staticfiles.json", "sessions/__pycache__/models.cpython-311.pyc"])
def test_dockerignore_keeps_local_state_out_of_the_image(path):
    assert ignored(path)


@pytest.mark.parametrize("path", ["manage.py", "requirements.txt", "static/robotest.css", "deploy/mosquitto.conf",
                                  "robotest_site/settings/production.py"])
def test_dockerignore_keeps_what_the_image_needs(path):
    assert not ignored(path)


def clean_checkout_files() -> list[str]:
    """The files of a clean checkout (git's), or of the tree when it is not a git work tree."""
    result = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if result.returncode == 0:
        return [name for name in result.stdout.decode().split("\0") if name]
    return [str(path.relative_to(ROOT)) for path in ROOT.rglob("*") if path.is_file()]


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory) -> Path:
    """/app of the image: a clean checkout's files less .dockerignore, then the Dockerfile's collectstatic."""
    app = tmp_path_factory.mktemp("image") / "app"
    for name in clean_checkout_files():
        if not ignored(name) and (ROOT / name).is_file():
            (app / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, app / name)
    env = {"PATH": os.environ["PATH"], "HOME": str(app.parent)}
    for kind, args in dockerfile_instructions():
        if kind == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(args))
        if kind == "RUN" and "collectstatic" in args:
            tokens = shlex.split(args)
            while "=" in tokens[0]:
                env.update([tokens.pop(0).split("=", 1)])
            assert tokens[0] == "python"
            result = subprocess.run([sys.executable, *tokens[1:]], cwd=app, env=env, capture_output=True,
                                    text=True, timeout=300)
            assert result.returncode == 0, result.stdout + result.stderr
    return app


def test_the_build_context_holds_no_local_state(image_tree):
    for name in (".venv", ".git", "data", ".env"):
        assert not (image_tree / name).exists(), name


def test_collectstatic_at_build_time_collects_every_static_file_with_a_manifest(image_tree):
    manifest = json.loads((image_tree / "staticfiles" / "staticfiles.json").read_text())["paths"]
    ours = {str(path.relative_to(ROOT / "static")) for path in (ROOT / "static").rglob("*") if path.is_file()}
    assert ours <= set(manifest), sorted(ours - set(manifest))
    for name in ("robotest.css", "admin/css/base.css", "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css"):
        assert (image_tree / "staticfiles" / manifest[name]).is_file(), name


# --- deploy/nginx.conf in front of a real daphne ---------------------------------------------


@pytest.fixture(scope="module")
def nginx() -> str:
    """An nginx binary: on PATH, Debian's /usr/sbin/nginx, or ROBOTEST_TEST_NGINX (e.g. unpacked from the .deb)."""
    candidate = os.environ.get("ROBOTEST_TEST_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(candidate, os.X_OK):
        pytest.skip("no nginx binary (install nginx, or set ROBOTEST_TEST_NGINX to one)")
    return candidate


@pytest.fixture
def proxied(nginx, image_tree, pg_database, private_redis_url, tmp_path):
    """daphne from the image tree on production settings (HTTPS on), behind deploy/nginx.conf over TLS."""
    daphne_port, http_port, https_port = free_port(), free_port(), free_port()
    env = process_env(
        settings=PRODUCTION, database_url=pg_database.url, redis_url=private_redis_url,
        SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="127.0.0.1", ROBOTEST_HTTPS="true",
        ROBOTEST_HSTS_SECONDS="",
    )
    password = secrets.token_urlsafe(12)
    run_manage(["shell", "-c", "from django.contrib.auth import get_user_model; "
                f"get_user_model().objects.create_user('proxied', password={password!r})"], env=env)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    site = read("deploy/nginx.conf")
    for old, new in [("127.0.0.1:8000;", f"127.0.0.1:{daphne_port};"), ("listen 80;", f"listen 127.0.0.1:{http_port};"),
                     ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
                     ("/etc/ssl/robotest/fullchain.pem", str(tmp_path / "cert.pem")),
                     ("/etc/ssl/robotest/privkey.pem", str(tmp_path / "key.pem"))]:
        assert old in site, old
        site = site.replace(old, new)
    site = re.sub(r"^\s*listen \[::\].*$", "", site, flags=re.M)
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(f"{kind}_temp_path {tmp_path}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ access_log {tmp_path}/access.log; {temp} include {tmp_path}/site.conf; }}\n"
    )
    started = []
    try:
        started.append(subprocess.Popen(
            [str(Path(sys.executable).with_name("daphne")), "-b", "127.0.0.1", "-p", str(daphne_port),
             "--proxy-headers", "robotest_site.asgi:application"],
            cwd=image_tree, env=env, stdout=open(tmp_path / "daphne.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        ))
        started.append(subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                                        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "nginx.out", "wb"),
                                        start_new_session=True))
        session = requests.Session()
        session.trust_env = False
        session.verify = False
        deadline = time.monotonic() + 30
        while True:
            try:
                if session.get(f"https://127.0.0.1:{https_port}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            dead = [proc.args[0] for proc in started if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"{p.name}:\n{p.read_text()[-3000:]}" for p in tmp_path.glob("*.log") if p.is_file())
                pytest.fail(f"proxy or daphne did not come up (exited: {dead}):\n{logs}")
            time.sleep(0.2)
        yield {"session": session, "https": f"https://127.0.0.1:{https_port}", "http": f"http://127.0.0.1:{http_port}",
               "daphne": f"http://127.0.0.1:{daphne_port}", "daphne_port": daphne_port, "password": password,
               "env": env}
    finally:
        for proc in reversed(started):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_nginx_example_proxies_https_logins_and_websockets_to_daphne(proxied):
    from websockets.sync.client import connect

    session, https = proxied["session"], proxied["https"]

    # Port 80 only redirects; daphne itself redirects a request that did not come through TLS.
    plain = session.get(f"{proxied['http']}/login/", allow_redirects=False, timeout=5)
    assert (plain.status_code, plain.headers["Location"]) == (301, "https://127.0.0.1/login/")
    direct = session.get(f"{proxied['daphne']}/login/", allow_redirects=False, timeout=5)
    assert (direct.status_code, direct.headers["Location"]) == (301, f"https://127.0.0.1:{proxied['daphne_port']}/login/")

    # Through the proxy: the page, its collected (hashed) stylesheet, HSTS and Secure cookies.
    page = session.get(f"{https}/login/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    stylesheet = re.search(r'href="(/static/robotest\.[0-9a-f]{12}\.css)"', page.text)
    assert stylesheet, "the page does not link the collected stylesheet"
    assert session.get(https + stylesheet.group(1), timeout=5).status_code == 200
    assert {cookie.name: cookie.secure for cookie in session.cookies} == {"csrftoken": True}

    login = session.post(
        f"{https}/login/",
        data={"username": "proxied", "password": proxied["password"], "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{https}/login/"}, allow_redirects=False, timeout=10,
    )
    assert login.status_code == 302, login.text[:500]
    assert {cookie.name: cookie.secure for cookie in session.cookies} == {"csrftoken": True, "sessionid": True}

    # The live feed upgrades through the proxy, logged in by the session cookie, from our own origin.
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    cookie = f"sessionid={session.cookies['sessionid']}"
    with connect(f"wss://127.0.0.1:{https.rsplit(':', 1)[1]}/ws/sensor-data", ssl=context, origin=https,
                 additional_headers={"Cookie": cookie}, proxy=None, open_timeout=10) as websocket:
        assert json.loads(websocket.recv(timeout=10))["type"] == "connection_established"
        websocket.send(json.dumps({"type": "ping", "timestamp": 42}))
        assert json.loads(websocket.recv(timeout=10)) == {"type": "pong", "timestamp": 42}

    # Metrics are for scrapers on the private network, not for the proxy's clients.
    assert session.get(f"{https}/metrics", timeout=5).status_code == 403

    # The web healthcheck of docker-compose.yml, pointed at this daphne, passes.
    argv = healthcheck_argv(compose()["services"]["web"])
    code = argv[2].replace("127.0.0.1:8000", f"127.0.0.1:{proxied['daphne_port']}")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode == 0


# --- Makefile, .ci/run, .env.example, README -------------------------------------------------


@pytest.mark.parametrize("name", ["docker-compose.yml", "Dockerfile", "Makefile", "README.md", "docs/deployment.md"])
def test_every_named_management_command_exists(name):
    named = set(re.findall(r"manage\.py\s+([a-z][a-z0-9_]*)", read(name)))
    assert named, f"{name} names no manage.py command"
    missing = named - set(get_commands())
    assert not missing, f"{name} names management commands that do not exist: {sorted(missing)}"


@pytest.mark.parametrize("name", ["docker-compose.yml", "Dockerfile", "README.md", "docs/deployment.md"])
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
    missing = (settings_variables("base.py", "production.py") | {"DJANGO_SETTINGS_MODULE"}) - named
    assert not missing, f".env.example does not document {sorted(missing)}"


def test_env_example_names_every_variable_the_compose_file_reads():
    example = read(".env.example")
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[:}]", read("docker-compose.yml")))
    assert used and not used - named, f".env.example does not document {sorted(used - named)}"


def test_readme_configuration_table_names_every_variable_the_settings_read():
    readme = read("README.md")
    expected = settings_variables("base.py") | {"DJANGO_SETTINGS_MODULE"}
    missing = {name for name in expected if f"| `{name}` |" not in readme}
    assert not missing, f"README.md's configuration table lacks {sorted(missing)}"
