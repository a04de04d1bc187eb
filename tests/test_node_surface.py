"""The reference's node methods, routed through the pool, against the emulator."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import PubSubEmulator

from .conftest import Recorder, make_pool

TOKEN = "user-token-abc123"


async def test_node_properties_and_connect(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        node = pool.nodes[0]
        await node.connect()  # already connected: returns at once
        assert isinstance(node.session, aiohttp.ClientSession) and not node.session.closed
        assert isinstance(node.connection, aiohttp.ClientWebSocketResponse)
        assert node.topics == [tp.bits(TOKEN)[1]]
        node.topics.clear()  # a copy: the pool's record is untouched
        assert pool.topics == [tp.bits(TOKEN)[1]]
        assert not node.timeout.is_set()


async def test_node_connect_reports_the_failure(client: Any, emulator: PubSubEmulator) -> None:
    async with make_pool(client, emulator, connect_timeout=0.3) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        node = pool.nodes[0]
        await emulator.refuse_connections(5)
        await emulator.drop()
        await emulator.wait_until(lambda: not node.connected)
        with pytest.raises(tp.ConnectionFailure, match="HTTP 503"):
            await node.connect()
        await node.disconnect()
        with pytest.raises(tp.ConnectionFailure, match="closed"):
            await node.connect()


async def test_node_reconnect_is_make_before_break(client: Any, emulator: PubSubEmulator) -> None:
    rec = Recorder(client, "pubsub_reconnecting")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        node = pool.nodes[0]
        first = emulator.connections[0].id
        emulator.peak_connections = 0
        await node.reconnect()
        assert node.connected and node.reconnects == 1
        assert emulator.peak_connections == 2
        await emulator.wait_until(lambda: [c.id for c in emulator.connections] != [first])
        assert list(emulator.connections[0].topics) == ["channel-bits-events-v2.1"]
        assert rec.values("pubsub_reconnecting") == [node]


async def test_node_subscribe_and_unsubscribe_go_through_the_pool(
    client: Any, emulator: PubSubEmulator
) -> None:
    async with make_pool(client, emulator, max_connection_topics=3) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        node = pool.nodes[0]
        await node.subscribe_topics([tp.bits(TOKEN)[2], tp.bits(TOKEN)[3]])
        assert {t.present for t in pool.topics} == {
            f"channel-bits-events-v2.{i}" for i in (1, 2, 3)
        }
        with pytest.raises(ValueError, match="do not fit on node"):
            await node.subscribe_topics([tp.bits(TOKEN)[4]])
        with pytest.raises(ValueError, match="not subscribed on node"):
            await node.unsubscribe_topic([tp.bits(TOKEN)[9]])
        await node.unsubscribe_topic([tp.bits(TOKEN)[2]])
        assert len(pool.topics) == 2
        await emulator.wait_until(lambda: len(emulator.connections[0].topics) == 2)
        await node.disconnect()
        assert pool.topics == [] and pool.nodes == []
        with pytest.raises(tp.PoolClosed):
            await node.subscribe_topics([tp.bits(TOKEN)[5]])


async def test_node_send(client: Any, emulator: PubSubEmulator) -> None:
    rec = Recorder(client, "pubsub_pong")
    async with make_pool(client, emulator) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        node = pool.nodes[0]
        await node.send({"type": "PING"})
        await emulator.wait_until(lambda: bool(rec.events["pubsub_pong"]))
        assert rec.events["pubsub_pong"] == [()] and node.timeout.is_set()
        for kind in ("LISTEN", "UNLISTEN"):
            with pytest.raises(ValueError, match="subscribe_topics"):
                await node.send({"type": kind, "data": {"topics": ["whispers.1"]}})
        with pytest.raises(TypeError):
            await node.send("PING")  # type: ignore[arg-type]
        await emulator.refuse_connections(5)
        await emulator.drop()
        await emulator.wait_until(lambda: node.connection is None)
        with pytest.raises(tp.ConnectionFailure, match="no connection"):
            await node.send({"type": "PING"})


async def test_nodes_cannot_be_made_outside_a_pool(client: Any) -> None:
    with pytest.raises(TypeError, match="PubSubPool"):
        tp.PubSubWebsocket(client, None)
    await asyncio.sleep(0)


class NodeCallingHookPool(tp.PubSubPool):
    """A reconnect_hook that uses the node it is given, as reference bots may."""

    action = "subscribe"

    async def reconnect_hook(
        self, node: tp.PubSubWebsocket, topics: list[tp.Topic]
    ) -> list[tp.Topic]:
        if self.action == "subscribe":
            await node.subscribe_topics([tp.whispers(TOKEN)[77]])
        else:
            await node.disconnect()
        return topics


@pytest.mark.parametrize("action", ["subscribe", "disconnect"])
async def test_reconnect_hook_may_call_node_methods(
    client: Any, emulator: PubSubEmulator, action: str
) -> None:
    cls = type("P", (NodeCallingHookPool,), {"action": action})
    async with make_pool(client, emulator, cls, listen_timeout=5.0) as pool:
        await pool.subscribe_topics([tp.bits(TOKEN)[1]])
        first = emulator.connections[0].id
        await emulator.send_reconnect()
        if action == "subscribe":
            await emulator.wait_until(
                lambda: (
                    [c.id for c in emulator.connections] not in ([first], [])
                    and len(emulator.connections) == 1
                    and set(emulator.connections[0].topics)
                    == {"channel-bits-events-v2.1", "whispers.77"}
                )
            )
            assert len(pool.topics) == 2 and len(pool.nodes) == 1
        else:
            await emulator.wait_until(lambda: emulator.connections == [])
            assert pool.topics == [] and pool.nodes == []
