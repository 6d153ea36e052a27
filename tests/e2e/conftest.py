"""Fixtures of the end-to-end tests: a database per module, processes per test, their output on failure.

A PostgreSQL module gets a fresh database (created here, migrated by a real `manage.py
migrate`, dropped at the end) and Redis DB 13, flushed. Processes run on free ports with their
output in files under tmp_path; a failing test shows the tail of each process of its test and
its module. Nothing here imports Django: the processes under test are the only Django.
"""

import secrets

import pytest
import redis

from tests.e2e.harness import (
    DAPHNE,
    LOCAL,
    PRODUCTION,
    PYTHON,
    REDIS_URL,
    Api,
    PostgresDatabase,
    Processes,
    claim_redis_db,
    create_token,
    free_port,
    process_env,
    release_redis_db,
    run_manage,
    wait_healthy,
    wait_worker_up,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and call.when in ("setup", "call"):
        module = item.nodeid.split("::")[0]
        for proc in Processes.all:
            if proc.owner in (item.nodeid, module):
                report.sections.append((f"e2e: {proc.describe()}, last lines", proc.tail()))
    return report


@pytest.fixture(scope="module")
def module_procs(request, tmp_path_factory):
    """Processes that live as long as the test module."""
    procs = Processes(tmp_path_factory.mktemp("procs"), owner=request.node.nodeid)
    yield procs
    procs.stop_all()


@pytest.fixture
def procs(request, tmp_path):
    """Processes that live as long as the test."""
    procs = Processes(tmp_path, owner=request.node.nodeid)
    yield procs
    procs.stop_all()


@pytest.fixture(scope="module")
def redis_url():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="module")
def private_redis_url():
    """A Redis database of the module's own, emptied at its end (see `claim_redis_db`).

    A module that watches the live feed overrides `redis_url` with it.
    """
    url, token = claim_redis_db()
    try:
        yield url
    finally:
        release_redis_db(url, token)


@pytest.fixture(scope="module")
def pg_database():
    """A fresh, migrated PostgreSQL database for the module; dropped at its end."""
    database = PostgresDatabase.create(f"robotest_e2e_{secrets.token_hex(4)}")
    try:
        run_manage(["migrate", "--noinput", "-v", "0"], env=process_env(settings=LOCAL, database_url=database.url))
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="module")
def pg_token(pg_database):
    return create_token(process_env(settings=LOCAL, database_url=pg_database.url))


class ProductionStack:
    """daphne and run_simulators on one PostgreSQL database and one Redis, started on demand."""

    def __init__(self, procs: Processes, *, database: PostgresDatabase, redis_url: str, token: str) -> None:
        self.procs = procs
        self.db = database
        self.token = token
        self.env = process_env(settings=PRODUCTION, database_url=database.url, redis_url=redis_url)
        self.web = None
        self.api: Api | None = None

    def start_web(self, procs: Processes | None = None) -> Api:
        port = free_port()
        self.web = (procs or self.procs).start(
            "daphne", [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"], env=self.env
        )
        self.api = Api(f"http://127.0.0.1:{port}", self.token)
        wait_healthy(self.api, self.web)
        return self.api

    def start_worker(self, procs: Processes | None = None):
        return (procs or self.procs).start("run_simulators", [PYTHON, "manage.py", "run_simulators"], env=self.env)

    def wait_worker_up(self, worker) -> float:
        return wait_worker_up(self.api, worker, self.web)

    def cleanup(self) -> None:
        """After the processes stopped: leave no recording session and no heartbeat to the next test."""
        self.db.execute(
            "UPDATE recording_recordingsession SET status = 'aborted', stopped_at = now() WHERE status = 'recording'"
        )
        self.db.execute("DELETE FROM recording_engineheartbeat")


@pytest.fixture(scope="module")
def production(module_procs, pg_database, redis_url, pg_token):
    """A production stack whose processes may live as long as the module."""
    stack = ProductionStack(module_procs, database=pg_database, redis_url=redis_url, token=pg_token)
    yield stack
    module_procs.stop_all()
    stack.cleanup()


@pytest.fixture(scope="module")
def web(production) -> Api:
    """One daphne for the module."""
    return production.start_web()


@pytest.fixture
def workers(production, procs):
    """Starts run_simulators processes that live as long as the test; the session they leave is aborted."""

    class Workers:
        def start(self):
            return production.start_worker(procs)

    yield Workers()
    procs.stop_all()
    production.cleanup()
