"""The client core against the emulator over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import twitchio_pubsub as tp
from twitchio_pubsub import protocol
from twitchio_pubsub.emulator import PubSubEmulator

from .conftest import FAST, Recorder, make_pool, settle, wait_replaced

TOKEN = "user-token-abc123"


def node_loads(emulator: PubSubEmulator) -> list[int]:
    return sorted((len(c.topics) for c in emulator.connections), reverse=True)


async def test_bits_event_reaches_handler(client: Any, emulator: PubSubEmulator) -> None:
    rec = Recorder(client, "pubsub_bits", "pubsub_message")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[12345]])
        assert emulator.state()["connections"][0]["topics"] == ["channel-bits-events-v2.12345"]
        assert await emulator.trigger("bits", 12345, bits_used=250) == 1
        (event,) = await rec.wait("pubsub_bits")
        assert isinstance(event, tp.PubSubBitsMessage)
        assert event.bits_used == 250 and event.channel_id == 12345
        assert event.topic == "channel-bits-events-v2"
        assert event.full_topic == "channel-bits-events-v2.12345"
        (generic,) = await rec.wait("pubsub_message")
        assert type(generic) is tp.PubSubMessage and generic.topic == event.full_topic
        assert generic.data == event.data


async def test_endpoint_defaults_to_class_attribute(
    client: Any, emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tp.PubSubWebsocket, "ENDPOINT", emulator.url)
    async with tp.PubSubPool(client, **FAST) as pool:
        await pool.subscribe_topics([tp.whispers(TOKEN)[1]])
        assert pool.nodes[0].endpoint == emulator.url
        assert len(emulator.connections) == 1


async def test_120_topics_in_groups_of_10_fill_3_connections(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator) as pool:
        for start in range(0, 120, 10):
            await pool.subscribe_topics([tp.whispers(TOKEN)[i] for i in range(start, start + 10)])
        assert [len(n.topics) for n in pool.nodes] == [50, 50, 20]
        assert node_loads(emulator) == [50, 50, 20]
        assert len(pool.topics) == 120


async def test_20_concurrent_subscribes_respect_limits(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator) as pool:
        batches = [[tp.whispers(TOKEN)[b * 7 + i] for i in range(7)] for b in range(20)]
        await asyncio.gather(*(pool.subscribe_topics(batch) for batch in batches))
        loads = [len(n.topics) for n in pool.nodes]
        assert sum(loads) == 140 and max(loads) <= 50
        assert len(pool.nodes) == 3
        held = {t for c in emulator.connections for t in c.topics}
        assert held == {t.present for batch in batches for t in batch}


async def test_call_larger_than_a_node_is_split(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, max_connection_topics=5) as pool:
        await pool.subscribe_topics([tp.whispers(TOKEN)[i] for i in range(12)])
        assert node_loads(emulator) == [5, 5, 2]


async def test_small_call_reuses_existing_room(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.whispers(TOKEN)[i] for i in range(40)])
        await pool.subscribe_topics([tp.bits(TOKEN)[i] for i in range(10)])
        assert len(pool.nodes) == 1 and node_loads(emulator) == [50]


async def test_pool_full_sends_nothing(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, max_pool_size=1, max_connection_topics=5) as pool:
        with pytest.raises(tp.PoolFull) as info:
            await pool.subscribe_topics([tp.whispers(TOKEN)[i] for i in range(6)])
        assert isinstance(info.value, tp.PoolError) and isinstance(info.value, tp.PubSubError)
        assert len(info.value.topics) == 6
        assert emulator.listen_count == 0 and pool.nodes == []
        await pool.subscribe_topics([tp.whispers(TOKEN)[i] for i in range(5)])
        assert node_loads(emulator) == [5]


async def test_one_listen_per_token_even_when_interleaved(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator) as pool:
        topics = [tp.whispers("tok-a" if i % 2 else "tok-b")[i] for i in range(10)]
        await pool.subscribe_topics(topics)
        assert emulator.listen_count == 2
        tokens = emulator.connections[0].topics
        assert {t for t, tok in tokens.items() if tok == "tok-a"} == {
            f"whispers.{i}" for i in range(1, 10, 2)
        }


async def test_bad_topic_raises_and_frees_capacity(client: Any, emulator: PubSubEmulator) -> None:
    bogus = tp.Topic("video-playback.{0}", ["channel"])
    bogus.token = TOKEN
    async with make_pool(client, emulator, max_connection_topics=2) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        with pytest.raises(tp.ListenError) as info:
            await pool.subscribe_topics([bogus[5]])
        assert info.value.error == protocol.ERR_BADTOPIC
        assert info.value.topics == [bogus[5]]
        assert "video-playback.5" in str(info.value) and TOKEN not in str(info.value)
        assert pool.topics == [tp.bits(TOKEN)[1]]
        await pool.subscribe_topics([tp.bits(TOKEN)[2]])
        assert len(pool.nodes) == 1


async def test_err_server_is_retried(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, listen_retries=2) as pool:
        await emulator.fail_next_listens(protocol.ERR_SERVER, 2)
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        assert emulator.listen_count == 3
        await emulator.fail_next_listens(protocol.ERR_SERVER, 3)
        with pytest.raises(tp.ListenError) as info:
            await pool.subscribe_topics([tp.bits(TOKEN)[2]])
        assert info.value.error == protocol.ERR_SERVER
        assert tp.bits(TOKEN)[2] not in pool.topics


async def test_listen_timeout(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, listen_timeout=0.3) as pool:
        await emulator.fail_next_listens(None)
        with pytest.raises(tp.ListenTimeout) as info:
            await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        assert info.value.topics == [tp.bits(TOKEN)[1]]
        assert pool.topics == [] and pool.nodes == []


async def test_unreachable_server_raises_connection_failure(client: Any) -> None:
    pool = tp.PubSubPool(client, **{**FAST, "connect_timeout": 0.5}, endpoint="ws://127.0.0.1:9")
    async with pool:
        with pytest.raises(tp.ConnectionFailure):
            await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        assert pool.nodes == []


async def test_bad_arguments(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator) as pool:
        with pytest.raises(TypeError, match="list of Topic"):
            await pool.subscribe_topics(tp.bits(TOKEN)[1])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Topic objects"):
            await pool.subscribe_topics(["channel-bits-events-v2.1"])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="missing ids"):
            await pool.subscribe_topics([tp.moderation_user_action(TOKEN)[1]])
        no_token = tp.bits(TOKEN)[1]
        no_token.token = None
        with pytest.raises(TypeError, match="no token"):
            await pool.subscribe_topics([no_token])
        assert emulator.listen_count == 0
    with pytest.raises(ValueError, match="mode"):
        tp.PubSubPool(client, mode="spread")
    with pytest.raises(ValueError, match="300"):
        tp.PubSubPool(client, ping_interval=300)
    with pytest.raises(TypeError):
        tp.PubSubPool(client, max_pool_size="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tp.PubSubPool(client, max_connection_topics=0)


class RefreshingPool(tp.PubSubPool):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.failed: list[list[tp.Topic]] = []

    async def auth_fail_hook(self, topics: list[tp.Topic]) -> None:
        self.failed.append(list(topics))
        for topic in topics:
            topic.token = "fresh-token"
        await self.subscribe_topics(topics)


async def test_auth_failure_token_refreshed_in_hook_then_events_flow(
    client: Any, emulator: PubSubEmulator
) -> None:
    await emulator.invalidate_token("expired-token")
    rec = Recorder(client, "pubsub_bits")
    async with make_pool(client, emulator, RefreshingPool) as pool:
        assert isinstance(pool, RefreshingPool)
        await pool.subscribe_topics([tp.bits("expired-token")[7], tp.bits(TOKEN)[8]])
        assert [[t.present for t in group] for group in pool.failed] == [
            ["channel-bits-events-v2.7"]
        ]
        assert emulator.connections[0].topics["channel-bits-events-v2.7"] == "fresh-token"
        assert set(emulator.connections[0].topics) == {
            "channel-bits-events-v2.7",
            "channel-bits-events-v2.8",
        }
        await emulator.trigger("bits", 7)
        (event,) = await rec.wait("pubsub_bits")
        assert event.channel_id == 7


async def test_default_auth_fail_hook_logs_and_dispatches(
    client: Any, emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    await emulator.invalidate_token("expired-token")
    rec = Recorder(client, "pubsub_error")
    caplog.set_level(logging.WARNING, logger="twitchio_pubsub")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits("expired-token")[7]])
        (err,) = await rec.wait("pubsub_error")
        assert isinstance(err, tp.PubSubErrorEvent)
        assert err.error == protocol.ERR_BADAUTH and err.topics == [tp.bits(TOKEN)[7]]
        assert pool.topics == []
    text = caplog.text
    assert "channel-bits-events-v2.7" in text and "expired-token" not in text


async def test_auth_revoked_calls_hook(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, RefreshingPool) as pool:
        assert isinstance(pool, RefreshingPool)
        await pool.subscribe_topics([tp.bits("soon-revoked")[1], tp.whispers(TOKEN)[2]])
        assert await emulator.revoke_token("soon-revoked") == ["channel-bits-events-v2.1"]
        for _ in range(100):
            if pool.failed and emulator.connections[0].topics.get("channel-bits-events-v2.1"):
                break
            await asyncio.sleep(0.02)
        assert [[t.present for t in g] for g in pool.failed] == [["channel-bits-events-v2.1"]]
        assert emulator.connections[0].topics["channel-bits-events-v2.1"] == "fresh-token"


async def test_unsubscribe(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator) as pool:
        a, b = tp.bits(TOKEN)[1], tp.whispers(TOKEN)[2]
        await pool.subscribe_topics([a, b])
        await pool.unsubscribe_topics([a])
        assert list(emulator.connections[0].topics) == ["whispers.2"]
        assert pool.topics == [b]
        with pytest.raises(ValueError, match=r"channel-bits-events-v2\.1"):
            await pool.unsubscribe_topics([a])
        before = emulator.listen_count
        await pool.unsubscribe_topics([b])
        assert pool.nodes == []
        await asyncio.sleep(0.1)
        assert emulator.connections == [] and emulator.listen_count == before


async def test_close_leaves_nothing_behind(client: Any, emulator: PubSubEmulator) -> None:
    baseline = asyncio.all_tasks()
    pool = make_pool(client, emulator)
    await pool.subscribe_topics([tp.whispers(TOKEN)[i] for i in range(60)])
    session = pool._session
    assert session is not None and len(pool.nodes) == 2
    await pool.close()
    await pool.close()
    await settle()
    assert asyncio.all_tasks() - baseline == set()
    assert session.closed
    await asyncio.sleep(0.1)
    assert emulator.connections == []
    with pytest.raises(tp.PoolClosed):
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])


async def test_reconnect_mid_stream_delivers_every_event_once(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits")
    topic = "channel-bits-events-v2.42"
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[42]])
        old_id = emulator.connections[0].id
        total = 400

        async def blast() -> None:
            for i in range(total):
                await emulator.publish(
                    topic,
                    {
                        "data": {
                            "channel_id": "42",
                            "bits_used": i + 1,
                            "user_id": "1",
                            "user_name": "x",
                        },
                        "message_id": str(i),
                    },
                )
                await asyncio.sleep(0.001)

        blaster = asyncio.create_task(blast())
        await asyncio.sleep(0.05)
        assert await emulator.send_reconnect() == 1
        await blaster
        events = await rec.wait("pubsub_bits", total)
        await asyncio.sleep(0.2)
        got = [e.bits_used for e in rec.values("pubsub_bits")]
        assert sorted(got) == list(range(1, total + 1))
        assert [c.id for c in emulator.connections] != [old_id]
        assert len(emulator.connections) == 1 and list(emulator.connections[0].topics) == [topic]
        assert len(events) == total


async def test_dropped_connection_recovers_all_topics(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits")
    async with make_pool(client, emulator) as pool:
        topics = [tp.bits(TOKEN)[i] for i in range(30)]
        await pool.subscribe_topics(topics)
        first = emulator.connections[0].id
        await emulator.drop()
        await emulator.wait_for_topics(30, timeout=5)
        assert emulator.connections[0].id != first
        for _ in range(100):
            if pool.nodes[0].connected:
                break
            await asyncio.sleep(0.01)
        await emulator.trigger("bits", 29)
        await rec.wait("pubsub_bits")
        assert emulator.handshakes <= 3


async def test_outage_recovers_with_backoff(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, backoff_base=0.2, backoff_cap=1.0) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.whispers(TOKEN)[2]])
        await emulator.refuse_connections(3.0)
        await emulator.drop()
        await asyncio.sleep(3.0)
        await emulator.wait_for_topics(2, timeout=5)
        # 3 s of 503s at 0.2 s doubling to 1 s: a handful of tries, not a busy loop.
        assert 2 <= emulator.refused <= 15
        assert set(emulator.connections[0].topics) == {"channel-bits-events-v2.1", "whispers.2"}


async def test_silent_server_is_left(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, ping_interval=0.2, pong_timeout=0.3) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = emulator.connections[0].id
        await asyncio.sleep(0.35)
        assert pool.nodes[0].latency is not None
        await emulator.silence()
        for _ in range(200):
            conns = emulator.connections
            if conns and conns[0].id != first and conns[0].topics:
                break
            await asyncio.sleep(0.02)
        assert [c.id for c in emulator.connections] != [first]
        assert list(emulator.connections[0].topics) == ["channel-bits-events-v2.1"]


async def test_garbage_frames_do_not_stop_delivery(
    client: Any, emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(client, "pubsub_bits", "pubsub_error")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        for junk in ["not json", "[]", '{"type":"SURPRISE"}', '{"type":"MESSAGE","data":{}}']:
            await emulator.send_raw(junk)
        await emulator.publish("channel-bits-events-v2.1", "this is not json")
        await emulator.trigger("bits", 1)
        (event,) = await rec.wait("pubsub_bits")
        assert event.channel_id == 1
        errors = await rec.wait("pubsub_error", 5)
        assert all(isinstance(e, tp.PubSubErrorEvent) for e in errors)
        assert {e.raw for e in errors} >= {"not json", "[]", "this is not json"}
        assert pool.nodes[0].connected and emulator.handshakes == 1
    assert "invalid frame" in caplog.text


class EditingPool(tp.PubSubPool):
    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        kept = [t for t in topics if t.present != "whispers.2"]
        for topic in kept:
            topic.token = "rotated-token"
        return [*kept, tp.whispers("rotated-token")[3]]


async def test_reconnect_hook_edits_are_respected(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, EditingPool) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.whispers(TOKEN)[2]])
        await emulator.send_reconnect()
        for _ in range(200):
            conns = emulator.connections
            if len(conns) == 1 and "whispers.3" in conns[0].topics:
                break
            await asyncio.sleep(0.02)
        assert emulator.connections[0].topics == {
            "channel-bits-events-v2.1": "rotated-token",
            "whispers.3": "rotated-token",
        }
        assert set(pool.topics) == {tp.bits("x")[1], tp.whispers("x")[3]}


async def test_debug_logs_never_contain_the_token(
    client: Any, emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "zz-secret-oauth-token-zz"
    caplog.set_level(logging.DEBUG)
    async with make_pool(client, emulator, RefreshingPool) as pool:
        await pool.subscribe_topics([tp.bits(secret)[1]])
        await emulator.send_reconnect()
        await asyncio.sleep(0.2)
        await emulator.drop()
        await emulator.wait_for_topics(1)
        await pool.unsubscribe_topics([tp.bits(secret)[1]])
        await emulator.invalidate_token(secret)
        await pool.subscribe_topics([tp.bits(secret)[2]])
        assert repr(pool) and all(secret not in repr(n) for n in pool.nodes)
    assert caplog.records
    for record in caplog.records:
        assert secret not in record.getMessage()


class CountingPool(tp.PubSubPool):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.hook_calls: list[list[str | None]] = []

    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        self.hook_calls.append([t.present for t in topics])
        return topics


@pytest.mark.parametrize("fault", ["close_frame", "drop", "reconnect"])
async def test_reconnect_hook_runs_before_every_relisten(
    client: Any, emulator: PubSubEmulator, fault: str
) -> None:
    async with make_pool(client, emulator, CountingPool) as pool:
        assert isinstance(pool, CountingPool)
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.whispers(TOKEN)[2]])
        assert pool.hook_calls == []
        first = emulator.connections[0].id
        if fault == "close_frame":
            assert await emulator.close_connection() == 1
        elif fault == "drop":
            await emulator.drop()
        else:
            await emulator.send_reconnect()
        await wait_replaced(emulator, first, 2, connections=1, timeout=6)
        assert pool.hook_calls == [["channel-bits-events-v2.1", "whispers.2"]]


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_handshake_errors_are_retried(
    client: Any, emulator: PubSubEmulator, status: int
) -> None:
    rec = Recorder(client, "pubsub_reconnecting")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = emulator.connections[0].id
        await emulator.refuse_connections(0.3, status=status)
        await emulator.drop()
        await wait_replaced(emulator, first, 1, connections=1, timeout=6)
        assert emulator.refused >= 1
        assert len(rec.values("pubsub_reconnecting")) >= 2


async def test_backoff_resets_after_a_healthy_connection(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_reconnecting")
    async with make_pool(
        client, emulator, backoff_base=0.02, backoff_cap=5.0, backoff_reset_after=0.3
    ) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = emulator.connections[0].id
        await emulator.refuse_connections(0.8)
        await emulator.drop()
        await wait_replaced(emulator, first, 1, connections=1, timeout=6)
        delays = [args[1] for args in rec.events["pubsub_reconnecting"]]
        assert len(delays) >= 4
        await asyncio.sleep(0.4)  # healthy for longer than backoff_reset_after
        count = len(delays)
        second = emulator.connections[0].id
        await emulator.drop()
        await wait_replaced(emulator, second, 1, connections=1, timeout=6)
        after = [args[1] for args in rec.events["pubsub_reconnecting"]][count:]
        assert after and after[0] <= 0.02


async def test_binary_frames_are_reported_not_fatal(client: Any, emulator: PubSubEmulator) -> None:
    rec = Recorder(client, "pubsub_bits", "pubsub_error")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await emulator.connections[0].ws.send_bytes(b"\x00\x01")
        await emulator.trigger("bits", 1)
        await rec.wait("pubsub_bits")
        (err,) = await rec.wait("pubsub_error")
        assert "binary" in err.reason
        assert pool.nodes[0].connected


async def test_warns_when_client_loop_is_not_running(
    emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    import twitchio

    other = asyncio.new_event_loop()
    try:
        client = twitchio.Client(token="bot", loop=other)
    finally:
        other.close()
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await pool.subscribe_topics([tp.bits(TOKEN)[2]])
    warnings = [
        r for r in caplog.records if "client.loop is not the running event loop" in r.getMessage()
    ]
    assert len(warnings) == 1


async def test_no_loop_warning_in_the_normal_case(
    client: Any, emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
    assert "client.loop" not in caplog.text


async def test_raw_and_data_are_kept(client: Any, emulator: PubSubEmulator) -> None:
    rec = Recorder(client, "pubsub_bits", "pubsub_channel_points")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.channel_points(TOKEN)[1]])
        payload = {
            "data": {"bits_used": 3, "user_id": "9", "user_name": "z", "extra": [1]},
            "message_id": "m",
        }
        text = '{"data":{"bits_used":3,"user_id":"9","user_name":"z","extra":[1]},"message_id":"m"}'
        await emulator.publish("channel-bits-events-v2.1", text)
        (bits,) = await rec.wait("pubsub_bits")
        assert bits.raw == text and bits.data == payload
        assert bits.data["data"]["extra"] == [1]
        await emulator.trigger("channel_points", 1)
        (points,) = await rec.wait("pubsub_channel_points")
        assert points.data["type"] == "reward-redeemed"
        assert points.raw.startswith('{"type":"reward-redeemed"')


async def test_wait_for_pubsub_message_works(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        waiter = asyncio.ensure_future(client.wait_for("pubsub_message", timeout=5))
        await asyncio.sleep(0)
        await emulator.trigger("bits", 1, bits_used=11)
        (event,) = await waiter
        assert type(event) is tp.PubSubMessage and event.data["data"]["bits_used"] == 11


async def test_subclass_handler_for_pubsub_message(emulator: PubSubEmulator) -> None:
    import twitchio

    seen: list[tp.PubSubMessage] = []

    class MyClient(twitchio.Client):  # type: ignore[misc]
        async def event_pubsub_message(self, message: tp.PubSubMessage) -> None:
            seen.append(message)

    client = MyClient(token="bot")
    rec = Recorder(client, "pubsub_bits")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await emulator.trigger("bits", 1)
        (event,) = await rec.wait("pubsub_bits")
        await settle()
        assert [m.raw for m in seen] == [event.raw]
        assert [type(m) for m in seen] == [tp.PubSubMessage]


async def test_close_during_subscribe_raises_pool_closed_promptly(
    client: Any, emulator: PubSubEmulator
) -> None:
    await emulator.refuse_connections(30)
    pool = make_pool(client, emulator, connect_timeout=20)
    subscribing = asyncio.ensure_future(pool.subscribe_topics([tp.bits(TOKEN)[1]]))
    await emulator.wait_until(lambda: emulator.refused >= 1)
    started = asyncio.get_running_loop().time()
    await pool.close()
    with pytest.raises(tp.PoolClosed):
        await asyncio.wait_for(subscribing, 5)
    assert asyncio.get_running_loop().time() - started < 5


class ClosingPool(tp.PubSubPool):
    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        await self.close()
        return topics


async def test_close_from_inside_reconnect_hook(client: Any, emulator: PubSubEmulator) -> None:
    baseline = asyncio.all_tasks()
    pool = make_pool(client, emulator, ClosingPool)
    await pool.subscribe_topics([tp.bits(TOKEN)[1]])
    await emulator.send_reconnect()
    await emulator.wait_until(lambda: emulator.connections == [], timeout=5)
    await settle()
    await asyncio.sleep(0.05)
    assert pool.closed and pool.nodes == []
    assert asyncio.all_tasks() - baseline == set()
