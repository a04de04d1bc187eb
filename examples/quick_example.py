"""The reference's quick example, aimed at a PubSub emulator.

Run an emulator (``twitchio-pubsub serve``), then::

    PUBSUB_ENDPOINT=ws://127.0.0.1:8765 python examples/quick_example.py

and trigger events from another shell::

    twitchio-pubsub trigger bits --channel 12345
    twitchio-pubsub trigger channel_points --channel 12345 --set user_input=hello

It exits after ``--events`` events (default 2) or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import twitchio

import twitchio_pubsub as pubsub

my_token = "..."
users_oauth_token = "user-oauth-token"
users_channel_id = 12345

parser = argparse.ArgumentParser(
    # The docstring is reStructuredText: shown as plain text, its lines kept.
    description=__doc__.replace("::", ":").replace("``", ""),
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
parser.add_argument("--endpoint", default=os.environ.get("PUBSUB_ENDPOINT", "ws://127.0.0.1:8765"))
parser.add_argument("--events", type=int, default=2)
args = parser.parse_args()

client = twitchio.Client(token=my_token)
client.pubsub = pubsub.PubSubPool(client, endpoint=args.endpoint)
done = asyncio.Event()
seen = 0


def count() -> None:
    global seen
    seen += 1
    if seen >= args.events:
        done.set()


@client.event()
async def event_pubsub_bits(event: pubsub.PubSubBitsMessage) -> None:
    print(f"bits: {event.user.name if event.user else 'anonymous'} cheered {event.bits_used}")
    count()


@client.event()
async def event_pubsub_channel_points(event: pubsub.PubSubChannelPointsMessage) -> None:
    print(f"channel points: {event.user.name if event.user else '?'} redeemed {event.reward.title}")
    count()


async def main() -> None:
    topics = [
        pubsub.channel_points(users_oauth_token)[users_channel_id],
        pubsub.bits(users_oauth_token)[users_channel_id],
    ]
    async with client.pubsub:
        await client.pubsub.subscribe_topics(topics)
        print(f"subscribed to {len(topics)} topics on {args.endpoint}", flush=True)
        await done.wait()


if __name__ == "__main__":
    client.loop.run_until_complete(main())
