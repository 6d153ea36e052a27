"""The live feed's metrics: clients, frames sent and dropped (sessions/live/consumers.py, hub.py)."""

import pytest

from sessions.live import consumers
from sessions.live.hub import LiveHub
from tests.conftest import auth, items
from tests.robotest_site.observability.test_metrics import sample
from tests.sessions.live.test_consumers import FakeClient, wait_for_sent


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("live_layer")
async def test_clients_and_frames_sent_are_what_the_clients_saw(ws, token, recording):
    clients, sent = sample("robotest_live_clients"), sample("robotest_live_frames_sent_total")
    a = await ws(headers=auth(token))
    b = await ws(headers=auth(token))
    assert sample("robotest_live_clients") == clients + 2

    bench = await recording("bench")
    await bench.record(items("fz", [1.0, 2.0, 3.0]))
    await bench.record(items("temp", [20.0, 21.0], t0=1_700_000_100.0))
    got = [await client.quiet(0.5) for client in (a, b)]

    # Every frame of the feed (the session's start, its batches) reached both clients, and each was counted.
    assert all(any(f["type"] in ("sensor_data", "sensor_data_batch") for f in frames) for frames in got), got
    assert sample("robotest_live_frames_sent_total") - sent == sum(map(len, got))
    await a.disconnect()
    await b.disconnect()
    assert sample("robotest_live_clients") == clients


async def test_frames_dropped_from_a_stalled_client_are_counted():
    dropped = sample("robotest_live_frames_dropped_total")
    client = FakeClient()
    client.stalled = True
    outbox = consumers.Outbox(client.send, client.unsent_bytes)
    try:
        outbox.put([f"f{i}" for i in range(consumers.OUTBOX_FRAMES + 77)])
        client.stalled = False
        await wait_for_sent(client, consumers.OUTBOX_FRAMES + 1)
    finally:
        outbox.close()

    assert outbox.total_dropped == 77
    assert sample("robotest_live_frames_dropped_total") - dropped == 77


def test_readings_the_layer_lost_are_counted():
    lost = sample("robotest_live_readings_lost_total")
    hub = LiveHub(layer=None)
    batch = {"type": "sensor.batch", "session_id": 9, "first_seq": 1, "last_seq": 10, "lines": [], "sensors": []}

    hub._check_gap(batch)
    hub._check_gap({**batch, "first_seq": 26, "last_seq": 30})  # 11-25 never came

    assert sample("robotest_live_readings_lost_total") - lost == 15
