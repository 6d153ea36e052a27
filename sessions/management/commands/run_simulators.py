import asyncio
import signal

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from sessions.engine import Engine


class Command(BaseCommand):
    help = "Production worker: runs the simulators of every recording session of every simulated rig."

    def add_arguments(self, parser):
        parser.add_argument(
            "--metrics-port", type=int, default=None,
            help="Serve this worker's Prometheus metrics on this port (docs/operations.md). Default: none.",
        )
        parser.add_argument(
            "--metrics-addr", default="127.0.0.1",
            help="Address the metrics port binds to (default 127.0.0.1: it has no access control of its own).",
        )

    def handle(self, *args, metrics_port=None, metrics_addr="127.0.0.1", **options):
        if isinstance(get_channel_layer(), InMemoryChannelLayer):
            raise CommandError(
                "run_simulators needs REDIS_URL: the in-memory channel layer does not cross processes, "
                "so daphne would never see these readings. Set REDIS_URL, or run `manage.py serve` "
                "(server and simulators in one process)."
            )
        if metrics_port is not None:
            from prometheus_client import start_http_server

            try:
                start_http_server(metrics_port, addr=metrics_addr)
            except OSError as exc:
                raise CommandError(f"--metrics-port {metrics_port} on {metrics_addr}: {exc}") from None
        asyncio.run(self._run())

    async def _run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # A process started in the background may ignore SIGINT; SIGTERM is the one to rely on.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Engine().run(stop)
