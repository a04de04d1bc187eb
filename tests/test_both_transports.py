"""Behaviour both transports must share, each test run on PubSub and on EventSub.

Hooks that call back into the pool or take long, a token refresh the server refuses,
one ``auth_fail_hook`` call per failure, and a node that survives its own bug.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import EventSubEmulator, PubSubEmulator
from twitchio_pubsub.eventsub.node import EventSubWebsocket
from twitchio_pubsub.websocket import PubSubWebsocket

from .conftest import FAST, Recorder
from .test_bridge import BRIDGE_FAST

B, B2 = 1337, 1338
HOOKS = {"reconnect_hook_grace": 0.3}


class HookPool(tp.PubSubPool):
    """Records auth_fail_hook calls; runs ``on_reconnect`` (if set) as the reconnect hook."""

    on_reconnect: Any = None

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.auth_failed: list[list[str]] = []
        self.hook_runs = 0

    async def auth_fail_hook(self, topics: list[tp.Topic]) -> None:
        self.auth_failed.append([t.present or "" for t in topics])

    async def reconnect_hook(self, node: Any, topics: list[tp.Topic]) -> list[tp.Topic]:
        self.hook_runs += 1
        if self.on_reconnect is not None:
            await self.on_reconnect(self, topics)
        return topics


class Harness:
    """One transport's emulator, pool and the few faults these tests need."""

    def __init__(self, transport: str, server: Any, client: Any) -> None:
        self.transport = transport
        self.server = server
        self.client = client
        self.pools: list[HookPool] = []
        self.pool = self.new_pool()
        self.seen = Recorder(client, "pubsub_bits", "pubsub_error")

    def new_pool(self, **overrides: Any) -> HookPool:
        """A pool of this transport aimed at the emulator (closed after the test)."""
        settings = {**HOOKS, "rng": random.Random(7), **overrides}
        if self.transport == "pubsub":
            pool = HookPool(self.client, endpoint=self.server.url, **{**FAST, **settings})
        else:
            pool = HookPool(
                self.client,
                transport="eventsub",
                **self.server.urls,
                **{**BRIDGE_FAST, **settings},
            )
        self.pools.append(pool)
        return pool

    async def close(self) -> None:
        for pool in self.pools:
            await pool.close()

    def bits(self, channel: int = B, token: str = "good") -> tp.Topic:
        return tp.bits(token)[channel]

    async def cheer(self, bits: int, channel: int = B) -> int:
        if self.transport == "pubsub":
            return int(await self.server.trigger("bits", channel, bits_used=bits))
        return int(
            await self.server.trigger("channel.cheer", broadcaster_user_id=channel, bits=bits)
        )

    async def received(self, count: int, timeout: float = 5.0) -> list[int]:
        got = await self.seen.wait("pubsub_bits", count, timeout)
        return sorted(event.bits_used for event in got)

    async def drop(self) -> None:
        await self.server.drop()

    async def refuse(self, token: str) -> None:
        """From now on the server refuses ``token``."""
        await self.server.invalidate_token(token)

    async def wait_reconnected(self, node: Any, before: int, timeout: float = 8.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (node.reconnects > before and node.connected):
            assert loop.time() < deadline, "the node did not reconnect"
            await asyncio.sleep(0.02)


@pytest.fixture(params=["pubsub", "eventsub"])
async def h(request: Any, client: Any) -> AsyncIterator[Harness]:
    transport = request.param
    if transport == "pubsub":
        async with PubSubEmulator() as server:
            harness = Harness(transport, server, client)
            yield harness
            await harness.close()
    else:
        async with EventSubEmulator(subscribe_window=1.5) as server:
            scopes = ["bits:read", "channel:read:redemptions"]
            for token in ("good", "fresh", "refused-later", "bad"):
                server.add_token(token, B, scopes=scopes)
            server.add_token("good2", B2, scopes=scopes)
            harness = Harness(transport, server, client)
            yield harness
            await harness.close()


# ---------------------------------------------------------------- reconnect_hook


async def test_a_reconnect_hook_that_subscribes_is_served(h: Harness) -> None:
    pool = h.pool
    await pool.subscribe_topics([h.bits()])
    [node] = pool.nodes
    extra = tp.channel_points("good")[B]  # same token user: the same node or session
    subscribed = asyncio.Event()

    async def hook(pool: HookPool, topics: list[tp.Topic]) -> None:
        if pool.hook_runs == 1:
            await pool.subscribe_topics([extra])  # waits on the node that runs the hook
            subscribed.set()

    pool.on_reconnect = hook
    before = node.reconnects
    await h.drop()
    await asyncio.wait_for(subscribed.wait(), 8)
    await h.wait_reconnected(node, before)
    assert extra in pool.topics and node.connected
    await h.cheer(1)
    assert await h.received(1) == [1]
    await asyncio.sleep(2.0)  # longer than the EventSub emulator's subscribe window
    assert node.connected and node.reconnects == before + 1


async def test_a_slow_reconnect_hook_does_not_leave_the_bot_deaf(h: Harness) -> None:
    pool = h.pool
    await pool.subscribe_topics([h.bits()])
    [node] = pool.nodes
    release = asyncio.Event()

    async def hook(pool: HookPool, topics: list[tp.Topic]) -> None:
        await release.wait()  # a hook that waits on something slow (a token server ...)

    pool.on_reconnect = hook
    before = node.reconnects
    await h.drop()
    # Longer than reconnect_hook_grace (0.3 s here) and than EventSub's subscribe
    # window (1.5 s here): the topics are served with the tokens they have meanwhile.
    await h.wait_reconnected(node, before)
    await asyncio.sleep(2.0)
    assert pool.hook_runs == 1  # one session, not a cycle of unused ones
    await h.cheer(5)
    assert await h.received(1) == [5]
    release.set()
    await asyncio.sleep(0.1)
    assert node.connected and node.reconnects == before + 1


# ---------------------------------------------------------------- a node's own bug


async def test_a_supervisor_that_raises_is_reported_and_starts_again(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    node_class: Any = PubSubWebsocket if h.transport == "pubsub" else EventSubWebsocket
    original = node_class._reconcile
    calls = 0

    async def reconcile_with_a_bug(self: Any, *args: Any, **kw: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the node")
        await original(self, *args, **kw)

    monkeypatch.setattr(node_class, "_reconcile", reconcile_with_a_bug)
    await h.pool.subscribe_topics([h.bits()])  # used to wait for connect_timeout, then fail
    errors = [e for e in h.seen.values("pubsub_error") if e.type == "INTERNAL"]
    assert len(errors) == 1 and "RuntimeError" in errors[0].reason
    assert errors[0].topics == [h.bits()]
    await h.cheer(3)
    assert await h.received(1) == [3]


# ---------------------------------------------------------------- tokens


async def test_a_refused_token_refresh_keeps_the_live_subscription(h: Harness) -> None:
    pool = h.pool
    await pool.subscribe_topics([h.bits(token="good")])
    await h.refuse("fresh")
    # A background refresh loop re-subscribes with a token the server refuses: the
    # topic stays subscribed under the previous token, and the hook hears of it.
    await pool.subscribe_topics([h.bits(token="fresh")])
    assert pool.auth_failed == [[f"channel-bits-events-v2.{B}"]]
    [topic] = pool.topics
    assert topic.token == "good"
    await h.cheer(7)
    assert await h.received(1) == [7]
    # The next refresh that works moves the topic as usual.
    await pool.subscribe_topics([h.bits(token="refused-later")])
    assert [t.token for t in pool.topics] == ["refused-later"]
    await h.cheer(8)
    assert await h.received(2) == [7, 8]


async def test_one_refused_token_runs_auth_fail_hook_once(h: Harness) -> None:
    pool = h.pool
    await h.refuse("bad")
    topic = h.bits(token="bad")
    await asyncio.gather(pool.subscribe_topics([topic]), pool.subscribe_topics([topic]))
    await asyncio.sleep(0.1)
    assert pool.auth_failed == [[f"channel-bits-events-v2.{B}"]]
    assert pool.topics == []


async def test_a_reconnect_hook_that_refreshes_its_own_topics_is_not_kept_waiting(
    h: Harness,
) -> None:
    # The usual refresh: the hook subscribes its topics again with a new token and waits
    # for that. The node must serve those topics at once, not after reconnect_hook_grace.
    pool = h.new_pool(reconnect_hook_grace=5.0)
    await pool.subscribe_topics([h.bits(token="good")])
    [node] = pool.nodes
    took: list[float] = []

    async def hook(pool: HookPool, topics: list[tp.Topic]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await pool.subscribe_topics([t.with_token("fresh") for t in topics])
        took.append(loop.time() - started)

    pool.on_reconnect = hook
    before = node.reconnects
    await h.drop()
    await h.wait_reconnected(node, before, timeout=10)
    assert took and took[0] < 2.0, took
    assert [t.token for t in pool.topics] == ["fresh"]
    await h.cheer(4)
    assert await h.received(1) == [4]


# ---------------------------------------------------------------- a newcomer's silent bot


async def test_the_pool_says_once_that_it_cannot_connect_and_once_that_it_did(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # A bot with no logging set up still sees warnings (Python prints them): one when the
    # server cannot be reached, one when it is reached at last; the retries stay at INFO.
    caplog.set_level(logging.INFO, logger="twitchio_pubsub")
    await h.server.refuse_connections(1.0)
    await h.pool.subscribe_topics([h.bits()])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    cannot = [m for m in warnings if "cannot reach" in m]
    connected = [m for m in warnings if "connected to" in m and "failed attempt" in m]
    assert len(cannot) == 1 and len(connected) == 1, warnings
    retries = [r for r in caplog.records if "connect failed" in r.getMessage()]
    assert len(retries) >= 2 and {r.levelno for r in retries} == {logging.INFO}
    assert "good" not in " ".join(warnings)  # never the token
