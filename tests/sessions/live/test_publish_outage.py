"""`events.publish` while the channel layer's Redis is down: a line when it fails, a line when it is back.

A real RedisChannelLayer on a Redis server of the test's own (tests/e2e/instances.py), stopped and
started again on its port.
"""

import asyncio
import logging

import pytest
from channels_redis.core import RedisChannelLayer

from sessions.live import events
from tests.e2e.instances import PrivateRedis


@pytest.fixture
def redis_server():
    server = PrivateRedis()
    server.start()
    yield server
    server.destroy()


def layer_of(server: PrivateRedis) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[{"address": server.url, "socket_timeout": 10}], capacity=1000, expiry=10)


async def test_an_outage_is_logged_once_and_its_end_counts_the_unsent_events(redis_server, caplog):
    layer = layer_of(redis_server)
    channel = await layer.new_channel()
    await layer.group_add(events.LIVE_GROUP, channel)
    await events.publish(layer, 1, {"type": "sensor.batch", "n": 0})
    assert (await layer.receive(channel))["n"] == 0

    await asyncio.to_thread(redis_server.stop)
    with caplog.at_level(logging.DEBUG, logger="sessions.live.events"):
        for n in range(1, 201):
            await events.publish(layer, 1, {"type": "sensor.batch", "n": n})
    # 200 events: one record, not a traceback each.
    assert [r.levelname for r in caplog.records] == ["WARNING"], [r.getMessage() for r in caplog.records]
    assert "live events are dropped" in caplog.records[0].getMessage()
    caplog.clear()

    await asyncio.to_thread(redis_server.start)
    await layer.group_add(events.LIVE_GROUP, channel)  # a restarted Redis forgot the group
    # Within the pause the layer is not tried: the event is dropped with the others.
    await events.publish(layer, 1, {"type": "sensor.batch", "n": 201})
    await asyncio.sleep(events.PAUSE_SECONDS)
    with caplog.at_level(logging.DEBUG, logger="sessions.live.events"):
        await events.publish(layer, 1, {"type": "sensor.batch", "n": 202})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 202
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "publishing again" in messages[0], messages
    # The first that failed, the 199 after it within the pause, and the one just after the return.
    assert "201 live events were not sent" in messages[0], messages
    await layer.flush()
