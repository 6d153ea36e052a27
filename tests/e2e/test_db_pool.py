"""The production settings' PostgreSQL pool under a real daphne (issue 12): a burst of requests
shares a few connections, a server restart costs no request an error, and a server that is down is
still a 503 within the connect timeout, and served again once it is back.

A PostgreSQL server of the module's own (tests/e2e/instances.py) with `log_connections`: every
connection it accepts is a line of its log, so the count is exact and immediate.
"""

import re
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e import harness
from tests.e2e.instances import PrivatePostgres

pytestmark = pytest.mark.e2e

POOL_MIN, POOL_MAX = 2, 4
CONNECT_TIMEOUT = 2  # seconds: also how long a request waits for a pooled connection
PATH = "/api/v1/sessions/"  # token authentication and a list: queries on every request


@pytest.fixture(scope="module")
def server():
    with PrivatePostgres.started(settings={"log_connections": "on"}) as pg:
        yield pg


class Web:
    """daphne under the production settings, and the connections its server has accepted."""

    def __init__(self, server: PrivatePostgres, database: harness.PostgresDatabase, token: str) -> None:
        self.server, self.database, self.name, self.token = server, database, database.name, token
        self.api: harness.Api | None = None
        self.proc = None
        # Connections before daphne started (migrate's, the token's): none of them daphne's.
        self.before_daphne = self.connections()

    def connections(self) -> int:
        """Connections the server has accepted to this database so far (its log's `connection authorized`)."""
        pattern = re.compile(rf"connection authorized: user=\S+ database={re.escape(self.name)}(\s|$)")
        return sum(bool(pattern.search(line)) for line in self.server.log.read_text(errors="replace").splitlines())

    def backends(self) -> int:
        """daphne's connections open now (pg_stat_activity, without the one asking)."""
        (count,) = self.database.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )[0]
        return count

    def burst(self, requests_count: int, *, clients: int = 10) -> list[int]:
        """`requests_count` GETs from `clients` concurrent keep-alive clients; their status codes."""

        def client(n: int) -> list[int]:
            with requests.Session() as http:
                http.headers["Authorization"] = f"Token {self.token}"
                return [http.get(self.api.base_url + PATH, timeout=30).status_code for _ in range(n)]

        share = [requests_count // clients + (i < requests_count % clients) for i in range(clients)]
        with ThreadPoolExecutor(clients) as pool:
            return [code for codes in pool.map(client, share) for code in codes]


@pytest.fixture(scope="module")
def web(server, module_procs):
    database = server.database(f"robotest_pool_{secrets.token_hex(3)}")
    setup = harness.process_env(settings=harness.LOCAL, database_url=database.url)
    harness.run_manage(["migrate", "--noinput", "-v", "0"], env=setup)
    web = Web(server, database, harness.create_token(setup))
    redis_url, claim = harness.claim_redis_db()
    env = harness.process_env(settings=harness.PRODUCTION, database_url=database.url, redis_url=redis_url,
                      ROBOTEST_DB_POOL_MIN=str(POOL_MIN), ROBOTEST_DB_POOL_MAX=str(POOL_MAX),
                      ROBOTEST_DB_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT))
    port = harness.free_port()
    web.proc = module_procs.start("daphne", [harness.DAPHNE, "-b", "127.0.0.1", "-p", str(port),
                                             "robotest_site.asgi:application"], env=env)
    web.api = harness.Api(f"http://127.0.0.1:{port}", web.token)
    harness.wait_healthy(web.api, web.proc)
    try:
        yield web
    finally:
        module_procs.stop_all()
        harness.release_redis_db(redis_url, claim)


def test_a_burst_of_requests_shares_at_most_the_pool_s_connections(web):
    codes = web.burst(200)

    assert codes == [200] * 200
    # Without the pool: one connection a request (200 here). With it: what the pool opened, once.
    opened = web.connections() - web.before_daphne
    assert POOL_MIN <= opened <= POOL_MAX, opened
    assert POOL_MIN <= web.backends() <= POOL_MAX


def test_after_a_server_restart_the_next_requests_get_new_connections_not_errors(web, server):
    assert web.burst(40) == [200] * 40
    assert web.backends() >= POOL_MIN  # idle in daphne's pool: every one of them dies with the restart

    server.restart()  # pg_ctl restart -m fast: every connection is cut
    after_restart = web.connections()
    codes = [web.api.get(PATH).status_code for _ in range(5)] + web.burst(40)

    # The first stale connection lent had the pool drop all of them (robotest_site/postgresql/).
    assert codes == [200] * 45
    assert POOL_MIN <= web.connections() - after_restart <= POOL_MAX
    assert web.proc.alive()


def test_while_the_server_is_down_requests_are_503_and_served_again_once_it_is_back(web, server):
    assert web.burst(10) == [200] * 10  # a pool of connections that the stop cuts
    server.stop()
    try:
        # A client timeout of three times the pool's wait: a request that hangs for a connection fails here.
        responses = [web.api.get(PATH, timeout=3 * CONNECT_TIMEOUT) for _ in range(3)]
    finally:
        server.start()

    assert [(r.status_code, r.headers.get("Retry-After")) for r in responses] == [(503, "5")] * 3
    assert responses[0].json() == {"detail": "the database is unavailable; retry in 5 s"}
    # The pool's reconnection back-off is bounded by the connect timeout: served again within seconds.
    harness.wait_until(lambda: web.api.get(PATH, timeout=10).status_code == 200, timeout=20,
               what="a request served after the server came back", procs=(web.proc,))
    assert web.burst(20) == [200] * 20
