"""The Redis cache shares one connection pool per process: a cache object per request opens no connection."""

import threading

import pytest
import redis
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from robotest_site.cache import SharedPoolRedisCache
from tests.e2e.instances import PrivateRedis


@pytest.fixture(scope="module")
def location():
    """A Redis of the module's own: its connection count is this test's alone."""
    with PrivateRedis.started() as server:
        yield server.url


def _connections_received(location: str) -> int:
    client = redis.Redis.from_url(location)
    try:
        return client.info("stats")["total_connections_received"]
    finally:
        client.close()


def _use(cache, i: int) -> None:
    cache.set(f"robotest:test-cache:{i}", i, 30)
    assert cache.get(f"robotest:test-cache:{i}") == i


def test_the_settings_use_the_shared_pool_cache():
    assert isinstance(caches["default"], SharedPoolRedisCache)


def test_a_cache_object_per_request_reuses_the_process_pool(location):
    _use(SharedPoolRedisCache(location, {}), 0)  # the pool's first connection
    before = _connections_received(location)
    # What ASGI does: each request (here, each thread) builds its own cache object.
    threads = [threading.Thread(target=_use, args=(SharedPoolRedisCache(location, {}), i)) for i in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Threads at once may each need a connection of the pool, but never more than there were threads,
    # and sequential use opens none.
    for i in range(21, 41):
        _use(SharedPoolRedisCache(location, {}), i)
    opened = _connections_received(location) - before - 1  # less this function's own INFO connection
    assert opened <= 20

    before = _connections_received(location)
    for i in range(41, 61):
        _use(SharedPoolRedisCache(location, {}), i)
    assert _connections_received(location) - before - 1 == 0


def test_django_s_own_cache_opens_a_connection_per_object(location):
    # The behaviour the shared pool replaces; if Django ever shares pools itself this test says so.
    before = _connections_received(location)
    for i in range(5):
        _use(RedisCache(location, {}), i)
    assert _connections_received(location) - before - 1 == 5
