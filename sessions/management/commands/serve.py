import asyncio
import logging

from django.conf import settings
from django.core.management.base import BaseCommand

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "One process: the daphne ASGI server (HTTP + WebSocket) and the simulator engine on one event loop."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.HOST)
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-simulators", action="store_true", help="Serve only; no simulator engine.")

    def handle(self, *args, host, port, no_simulators, **options):
        # daphne.server installs the asyncio reactor: import it before anything imports twisted.
        from channels.routing import get_default_application
        from daphne.endpoints import build_endpoint_description_strings

        server_class = _engine_server_class()
        engine = None
        if not no_simulators:
            from sessions.engine import Engine

            engine = Engine()
        server = server_class(
            application=get_default_application(),
            endpoints=build_endpoint_description_strings(host=host, port=port),
            engine=engine,
            signal_handlers=True,
            action_logger=None,
        )
        self.stdout.write(f"RoboTest serving on http://{host}:{port}/ (simulators {'off' if engine is None else 'on'})")
        self.stdout.flush()
        server.run()


def _engine_server_class():
    from daphne.server import Server
    from twisted.internet import defer, reactor

    class EngineServer(Server):
        """daphne's server with the simulator engine on its loop, stopped before the consumers."""

        def __init__(self, *args, engine=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.engine = engine
            self.engine_task = None
            self.engine_stop = None

        def run(self):
            if self.engine is not None:
                reactor.callWhenRunning(self._start_engine)
            super().run()

        def _start_engine(self):
            self.engine_stop = asyncio.Event()
            self.engine_task = asyncio.ensure_future(self.engine.run(self.engine_stop))

        def kill_all_applications(self):
            # daphne has no lifespan: flush the engine (last readings, last frames) before the
            # consumers are cancelled.
            if self.engine_task is None or self.engine_task.done():
                return super().kill_all_applications()
            self.engine_stop.set()
            stopped = defer.Deferred.fromFuture(self.engine_task)
            stopped.addErrback(lambda failure: logger.error("engine stopped with %s", failure.getErrorMessage()))
            stopped.addBoth(lambda _: super(EngineServer, self).kill_all_applications())
            return stopped

    return EngineServer
