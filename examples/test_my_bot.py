"""Testing a bot against the emulator with pytest (and pytest-asyncio).

    python -m pytest test_my_bot.py

The bot below thanks cheerers and counts redemptions; the tests drive it with realistic
events over a real websocket, with no Twitch account and no network. The fixtures
``pubsub_emulator``, ``pubsub_client`` and ``pubsub_pool`` come from the pytest plugin
installed with twitchio-pubsub: this file works as it is in any folder, with no
configuration (pytest-asyncio's default strict mode).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import twitchio

import twitchio_pubsub as pubsub
from twitchio_pubsub.emulator import PubSubEmulator

CHANNEL = 12345


class MyBot:
    """A tiny bot: the thing under test."""

    def __init__(self, client: twitchio.Client, pool: pubsub.PubSubPool) -> None:
        self.client = client
        self.pool = pool
        self.thanks: list[str] = []
        self.redemptions: dict[str, int] = {}
        self.changed = asyncio.Event()
        self.client.add_event(self.on_bits, "event_pubsub_bits")
        self.client.add_event(self.on_points, "event_pubsub_channel_points")

    async def start(self, user_token: str) -> None:
        await self.pool.subscribe_topics(
            [pubsub.bits(user_token)[CHANNEL], pubsub.channel_points(user_token)[CHANNEL]]
        )

    async def on_bits(self, event: pubsub.PubSubBitsMessage) -> None:
        who = event.user.name if event.user else "anonymous"
        self.thanks.append(f"Thanks {who} for {event.bits_used} bits!")
        self.changed.set()

    async def on_points(self, event: pubsub.PubSubChannelPointsMessage) -> None:
        title = event.reward.title
        self.redemptions[title] = self.redemptions.get(title, 0) + 1
        self.changed.set()

    async def wait_for(self, predicate: object, timeout: float = 5.0) -> None:
        async def loop() -> None:
            while not predicate():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)


@pytest_asyncio.fixture
async def bot(
    pubsub_client: twitchio.Client, pubsub_pool: pubsub.PubSubPool
) -> AsyncIterator[MyBot]:
    bot = MyBot(pubsub_client, pubsub_pool)
    await bot.start("user-token")
    yield bot  # the plugin closes the pool after the test


@pytest.fixture
def emulator(pubsub_emulator: PubSubEmulator) -> PubSubEmulator:
    return pubsub_emulator


@pytest.mark.asyncio
async def test_bot_thanks_cheerers(bot: MyBot, emulator: PubSubEmulator) -> None:
    await emulator.trigger("bits", CHANNEL, bits_used=300, user_name="generous")
    await bot.wait_for(lambda: bot.thanks)
    assert bot.thanks == ["Thanks generous for 300 bits!"]


@pytest.mark.asyncio
async def test_bot_counts_redemptions(bot: MyBot, emulator: PubSubEmulator) -> None:
    for _ in range(3):
        await emulator.trigger("channel_points", CHANNEL, **{"reward.title": "Hydrate"})
    await bot.wait_for(lambda: bot.redemptions.get("Hydrate") == 3)


@pytest.mark.asyncio
async def test_bot_keeps_working_after_a_reconnect(bot: MyBot, emulator: PubSubEmulator) -> None:
    first = emulator.connections[0].id
    await emulator.send_reconnect()
    # The pool opens a fresh socket, LISTENs there, then closes the old one.
    await emulator.wait_until(
        lambda: (
            [c.id for c in emulator.connections] not in ([], [first])
            and len(emulator.connections) == 1
        )
    )
    await emulator.trigger("bits", CHANNEL, is_anonymous=True)
    await bot.wait_for(lambda: bot.thanks)
    assert bot.thanks == ["Thanks anonymous for 100 bits!"]
