"""Testing a bot on EventSub with pytest (and pytest-asyncio).

    python -m pytest test_my_eventsub_bot.py

The same handlers as on PubSub, with the pool on ``transport="eventsub"``. The fixtures
come from the pytest plugin installed with twitchio-pubsub: ``eventsub_emulator`` (a
running EventSub emulator), ``eventsub_token`` (a token of user 1337 with every scope a
topic needs), ``eventsub_pool`` (a pool aimed at the emulator) and ``pubsub_client``.
"""

from __future__ import annotations

import asyncio

import pytest
import twitchio

import twitchio_pubsub as pubsub
from twitchio_pubsub.emulator import EventSubEmulator

CHANNEL = 1337  # the user eventsub_token belongs to: the broadcaster


@pytest.mark.asyncio
async def test_a_cheer_is_thanked(
    pubsub_client: twitchio.Client,
    eventsub_pool: pubsub.PubSubPool,
    eventsub_token: str,
    eventsub_emulator: EventSubEmulator,
) -> None:
    thanks: list[str] = []
    thanked = asyncio.Event()

    async def on_bits(event: pubsub.PubSubBitsMessage) -> None:
        who = event.user.name if event.user else "anonymous"
        thanks.append(f"Thanks {who} for {event.bits_used} bits!")
        thanked.set()

    pubsub_client.add_event(on_bits, "event_pubsub_bits")
    await eventsub_pool.subscribe_topics([pubsub.bits(eventsub_token)[CHANNEL]])
    await eventsub_emulator.trigger("channel.cheer", broadcaster_user_id=CHANNEL, bits=300)
    await asyncio.wait_for(thanked.wait(), 5)
    assert thanks == ["Thanks cheery_viewer for 300 bits!"]


@pytest.mark.asyncio
async def test_a_token_without_the_scope_is_reported(
    pubsub_client: twitchio.Client,
    eventsub_pool: pubsub.PubSubPool,
    eventsub_emulator: EventSubEmulator,
) -> None:
    errors: list[pubsub.PubSubErrorEvent] = []

    async def on_error(error: pubsub.PubSubErrorEvent) -> None:
        errors.append(error)

    pubsub_client.add_event(on_error, "event_pubsub_error")
    eventsub_emulator.add_token("old-token", CHANNEL, scopes=["channel:read:redemptions"])
    await eventsub_pool.subscribe_topics([pubsub.bits("old-token")[CHANNEL]])
    await asyncio.sleep(0.1)  # let the handler run
    assert eventsub_pool.topics == []
    assert "the token lacks scope bits:read" in errors[0].reason
