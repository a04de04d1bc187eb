"""A bot on EventSub, aimed at an EventSub emulator running as a process of its own.

In three terminals (the token stands for the broadcaster's, with its scopes)::

    twitchio-pubsub eventsub serve --token broadcaster-token=1337:bits:read,channel:read:redemptions
    python examples/eventsub_bot.py --emulator http://127.0.0.1:8080
    twitchio-pubsub eventsub trigger cheer --set bits=250

Against Twitch itself, leave out ``--emulator`` and set ``BROADCASTER_TOKEN`` (a user
access token of the broadcaster with ``bits:read`` and ``channel:read:redemptions``)
and ``CHANNEL_ID``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from typing import Any

import twitchio

import twitchio_pubsub as pubsub
from twitchio_pubsub.emulator import eventsub_urls

TOKEN = os.environ.get("BROADCASTER_TOKEN", "broadcaster-token")
CHANNEL_ID = int(os.environ.get("CHANNEL_ID", "1337"))


async def main(emulator: str | None) -> None:
    # One line, and the pool says when it cannot reach the server and when it is up.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    client = twitchio.Client(token="bot-token")
    urls: Any = eventsub_urls(emulator) if emulator else {}
    client.pubsub = pubsub.PubSubPool(client, transport="eventsub", **urls)

    @client.event()
    async def event_pubsub_bits(event: pubsub.PubSubBitsMessage) -> None:
        who = event.user.name if event.user else "someone anonymous"
        print(f"{who} cheered {event.bits_used} bits: {event.message.content}", flush=True)

    @client.event()
    async def event_pubsub_channel_points(event: pubsub.PubSubChannelPointsMessage) -> None:
        text = f" with {event.input!r}" if event.input else ""
        print(f"{event.user.name} redeemed {event.reward.title!r}{text}", flush=True)

    @client.event()
    async def event_pubsub_error(error: pubsub.PubSubErrorEvent) -> None:
        print("pubsub problem:", error.reason, flush=True)

    async with client.pubsub:
        await client.pubsub.subscribe_topics(
            [pubsub.bits(TOKEN)[CHANNEL_ID], pubsub.channel_points(TOKEN)[CHANNEL_ID]]
        )
        print(f"listening to channel {CHANNEL_ID} on EventSub; Ctrl-C stops", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--emulator",
        default=os.environ.get("EVENTSUB_EMULATOR"),
        metavar="URL",
        help="the address 'twitchio-pubsub eventsub serve' prints (http://127.0.0.1:8080); "
        "default: $EVENTSUB_EMULATOR, else Twitch itself",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args().emulator))
