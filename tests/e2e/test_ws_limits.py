"""The live feed's limits on client messages, on a real daphne with a real `websockets` client.

The consumer refuses a message over ROBOTEST_WS_MAX_MESSAGE_BYTES (64 KiB) with an `error` frame and
close 4413, and a client that keeps sending over the rate with 4429; daphne (autobahn) closes with
1009 itself past its --websocket-max-message-size (1 MiB by default), before the application sees it.
"""

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.harness import DAPHNE, LOCAL, Api, SqliteDatabase, create_token, free_port, process_env, run_manage, \
    wait_healthy

pytestmark = pytest.mark.e2e


@pytest.fixture
def daphne_url(tmp_path, procs) -> tuple[str, str]:
    """A daphne over SQLite in tmp_path (the in-memory layer): its WebSocket URL and a user's token."""
    database = SqliteDatabase(tmp_path / "db.sqlite3")
    env = process_env(settings=LOCAL, database_url=database.url)
    run_manage(["migrate", "--noinput", "-v", "0"], env=env)
    token = create_token(env)
    port = free_port()
    args = [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "robotest_site.asgi:application"]
    proc = procs.start("daphne", args, env=env)
    wait_healthy(Api(f"http://127.0.0.1:{port}", token), proc)
    return f"ws://127.0.0.1:{port}/ws/sensor-data", token


def ping(size: int) -> str:
    """A ping of exactly `size` bytes."""
    bare = len(json.dumps({"type": "ping", "pad": ""}))
    return json.dumps({"type": "ping", "pad": "x" * (size - bare)})


async def frames_until_closed(ws) -> tuple[list[dict], int]:
    """Every frame the server sends until it closes; and the close code it sent."""
    frames = []
    try:
        async with asyncio.timeout(10):
            async for text in ws:
                frames.append(json.loads(text))
    except ConnectionClosed:
        pass
    return frames, ws.close_code


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each whole frame in what a server sent (server frames are unmasked)."""
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length, at = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
        if length == 126:
            length, at = struct.unpack("!H", data[at:at + 2])[0], at + 2
        elif length == 127:
            length, at = struct.unpack("!Q", data[at:at + 8])[0], at + 8
        if at + length > len(data):
            break
        frames.append((opcode, data[at:at + length]))
        at += length
    return frames


def test_daphne_drops_a_connection_whose_frame_announces_more_than_its_limit_before_the_payload(daphne_url):
    url, token = daphne_url
    port = int(url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws/sensor-data HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Token {token}\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(4096)
        head, _, received = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        # A text frame that announces 2 MiB (over daphne's 1 MiB): the header only, no payload.
        sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, 2 * 1024 * 1024) + os.urandom(4))
        ended = "eof"
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            ended = "reset"  # autobahn's failByDrop: the TCP connection is aborted, no close frame

    assert ended in ("eof", "reset")  # not a timeout: daphne did not wait for the 2 MiB
    assert [opcode for opcode, _ in server_frames(received)] in ([], [0x1])  # connection_established at most


def test_daphne_refuses_large_and_too_many_client_messages(daphne_url):
    url, token = daphne_url

    async def scenario():
        opened = {"additional_headers": {"Authorization": f"Token {token}"}, "proxy": None, "max_size": None}
        async with connect(url, **opened) as ws:
            assert json.loads(await ws.recv())["type"] == "connection_established"
            await ws.send(ping(65536))
            assert json.loads(await ws.recv())["type"] == "pong"
            await ws.send(ping(100_000))
            over, over_code = await frames_until_closed(ws)
        async with connect(url, **opened) as ws:
            await ws.recv()
            with contextlib.suppress(ConnectionClosed):  # closed while the last are on their way
                for n in range(100):  # 20 a second, bursts of 40: 40 answered, then 21 dropped close it
                    await ws.send(json.dumps({"type": "ping", "timestamp": n}))
            flood, flood_code = await frames_until_closed(ws)
        return over, over_code, flood, flood_code

    over, over_code, flood, flood_code = asyncio.run(scenario())

    assert over_code == 4413
    assert [(f["type"], f["code"]) for f in over] == [("error", 4413)]
    assert "100000 bytes" in over[0]["message"] and "65536 bytes" in over[0]["message"]
    assert flood_code == 4429
    pongs = [f["timestamp"] for f in flood if f["type"] == "pong"]
    errors = [f["code"] for f in flood if f["type"] == "error"]
    # A few tokens may come back while the 100 are on their way (20 a second): at least the burst.
    assert pongs[:40] == list(range(40)) and len(pongs) < 45
    assert errors[0] == 4429 and errors[-1] == 4429
