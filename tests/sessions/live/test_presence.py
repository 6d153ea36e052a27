"""Live clients counted (sessions/presence.py) and shown by `/health` and `get_status`."""

import pytest
from asgiref.sync import sync_to_async

from sessions.live import presence
from tests.conftest import auth, http

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.usefixtures("live_layer")]


async def test_connected_clients_are_counted_and_shown_by_health(ws, token):
    before = (await sync_to_async(presence.totals)())["clients"]

    first = await ws(headers=auth(token))
    second = await ws(f"/ws/sensor-data?token={token}")

    assert (await sync_to_async(presence.totals)())["clients"] == before + 2
    _, body = await http("GET", "/health")
    live_feed = body["services"]["live_feed"]
    assert live_feed["status"] == "up"
    assert live_feed["connected_clients"] == before + 2
    assert live_feed["server_processes"] == 1

    await first.disconnect()
    await second.disconnect()
    assert (await sync_to_async(presence.totals)())["clients"] == before


async def test_a_rejected_handshake_is_not_counted(ws):
    before = (await sync_to_async(presence.totals)())["clients"]

    client = await ws(established=False)
    assert (await client.frame())["code"] == 4401

    assert (await sync_to_async(presence.totals)())["clients"] == before


async def test_get_status_counts_the_connected_clients(ws, token):
    before = (await sync_to_async(presence.totals)())["clients"]
    first = await ws(headers=auth(token))
    await ws(headers=auth(token))

    status = await first.ask({"type": "get_status"}, "system_status")

    assert status["data"]["connected_clients"] == before + 2


async def test_health_stays_healthy_while_live_clients_are_connected(ws, token):
    await ws(headers=auth(token))

    status, body = await http("GET", "/health")

    assert body["services"]["channel_layer"]["status"] == "up", body["services"]["channel_layer"]
    assert status == 200


async def test_health_reports_the_channel_layer_up_without_live_clients():
    status, body = await http("GET", "/health")

    assert status == 200
    assert body["services"]["channel_layer"]["status"] == "up"
    assert body["services"]["live_feed"]["connected_clients"] >= 0
