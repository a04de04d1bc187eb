"""``python -m twitchio_pubsub demo``: the library end to end, offline, in a few seconds.

Starts the embedded emulator, subscribes a twitchio ``Client`` to every topic family
through a :class:`PubSubPool`, triggers one realistic event of each kind, survives a
server RECONNECT and an abrupt drop, and prints what the bot receives.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable
from typing import Any, Callable, TextIO

import twitchio

from . import topics as t
from .emulator import PubSubEmulator
from .emulator.payloads import KINDS
from .models import (
    PubSubAutoModQueueMessage,
    PubSubBitsBadgeMessage,
    PubSubBitsMessage,
    PubSubChannelPointsMessage,
    PubSubChannelSubscribe,
    PubSubLowTrustUserMessage,
    PubSubMessage,
    PubSubModerationAction,
    PubSubUserModerationNotification,
    PubSubWhisperMessage,
)
from .pool import PubSubPool
from .websocket import PubSubWebsocket

__all__ = ("describe", "run_demo")

CHANNEL = 12345
MODERATOR = 67890
TOKEN = "demo-user-token"

#: trigger kind -> (topic factory, event name)
_KIND_TOPICS: dict[str, tuple[Callable[[str], t.Topic], str]] = {
    "bits": (t.bits, "pubsub_bits"),
    "bits_v1": (t.bits_v1, "pubsub_bits"),
    "bits_badge": (t.bits_badge, "pubsub_bits_badge"),
    "channel_points": (t.channel_points, "pubsub_channel_points"),
    "subscription": (t.channel_subscriptions, "pubsub_subscription"),
    "moderation": (t.moderation_user_action, "pubsub_moderation"),
    "whisper": (t.whispers, "pubsub_whisper"),
    "automod_queue": (t.automod_queue, "pubsub_automod_queue"),
    "user_moderation_notification": (
        t.user_moderation_notifications,
        "pubsub_user_moderation_notification",
    ),
    "low_trust_user": (t.low_trust_users, "pubsub_low_trust_user"),
}


def _name(user: Any) -> str:
    return getattr(user, "name", None) or "anonymous"


def describe(model: PubSubMessage) -> str:
    """A one-line, human summary of an event model."""
    if isinstance(model, PubSubBitsMessage):
        version = " (v1 topic)" if "-v1." in model.topic else ""
        said = model.message.content
        return f"{_name(model.user)} cheered {model.bits_used} bits{version}: {said!r}"
    if isinstance(model, PubSubBitsBadgeMessage):
        return f"{_name(model.user)} unlocked the {model.badge_tier} bits badge"
    if isinstance(model, PubSubChannelPointsMessage):
        extra = f" with {model.input!r}" if model.input else ""
        return (
            f"{_name(model.user)} redeemed {model.reward.title!r} ({model.reward.cost} pts){extra}"
        )
    if isinstance(model, PubSubChannelSubscribe):
        months = f", {model.cumulative_months} months" if model.cumulative_months else ""
        return f"{_name(model.user)} {model.context} tier {model.tier or 'Prime'}{months}"
    if isinstance(model, PubSubModerationAction):
        args = (model.args or [])[1:]
        return f"{_name(model.created_by)} {model.action} {_name(model.target)} {args}"
    if isinstance(model, PubSubWhisperMessage):
        return f"whisper from {_name(model.user)}: {model.content!r}"
    if isinstance(model, PubSubAutoModQueueMessage):
        return f"AutoMod {model.status}: {_name(model.sender)} said {model.content!r}"
    if isinstance(model, PubSubUserModerationNotification):
        return f"your held message {model.message_id[:8]} was {model.status}"
    if isinstance(model, PubSubLowTrustUserMessage):
        return f"{_name(model.target)} set to {model.treatment} by {_name(model.updated_by)}"
    return f"{model.message_type or 'message'} on {model.topic}"


class _Demo:
    def __init__(self, out: TextIO, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.received: asyncio.Queue[tuple[str, PubSubMessage]] = asyncio.Queue()
        self.count = 0
        self.reconnects = 0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def show(self, event: str, model: PubSubMessage) -> None:
        self.count += 1
        self.say(f"  [{self.count:2}] {event:<38} {type(model).__name__:<34} {describe(model)}")

    async def expect(self, event: str, timeout: float = 5.0) -> PubSubMessage:
        got_event, model = await asyncio.wait_for(self.received.get(), timeout)
        if got_event != event:
            raise RuntimeError(f"expected {event}, got {got_event}")
        self.show(got_event, model)
        return model


async def _replaced(emu: PubSubEmulator, topics: int, fault: Awaitable[object]) -> str:
    """Inject ``fault``, wait until one new connection holds every topic; return the time."""
    before = emu.connections[0].id
    started = time.perf_counter()
    await fault
    await emu.wait_until(
        lambda: (
            len(emu.connections) == 1
            and emu.connections[0].id != before
            and len(emu.connections[0].topics) == topics
        ),
        10,
    )
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


async def run_demo(*, quiet: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; returns the process exit status (0 on success)."""
    demo = _Demo(out or sys.stdout, quiet)
    started = time.perf_counter()
    async with PubSubEmulator() as emu:
        client = twitchio.Client(token="demo-bot-token")
        for _kind, (_factory, event) in _KIND_TOPICS.items():

            async def handler(model: PubSubMessage, _event: str = event) -> None:
                await demo.received.put((_event, model))

            if f"event_{event}" not in client._events:
                client.add_event(handler, f"event_{event}")

        async def on_reconnecting(node: PubSubWebsocket, delay: float) -> None:
            if delay:
                demo.say(f"  ... node {node.id} lost its socket; retrying in {delay:.2f} s")
            else:
                demo.say(f"  ... node {node.id} opens a new socket before closing the old one")

        client.add_event(on_reconnecting, "event_pubsub_reconnecting")

        demo.say(f"twitchio-pubsub demo: embedded PubSub emulator at {emu.url}")
        pool = PubSubPool(
            client,
            endpoint=emu.url,
            backoff_base=0.2,
            backoff_cap=2.0,
            handover_delay=0.2,
            connect_timeout=5.0,
        )
        async with pool:
            topics = []
            for kind, (factory, _) in _KIND_TOPICS.items():
                topic = factory(TOKEN)[CHANNEL]
                if KINDS[kind][1] == 2:
                    topic = topic[MODERATOR]
                topics.append(topic)
            await pool.subscribe_topics(topics)
            demo.say(f"subscribed to {len(topics)} topics on {len(pool.nodes)} connection(s)\n")

            demo.say("one event of each kind:")
            for kind, (_, event) in _KIND_TOPICS.items():
                await emu.trigger(kind, CHANNEL, MODERATOR)
                await demo.expect(event)

            demo.say("\nthe server sends RECONNECT (the client opens a new socket first):")
            ms = await _replaced(emu, len(topics), emu.send_reconnect())
            demo.reconnects += 1
            demo.say(
                f"  ... all {len(topics)} topics moved to a new socket, old one closed, in {ms}"
            )
            await emu.trigger("bits", CHANNEL, bits_used=500)
            await demo.expect("pubsub_bits")

            demo.say("\nthe connection drops abruptly (no close frame):")
            ms = await _replaced(emu, len(topics), emu.drop())
            demo.reconnects += 1
            demo.say(f"  ... recovered with backoff; {len(topics)} topics back in {ms}")
            await emu.trigger("channel_points", CHANNEL, user_input="still here!")
            await demo.expect("pubsub_channel_points")

    elapsed = time.perf_counter() - started
    print(
        f"\ndemo OK: {demo.count} events received, {demo.reconnects} reconnects survived, "
        f"{elapsed:.1f} s",
        file=demo.out,
        flush=True,
    )
    return 0
