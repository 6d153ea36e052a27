import asyncio
import signal

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from sessions.engine import Engine


class Command(BaseCommand):
    help = "Production worker: runs the simulators of every recording session of every simulated rig."

    def handle(self, *args, **options):
        if isinstance(get_channel_layer(), InMemoryChannelLayer):
            raise CommandError(
                "run_simulators needs REDIS_URL: the in-memory channel layer does not cross processes, "
                "so daphne would never see these readings. Set REDIS_URL, or run `manage.py serve` "
                "(server and simulators in one process)."
            )
        asyncio.run(self._run())

    async def _run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # A process started in the background may ignore SIGINT; SIGTERM is the one to rely on.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Engine().run(stop)
