"""Django's PostgreSQL backend with one change to its connection pool (robotest_site/postgresql/base.py)."""
