"""One process of a bot fleet that shares one EventSub conduit's shards.

Start as many as you like, each with its own shard ids; every event is handled by
exactly one of them (the one holding the shard Twitch picked). One process subscribes
the topics (``--tokens``); the others only serve shards. Against the emulator::

    twitchio-pubsub eventsub serve --app my-app=my-secret --token tok-1337=1337:bits:read
    export TWITCH_CLIENT_SECRET=my-secret
    python examples/conduit_bot.py --emulator http://127.0.0.1:8080 --client-id my-app \\
        --shards 0-1 --shard-count 4 --tokens tokens.txt      # tokens.txt: 1337=tok-1337
    python examples/conduit_bot.py --emulator http://127.0.0.1:8080 --client-id my-app \\
        --shards 2-3
    twitchio-pubsub eventsub trigger cheer --set bits=250

The secret comes from ``$TWITCH_CLIENT_SECRET``, never from the command line (where any
user of the machine could read it). Each event is printed as one JSON line; SIGTERM or
Ctrl-C detaches this process's shards and leaves the conduit to the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any, Optional

import twitchio

import twitchio_pubsub as pubsub
from twitchio_pubsub.emulator import eventsub_urls


def shard_ids(text: str) -> list[int]:
    """``"0-3"`` or ``"0,2,5"`` (or a mix) as a list of shard ids."""
    ids: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            ids.extend(range(int(first), int(last or first) + 1))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not shard ids: {part!r} (use 0-3 or 0,2)") from None
    return ids


def read_tokens(path: str) -> list[pubsub.Topic]:
    """Bits topics from lines ``CHANNEL_ID=USER_TOKEN`` (the broadcaster's token)."""
    topics = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            channel, sep, token = line.strip().partition("=")
            if sep and channel.isdigit():
                topics.append(pubsub.bits(token)[int(channel)])
    return topics


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    secret = os.environ.get("TWITCH_CLIENT_SECRET")
    if not secret:
        sys.exit("set TWITCH_CLIENT_SECRET to the app's client secret")
    client = twitchio.Client(token="bot-token")
    urls: Any = eventsub_urls(args.emulator) if args.emulator else {}
    pool = pubsub.PubSubPool(
        client,
        transport="conduit",
        client_id=args.client_id,
        client_secret=secret,
        conduit_id=args.conduit,
        shards=args.shards,
        shard_count=args.shard_count,
        **urls,
    )
    client.pubsub = pool

    @client.event()
    async def event_pubsub_bits(event: pubsub.PubSubBitsMessage) -> None:
        line = {"bits": event.bits_used, "channel": event.channel_id, "text": event.message.content}
        print(json.dumps(line), flush=True)

    @client.event()
    async def event_pubsub_error(error: pubsub.PubSubErrorEvent) -> None:
        print(json.dumps({"problem": error.reason}), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        topics = read_tokens(args.tokens) if args.tokens else []
        if topics:
            await pool.subscribe_topics(topics)
        await pool.conduit.start()
        shards = [s.id for s in pool.conduit.shards]
        ready = {"ready": shards, "conduit": pool.conduit.id, "topics": len(topics)}
        print(json.dumps(ready), flush=True)
        await stop.wait()
    finally:
        await pool.close()


def parse(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulator", metavar="URL", help="the emulator's address; default Twitch")
    parser.add_argument("--client-id", required=True, help="the app's client id")
    parser.add_argument("--conduit", help="the conduit's id; default: the app's only one")
    parser.add_argument(
        "--shards", type=shard_ids, help="the shard ids this process serves; default all"
    )
    parser.add_argument("--shard-count", type=int, help="size the conduit to this many shards")
    parser.add_argument("--tokens", metavar="FILE", help="subscribe CHANNEL=TOKEN lines' bits")
    return parser.parse_args(argv)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse()))
