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
20 %; those two formatters become pass-throughs in its protocol module. And a send of frames
already framed (`robotest.send_wire`, `send_wire`): the frames every unfiltered client gets are
framed once per process (`text_frames`, sessions/live/frames.py `FrameGroup`) and written to each
connection as they are, instead of being encoded to UTF-8 and framed by autobahn once per client.

Two answers daphne cannot give on its own, given here as well:
- a WebSocket handshake refused with an HTTP status (the ASGI `websocket.http.response`
  extension, status line only: autobahn sends no body with a refusal), so a path with no route
  is a 404 (sessions/live/routing.py) instead of daphne's one refusal, 403;
- the body of a POST left to Django: Twisted parses every multipart form itself before daphne
  sees it (daphne passes the raw body on and never reads that parse), and answers one it cannot
  parse, such as a multipart with only its closing boundary, with a bare 400 that has no body and
  no content type. Without that parse Django's parser decides, and its errors are JSON 400s
  naming the problem (docs/errors.md).
"""

import struct
import sys
from functools import partial
from http import HTTPStatus

EXTENSION = "robotest.unsent_bytes"
SEND = "robotest.send"
SEND_WIRE = "robotest.send_wire"
HTTP_RESPONSE = "websocket.http.response"  # the ASGI extension that answers a handshake with HTTP


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
                SEND_WIRE: partial(send_wire, self, protocol),
                HTTP_RESPONSE: {},
            }
            scope = {**scope, "extensions": extensions}
        return original(self, protocol, scope)

    create_application._robotest = True
    server.create_application = create_application
    _quiet_autobahn_debug_arguments()
    _refuse_handshakes_with_a_status()
    _leave_post_bodies_to_django()


def _as_is(value, *args, **kwargs):
    return value


def _quiet_autobahn_debug_arguments() -> None:
    from autobahn.websocket import protocol

    protocol.hltype = protocol.hlval = _as_is


def _refuse_handshakes_with_a_status() -> None:
    from autobahn.websocket.types import ConnectionDeny
    from daphne.ws_protocol import WebSocketProtocol

    original = WebSocketProtocol.handle_reply

    def handle_reply(self, message):
        kind = message.get("type")
        if kind == "websocket.http.response.start" and self.state == self.STATE_CONNECTING:
            self.robotest_refusal = int(message["status"])
            return None
        if kind == "websocket.http.response.body" and hasattr(self, "robotest_refusal"):
            if message.get("more_body"):
                return None
            status = self.robotest_refusal
            del self.robotest_refusal
            # As daphne's own refusal (serverReject), with the application's status.
            self.handshake_deferred.errback(ConnectionDeny(code=status, reason=HTTPStatus(status).phrase))
            del self.handshake_deferred
            self.server.protocol_disconnected(self)
            return None
        return original(self, message)

    WebSocketProtocol.handle_reply = handle_reply


def _leave_post_bodies_to_django() -> None:
    from daphne.http_protocol import WebRequest

    original = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False  # twisted.web.http.Request's switch for its form parse

    WebRequest.__init__ = __init__


def text_frames(texts: list[str]) -> bytes:
    """The texts as WebSocket text frames, as a server sends them (RFC 6455: FIN, unmasked, no extension)."""
    out = []
    for text in texts:
        payload = text.encode()
        size = len(payload)
        if size <= 125:
            out.append(bytes((0x81, size)))
        elif size <= 0xFFFF:
            out.append(struct.pack("!BBH", 0x81, 126, size))
        else:
            out.append(struct.pack("!BBQ", 0x81, 127, size))
        out.append(payload)
    return b"".join(out)


def send_wire(server, protocol, data: bytes) -> bool:
    """Write frames built by `text_frames` to the connection now; False if it needs them as text.

    A connection that is closing or gone takes them and drops them, as daphne's own send does.
    One that negotiated compression (permessage-deflate) needs each message compressed for it:
    its frames go as text, through daphne's send.
    """
    if protocol not in server.connections or server.connections[protocol].get("disconnected"):
        return True
    if getattr(protocol, "_perMessageCompress", None) is not None:
        return False
    if protocol.state == protocol.STATE_OPEN:
        protocol.sendData(data)  # behind whatever autobahn has queued itself
    return True


def unsent_bytes(protocol) -> int:
    """Bytes written to the connection that the kernel has not taken yet."""
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return 0
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)
