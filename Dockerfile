# RoboTest production image: one image for the web process (daphne) and the worker
# (run_simulators); docker-compose.yml chooses the command. Needs PostgreSQL and Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=robotest_site.settings.production

WORKDIR /app

# Requirements first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# The production settings refuse to load without a secret key, Redis and PostgreSQL; collectstatic
# touches none of them, so build-only placeholders do (they are not kept in the image's ENV).
# It must run under the production settings: their manifest storage writes the manifest that
# whitenoise serves from at run time.
RUN SECRET_KEY=build-only-not-secret \
    DATABASE_URL=postgres://build@localhost:5432/build \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput

RUN useradd --create-home --uid 1000 robotest \
    && mkdir -p /app/data/exports \
    && chown -R robotest:robotest /app/data
USER robotest

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "robotest_site.asgi:application"]
