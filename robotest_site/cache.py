"""Django's Redis cache with one connection pool per process, not one per request.

Under ASGI, `django.core.cache.caches` is local to each request's context, so every request
built a RedisCache of its own, with a connection pool of its own: a new Redis connection per
request that touched the cache (the throttles do, on every API request). Here the pools live at
module level, keyed by server URL and options, and every cache object of the process shares them.
redis-py's pools are thread-safe and notice a fork.
"""

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict = {}
_lock = threading.Lock()


class SharedPoolRedisCacheClient(RedisCacheClient):
    def _get_connection_pool(self, write):
        server = self._servers[self._get_connection_pool_index(write)]
        key = (server, self._pool_class, tuple(sorted((k, repr(v)) for k, v in self._pool_options.items())))
        pool = _pools.get(key)
        if pool is None:
            with _lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self._pool_class.from_url(server, **self._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
