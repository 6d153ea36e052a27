"""daphne hooks for the live feed: each client's unsent bytes, a direct send, cheaper frames.

daphne writes every frame into the Twisted transport at once: a client that stops reading makes
the server's memory grow and never slows a `send` (daphne#170). This hook puts a callable in each
WebSocket scope, `scope["extensions"]["robotest.unsent_bytes"]`, that reads the transport's
buffer, so a consumer can hold frames in its own bounded queue (and drop the oldest) instead.

It also puts daphne's own send for the connection in the scope (`robotest.send`): live frames
skip Channels' session middleware, whose `send` looks into the lazy session of every message to
decide whether to save it (it saves only on `http.response.start`): 19 % of daphne's CPU with 50
clients at 10,000 readings/s (docs/benchmarks.md). And autobahn formats the arguments of a debug
log line (`hltype`, `hlval`: click styling) for every frame it sends, logged or not: another
20 %; those two formatters become pass-throughs in its protocol module.
"""

import sys
from functools import partial

EXTENSION = "robotest.unsent_bytes"
SEND = "robotest.send"


def install() -> None:
    """Wrap daphne's Server.create_application, if daphne runs this process; idempotent."""
    server_module = sys.modules.get("daphne.server")
    if server_module is None:
        return
    server = server_module.Server
    if getattr(server.create_application, "_robotest", False):
        return
    original = server.create_application

    def create_application(self, protocol, scope):
        if scope.get("type") == "websocket":
            extensions = {
                **scope.get("extensions", {}),
                EXTENSION: partial(unsent_bytes, protocol),
                SEND: partial(self.handle_reply, protocol),
            }
            scope = {**scope, "extensions": extensions}
        return original(self, protocol, scope)

    create_application._robotest = True
    server.create_application = create_application
    _quiet_autobahn_debug_arguments()


def _as_is(value, *args, **kwargs):
    return value


def _quiet_autobahn_debug_arguments() -> None:
    from autobahn.websocket import protocol

    protocol.hltype = protocol.hlval = _as_is


def unsent_bytes(protocol) -> int:
    """Bytes written to the connection that the kernel has not taken yet."""
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return 0
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)
