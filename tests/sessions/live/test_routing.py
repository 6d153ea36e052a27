"""The WebSocket routes (sessions/live/routing.py): a path with no route is refused as not found."""

import logging

import pytest
from channels.testing import WebsocketCommunicator

from robotest_site.asgi import application
from tests.conftest import WS_PATH, auth

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.usefixtures("live_layer")]


async def handshake(path: str, headers=(), **scope_extensions) -> list[dict]:
    communicator = WebsocketCommunicator(application, path, headers=list(headers))
    communicator.scope["extensions"] = scope_extensions
    await communicator.send_input({"type": "websocket.connect"})
    answer = [await communicator.receive_output(timeout=5)]
    if answer[0]["type"] == "websocket.http.response.start":
        answer.append(await communicator.receive_output(timeout=5))
    await communicator.wait(timeout=5)
    return answer


async def test_no_route_is_an_http_404_naming_the_path_where_the_server_can_say_so(caplog, token):
    caplog.set_level(logging.WARNING, logger="sessions.live.routing")

    start, body = await handshake("/ws/nope", auth(token), **{"websocket.http.response": {}})

    assert start["status"] == 404
    assert (b"content-type", b"application/json") in start["headers"]
    assert b"/ws/nope" in body["body"] and WS_PATH.encode() in body["body"]
    [record] = [r for r in caplog.records if r.name == "sessions.live.routing"]
    assert record.levelno == logging.WARNING and "/ws/nope" in record.getMessage()


async def test_no_route_is_a_refusal_where_the_server_has_no_http_answer(token):
    (answer,) = await handshake("/ws/sensor-data/extra", auth(token))

    assert answer["type"] == "websocket.close"


async def test_the_live_feed_route_still_connects(ws, token):
    client = await ws(headers=auth(token))

    await client.assert_open()
