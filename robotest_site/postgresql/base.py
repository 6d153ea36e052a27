"""Django's PostgreSQL backend, whose pool drops every dead connection as soon as it lends one.

After a server restart or failover every idle connection in the pool is dead. psycopg_pool's own
check (Django's CONN_HEALTH_CHECKS) finds them one at a time, pausing 1, 2, 4 s … between them
(psycopg issue #709): with a few in the pool, the request's wait for a connection (the connect
timeout) runs out first, and it is a 503 although the server is back. Here the first dead one
found has the pool test all the others at once (`ConnectionPool.check`, which replaces the dead
ones), and the request takes a new connection.
"""

import psycopg
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if self.pool is None:
            return connection
        try:
            connection.execute("")  # one round trip: what psycopg_pool's check does
        except psycopg.Error:
            self.pool.putconn(connection)  # closed, and replaced by a new one
            self.pool.check()
            connection = super().get_new_connection(conn_params)
        return connection
