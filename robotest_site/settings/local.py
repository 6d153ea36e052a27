"""The embedded default (`make run`): SQLite and the in-memory layer unless the environment says otherwise."""

from .base import *  # noqa: F401,F403
