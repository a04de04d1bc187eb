"""More server faults and user-hook behaviour of the pool core, over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

import twitchio_pubsub as tp
from twitchio_pubsub import protocol
from twitchio_pubsub.emulator import PubSubEmulator

from .conftest import Recorder, make_pool, settle, wait_replaced

TOKEN = "user-token-abc123"


# --------------------------------------------------------------------------- re-LISTEN errors


async def test_relisten_err_server_beyond_retries_keeps_topics_and_retries(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits", "pubsub_error")
    async with make_pool(client, emulator, listen_retries=1) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.bits(TOKEN)[2]])
        await emulator.fail_next_listens(protocol.ERR_SERVER, 2)  # more than listen_retries
        first = {c.id for c in emulator.connections}
        await emulator.drop()
        await wait_replaced(emulator, first, 2)
        assert emulator.handshakes == 3  # the busy socket was given up for a new one
        assert set(pool.topics) == {tp.bits(TOKEN)[1], tp.bits(TOKEN)[2]}
        await emulator.trigger("bits", 2)
        await rec.wait("pubsub_bits")
        # Each error response is reported, as twitchio.ext.pubsub does; nothing else.
        errors = rec.values("pubsub_error")
        assert [(e["type"], e["error"]) for e in errors] == [("RESPONSE", "ERR_SERVER")] * 2


async def test_relisten_timeout_keeps_topics_and_retries(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator, listen_timeout=0.3) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await emulator.fail_next_listens(None)
        first = {c.id for c in emulator.connections}
        await emulator.drop()
        await wait_replaced(emulator, first, 1)
        assert emulator.listen_count == 3 and pool.topics == [tp.bits(TOKEN)[1]]


async def test_relisten_refused_for_good_drops_topic_with_error_event(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_error")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await pool.subscribe_topics([tp.bits("other-token")[2]])
        await emulator.fail_next_listens(protocol.ERR_BADMESSAGE)
        first = {c.id for c in emulator.connections}
        await emulator.drop()
        (err,) = await rec.wait("pubsub_error")
        assert err.type == "RESPONSE" and err.error == protocol.ERR_BADMESSAGE
        assert err.nonce and len(err.topics) == 1
        await wait_replaced(emulator, first, 1)
        assert len(pool.topics) == 1 and len(pool.nodes) == 1


# --------------------------------------------------------------------------- unsubscribing


async def test_unlisten_refused_raises_but_drops_the_topic(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits")
    a, b = tp.bits(TOKEN)[1], tp.bits(TOKEN)[2]
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([a, b])
        await emulator.fail_next_unlistens(protocol.ERR_SERVER)
        with pytest.raises(tp.ListenError) as info:
            await pool.unsubscribe_topics([a])
        assert info.value.topics == [a] and info.value.error == protocol.ERR_SERVER
        assert pool.topics == [b]
        # The server still sends a's events; the pool no longer dispatches them.
        assert await emulator.trigger("bits", 1) == 1
        await emulator.trigger("bits", 2)
        (event,) = await rec.wait("pubsub_bits")
        await settle()
        assert [e.channel_id for e in rec.values("pubsub_bits")] == [2] == [event.channel_id]


async def test_unsubscribe_during_an_outage_returns_at_once(
    client: Any, emulator: PubSubEmulator
) -> None:
    a, b = tp.bits(TOKEN)[1], tp.bits(TOKEN)[2]
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([a, b])
        first = {c.id for c in emulator.connections}
        await emulator.refuse_connections(0.5)
        await emulator.drop()
        await emulator.wait_until(lambda: not pool.nodes[0].connected)
        await asyncio.wait_for(pool.unsubscribe_topics([a]), 0.5)
        await wait_replaced(emulator, first, 1)
        assert list(emulator.connections[0].topics) == [b.present]


async def test_cancelled_unsubscribe_still_removes_the_topics(
    client: Any, emulator: PubSubEmulator
) -> None:
    a, b = tp.bits(TOKEN)[1], tp.bits(TOKEN)[2]
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([a, b])
        task = asyncio.ensure_future(pool.unsubscribe_topics([a]))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.topics == [b]
        await emulator.wait_until(lambda: list(emulator.connections[0].topics) == [b.present])


async def test_subscribing_a_held_topic_sends_nothing(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.bits(TOKEN)[1]])
        assert emulator.listen_count == 1
        with pytest.raises(ValueError, match="empty token"):
            topic = tp.bits(TOKEN)[2]
            topic.token = "   "
            await pool.subscribe_topics([topic])


# --------------------------------------------------------------------------- hooks


class RaisingHooksPool(tp.PubSubPool):
    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        raise RuntimeError("hook bug")

    async def auth_fail_hook(self, topics: list[tp.Topic]) -> None:
        raise RuntimeError("auth hook bug")


async def test_raising_hooks_are_reported_and_the_pool_carries_on(
    client: Any, emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(client, "pubsub_error", "pubsub_bits")
    async with make_pool(client, emulator, RaisingHooksPool) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.bits("revoked")[2]])
        first = {c.id for c in emulator.connections}
        await emulator.drop()
        await wait_replaced(emulator, first, 2)
        await emulator.revoke_token("revoked")
        errors = await rec.wait("pubsub_error", 3)
        assert [e.type for e in errors] == ["HOOK", "AUTH_REVOKED", "HOOK"]
        hooks = [e for e in errors if e.type == "HOOK"]
        assert {e.reason for e in hooks} == {"reconnect_hook raised", "auth_fail_hook raised"}
        assert all(isinstance(e.exception, RuntimeError) for e in hooks)
        await emulator.trigger("bits", 1)
        await rec.wait("pubsub_bits")
        assert pool.topics == [tp.bits(TOKEN)[1]]
    assert "hook bug" in caplog.text


class NoneHookPool(tp.PubSubPool):
    async def reconnect_hook(self, node: tp.PubSubWebsocket, topics: list[tp.Topic]) -> Any:
        return None


async def test_reconnect_hook_returning_none_keeps_topics(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator, NoneHookPool) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = {c.id for c in emulator.connections}
        await emulator.send_reconnect()
        await wait_replaced(emulator, first, 1)
        assert pool.topics == [tp.bits(TOKEN)[1]]


class GreedyHookPool(tp.PubSubPool):
    async def reconnect_hook(self, node: tp.PubSubWebsocket, topics: list[tp.Topic]) -> Any:
        extra = [tp.whispers(TOKEN)[i] for i in range(10, 14)]
        return [*topics, "not a topic", tp.bits(TOKEN), *extra]


async def test_reconnect_hook_overflow_and_bad_items_are_reported(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_error")
    async with make_pool(client, emulator, GreedyHookPool, max_connection_topics=3) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = {c.id for c in emulator.connections}
        await emulator.drop()
        await wait_replaced(emulator, first, 3)
        errors = await rec.wait("pubsub_error", 2)
        reasons = sorted(e.reason for e in errors)
        assert "too many topics" in reasons[1] and "not complete Topic" in reasons[0]
        too_many = next(e for e in errors if "too many" in e.reason)
        assert [t.present for t in too_many.topics] == ["whispers.12", "whispers.13"]
        assert {t.present for t in pool.topics} == {
            "channel-bits-events-v2.1",
            "whispers.10",
            "whispers.11",
        }


class HoldingHookPool(tp.PubSubPool):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            await self.release.wait()
        return topics


async def test_socket_lost_during_reconnect_hook_reconnects_again(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator, HoldingHookPool) as pool:
        assert isinstance(pool, HoldingHookPool)
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await emulator.drop()
        await asyncio.wait_for(pool.entered.wait(), 5)
        second = {c.id for c in emulator.connections}
        await emulator.drop()  # the new socket dies while the hook still runs
        await emulator.wait_until(lambda: pool.calls == 2, timeout=5)
        pool.release.set()
        await wait_replaced(emulator, second, 1)
        assert pool.topics == [tp.bits(TOKEN)[1]]


# --------------------------------------------------------------------------- handovers


async def test_handover_whose_new_socket_is_refused_falls_back_to_backoff(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = {c.id for c in emulator.connections}
        await emulator.refuse_connections(0.3)
        await emulator.send_reconnect()
        await wait_replaced(emulator, first, 1)
        assert emulator.refused >= 1
        await emulator.trigger("bits", 1)
        await rec.wait("pubsub_bits")


async def test_mass_reconnect_with_impatient_server_recovers_within_bound(
    client: Any,
) -> None:
    # The server drops connections that have not moved 0.2 s after RECONNECT, while the
    # pool hands over one socket at a time: nodes waiting for the slot lose their old
    # socket and reconnect the plain way.
    async with (
        PubSubEmulator(reconnect_grace=0.2) as emulator,
        make_pool(
            client, emulator, max_connection_topics=1, max_pool_size=6, handover_delay=0.15
        ) as pool,
    ):
        await pool.subscribe_topics([tp.bits(TOKEN)[i] for i in range(6)])
        before = {c.id for c in emulator.connections}
        emulator.peak_connections = 0
        await emulator.send_reconnect()
        await wait_replaced(emulator, before, 6)
        await emulator.wait_until(lambda: all(node.connected for node in pool.nodes))
        assert emulator.peak_connections <= 7


# --------------------------------------------------------------------------- odd frames


async def test_protocol_violation_is_reported_and_the_socket_replaced(
    client: Any, emulator: PubSubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(client, "pubsub_bits")
    caplog.set_level(logging.WARNING, logger="twitchio_pubsub")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = {c.id for c in emulator.connections}
        transport = emulator.connections[0]._request.transport
        assert transport is not None
        transport.write(b"\x8f\x00")  # FIN + reserved opcode 0xF: not a websocket frame
        await wait_replaced(emulator, first, 1)
        await emulator.trigger("bits", 1)
        await rec.wait("pubsub_bits")
        assert pool.topics == [tp.bits(TOKEN)[1]]
    assert "error" in caplog.text


async def test_unsolicited_error_response_is_an_error_event(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_error")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await emulator.send_raw(protocol.build_response("nobody-asked", protocol.ERR_SERVER))
        await emulator.send_raw(protocol.build_response("nobody-asked"))
        (err,) = await rec.wait("pubsub_error")
        assert err.reason == "unsolicited error response" and err.error == protocol.ERR_SERVER
        await settle()
        assert len(rec.values("pubsub_error")) == 1
        assert pool.nodes[0].connected


async def test_whisper_payload_errors_do_not_stop_other_topics(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_error", "pubsub_bits")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1], tp.whispers(TOKEN)[2]])
        await emulator.publish("whispers.2", json.dumps([1, 2, 3]))
        await emulator.trigger("bits", 1)
        await rec.wait("pubsub_bits")
        (err,) = await rec.wait("pubsub_error")
        assert err.topic == "whispers.2"


async def test_silent_socket_is_replaced_make_before_break(
    client: Any, emulator: PubSubEmulator
) -> None:
    rec = Recorder(client, "pubsub_bits")
    async with make_pool(client, emulator, ping_interval=0.2, pong_timeout=0.2) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = {c.id for c in emulator.connections}
        await emulator.silence()
        sent: list[int] = []
        n = 0
        while first & {c.id for c in emulator.connections}:
            n += 1
            payload = {"data": {"channel_id": "1", "bits_used": n, "user_id": "9"}}
            if await emulator.publish("channel-bits-events-v2.1", payload):
                sent.append(n)
            await asyncio.sleep(0.005)
        await wait_replaced(emulator, first, 1)
        got = await rec.wait("pubsub_bits", len(sent))
        assert sorted({e.bits_used for e in got}) == sent and len(got) == len(sent)
        assert emulator.peak_connections == 2 and pool.nodes[0].reconnects == 1


async def test_a_socket_dropped_during_a_listen_is_noticed_at_once(
    client: Any, emulator: PubSubEmulator
) -> None:
    # listen_timeout is long: the drop must be seen when the reader ends, not after it.
    pool = make_pool(client, emulator, listen_timeout=20.0)
    try:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        await emulator.fail_next_listens(None)  # the next LISTEN gets no answer ...
        loop = asyncio.get_running_loop()
        started = loop.time()
        subscribing = asyncio.ensure_future(pool.subscribe_topics([tp.bits(TOKEN)[2]]))
        await emulator.wait_until(lambda: emulator.listen_count >= 2)
        await emulator.drop()  # ... because the socket goes away meanwhile
        await asyncio.wait_for(subscribing, 5.0)  # re-sent on the new socket
        assert loop.time() - started < 5.0
        await emulator.wait_for_topics(2)
    finally:
        await pool.close()
