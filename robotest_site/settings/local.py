"""The embedded default (`make run`): SQLite and the in-memory layer unless the environment says otherwise."""

from robotest_site.settings.base import *  # noqa: F401,F403
from robotest_site.settings.base import STATIC_ROOT

# `make run` never runs collectstatic: whitenoise serves from the finders, and wants the folder.
STATIC_ROOT.mkdir(exist_ok=True)
