"""The pool core's hard cases: one owner per topic, cancellation, hooks, faults.

Each test here reproduces a failure found in review of the first client core and goes
through the public API against the emulator over a real loopback socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any

import pytest

import twitchio_pubsub as tp
from twitchio_pubsub import protocol
from twitchio_pubsub.emulator import PubSubEmulator

from .conftest import (
    FAST,
    LoopWatch,
    Recorder,
    close_while_subscribing,
    make_pool,
    refused_url,
    settle,
    wait_replaced,
)

TOKEN = "user-token-abc123"


# --------------------------------------------------------------------------- freezing


async def test_subscribe_during_a_drop_never_freezes_the_loop(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator, connect_timeout=3.0, listen_timeout=2.0) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        with LoopWatch() as watch:
            await emulator.drop()
            subscribing = []
            for i in range(2, 40):
                subscribing.append(
                    asyncio.ensure_future(pool.subscribe_topics([tp.bits(TOKEN)[i]]))
                )
                await asyncio.sleep(0)
            await asyncio.gather(*subscribing)
        # Before the fix one of these subscribes spun without yielding for
        # connect_timeout + listen_timeout (5 s here).
        assert watch.longest < 1.0
        await emulator.wait_for_topics(39)
        assert len(pool.topics) == 39


# --------------------------------------------------------------------------- user code


async def test_raising_wait_for_predicates_do_not_kill_the_node(
    client: Any, emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any) -> bool:
        raise RuntimeError("predicate failed")

    rec = Recorder(client, "pubsub_bits")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        waiters = [
            asyncio.ensure_future(client.wait_for(name, boom, timeout=30))
            for name in ("pubsub_bits", "pubsub_reconnecting", "pubsub_ready", "pubsub_message")
        ]
        await asyncio.sleep(0)
        await emulator.trigger("bits", 1, bits_used=5)
        await rec.wait("pubsub_bits")
        first = emulator.connections[0].id
        await emulator.drop()
        await wait_replaced(emulator, first, 1)
        await emulator.trigger("bits", 1, bits_used=6)
        await rec.wait("pubsub_bits", 2)
        assert emulator.handshakes == 2  # one reconnect, not one per event
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    assert "predicate failed" in caplog.text and "pubsub_bits" in caplog.text


async def test_timed_out_wait_for_does_not_break_delivery(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        with pytest.raises(asyncio.TimeoutError):
            await client.wait_for("pubsub_bits", lambda e: True, timeout=0.01)
        for n in (1, 2, 3):
            await emulator.trigger("bits", 1, bits_used=n)
        assert [e.bits_used for e in await rec.wait("pubsub_bits", 3)] == [1, 2, 3]
        assert emulator.handshakes == 1


# --------------------------------------------------------------------------- ownership


async def test_cancelled_subscribe_leaves_no_phantom_topic(
    client: Any, emulator: PubSubEmulator
) -> None:
    topic = tp.bits(TOKEN)[1]
    async with make_pool(client, emulator, listen_timeout=5.0) as pool:
        await emulator.fail_next_listens(None)  # the first LISTEN is never answered
        task = asyncio.ensure_future(pool.subscribe_topics([topic]))
        await emulator.wait_until(lambda: emulator.listen_count == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.topics == []
        await pool.subscribe_topics([topic])
        assert pool.topics == [topic]
        await emulator.wait_until(lambda: emulator.listen_count == 2)
        assert any(topic.present in c.topics for c in emulator.connections)


async def test_unsubscribe_while_listen_in_flight_does_not_resurrect(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits")
    keep, drop = tp.bits(TOKEN)[1], tp.bits(TOKEN)[2]
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([keep])
        task = asyncio.ensure_future(pool.subscribe_topics([drop]))
        await emulator.wait_until(lambda: emulator.listen_count == 2)
        await pool.unsubscribe_topics([drop])
        await task
        assert pool.topics == [keep]
        first = emulator.connections[0].id
        await emulator.send_reconnect()
        await emulator.wait_until(
            lambda: (
                [c.id for c in emulator.connections] != [first]
                and len(emulator.connections) == 1
                and list(emulator.connections[0].topics) == [keep.present]
            )
        )
        assert await emulator.trigger("bits", 2) == 0
        await emulator.trigger("bits", 1, bits_used=77)
        (event,) = await rec.wait("pubsub_bits")
        assert event.channel_id == 1
        with pytest.raises(ValueError):
            await pool.unsubscribe_topics([drop])


async def test_concurrent_subscribes_of_one_topic_share_its_outcome(
    client: Any, emulator: PubSubEmulator
) -> None:
    bogus = tp.Topic("video-playback.{0}", ["channel"])
    bogus.token = TOKEN
    async with make_pool(client, emulator) as pool:
        results = await asyncio.gather(
            pool.subscribe_topics([bogus[5]]),
            pool.subscribe_topics([bogus[5]]),
            return_exceptions=True,
        )
        assert all(isinstance(r, tp.ListenError) for r in results), results
        assert emulator.listen_count == 1 and pool.topics == []


# --------------------------------------------------------------------------- reconnect_hook


class SlowHookPool(tp.PubSubPool):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        self.entered.set()
        await self.release.wait()
        return topics


async def test_unsubscribe_during_slow_reconnect_hook_is_kept(
    client: Any, emulator: PubSubEmulator
) -> None:
    a, b = tp.bits(TOKEN)[1], tp.bits(TOKEN)[2]
    async with make_pool(client, emulator, SlowHookPool) as pool:
        assert isinstance(pool, SlowHookPool)
        await pool.subscribe_topics([a, b])
        await emulator.drop()
        await asyncio.wait_for(pool.entered.wait(), 5)
        await pool.unsubscribe_topics([b])
        pool.release.set()
        await emulator.wait_until(
            lambda: bool(emulator.connections) and bool(emulator.connections[0].topics)
        )
        await settle()
        assert list(emulator.connections[0].topics) == [a.present]
        assert pool.topics == [a]


class ReturningPool(tp.PubSubPool):
    shape: Any = list

    async def reconnect_hook(self, node: tp.PubSubWebsocket, topics: list[tp.Topic]) -> Any:
        return self.shape(topics)


@pytest.mark.parametrize(
    "shape", [set, tuple, lambda ts: (t for t in ts), lambda ts: {t: 1 for t in ts}.keys()]
)
async def test_reconnect_hook_may_return_any_iterable(
    client: Any, emulator: PubSubEmulator, shape: Any
) -> None:
    pool_cls = type("P", (ReturningPool,), {"shape": staticmethod(shape)})
    async with make_pool(client, emulator, pool_cls) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.whispers(TOKEN)[2]])
        first = emulator.connections[0].id
        await emulator.send_reconnect()
        await emulator.wait_until(
            lambda: (
                [c.id for c in emulator.connections] not in ([first], [])
                and len(emulator.connections) == 1
                and len(emulator.connections[0].topics) == 2
            )
        )
        assert len(pool.topics) == 2


class BadReturnPool(tp.PubSubPool):
    async def reconnect_hook(self, node: tp.PubSubWebsocket, topics: list[tp.Topic]) -> Any:
        return 42


async def test_reconnect_hook_bad_return_is_an_error_not_a_loss(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_error")
    async with make_pool(client, emulator, BadReturnPool) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = emulator.connections[0].id
        await emulator.drop()
        await wait_replaced(emulator, first, 1)
        (err,) = await rec.wait("pubsub_error")
        assert "reconnect_hook" in err.reason and "int" in err.reason
        assert pool.topics == [tp.bits(TOKEN)[1]]


class SubscribingHookPool(tp.PubSubPool):
    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        if tp.whispers(TOKEN)[9] not in self.topics:
            await self.subscribe_topics([tp.whispers(TOKEN)[9]])
        return topics


async def test_subscribe_from_inside_reconnect_hook(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, SubscribingHookPool, listen_timeout=5.0) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await emulator.drop()
        await emulator.wait_for_topics(2, timeout=3)
        assert set(pool.topics) == {tp.bits(TOKEN)[1], tp.whispers(TOKEN)[9]}


# --------------------------------------------------------------------------- de-duplication


async def test_repeated_identical_events_after_a_handover_all_arrive(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_moderation")
    topic = tp.moderation_user_action(TOKEN)[5][6]
    async with make_pool(client, emulator, dedup_window=30.0, handover_delay=0.05) as pool:
        await pool.subscribe_topics([topic])
        first = emulator.connections[0].id
        await emulator.send_reconnect()
        await emulator.wait_until(
            lambda: len(emulator.connections) == 1 and emulator.connections[0].id != first
        )
        slow = {"type": "moderation_action", "data": {"moderation_action": "slow", "args": ["5"]}}
        off = {"type": "moderation_action", "data": {"moderation_action": "slowoff"}}
        for payload in (slow, off, slow):
            await emulator.publish(topic.present or "", json.dumps(payload))
        events = await rec.wait("pubsub_moderation", 3)
        assert [e.action for e in events] == ["slow", "slowoff", "slow"]


# --------------------------------------------------------------------------- empty nodes


async def test_node_closes_when_relisten_is_refused_for_every_topic(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits("doomed")[1]])
        await emulator.invalidate_token("doomed")
        await emulator.drop()
        await emulator.wait_until(lambda: pool.nodes == [] and emulator.connections == [])
        assert pool.topics == []


async def test_node_closes_when_every_topic_is_revoked(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits("doomed")[1]])
        await emulator.revoke_token("doomed")
        await emulator.wait_until(lambda: pool.nodes == [] and emulator.connections == [])


class DroppingPool(tp.PubSubPool):
    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        return []


async def test_node_closes_when_hook_drops_every_topic(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator, DroppingPool) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await emulator.send_reconnect()
        await emulator.wait_until(lambda: pool.nodes == [] and emulator.connections == [])
        assert pool.topics == []


# --------------------------------------------------------------------------- handover bound


async def test_mass_reconnect_never_exceeds_pool_size_plus_one(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits")
    async with make_pool(client, emulator, max_connection_topics=1, handover_delay=0.05) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[i] for i in range(10)])
        assert len(emulator.connections) == 10
        before = {c.id for c in emulator.connections}
        emulator.peak_connections = 0
        assert await emulator.send_reconnect() == 10
        await emulator.wait_until(
            lambda: (
                len(emulator.connections) == 10
                and not before & {c.id for c in emulator.connections}
                and all(c.topics for c in emulator.connections)
            ),
            timeout=10,
        )
        assert emulator.peak_connections <= 11
        await emulator.trigger("bits", 3)
        await rec.wait("pubsub_bits")


# --------------------------------------------------------------------------- first connect


async def test_refused_first_connect_fails_after_connect_timeout_naming_the_cause(
    client: Any,
) -> None:
    url = refused_url()
    pool = tp.PubSubPool(client, **{**FAST, "connect_timeout": 0.5}, endpoint=url)
    loop = asyncio.get_running_loop()
    async with pool:
        started = loop.time()
        with pytest.raises(tp.ConnectionFailure) as info:
            await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        elapsed = loop.time() - started
        assert pool.nodes == [] and pool.topics == []
    assert 0.4 <= elapsed < 1.5
    assert url in str(info.value) and "refused" in str(info.value)


async def test_stalled_handshake_fails_after_connect_timeout(client: Any) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    pool = tp.PubSubPool(client, **{**FAST, "connect_timeout": 0.5}, endpoint=url)
    loop = asyncio.get_running_loop()
    try:
        async with pool:
            started = loop.time()
            with pytest.raises(tp.ConnectionFailure) as info:
                await pool.subscribe_topics([tp.bits(TOKEN)[1]])
            elapsed = loop.time() - started
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert accepted and 0.4 <= elapsed < 1.5
    assert url in str(info.value) and "timed out" in str(info.value)


async def test_handshake_status_is_named(client: Any, emulator: PubSubEmulator) -> None:
    await emulator.refuse_connections(30, status=503)
    async with make_pool(client, emulator, connect_timeout=0.4) as pool:
        with pytest.raises(tp.ConnectionFailure, match="HTTP 503"):
            await pool.subscribe_topics([tp.bits(TOKEN)[1]])


def test_retired_default_endpoint_is_explained() -> None:
    from twitchio_pubsub.websocket import describe_connect_failure

    text = describe_connect_failure(tp.PubSubWebsocket.ENDPOINT, "DNS lookup failed")
    assert "retired" in text and "2025-04-14" in text and "endpoint" in text
    other = describe_connect_failure("ws://127.0.0.1:1", "connection refused")
    assert "retired" not in other and "ws://127.0.0.1:1" in other


# ------------------------------------------------------------------- server-controlled input


async def test_oversized_frame_is_an_error_and_a_reconnect(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_error", "pubsub_bits")
    async with make_pool(client, emulator, max_message_size=64 * 1024) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = emulator.connections[0].id
        await emulator.publish("channel-bits-events-v2.1", "x" * (100 * 1024))
        (err,) = await rec.wait("pubsub_error")
        assert "too large" in err.reason
        await wait_replaced(emulator, first, 1)
        await emulator.trigger("bits", 1)
        await rec.wait("pubsub_bits")
    with pytest.raises(ValueError, match="max_message_size"):
        tp.PubSubPool(client, max_message_size=0)


async def test_invalid_frame_flood_yields_and_logs_sparingly(
    client: Any, emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(client, "pubsub_error", "pubsub_bits")
    caplog.set_level(logging.WARNING, logger="twitchio_pubsub")
    flood = 3000
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        conn = emulator.connections[0]
        with LoopWatch(tick=0) as watch:
            for i in range(flood):
                await conn.ws.send_str(f'{{"type":"NOISE","n":{i}}}')
            await emulator.trigger("bits", 1)
            await rec.wait("pubsub_bits", timeout=10)
            await rec.wait("pubsub_error", flood, timeout=10)
        # The reader yields every few frames, whatever they are: the handlers' tasks
        # never pile up by the thousand.
        assert watch.most_tasks < 600
    warnings = [r for r in caplog.records if "invalid frame" in r.getMessage()]
    assert 1 <= len(warnings) <= 5


async def test_messages_for_unsubscribed_topics_are_dropped(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_message", "pubsub_whisper", "pubsub_bits")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        stray = protocol.build_message("whispers.999", json.dumps({"type": "whisper_received"}))
        await emulator.send_raw(stray)
        await emulator.trigger("bits", 1)
        await rec.wait("pubsub_bits")
        await settle()
        assert rec.values("pubsub_whisper") == []
        assert [m.topic for m in rec.values("pubsub_message")] == ["channel-bits-events-v2.1"]


@pytest.mark.parametrize("bits_used", [None, 1e400, "9" * 5000, "²"])
async def test_unreadable_bits_used_is_none_not_zero(
    client: Any, emulator: PubSubEmulator, bits_used: Any
) -> None:
    rec = Recorder(client, "pubsub_bits", "pubsub_error")
    data: dict[str, Any] = {"channel_id": "1", "user_id": "²", "user_name": "u"}
    if bits_used is not None:
        data["bits_used"] = bits_used
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        text = (
            json.dumps({"data": data})
            if bits_used != 1e400
            else (
                '{"data":{"channel_id":"1","user_id":"\\u00b2","user_name":"u","bits_used":1e400}}'
            )
        )
        await emulator.publish("channel-bits-events-v2.1", text)
        (event,) = await rec.wait("pubsub_bits")
        assert event.bits_used is None
        assert event.user is None and event.channel_id == 1
        assert rec.values("pubsub_error") == []


# --------------------------------------------------------------------------- cancellation


async def test_cancelling_close_is_not_swallowed(client: Any, emulator: PubSubEmulator) -> None:
    for turns in range(1, 8):
        pool = make_pool(client, emulator)
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        closing = asyncio.ensure_future(pool.close())
        for _ in range(turns):
            await asyncio.sleep(0)
        if closing.done():
            break
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        assert closing.cancelled(), f"cancellation swallowed after {turns} turn(s)"
        await pool.close()
        assert pool.nodes == []


async def test_close_while_connects_keep_failing_always_finishes(client: Any) -> None:
    # CI once hung here for 60 s: close() cancelled a node whose connect failed in the
    # same loop turn, asyncio.wait_for (Python < 3.12) turned the cancellation into
    # the connect error, and the node went back to its backoff loop for ever.
    url = refused_url()
    fast = {**FAST, "backoff_base": 0.001, "backoff_cap": 0.002}
    for attempt in range(20):
        pool = tp.PubSubPool(
            client, **fast, endpoint=url, max_connection_topics=1, rng=random.Random(attempt)
        )
        topics = [tp.bits(TOKEN)[channel] for channel in range(1, 11)]
        subscribing = asyncio.ensure_future(pool.subscribe_topics(topics))
        await asyncio.sleep(0.01)
        assert len(pool.nodes) == 10  # ten nodes, each failing to connect every ~2 ms
        await close_while_subscribing(pool, subscribing)


class ClosingHookPool(tp.PubSubPool):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.outcome: list[str] = []

    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        try:
            await self.close()
        except asyncio.CancelledError:
            self.outcome.append("cancelled")
            raise
        self.outcome.append("closed")
        return topics


async def test_close_inside_reconnect_hook_returns_normally(
    client: Any, emulator: PubSubEmulator
) -> None:
    baseline = asyncio.all_tasks()
    pool = make_pool(client, emulator, ClosingHookPool)
    assert isinstance(pool, ClosingHookPool)
    await pool.subscribe_topics([tp.bits(TOKEN)[1]])
    await emulator.send_reconnect()
    await emulator.wait_until(lambda: bool(pool.outcome) and emulator.connections == [])
    await settle()
    await asyncio.sleep(0.05)
    assert pool.outcome == ["closed"]
    assert pool.closed and pool.nodes == []
    assert asyncio.all_tasks() - baseline == set()
