"""Real bots' PubSub code, written once, run unchanged against the emulator.

Each test is a small bot in the style of public ``twitchio.ext.pubsub`` bots: it uses
only the names the reference offers, imported the way bots import them. By default the
module under test is ``twitchio_pubsub``; set ``DROPIN_MODULE=twitchio.ext.pubsub`` to
run the very same bots on TwitchIO 2.10's own ext (patterns it cannot run are marked
``xfail`` there, with the reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
from typing import Any

import pytest
import twitchio
from twitchio.ext import commands

from twitchio_pubsub.emulator import PubSubEmulator

MODULE = os.environ.get("DROPIN_MODULE", "twitchio_pubsub")
pubsub: Any = importlib.import_module(MODULE)
models: Any = importlib.import_module(f"{MODULE}.models")
REFERENCE = MODULE != "twitchio_pubsub"

USER_TOKEN = "user-token-1234"
CHANNEL = 12345


def reference_fails(reason: str) -> Any:
    """Mark a pattern the reference cannot run (the reason goes into the report)."""
    return pytest.mark.xfail(REFERENCE, reason=reason, strict=False)


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> Any:
    async with PubSubEmulator() as emu:
        # Bots never pass an endpoint: the class attribute is where both look.
        monkeypatch.setattr(pubsub.PubSubWebsocket, "ENDPOINT", emu.url)
        yield emu


class Inbox:
    """Collects what a bot's handlers saw; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    def add(self, kind: str, value: Any) -> None:
        self.items.append((kind, value))
        self._changed.set()

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.items if k == kind]

    async def wait(self, kind: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.of(kind)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{kind}: wanted {count}, got {len(self.of(kind))}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.of(kind)


async def shutdown(client: Any) -> None:
    """How bots shut PubSub down: node by node (the reference had no pool.close())."""
    for node in list(client.pubsub._pool):
        await node.disconnect()
    close = getattr(client.pubsub, "close", None)
    if close is not None:
        await close()


# --------------------------------------------------------------------------- cogs


class PointsAndSubs(commands.Cog):  # type: ignore[misc]
    def __init__(self, bot: Any, inbox: Inbox) -> None:
        self.bot = bot
        self.inbox = inbox

    @commands.Cog.event()  # type: ignore[misc]
    async def event_pubsub_channel_points(self, event: Any) -> None:
        reward = event.reward
        self.inbox.add(
            "points",
            {
                "user": (event.user.id, event.user.name),
                "channel_id": event.channel_id,
                "id": event.id,
                "input": event.input,
                "status": event.status,
                "timestamp": event.timestamp,
                "reward": (reward.id, reward.title, reward.cost, reward.prompt),
                "reward_flags": (reward.paused, reward.enabled, reward.in_stock),
                "topic": event.topic,
            },
        )

    @commands.Cog.event()  # type: ignore[misc]
    async def event_pubsub_subscription(self, event: Any) -> None:
        self.inbox.add(
            "sub",
            {
                "user": (event.user.id, event.user.name) if event.user else None,
                "channel": event.channel.name,
                "context": event.context,
                "message": event.message,
                "emotes": event.emotes,
                "is_gift": event.is_gift,
                "recipient": event.recipient.name if event.recipient else None,
                "sub_plan": event.sub_plan,
                "sub_plan_name": event.sub_plan_name,
                "time": event.time,
                "cumulative_months": event.cumulative_months,
                "streak_months": event.streak_months,
                "multi_month_duration": event.multi_month_duration,
            },
        )


@reference_fails("subscribe_topics returns before the server confirms: the event is missed")
async def test_cog_handlers_read_every_reward_and_subscription_field(emulator: Any) -> None:
    inbox = Inbox()
    bot = commands.Bot(token="bot-token", prefix="!")
    bot.add_cog(PointsAndSubs(bot, inbox))
    bot.pubsub = pubsub.PubSubPool(bot)
    await bot.pubsub.subscribe_topics(
        [
            pubsub.channel_points(USER_TOKEN)[CHANNEL],
            pubsub.channel_subscriptions(USER_TOKEN)[CHANNEL],
        ]
    )
    await emulator.trigger("channel_points", CHANNEL, user_input="hello")
    await emulator.trigger("subscription", CHANNEL)
    (points,) = await inbox.wait("points")
    (sub,) = await inbox.wait("sub")
    assert points["user"] == (1002, "PointsFan")  # the display name, as in the reference
    assert points["channel_id"] == CHANNEL and points["input"] == "hello"
    assert points["status"] == "UNFULFILLED" and points["timestamp"] is not None
    assert points["reward"][1:3] == ("Hydrate!", 250)
    assert points["topic"] == "channel-points-channel-v1"
    assert sub["context"] == "resub" and sub["cumulative_months"] == 6
    assert sub["channel"] and sub["sub_plan"] == "1000" and sub["time"] is not None
    await shutdown(bot)


# --------------------------------------------------------------------------- startup styles


async def test_pool_made_in_event_ready(emulator: Any) -> None:
    client = twitchio.Client(token="bot-token")
    inbox = Inbox()

    @client.event()
    async def event_ready() -> None:
        client.pubsub = pubsub.PubSubPool(client)
        await client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[CHANNEL]])
        inbox.add("ready", True)

    @client.event()
    async def event_pubsub_bits(event: Any) -> None:
        inbox.add("bits", event.bits_used)

    client.run_event("ready")  # what twitchio does once its IRC connection is up
    await inbox.wait("ready")
    await emulator.trigger("bits", CHANNEL, bits_used=300)
    assert await inbox.wait("bits") == [300]
    await shutdown(client)


@reference_fails("its _find_node never reuses a node: concurrent calls each open one")
async def test_subscribes_through_create_task_and_gather(emulator: Any) -> None:
    client = twitchio.Client(token="bot-token")
    client.pubsub = pubsub.PubSubPool(client)
    channels = range(100, 110)
    loop = asyncio.get_running_loop()
    task = loop.create_task(client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[1]]))
    await asyncio.gather(
        *(client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[c]]) for c in channels)
    )
    await task
    await emulator.wait_for_topics(11)
    assert len(emulator.connections) == 1  # ten small calls share one connection
    await shutdown(client)


# --------------------------------------------------------------------------- hooks


class RefreshingPool(pubsub.PubSubPool):  # type: ignore[misc,name-defined]
    """A subclass as bots write them: sizes set, auth_fail_hook refreshing the token."""

    def __init__(self, client: Any, inbox: Inbox) -> None:
        super().__init__(client, max_pool_size=2, max_connection_topics=10)
        self.inbox = inbox

    async def auth_fail_hook(self, topics: list[Any]) -> None:
        self.inbox.add("auth_fail", [t.present for t in topics])
        for topic in topics:
            topic.token = "refreshed-token"
        await self.subscribe_topics(topics)


async def test_subclass_auth_fail_hook_refreshes_and_resubscribes(emulator: Any) -> None:
    client = twitchio.Client(token="bot-token")
    inbox = Inbox()
    client.pubsub = RefreshingPool(client, inbox)

    @client.event()
    async def event_pubsub_bits(event: Any) -> None:
        inbox.add("bits", event.bits_used)

    @client.event()
    async def event_pubsub_error(error: Any) -> None:
        inbox.add("error", (error["type"], error["error"]))

    await emulator.invalidate_token("expired-token")
    await client.pubsub.subscribe_topics([pubsub.bits("expired-token")[CHANNEL]])
    assert await inbox.wait("auth_fail") == [[f"channel-bits-events-v2.{CHANNEL}"]]
    # The error response is dispatched too, even though the hook is overridden.
    assert await inbox.wait("error") == [("RESPONSE", "ERR_BADAUTH")]
    await emulator.wait_until(
        lambda: any(
            c.topics.get(f"channel-bits-events-v2.{CHANNEL}") == "refreshed-token"
            for c in emulator.connections
        )
    )
    await emulator.trigger("bits", CHANNEL, bits_used=42)
    assert await inbox.wait("bits") == [42]
    await shutdown(client)


class TokenRotatingPool(pubsub.PubSubPool):  # type: ignore[misc,name-defined]
    rotate = False

    async def reconnect_hook(self, node: Any, topics: list[Any]) -> list[Any]:
        if self.rotate:
            for topic in topics:
                topic.token = "rotated-token"
        return topics


@pytest.mark.parametrize("rotate", [False, True])
async def test_reconnect_hook_unchanged_or_new_token(emulator: Any, rotate: bool) -> None:
    client = twitchio.Client(token="bot-token")
    inbox = Inbox()
    pool = TokenRotatingPool(client)
    pool.rotate = rotate
    client.pubsub = pool

    @client.event()
    async def event_pubsub_bits(event: Any) -> None:
        inbox.add("bits", event.bits_used)

    await client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[CHANNEL]])
    await emulator.wait_for_topics(1)
    first = emulator.connections[0].id
    await emulator.send_reconnect()
    key = f"channel-bits-events-v2.{CHANNEL}"
    await emulator.wait_until(
        lambda: (
            [c.id for c in emulator.connections] not in ([first], [])
            and len(emulator.connections) == 1
            and key in emulator.connections[0].topics
        )
    )
    expected = "rotated-token" if rotate else USER_TOKEN
    assert emulator.connections[0].topics[key] == expected
    await emulator.trigger("bits", CHANNEL, bits_used=7)
    assert await inbox.wait("bits") == [7]
    await shutdown(client)


# --------------------------------------------------------------------------- errors and events


def test_error_classes_import_from_models() -> None:
    from_models = importlib.import_module(f"{MODULE}.models")
    assert issubclass(from_models.PoolFull, from_models.PoolError)
    assert issubclass(from_models.PoolError, from_models.PubSubError)
    assert issubclass(from_models.ConnectionFailure, from_models.PubSubError)
    for module in ("pool", "topics", "websocket"):
        importlib.import_module(f"{MODULE}.{module}")
    assert pubsub.pool.PubSubPool is pubsub.PubSubPool
    assert pubsub.websocket.PubSubWebsocket is pubsub.PubSubWebsocket
    assert pubsub.topics.bits is pubsub.bits
    assert pubsub.bits.copy()(USER_TOKEN)[1].present == "channel-bits-events-v2.1"


async def test_pool_full_is_caught_as_models_error(emulator: Any) -> None:
    client = twitchio.Client(token="bot-token")
    client.pubsub = pubsub.PubSubPool(client, max_pool_size=1, max_connection_topics=2)
    await client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[1]])
    with pytest.raises(models.PoolFull):
        await client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[c] for c in (2, 3, 4)])
    await shutdown(client)


async def test_nonce_error_and_pong_handlers(emulator: Any) -> None:
    client = twitchio.Client(token="bot-token")
    inbox = Inbox()
    client.pubsub = pubsub.PubSubPool(client)

    @client.event()
    async def event_pubsub_nonce(response: Any) -> None:
        inbox.add("nonce", response)

    @client.event()
    async def event_pubsub_error(response: Any) -> None:
        inbox.add("error", response)

    @client.event()
    async def event_pubsub_pong() -> None:
        inbox.add("pong", True)

    await client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[1]])
    (nonce,) = await inbox.wait("nonce")
    assert nonce["type"] == "RESPONSE" and nonce["error"] == "" and nonce["nonce"]
    await emulator.fail_next_listens("ERR_BADTOPIC")
    # Ours raises ListenError (a PubSubError); the reference only logs.
    with contextlib.suppress(models.PubSubError):
        await client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[2]])
    (error,) = await inbox.wait("error")
    assert error["error"] == "ERR_BADTOPIC" and error["type"] == "RESPONSE" and error["nonce"]
    node = client.pubsub._pool[0]
    await node.send({"type": "PING"})
    await inbox.wait("pong")
    await shutdown(client)


# --------------------------------------------------------------------------- token refresh


@reference_fails("re-subscribing a held topic is ignored; RECONNECT re-LISTENs the dead token")
async def test_resubscribe_with_fresh_token_then_reconnect_delivers_once(emulator: Any) -> None:
    client = twitchio.Client(token="bot-token")
    inbox = Inbox()
    client.pubsub = pubsub.PubSubPool(client)
    key = f"channel-bits-events-v2.{CHANNEL}"

    @client.event()
    async def event_pubsub_bits(event: Any) -> None:
        inbox.add("bits", event.bits_used)

    await client.pubsub.subscribe_topics([pubsub.bits("old-token")[CHANNEL]])
    await emulator.trigger("bits", CHANNEL, bits_used=1)
    await inbox.wait("bits")
    # The token expires; the bot subscribes the same topic with a fresh one.
    await client.pubsub.subscribe_topics([pubsub.bits("fresh-token")[CHANNEL]])
    await emulator.invalidate_token("old-token")
    await emulator.wait_until(lambda: emulator.connections[0].topics.get(key) == "fresh-token")
    await emulator.trigger("bits", CHANNEL, bits_used=2)
    first = emulator.connections[0].id
    await emulator.send_reconnect()
    await emulator.wait_until(
        lambda: (
            [c.id for c in emulator.connections] not in ([first], [])
            and len(emulator.connections) == 1
            and emulator.connections[0].topics.get(key) == "fresh-token"
        )
    )
    await emulator.trigger("bits", CHANNEL, bits_used=3)
    assert await inbox.wait("bits", 3) == [1, 2, 3]
    await asyncio.sleep(0.05)
    assert inbox.of("bits") == [1, 2, 3]  # exactly once each
    # Unsubscribing either token's topic object removes it.
    await client.pubsub.unsubscribe_topics([pubsub.bits("old-token")[CHANNEL]])
    assert client.pubsub.topics == []
    await shutdown(client)


# --------------------------------------------------------------------------- whispers, shutdown


@reference_fails("it has no whisper model: each whisper raises inside its message task")
async def test_whispers_subscribed_without_a_handler(emulator: Any) -> None:
    client = twitchio.Client(token="bot-token")
    inbox = Inbox()
    client.pubsub = pubsub.PubSubPool(client)

    @client.event()
    async def event_pubsub_bits(event: Any) -> None:
        inbox.add("bits", event.bits_used)

    @client.event()
    async def event_error(error: Exception, data: Any = None) -> None:
        inbox.add("error", error)

    await client.pubsub.subscribe_topics(
        [pubsub.whispers(USER_TOKEN)[CHANNEL], pubsub.bits(USER_TOKEN)[CHANNEL]]
    )
    await emulator.trigger("whisper", CHANNEL)
    await emulator.trigger("bits", CHANNEL, bits_used=9)
    assert await inbox.wait("bits") == [9]
    await asyncio.sleep(0.05)
    assert inbox.of("error") == []
    await shutdown(client)


async def test_shutdown_through_node_methods_leaves_nothing(emulator: Any) -> None:
    baseline = asyncio.all_tasks()
    client = twitchio.Client(token="bot-token")
    client.pubsub = pubsub.PubSubPool(client)
    await client.pubsub.subscribe_topics([pubsub.bits(USER_TOKEN)[CHANNEL]])
    await emulator.wait_for_topics(1)
    for node in list(client.pubsub._pool):
        await node.disconnect()
    await emulator.wait_until(lambda: emulator.connections == [])
    if not REFERENCE:
        for _ in range(5):
            await asyncio.sleep(0)
        assert asyncio.all_tasks() - baseline == set()
        assert client.pubsub.topics == [] and client.pubsub._session is None
