"""A pool subclass whose hooks refresh tokens, shown against the embedded emulator.

The first token is already expired; ``auth_fail_hook`` swaps in a fresh one and
subscribes again. Later, ``reconnect_hook`` rotates tokens before every re-LISTEN.

    python examples/token_refresh_pool.py
"""

from __future__ import annotations

import asyncio
import itertools

import twitchio

import twitchio_pubsub as pubsub
from twitchio_pubsub.emulator import PubSubEmulator

CHANNEL = 12345
_fresh = (f"fresh-token-{n}" for n in itertools.count(1))


async def refresh_token(old: str | None) -> str:
    """Stand-in for a call to Twitch's token endpoint with your refresh token."""
    await asyncio.sleep(0)
    return next(_fresh)


class RefreshingPool(pubsub.PubSubPool):
    async def auth_fail_hook(self, topics: list[pubsub.Topic]) -> None:
        new_token = await refresh_token(topics[0].token)
        print(f"auth failed for {[t.present for t in topics]}: refreshed, subscribing again")
        for topic in topics:
            topic.token = new_token
        await self.subscribe_topics(topics)

    async def reconnect_hook(
        self, node: pubsub.PubSubWebsocket, topics: list[pubsub.Topic]
    ) -> list[pubsub.Topic]:
        new_token = await refresh_token(topics[0].token if topics else None)
        print(f"node {node.id} reconnecting: {len(topics)} topic(s) get a rotated token")
        for topic in topics:
            topic.token = new_token
        return topics


async def main() -> None:
    async with PubSubEmulator() as emu:
        await emu.invalidate_token("expired-token")
        client = twitchio.Client(token="bot-token")
        got = asyncio.Queue[pubsub.PubSubBitsMessage]()

        @client.event()
        async def event_pubsub_bits(event: pubsub.PubSubBitsMessage) -> None:
            await got.put(event)

        async with RefreshingPool(client, endpoint=emu.url) as pool:
            await pool.subscribe_topics([pubsub.bits("expired-token")[CHANNEL]])
            await emu.trigger("bits", CHANNEL, bits_used=42)
            print(f"received {(await asyncio.wait_for(got.get(), 5)).bits_used} bits")

            first = emu.connections[0].id
            await emu.send_reconnect()
            # Wait for the hand-over: new socket listened, old one closed.
            await emu.wait_until(
                lambda: len(emu.connections) == 1 and emu.connections[0].id != first
            )
            token = emu.connections[0].topics[f"channel-bits-events-v2.{CHANNEL}"]
            print(f"after RECONNECT the topic is listened with {token}")
            await emu.trigger("bits", CHANNEL, bits_used=7)
            print(f"received {(await asyncio.wait_for(got.get(), 5)).bits_used} bits")


if __name__ == "__main__":
    asyncio.run(main())
