# RoboTest set-up: `make run` (the embedded server) and `make test` (the whole suite).
# Both work from a fresh clone with Python 3.11+; see README.md.

SHELL := /bin/bash
.DEFAULT_GOAL := run

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Touched after a successful install: requirements.txt newer than it means install again.
STAMP := $(VENV)/.requirements-installed
SECRET_FILE := data/secret_key
# Extra arguments: `make run SERVE_ARGS="--port 9000"`, `make test PYTEST_ARGS="-x tests/robotest_site/test_config.py"`.
SERVE_ARGS ?=
PYTEST_ARGS ?=

# SECRET_KEY from the environment or .env wins (the settings' own rule, asked of the settings'
# own reader); otherwise export the key generated once into data/secret_key.
WITH_SECRET = if ! $(PY) -c 'import sys; from robotest_site import config; config.load_dotenv(); sys.exit(not config.raw("SECRET_KEY"))'; then \
	export SECRET_KEY="$$(cat $(SECRET_FILE))"; fi

.PHONY: run test setup clean

run: setup
	@$(WITH_SECRET); \
	set -e; \
	echo "+ manage.py migrate"; $(PY) manage.py migrate --noinput; \
	echo "+ manage.py ensure_admin"; $(PY) manage.py ensure_admin; \
	echo "+ manage.py serve $(SERVE_ARGS)"; exec $(PY) manage.py serve $(SERVE_ARGS)

# pytest's exit code 5 (no tests collected) is a failure here too, and says so.
test: setup
	@$(WITH_SECRET); \
	echo "+ python -m pytest $(PYTEST_ARGS)"; \
	rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing" >&2; fi; \
	exit $$rc

setup: $(STAMP) $(SECRET_FILE)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "RoboTest needs Python 3.11+, but $(PYTHON) is $$($(PYTHON) -V 2>&1)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -r requirements.txt
	@touch $@

$(SECRET_FILE):
	@mkdir -p $(dir $@)
	@umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@.tmp && mv $@.tmp $@
	@echo "Generated SECRET_KEY into $@ (outside git; keep it: logins are signed with it)"

# Removes the virtualenv only; data/ (database, secret key, exports) is left alone.
clean:
	rm -rf $(VENV)
