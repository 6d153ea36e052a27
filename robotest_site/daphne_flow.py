"""Lets a consumer see how many bytes daphne still holds for its client (daphne#170).

daphne writes every frame into the Twisted transport at once: a client that stops reading makes
the server's memory grow and never slows a `send`. This hook puts a callable in each WebSocket
scope, `scope["extensions"]["robotest.unsent_bytes"]`, that reads the transport's buffer, so a
consumer can hold frames in its own bounded queue (and drop the oldest) instead.
"""

import sys
from functools import partial

EXTENSION = "robotest.unsent_bytes"


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
            extensions = {**scope.get("extensions", {}), EXTENSION: partial(unsent_bytes, protocol)}
            scope = {**scope, "extensions": extensions}
        return original(self, protocol, scope)

    create_application._robotest = True
    server.create_application = create_application


def unsent_bytes(protocol) -> int:
    """Bytes written to the connection that the kernel has not taken yet."""
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return 0
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)
