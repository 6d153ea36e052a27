"""The live feed's limits on what a client sends (sessions/live/consumers.py; docs/websocket.md "Limits")."""

import asyncio
import json

import pytest

from sessions.live.consumers import MAX_MESSAGE_BYTES, MessageRate
from tests.conftest import auth

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.usefixtures("live_layer")]


def padded_ping(size: int, char: str = "x") -> str:
    """A ping whose UTF-8 encoding is exactly `size` bytes (`char` 1 or 2 bytes long)."""
    bare = len(json.dumps({"type": "ping", "pad": ""}))
    width = len(char.encode())
    assert (size - bare) % width == 0
    text = json.dumps({"type": "ping", "pad": char * ((size - bare) // width)}, ensure_ascii=False)
    assert len(text.encode()) == size
    return text


async def assert_closed_with(client, code: int) -> dict:
    """An `error` frame with `code`, then the close with that code; returns the frame."""
    error = await client.frame()
    assert (error["type"], error["code"]) == ("error", code), error
    assert await client.next() == {"type": "websocket.close", "code": code}
    return error


async def test_a_message_at_the_size_limit_is_answered(ws, token, settings):
    settings.ROBOTEST_WS_MAX_MESSAGE_BYTES = 1000
    client = await ws(headers=auth(token))

    await client.send(padded_ping(1000))

    assert (await client.frame())["type"] == "pong"


async def test_a_message_over_the_size_limit_gets_an_error_naming_both_sizes_and_a_close_4413(ws, token, settings):
    settings.ROBOTEST_WS_MAX_MESSAGE_BYTES = 1000
    client = await ws(headers=auth(token))

    # 1001 bytes in 514 characters: the limit counts UTF-8 bytes.
    await client.send(padded_ping(1001, "é"))

    error = await assert_closed_with(client, 4413)
    assert "1001 bytes" in error["message"] and "1000 bytes" in error["message"]


async def test_the_default_size_limit_is_64_kib(ws, token):
    assert MAX_MESSAGE_BYTES == 65536
    client = await ws(headers=auth(token))

    await client.send(padded_ping(65536))
    assert (await client.frame())["type"] == "pong"
    await client.send(padded_ping(65537))

    await assert_closed_with(client, 4413)


async def test_a_burst_over_the_rate_gets_one_error_then_a_close_4429_if_it_goes_on(ws, token, settings):
    # 2 a second, bursts of 4: messages 5 and 6 are dropped (one error frame), the 7th closes.
    settings.ROBOTEST_WS_MAX_MESSAGES_PER_SECOND = 2
    client = await ws(headers=auth(token))

    for n in range(6):
        await client.send({"type": "ping", "timestamp": n})
    answers = await client.quiet(0.2)

    assert [a["timestamp"] for a in answers if a["type"] == "pong"] == [0, 1, 2, 3]
    errors = [a for a in answers if a["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == 4429 and "at most 2 a second" in errors[0]["message"]
    await client.send({"type": "ping", "timestamp": 6})
    error = await assert_closed_with(client, 4429)
    assert "3 dropped in a row" in error["message"]


async def test_a_client_that_slows_down_after_a_burst_is_answered_again(ws, token, settings):
    settings.ROBOTEST_WS_MAX_MESSAGES_PER_SECOND = 2
    client = await ws(headers=auth(token))
    for n in range(5):
        await client.send({"type": "ping", "timestamp": n})
    assert [a["type"] for a in await client.quiet(0.2)] == ["pong"] * 4 + ["error"]

    await asyncio.sleep(0.6)  # a token back (2 a second)

    await client.assert_open()


async def test_a_client_at_the_rate_is_never_refused_beyond_its_burst(ws, token, settings):
    # 10 a second, bursts of 20: 30 pings at 8 a second are all answered.
    settings.ROBOTEST_WS_MAX_MESSAGES_PER_SECOND = 10
    client = await ws(headers=auth(token))

    for n in range(30):
        await client.send({"type": "ping", "timestamp": n})
        await asyncio.sleep(0.125)
    answers = await client.quiet(0.3)

    assert [a["timestamp"] for a in answers] == list(range(30))


def test_the_bucket_refills_at_the_rate_up_to_twice_it():
    now = [0.0]
    bucket = MessageRate(5, clock=lambda: now[0])

    taken = sum(bucket.take() for _ in range(12))
    now[0] = 0.5  # 2.5 tokens back
    later = sum(bucket.take() for _ in range(5))
    now[0] = 100.0  # full again: the burst, not 500

    assert (taken, later, bucket.refused) == (10, 2, 3)
    assert sum(bucket.take() for _ in range(20)) == 10
