"""Seeded random operations against one pool: do calls hang, and do pool, nodes and
server agree at the end?

Runs ``--ops`` operations drawn with a seeded RNG (subscribe, unsubscribe, either in a
background task, cancel a background call, a token swap) on PubSub, EventSub or a conduit,
against
the project's emulator over loopback. Every call must return or raise within
``listen_timeout`` plus one Helix round (``--bound`` seconds); a call still running
then counts as hung. At the end, background calls are drained and the script checks
that what the pool lists, what its nodes are assigned and what the server holds agree.

    python benchmarks/random_ops.py --transport eventsub --ops 1000 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import twitchio

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import EventSubEmulator, PubSubEmulator
from twitchio_pubsub.eventsub.mapping import scopes_for, subscriptions_for

CHANNELS = [1001, 1002, 1003, 1004, 1005]
TIMINGS = {"listen_timeout": 2.0, "connect_timeout": 3.0, "backoff_base": 0.05, "backoff_cap": 0.3}


#: Moderators (their own user ids) for ``--topics moderation``.
MODERATORS = [2001, 2002]


def topics_for(channel: int, token: str, kind: str) -> list[tp.Topic]:
    """The topics one operation may pick: a channel's own, or moderation topics that a
    moderator's token serves in that channel (``token`` is then the moderator's)."""
    if kind == "moderation":
        moderator = int(token.split("-")[0][3:])
        return [
            tp.moderation_user_action(token)[channel][moderator],
            tp.automod_queue(token)[moderator][channel],
        ]
    return [tp.bits(token)[channel], tp.channel_points(token)[channel]]


async def run(
    transport: str,
    ops: int,
    seed: int,
    bound: float,
    rate_limit: int = 800,
    kind: str = "channel",
) -> dict[str, Any]:
    rng = random.Random(seed)
    client = twitchio.Client(token="unused")
    if transport == "pubsub":
        server: Any = PubSubEmulator()
    else:
        # Twitch's 800 Helix calls a minute run dry within seconds here; a call that waits
        # for the bucket's reset is waiting as Twitch asks, not hung. --rate-limit says.
        server = EventSubEmulator(rate_limit=rate_limit)
    async with server:
        if transport == "pubsub":
            pool = tp.PubSubPool(client, endpoint=server.url, rng=random.Random(seed), **TIMINGS)
        else:
            owners = MODERATORS if kind == "moderation" else CHANNELS
            conduit: dict[str, Any] = {}
            if transport == "conduit":
                server.add_app("random-ops-app", "random-ops-secret")
                conduit = {
                    "client_id": "random-ops-app",
                    "client_secret": "random-ops-secret",
                    "shards": [0, 1],
                }
            issuer = conduit.get("client_id", "emulator-client-id")
            for owner in owners:
                for n in (1, 2):
                    server.add_token(
                        f"tok{owner}-{n}",
                        owner,
                        scopes=[
                            "bits:read",
                            "channel:read:redemptions",
                            *scopes_for("chat_moderator_actions", "automod-queue"),
                        ],
                        client_id=issuer,
                    )
            pool = tp.PubSubPool(
                client,
                transport=transport,
                rng=random.Random(seed),
                **server.urls,
                **TIMINGS,
                **conduit,
                keepalive_margin=1.0,
            )
        background: set[asyncio.Task[None]] = set()
        hung = errors = done = 0
        kinds: dict[str, int] = {}

        async def call(coro: Any) -> None:
            nonlocal hung, errors, done
            try:
                await asyncio.wait_for(coro, bound)
                done += 1
            except asyncio.TimeoutError:
                hung += 1
            except (tp.PubSubError, ValueError):
                errors += 1  # refused, not subscribed ...: answered, not hung

        started = time.perf_counter()
        for _ in range(ops):
            channel = rng.choice(CHANNELS)
            owner = rng.choice(MODERATORS) if kind == "moderation" else channel
            token = f"tok{owner}-{rng.choice((1, 2))}"
            topics = topics_for(channel, token, kind)[: rng.choice((1, 2))]
            op = rng.choice(
                ["subscribe", "unsubscribe", "bg-subscribe", "bg-unsubscribe", "cancel"]
            )
            kinds[op] = kinds.get(op, 0) + 1
            held = {t.present for t in pool.topics}
            if op.endswith("unsubscribe"):
                topics = [t for t in topics if t.present in held]
                if not topics:
                    continue
            unsubscribing = op.endswith("unsubscribe")
            verb = pool.unsubscribe_topics if unsubscribing else pool.subscribe_topics
            if op == "cancel":
                if background:
                    victim = rng.choice(sorted(background, key=id))
                    victim.cancel()
                continue
            if op.startswith("bg-"):
                task = asyncio.ensure_future(call(verb(topics)))
                background.add(task)
                task.add_done_callback(background.discard)
                await asyncio.sleep(rng.uniform(0, 0.01))
            else:
                await call(verb(topics))
        for task in list(background):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elapsed = time.perf_counter() - started
        agreed, detail = await agreement(pool, server, transport)
        await pool.close()
    return {
        "transport": transport,
        "topics": kind,
        "ops": ops,
        "seed": seed,
        "calls_done": done,
        "calls_refused": errors,
        "calls_hung": hung,
        "ops_by_kind": kinds,
        "seconds": round(elapsed, 1),
        "helix_calls": getattr(server, "helix_requests", 0),
        "agreement": agreed,
        "detail": detail,
    }


async def agreement(pool: Any, server: Any, transport: str) -> tuple[bool, str]:
    """Whether pool, nodes and server agree (waiting up to 10 s for the server to settle)."""
    listed = {t.present for t in pool.topics}
    assigned = {t.present for node in pool.nodes for t in node.topics}
    if transport == "pubsub":

        def held() -> set[str]:
            return {t for c in server.connections for t in c.topics}

        want: Any = listed
    else:

        def held() -> set[str]:
            return {
                f"{s['type']}:{sorted(s['condition'].items())}"
                for s in server.enabled()
                if s["type"] != "conduit.shard.disabled"  # the conduit's, not a topic's
            }

        want = {
            f"{part.type}:{sorted(part.condition)}"
            for topic in pool.topics
            for part in subscriptions_for(topic.present or "", owner_of(topic))
        }

    with contextlib.suppress(asyncio.TimeoutError):
        await server.wait_until(lambda: held() == want, timeout=10)
    ok = listed == assigned and held() == want
    return ok, f"pool {len(listed)} topics, nodes {len(assigned)}, server {len(held())} held"


def owner_of(topic: tp.Topic) -> str:
    """The user id a benchmark token belongs to (``tok<user>-<n>``)."""
    return (topic.token or "tok0-1").split("-")[0][3:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--transport", choices=("pubsub", "eventsub", "conduit"), default="eventsub"
    )
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bound", type=float, default=8.0, help="seconds a call may take")
    parser.add_argument(
        "--rate-limit", type=int, default=800, help="EventSub: Helix calls a minute (Twitch: 800)"
    )
    parser.add_argument(
        "--topics",
        choices=("channel", "moderation"),
        default="channel",
        help="bits and channel points of 5 channels, or moderation topics of 2 moderators",
    )
    args = parser.parse_args()
    result = asyncio.run(
        run(args.transport, args.ops, args.seed, args.bound, args.rate_limit, args.topics)
    )
    for key, value in result.items():
        print(f"{key}: {value}")
    sys.exit(0 if result["calls_hung"] == 0 and result["agreement"] else 1)


if __name__ == "__main__":
    main()
