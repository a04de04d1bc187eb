"""An independent client, TwitchIO 2.10's own ``twitchio.ext.pubsub``, works with the emulator."""

from __future__ import annotations

import asyncio

import pytest
import twitchio
from twitchio.ext import pubsub as tio_pubsub

from twitchio_pubsub.emulator import PubSubEmulator


async def test_twitchio_ext_pubsub_receives_bits(
    emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tio_pubsub.PubSubWebsocket, "ENDPOINT", emulator.url)
    client = twitchio.Client(token="interop-token")
    received: asyncio.Queue[tio_pubsub.PubSubBitsMessage] = asyncio.Queue()

    @client.event()
    async def event_pubsub_bits(event: tio_pubsub.PubSubBitsMessage) -> None:
        await received.put(event)

    pool = tio_pubsub.PubSubPool(client)
    try:
        await pool.subscribe_topics([tio_pubsub.bits("user-token")[12345]])
        await emulator.wait_for_topics(1)
        assert await emulator.trigger("bits", 12345, bits_used=321) == 1
        event = await asyncio.wait_for(received.get(), 5)
        assert event.bits_used == 321
        assert event.channel_id == 12345
        assert event.user is not None and event.user.name == "cheerfan"
    finally:
        for node in pool._pool:
            await node.disconnect()
            if node.session is not None:
                await node.session.close()
        await asyncio.sleep(0)
