# RoboTest production image: one image for migrations, the web process (daphne) and the worker
# (run_simulators); docker-compose.yml chooses the command. Needs PostgreSQL and Redis.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=robotest_site.settings.production

WORKDIR /app

# Requirements first, so a code change does not reinstall them. psycopg[binary] brings its own
# libpq: the slim image needs no compiler or system packages.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# The production settings refuse to load without a secret key, Redis and PostgreSQL; collectstatic
# touches none of them, so build-only placeholders do, in this step's environment only (they are
# not kept in the image). It must run under the production settings: their manifest storage writes
# the manifest that whitenoise serves from at run time.
RUN SECRET_KEY=build-only-not-secret \
    DATABASE_URL=postgres://build@localhost:5432/build \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput

# The code and static files stay root's (read-only to the app); only data/ is the app's to write.
RUN useradd --create-home --no-log-init --uid 1000 robotest \
    && mkdir -p /app/data/exports \
    && chown -R robotest:robotest /app/data
USER robotest

EXPOSE 8000
# --proxy-headers: client addresses from the proxy's X-Forwarded-For; publish this port to the proxy only.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "robotest_site.asgi:application"]
