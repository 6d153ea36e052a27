"""`manage.py run_simulators` with the engine's steps timed, for benchmarks/first_frame.py --trace.

Each step prints one line `TRACE <step> <session> <start> <end>` (Unix times) to stderr: the
wake-up, each claim (reconcile), building a runner's simulators, each flush's database step, each
publish. Only the first steps of each session are printed (a session's first FLUSHES flushes and
publishes); the rest would be noise. Nothing here is used by the application.
"""

import os
import sys
import time
from functools import wraps
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
FLUSHES = 3


def _say(step: str, session, start: float, end: float) -> None:
    print(f"TRACE {step} {session} {start:.6f} {end:.6f}", file=sys.stderr, flush=True)


def _patch() -> None:
    from sessions import engine
    from sessions.live import events

    counts: dict[tuple[str, object], int] = {}

    def timed(owner, name: str, step: str, session_of):
        original = getattr(owner, name)

        @wraps(original)
        async def wrapper(*args, **kwargs):
            start = time.time()
            try:
                return await original(*args, **kwargs)
            finally:
                session = session_of(args, kwargs)
                key = (step, session)
                counts[key] = counts.get(key, 0) + 1
                if counts[key] <= FLUSHES or session is None and counts[key] <= 10:
                    _say(step, session, start, time.time())

        setattr(owner, name, wrapper)

    timed(engine.Engine, "_reconcile", "reconcile", lambda a, k: None)
    timed(engine.SessionRunner, "_build_simulators", "build", lambda a, k: a[0].session_id)
    timed(engine.SessionRunner, "_flush", "flush", lambda a, k: a[0].session_id)
    timed(events, "publish", "publish", lambda a, k: a[1])

    original_set = engine.asyncio.Event.set

    class WakeEvent(engine.asyncio.Event):
        def set(self):
            if not self.is_set():
                now = time.time()
                _say("wake", None, now, now)
            original_set(self)

    original_init = engine.Engine.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._wake = WakeEvent()

    engine.Engine.__init__ = init


def _patch_web() -> None:
    """The start request's steps in daphne: the view, the service, the commit's wake-up and status."""
    from sessions import services
    from sessions.api import sessions as api
    from sessions.live import events

    def timed(owner, name: str, step: str):
        original = getattr(owner, name)

        @wraps(original)
        def wrapper(*args, **kwargs):
            start = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                _say(step, None, start, time.time())

        setattr(owner, name, wrapper)

    timed(api.SessionStartView, "post", "web.view")
    timed(services, "session_start", "web.session_start")
    timed(events, "engine_wake", "web.engine_wake")
    timed(services, "_publish_status", "web.publish_status")


def main() -> None:
    import django

    if sys.argv[1:2] == ["daphne"]:
        # `first_frame_trace.py daphne ARGS…`: daphne with the start request's steps timed.
        django.setup()
        _patch_web()
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(sys.argv[2:])
        return
    django.setup()
    _patch()
    from django.core.management import call_command

    call_command("run_simulators")


if __name__ == "__main__":
    main()
