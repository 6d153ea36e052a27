"""The live feed's consumer (sessions/consumers.py): the seed's protocol over the real stack.

Readings come from the real pipeline: `readings_record` on a session of an external rig, its
events published with `events.publish`, or a POST to the ingest endpoint (which does the same).
"""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from sessions.live import consumers, events, presence
from sessions.live.frames import BatchPart, EventFrames
from sessions.models import RecordingSession
from sessions.recording.pipeline import readings_record
from sessions.services import session_stop
from tests.conftest import T0, auth, ingest_over_asgi, items, line
from tests.sessions.live.wire import websocket_texts

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.usefixtures("live_layer")]

READING_FIELDS = {"timestamp", "sensor_type", "value", "sensor", "session_id", "seq"}


def readings_of(frames: list[dict]) -> list[dict]:
    """The readings in `sensor_data` and `sensor_data_batch` frames, in the order they came."""
    out = []
    for frame in frames:
        if frame["type"] == "sensor_data":
            out.append(frame["data"])
        elif frame["type"] == "sensor_data_batch":
            out.extend(frame["data"])
    return out


def feed(frames: list[dict]) -> list[dict]:
    """The frames without `system_status` (a session started after the client connected sends one)."""
    return [f for f in frames if f["type"] != "system_status"]


def has_seq(session_id: int, seq: int):
    """A `collect` condition: a reading of `session_id` with position `seq` has arrived."""
    def done(frames):
        return any(r["session_id"] == session_id and r["seq"] == seq for r in readings_of(frames[-50:]))
    return done


# --- the protocol: ping, status, errors ------------------------------------------------------


async def test_ping_with_a_timestamp_gets_a_pong_with_the_same_timestamp(live):
    await live.send({"type": "ping", "timestamp": 1712345678.125})

    assert await live.frame() == {"type": "pong", "timestamp": 1712345678.125}


async def test_get_status_answers_with_a_system_status_frame(live, recording):
    bench = await recording("bench")
    await live.frame_of("system_status")  # the session start's broadcast, not the answer

    status = await live.ask({"type": "get_status"}, "system_status")

    data = status["data"]
    assert data["recording"] is True
    assert bench.session_id in [s["session_id"] for s in data["sessions"]]
    assert data["connected_clients"] >= 1
    assert isinstance(data["timestamp"], float)


async def test_invalid_json_gets_an_error_frame_and_the_connection_stays_open(live):
    await live.send("{not json")

    error = await live.frame()
    assert error["type"] == "error"
    assert "JSON" in error["message"]
    await live.assert_open()


@pytest.mark.parametrize("text", ["[1, 2]", '"ping"', "42", "null", '{"type": 5}', '{"timestamp": 1}'])
async def test_a_message_that_is_not_an_object_with_a_type_gets_an_error_frame(live, text):
    await live.send(text)

    error = await live.frame()
    assert error["type"] == "error"
    assert "type" in error["message"]
    await live.assert_open()


async def test_a_binary_frame_that_is_not_json_gets_an_error_frame_and_the_connection_stays_open(live):
    await live.communicator.send_to(bytes_data=b"\xff\xfe\x00not json")

    error = await live.frame()
    assert error["type"] == "error"
    await live.assert_open()


async def test_an_unknown_type_gets_an_error_frame_naming_it_and_the_connection_stays_open(live):
    await live.send({"type": "launch_rockets"})

    error = await live.frame()
    assert error["type"] == "error"
    assert "launch_rockets" in error["message"]
    await live.assert_open()


# --- subscribe -------------------------------------------------------------------------------


async def test_subscribe_is_confirmed_with_the_subscription_echoed(live, recording):
    bench = await recording("bench")

    await live.send({"type": "subscribe", "data": {"session": bench.session_id, "sensors": ["temp", "fz"],
                                                    "batch": True, "max_hz": 25}})

    assert await live.frame_of("subscription_confirmed") == {
        "type": "subscription_confirmed",
        "data": {"session": bench.session_id, "sensors": ["fz", "temp"], "batch": True, "max_hz": 25.0},
    }


async def test_an_empty_subscribe_is_confirmed_as_everything(live):
    assert await live.subscribe() == {"session": None, "sensors": None, "batch": False, "max_hz": None}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"session": "abc"}, "session"),
        ({"sensors": "fz"}, "sensors"),
        ({"batch": "yes"}, "batch"),
        ({"max_hz": 0}, "max_hz"),
        ({"max_hz": -1}, "max_hz"),
        ({"max_hz": "fast"}, "max_hz"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_bad_subscription_gets_an_error_naming_the_field_and_keeps_the_previous_one(
    live, recording, data, field
):
    bench = await recording("bench")
    other = await recording("other")
    await live.subscribe(session=bench.session_id, sensors=["fz"])

    await live.send({"type": "subscribe", "data": data})

    error = await live.frame_of("error")
    assert field in error["message"]
    await live.assert_open()
    # The previous subscription still holds: this session's fz only.
    await other.record(items("fz", [1.0, 2.0]))
    await bench.record(items("temp", [20.0]) + items("fz", [3.0, 4.0], t0=T0 + 1))
    frames = await live.collect(has_seq(bench.session_id, 3))
    frames += await live.quiet()
    assert [(r["session_id"], r["sensor"], r["value"]) for r in readings_of(frames)] == [
        (bench.session_id, "fz", 3.0), (bench.session_id, "fz", 4.0)
    ]


# --- live readings ---------------------------------------------------------------------------


async def test_without_a_subscription_a_client_gets_the_readings_of_every_recording_session(live, recording):
    bench = await recording("bench")
    other = await recording("other")

    await bench.record(items("fz", [1.0, 2.0]))
    await other.record(items("temp", [21.0, 22.0, 23.0]))

    frames = await live.collect(has_seq(other.session_id, 3))
    got = [(r["session_id"], r["sensor"], r["value"]) for r in readings_of(frames)]
    assert got == [
        (bench.session_id, "fz", 1.0), (bench.session_id, "fz", 2.0),
        (other.session_id, "temp", 21.0), (other.session_id, "temp", 22.0), (other.session_id, "temp", 23.0),
    ]
    assert {f["type"] for f in frames} - {"system_status"} == {"sensor_data"}


async def test_a_client_subscribed_to_one_session_gets_only_that_sessions_frames(live, recording):
    bench = await recording("bench")
    other = await recording("other")
    await live.subscribe(session=bench.session_id)

    # The other session's batch goes out first: were it delivered, it would come before ours.
    await other.record(items("fz", [95.0, 96.0]) + items("temp", [1.0]))
    await bench.record(items("temp", [20.0, 21.0]))

    frames = await live.collect(has_seq(bench.session_id, 2))
    frames += await live.quiet()
    assert [(r["session_id"], r["value"]) for r in readings_of(frames)] == [
        (bench.session_id, 20.0), (bench.session_id, 21.0)
    ]
    assert not [f for f in frames if f["type"] == "validation"]


async def test_resubscribing_to_all_sessions_brings_back_the_other_sessions(live, recording):
    bench = await recording("bench")
    other = await recording("other")
    await live.subscribe(session=bench.session_id)
    await live.subscribe()

    await other.record(items("temp", [5.0]))

    frames = await live.collect(has_seq(other.session_id, 1))
    assert [(r["session_id"], r["value"]) for r in readings_of(frames)] == [(other.session_id, 5.0)]


async def test_the_sensors_filter_keeps_only_the_named_sensors(live, recording):
    bench = await recording("bench")
    await live.subscribe(sensors=["temp", "ft6"])

    ft6 = {"fx": 1.5, "fy": -2.25, "fz": 30.0}
    await bench.record(
        items("fz", [1.0, 2.0, 3.0]) + items("temp", [20.0, 21.0], t0=T0 + 0.001) + [("ft6", T0 + 0.5, ft6)]
    )

    frames = await live.collect(has_seq(bench.session_id, 6))
    frames += await live.quiet()
    assert [(r["sensor"], r["value"]) for r in readings_of(frames)] == [
        ("temp", 20.0), ("temp", 21.0), ("ft6", ft6)
    ]


async def test_batch_mode_sends_sensor_data_batch_frames_whose_data_is_the_list_of_readings(live, recording):
    bench = await recording("bench")
    await live.subscribe(batch=True)

    first = await bench.record(items("temp", [20.0, 20.5, 21.0]))
    second = await bench.record(items("temp", [22.0, 23.0], t0=T0 + 1))

    frames = feed(await live.collect(lambda got: len(feed(got)) >= 2))
    assert [f["type"] for f in frames] == ["sensor_data_batch", "sensor_data_batch"]
    assert [f["session_id"] for f in frames] == [bench.session_id, bench.session_id]
    assert frames[0]["data"] == first.readings
    assert frames[1]["data"] == second.readings
    assert [r["value"] for r in frames[0]["data"]] == [20.0, 20.5, 21.0]


async def test_reading_frames_have_the_contract_fields_and_a_seq(live, recording):
    bench = await recording("bench")
    ft6 = {"fx": 1.5, "fy": -2.25, "fz": 30.0, "tx": 0.125, "ty": 1, "tz": -0.5}

    await bench.record([("temp", T0 + 0.25, 21.5), ("ft6", T0 + 0.5, ft6)])

    frames = feed(await live.collect(lambda got: len(feed(got)) >= 2))
    assert frames == [
        {"type": "sensor_data", "data": {"timestamp": T0 + 0.25, "sensor_type": "temperature", "value": 21.5,
                                         "sensor": "temp", "session_id": bench.session_id, "seq": 1}},
        {"type": "sensor_data", "data": {"timestamp": T0 + 0.5, "sensor_type": "force_torque", "value": ft6,
                                         "sensor": "ft6", "session_id": bench.session_id, "seq": 2}},
    ]
    assert set(frames[0]["data"]) == READING_FIELDS


async def test_seq_is_contiguous_for_an_unfiltered_client_across_batches(live, recording):
    bench = await recording("bench")
    # The last batch is larger than one layer event: it goes out as several.
    sizes = [1, 250, 7, 400, events.MAX_EVENT_READINGS + 300]
    t0 = T0
    for size in sizes:
        await bench.record(items("temp", [float(i % 50) for i in range(size)], t0=t0, step=0.001))
        t0 += size * 0.001 + 1
    total = sum(sizes)

    frames = await live.collect(has_seq(bench.session_id, total), timeout=20)
    frames += await live.quiet()
    seqs = [r["seq"] for r in readings_of(frames)]
    assert seqs == list(range(1, total + 1))


async def test_validation_frames_carry_the_results_each_batch_opened_updated_or_closed(live, recording, staff_token):
    bench = await recording("bench")

    async def send(seq: int, ts: float, value: float) -> tuple[dict, list[dict]]:
        """Ingest one fz reading; the answer, and the force_threshold results that came over the feed."""
        answer = await ingest_over_asgi(bench.session_id, staff_token, [{"sensor": "fz", "timestamp": ts, "value": value}])
        frames = await live.collect(has_seq(bench.session_id, seq))
        frames += await live.quiet()
        results = [f["data"] for f in frames if f["type"] == "validation"]
        return answer, [r for r in results if r["rule"] == "force_threshold"]

    await send(1, T0, 10.0)
    opened_answer, opened = await send(2, T0 + 0.1, 95.0)
    _, grown = await send(3, T0 + 0.2, 97.0)
    _, closed = await send(4, T0 + 0.3, 40.0)

    assert len(opened) == 1
    error = opened[0]
    assert error in opened_answer["validation"]
    assert error["status"] == "error"
    assert (error["sensor"], error["sensor_type"], error["session_id"]) == ("fz", "force", bench.session_id)
    assert (error["count"], error["peak"], error["open"]) == (1, 95.0, True)
    assert [(r["id"], r["count"], r["peak"], r["open"]) for r in grown] == [(error["id"], 2, 97.0, True)]
    assert [(r["id"], r["count"], r["open"]) for r in closed] == [(error["id"], 2, False)]


async def test_a_validation_frame_follows_the_readings_of_its_batch(live, recording):
    bench = await recording("bench")

    result = await bench.record(items("fz", [10.0, 95.0]))

    frames = feed(await live.collect(lambda got: any(f["type"] == "validation" for f in got)))
    assert [f["type"] for f in frames][:2] == ["sensor_data", "sensor_data"]
    assert [f["data"] for f in frames if f["type"] == "validation"] == result.validation


async def test_the_sensors_filter_also_filters_validation_frames(live, recording):
    bench = await recording("bench")
    await live.subscribe(sensors=["temp"])

    await bench.record(items("fz", [10.0, 95.0]))
    await bench.record(items("temp", [20.0], t0=T0 + 1))

    frames = await live.collect(has_seq(bench.session_id, 3))
    frames += await live.quiet()
    assert [f["type"] for f in feed(frames)] == ["sensor_data"]


async def test_a_session_start_and_stop_send_system_status_frames(live, recording):
    bench = await recording("bench")

    started = await live.frame_of("system_status")
    await bench.record(items("temp", [20.0]))
    session = await RecordingSession.objects.select_related("rig").aget(pk=bench.session_id)
    await sync_to_async(session_stop)(session=session)
    stopped = await live.frame_of("system_status")

    assert started["data"]["session_id"] == bench.session_id
    assert started["data"]["status"] == "recording"
    assert started["data"]["rig"] == "bench"
    assert stopped["data"]["session_id"] == bench.session_id
    assert stopped["data"]["status"] == "completed"
    assert stopped["data"]["total_readings"] == 1


async def test_a_client_subscribed_to_another_session_gets_no_system_status_of_this_one(ws, token, recording):
    bench = await recording("bench")
    client = await ws(headers=auth(token))
    await client.subscribe(session=bench.session_id)

    other = await recording("other")
    await other.record(items("temp", [1.0]))
    await bench.record(items("temp", [2.0]))

    frames = await client.collect(has_seq(bench.session_id, 1))
    frames += await client.quiet()
    assert [f["type"] for f in frames] == ["sensor_data"]


# --- max_hz ----------------------------------------------------------------------------------


def kilohertz(n: int, *, spikes: dict[int, float]) -> list[dict]:
    """`n` readings of `temp` at 1 kHz from T0, a slow ripple with the given spikes."""
    return [
        {"sensor": "temp", "timestamp": T0 + i / 1000, "value": spikes.get(i, 20.0 + (i % 7) * 0.1)}
        for i in range(n)
    ]


async def test_max_hz_thins_a_1khz_sensor_and_keeps_its_extremes(ws, token, staff_token, recording):
    bench = await recording("bench")
    full = await ws(headers=auth(token))
    thin = await ws(headers=auth(token))
    await thin.subscribe(max_hz=10)
    readings = kilohertz(2000, spikes={1000: 500.0, 1300: -500.0})

    for start in range(0, 2000, 250):
        await ingest_over_asgi(bench.session_id, staff_token, readings[start:start + 250])

    # The unthrottled client gets every reading: max_hz is the other client's alone.
    everything = readings_of(await full.collect(has_seq(bench.session_id, 2000), timeout=20))
    assert [r["seq"] for r in everything] == list(range(1, 2001))
    got = readings_of(await thin.quiet(0.5))
    assert 9 <= len(got) <= 2 * 10 * 2
    values = [r["value"] for r in got]
    assert 500.0 in values
    assert -500.0 in values
    seqs = [r["seq"] for r in got]
    assert seqs == sorted(seqs)
    # Each reading it got is one that was stored and published, unchanged.
    assert all(r == everything[r["seq"] - 1] for r in got)


async def test_max_hz_keeps_the_extremes_of_each_session_when_two_rigs_have_a_sensor_of_the_same_name(
    live, recording
):
    bench = await recording("bench")
    other = await recording("other")
    await live.subscribe(max_hz=10)

    # The same instants on both rigs: around 100 on bench with a dip to 50, around 0 on other with a
    # spike to 20. Each session's own extremes must reach a client that thins to 10 Hz.
    for start in range(0, 1000, 100):
        await bench.record([("temp", T0 + i / 1000, 50.0 if i == 450 else 100.0) for i in range(start, start + 100)])
        await other.record([("temp", T0 + i / 1000, 20.0 if i == 450 else 0.0) for i in range(start, start + 100)])
    await bench.record([("temp", T0 + 2.0, 100.0)])
    await other.record([("temp", T0 + 2.0, 0.0)])

    got = readings_of(await live.quiet(0.5))
    by_session = {
        sid: [r["value"] for r in got if r["session_id"] == sid] for sid in (bench.session_id, other.session_id)
    }
    assert 50.0 in by_session[bench.session_id]
    assert 20.0 in by_session[other.session_id]


# --- robustness ------------------------------------------------------------------------------


async def test_a_malformed_live_event_does_not_disconnect_the_client(live, recording):
    bench = await recording("bench")
    layer = get_channel_layer()

    # An event of another shape (say, from a worker of an older release during a rolling upgrade).
    await layer.group_send(events.LIVE_GROUP, {"type": "sensor.batch", "session_id": bench.session_id,
                                                  "readings": [{"sensor": "temp", "value": 1.0}]})
    await bench.record(items("temp", [20.0]))

    frames = await live.collect(has_seq(bench.session_id, 1))
    assert [r["value"] for r in readings_of(frames)] == [20.0]
    await live.assert_open()


async def stored_unpublished(recording, batch):
    """Readings stored by the real pipeline whose events the test publishes itself (or not)."""
    return await sync_to_async(readings_record)(recorder=recording.recorder, items=batch)


async def test_readings_the_layer_lost_are_announced_in_a_lag_frame_naming_their_positions(live, recording):
    bench = await recording("bench")
    await bench.record(items("temp", [20.0, 21.0]))
    await live.collect(has_seq(bench.session_id, 2))
    layer = get_channel_layer()
    lost_before = presence.local()["layer_lost_readings"]

    # Positions 3-7 never reach this process (the layer dropped their event); 8 does.
    later = await stored_unpublished(bench, items("temp", [22.0, 23.0, 24.0, 25.0, 26.0, 27.0], t0=T0 + 1))
    event = events.batch_events(later)[0]
    skipped = {**event, "first_seq": 8, "lines": event["lines"][5:], "sensors": event["sensors"][5:]}
    await layer.group_send(events.LIVE_GROUP, skipped)

    frames = await live.collect(has_seq(bench.session_id, 8))
    lag = [f for f in frames if f["type"] == "lag"]
    assert lag == [{"type": "lag", "data": {"session_id": bench.session_id, "dropped": 0, "missed_readings": 5,
                                             "from_seq": 3, "to_seq": 7, "source": "channel_layer"}}]
    assert frames.index(lag[0]) < frames.index(next(f for f in frames if f["type"] == "sensor_data"))
    assert presence.local()["layer_lost_readings"] == lost_before + 5


async def test_a_lag_frame_for_lost_readings_goes_only_to_clients_of_that_session(ws, token, recording):
    bench = await recording("bench")
    other = await recording("other")
    watcher = await ws(headers=auth(token))
    await watcher.subscribe(session=other.session_id)
    await bench.record(items("temp", [20.0]))
    later = await stored_unpublished(bench, items("temp", [21.0, 22.0], t0=T0 + 1))
    event = events.batch_events(later)[0]
    await get_channel_layer().group_send(
        events.LIVE_GROUP, {**event, "first_seq": 3, "lines": event["lines"][1:], "sensors": event["sensors"][1:]}
    )
    await other.record(items("temp", [5.0]))

    frames = await watcher.collect(has_seq(other.session_id, 1))
    assert [f["type"] for f in feed(frames)] == ["sensor_data"]


async def test_a_process_reads_the_live_group_once_however_many_clients_it_has(ws, token, recording, live_layer):
    clients = [await ws(headers=auth(token)) for _ in range(5)]
    members = await live_layer.connection(live_layer.consistent_hash(events.LIVE_GROUP)).zcard(
        live_layer._group_key(events.LIVE_GROUP)
    )
    assert members == 1

    bench = await recording("bench")
    await bench.record(items("temp", [20.0, 21.0, 22.0]))
    for client in clients:
        got = readings_of(await client.collect(has_seq(bench.session_id, 3)))
        assert [r["seq"] for r in got] == [1, 2, 3]


async def test_the_process_leaves_the_live_group_when_its_last_client_goes(ws, token, live_layer):
    clients = [await ws(headers=auth(token)) for _ in range(2)]
    key = live_layer._group_key(events.LIVE_GROUP)
    redis = live_layer.connection(live_layer.consistent_hash(events.LIVE_GROUP))
    assert await redis.zcard(key) == 1

    await clients[0].disconnect()
    assert await redis.zcard(key) == 1
    await clients[1].disconnect()
    assert await redis.zcard(key) == 0

    again = await ws(headers=auth(token))
    assert await redis.zcard(key) == 1
    await again.assert_open()


async def test_an_idle_client_stays_connected_past_the_layers_blocking_read(live):
    # Three rounds of the layer's 5 s blocking read with nothing to deliver.
    for _ in range(3):
        await asyncio.sleep(4.0)
        await live.assert_open()


# --- Outbox: a slow client's bounded queue ---------------------------------------------------


class FakeClient:
    """A client that reads nothing while `stalled`: daphne would hold more than HIGH_WATER bytes."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.stalled = False

    async def send(self, text_data: str) -> None:
        self.sent.append(text_data)

    def unsent_bytes(self) -> int:
        return consumers.HIGH_WATER + 1 if self.stalled else 0

    def send_wire(self, data: bytes) -> bool:
        """daphne's send of frames already framed (sessions/live/flow.py): the client reads them as frames."""
        self.sent.extend(websocket_texts(data))
        return True


async def wait_for_sent(client: FakeClient, count: int, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(client.sent) < count:
        assert loop.time() < deadline, f"only {len(client.sent)} of {count} frames sent"
        await asyncio.sleep(0.01)


async def test_outbox_delivers_frames_in_order_while_the_client_reads():
    client = FakeClient()
    outbox = consumers.Outbox(client.send, client.unsent_bytes)
    try:
        outbox.put(["a", "b"])
        outbox.put(["c"])
        await wait_for_sent(client, 3)
    finally:
        outbox.close()

    assert client.sent == ["a", "b", "c"]
    assert outbox.total_dropped == 0


async def test_outbox_drops_the_oldest_frames_of_a_stalled_client_and_sends_a_lag_frame_first():
    client = FakeClient()
    client.stalled = True
    outbox = consumers.Outbox(client.send, client.unsent_bytes)
    limit = consumers.OUTBOX_FRAMES
    frames = [f"frame-{i}" for i in range(limit + 1234)]
    try:
        for start in range(0, len(frames), 500):
            outbox.put(frames[start:start + 500])
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)  # the writer checks the client again, and still waits
        assert client.sent == []

        client.stalled = False
        await wait_for_sent(client, limit + 1)
        outbox.put(["after"])
        await wait_for_sent(client, limit + 2)
        await asyncio.sleep(0.05)
    finally:
        outbox.close()

    assert json.loads(client.sent[0]) == {"type": "lag", "data": {"dropped": 1234}}
    assert client.sent[1:] == frames[1234:] + ["after"]
    assert outbox.total_dropped == 1234


async def test_outbox_reports_each_run_of_drops_once():
    client = FakeClient()
    client.stalled = True
    outbox = consumers.Outbox(client.send, client.unsent_bytes)
    limit = consumers.OUTBOX_FRAMES
    try:
        outbox.put([f"a{i}" for i in range(limit + 10)])
        await asyncio.sleep(0.1)
        client.stalled = False
        await wait_for_sent(client, limit + 1)

        client.stalled = True
        await asyncio.sleep(0.1)
        outbox.put([f"b{i}" for i in range(limit + 3)])
        await asyncio.sleep(0.1)
        client.stalled = False
        await wait_for_sent(client, 2 * (limit + 1))
    finally:
        outbox.close()

    lags = [json.loads(text)["data"]["dropped"] for text in client.sent if text.startswith('{"type":"lag"')]
    assert lags == [10, 3]
    assert client.sent[-limit:] == [f"b{i}" for i in range(3, limit + 3)]
    assert outbox.total_dropped == 13


async def test_a_stalled_client_never_blocks_whoever_puts_frames():
    client = FakeClient()
    client.stalled = True
    outbox = consumers.Outbox(client.send, client.unsent_bytes)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        for i in range(50):
            outbox.put([f"x{i}-{j}" for j in range(1000)])
        elapsed = loop.time() - started
    finally:
        outbox.close()

    assert elapsed < 1.0
    assert client.sent == []
    assert outbox.total_dropped == 50 * 1000 - consumers.OUTBOX_FRAMES


async def test_outbox_bounds_the_bytes_a_stalled_batch_client_holds(monkeypatch):
    monkeypatch.setattr(consumers, "OUTBOX_BYTES", 10_000)
    client = FakeClient()
    client.stalled = True
    outbox = consumers.Outbox(client.send, client.unsent_bytes)
    big = ["x" * 3000 + str(i) for i in range(10)]
    try:
        outbox.put(big)
        await asyncio.sleep(0.1)
        client.stalled = False
        await wait_for_sent(client, 4)
    finally:
        outbox.close()

    # 3 frames of ~3 KB fit in 10 KB: the 7 oldest went, and the client was told.
    assert json.loads(client.sent[0]) == {"type": "lag", "data": {"dropped": 7}}
    assert client.sent[1:] == big[7:]


async def test_outbox_joins_the_batch_parts_a_stalled_client_missed_into_one_frame_per_session_run():
    client = FakeClient()
    client.stalled = True
    outbox = consumers.Outbox(client.send, client.unsent_bytes)
    a1, a2, a3 = BatchPart(1, '{"seq":1}'), BatchPart(1, '{"seq":2},{"seq":3}'), BatchPart(1, '{"seq":5}')
    b1 = BatchPart(2, '{"seq":1}')
    alert = '{"type":"validation","data":{"id":9}}'
    try:
        outbox.put([a1])
        outbox.put([a2, alert])
        outbox.put([b1])
        outbox.put([a3])
        await asyncio.sleep(0.1)
        client.stalled = False
        await wait_for_sent(client, 4)
        await asyncio.sleep(0.05)
    finally:
        outbox.close()

    assert [json.loads(text) for text in client.sent] == [
        {"type": "sensor_data_batch", "session_id": 1, "data": [{"seq": 1}, {"seq": 2}, {"seq": 3}]},
        {"type": "validation", "data": {"id": 9}},
        {"type": "sensor_data_batch", "session_id": 2, "data": [{"seq": 1}]},
        {"type": "sensor_data_batch", "session_id": 1, "data": [{"seq": 5}]},
    ]


async def test_outbox_joins_batch_parts_only_up_to_the_frame_size_a_client_accepts(monkeypatch):
    monkeypatch.setattr(consumers, "JOIN_BYTES", 25)
    client = FakeClient()
    client.stalled = True
    outbox = consumers.Outbox(client.send, client.unsent_bytes)
    parts = [BatchPart(1, '{"seq":%d}' % i) for i in range(1, 6)]  # 9 bytes each
    try:
        outbox.put(parts)
        await asyncio.sleep(0.1)
        client.stalled = False
        await wait_for_sent(client, 3)
        await asyncio.sleep(0.05)
    finally:
        outbox.close()

    assert [[r["seq"] for r in json.loads(text)["data"]] for text in client.sent] == [[1, 2], [3, 4], [5]]


def _event_frames(first_seq: int, count: int, *, alert: bool = False) -> EventFrames:
    lines = [line(seq, "fz", T0 + seq / 100, float(seq), session_id=1) for seq in range(first_seq, first_seq + count)]
    validation = [{"id": first_seq, "session_id": 1, "sensor": "fz", "status": "warning"}] if alert else []
    return EventFrames({"type": "sensor.batch", "session_id": 1, "first_seq": first_seq,
                        "last_seq": first_seq + count - 1, "lines": lines, "sensors": ["fz"] * count,
                        "validation": validation})


def _seqs(texts: list[str]) -> list[int]:
    frames = [json.loads(text) for text in texts]
    return [r["seq"] for f in frames if f["type"] == "sensor_data_batch" for r in f["data"]]


async def test_an_unfiltered_client_that_keeps_up_is_sent_each_events_frames_at_once():
    client = FakeClient()
    outbox = consumers.Outbox(client.send, client.unsent_bytes, client.send_wire)
    try:
        group = _event_frames(1, 3, alert=True).group(batch=True)
        outbox.put_group(group)

        # Written before anything else ran: no task of the client's own had to wake for it.
        assert client.sent == group.texts
    finally:
        outbox.close()
    assert [json.loads(text)["type"] for text in client.sent] == ["sensor_data_batch", "validation"]


async def test_a_client_that_stalls_gets_its_queued_frames_first_then_new_ones_at_once_in_order():
    client = FakeClient()
    outbox = consumers.Outbox(client.send, client.unsent_bytes, client.send_wire)
    try:
        outbox.put_group(_event_frames(1, 2).group(batch=True))
        client.stalled = True
        outbox.put_group(_event_frames(3, 2, alert=True).group(batch=True))
        outbox.put_group(_event_frames(5, 2).group(batch=True))
        outbox.put(['{"type":"system_status","data":{"session_id":1}}'])
        await asyncio.sleep(0.1)
        assert _seqs(client.sent) == [1, 2]

        client.stalled = False
        await wait_for_sent(client, 4)
        outbox.put_group(_event_frames(7, 1).group(batch=True))
        await asyncio.sleep(0.05)
    finally:
        outbox.close()

    # The queued batches went joined, the alert after their readings, the status after them, then
    # the next event's frames, at once: every reading once, in order.
    assert _seqs(client.sent) == list(range(1, 8))
    assert [json.loads(text)["type"] for text in client.sent] == [
        "sensor_data_batch", "sensor_data_batch", "validation", "system_status", "sensor_data_batch",
    ]
