"""``python -m twitchio_pubsub demo``: the library end to end, offline, in a few seconds.

Twice, once per transport: starts an embedded emulator (PubSub, then EventSub),
subscribes a twitchio ``Client`` to every topic family through a :class:`PubSubPool`,
triggers one realistic event of each kind, survives a server-requested reconnect and an
abrupt drop, and prints what the bot receives. The bot code is the same both times; only
``transport="eventsub"`` differs. Then the bot runs as two "processes" (two pools) that
share an EventSub conduit: each cheer reaches exactly one of them, also while a shard's
session is replaced.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable
from typing import Any, Callable, TextIO

import twitchio

from . import topics as t
from .emulator import EventSubEmulator, PubSubEmulator
from .emulator.eventsub.conduits import route_hash
from .emulator.payloads import KINDS
from .eventsub.mapping import scopes_for
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

__all__ = ("describe", "run_demo")

CHANNEL = 12345
MODERATOR = 67890
TOKEN = "demo-user-token"
#: EventSub wants the token of the user in each condition, with EventSub's scopes.
BROADCASTER_TOKEN = "demo-broadcaster-token"
MODERATOR_TOKEN = "demo-moderator-token"
_BROADCASTER_SCOPES = scopes_for(
    "channel-bits-events-v2",
    "channel-bits-badge-unlocks",
    "channel-points-channel-v1",
    "channel-subscribe-events-v1",
    "whispers",
)
_MODERATOR_SCOPES = scopes_for(
    "chat_moderator_actions",
    "automod-queue",
    "user-moderation-notifications",
    "low-trust-users",
)
#: EventSub type and fields to trigger -> PubSub event(s) the bot receives.
_EVENTSUB_TRIGGERS: tuple[tuple[str, dict[str, Any], tuple[str, ...]], ...] = (
    ("channel.cheer", {"bits": 100}, ("pubsub_bits", "pubsub_bits")),  # v2 and v1 topics
    ("channel.chat.notification", {"notice_type": "bits_badge_tier"}, ("pubsub_bits_badge",)),
    ("channel.channel_points_custom_reward_redemption.add", {}, ("pubsub_channel_points",)),
    ("channel.subscribe", {"tier": "2000"}, ("pubsub_subscription",)),
    ("channel.moderate", {"action": "timeout"}, ("pubsub_moderation",)),
    ("user.whisper.message", {"user_id": CHANNEL}, ("pubsub_whisper",)),
    ("automod.message.hold", {}, ("pubsub_automod_queue",)),
    (
        "channel.chat.user_message_hold",
        {"user_id": MODERATOR},
        ("pubsub_user_moderation_notification",),
    ),
    ("channel.suspicious_user.update", {}, ("pubsub_low_trust_user",)),
)

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

    def client(self) -> twitchio.Client:
        """A bot: one handler per topic family, and a line per reconnect."""
        client = twitchio.Client(token="demo-bot-token")
        for _factory, event in _KIND_TOPICS.values():

            async def handler(model: PubSubMessage, _event: str = event) -> None:
                await self.received.put((_event, model))

            if f"event_{event}" not in client._events:
                client.add_event(handler, f"event_{event}")

        async def on_reconnecting(node: Any, delay: float) -> None:
            if delay:
                self.say(f"  ... node {node.id} lost its connection; retrying in {delay:.2f} s")
            else:
                self.say(f"  ... node {node.id} opens a new socket before closing the old one")

        client.add_event(on_reconnecting, "event_pubsub_reconnecting")
        return client

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def show(self, event: str, model: PubSubMessage, where: str = "") -> None:
        self.count += 1
        # The topic tells apart events that look alike (bits on v2 and on v1).
        self.say(
            f"  [{self.count:2}] {event:<36} {type(model).__name__:<32} {describe(model)}"
            f"  [{model.full_topic.split('.', 1)[0]}]{where}"
        )

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
        client = demo.client()
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

    pubsub_events, pubsub_reconnects = demo.count, demo.reconnects
    await _eventsub_demo(demo)
    eventsub_events, eventsub_reconnects = demo.count, demo.reconnects
    await _conduit_demo(demo)
    elapsed = time.perf_counter() - started
    print(
        f"\ndemo OK: {pubsub_events} PubSub + {eventsub_events - pubsub_events} EventSub + "
        f"{demo.count - eventsub_events} conduit events received, {pubsub_reconnects} + "
        f"{eventsub_reconnects - pubsub_reconnects} + {demo.reconnects - eventsub_reconnects} "
        f"reconnects survived, {elapsed:.1f} s",
        file=demo.out,
        flush=True,
    )
    return 0


def _topics(broadcaster: str, moderator: str) -> list[t.Topic]:
    """Every family, each with the token EventSub wants (PubSub takes any one)."""
    out = []
    for kind, (factory, _) in _KIND_TOPICS.items():
        if KINDS[kind][1] == 2:
            token = moderator  # the moderator (or the chatter) comes second
            out.append(factory(token)[CHANNEL][MODERATOR])
        else:
            out.append(factory(broadcaster)[CHANNEL])
    return out


async def _eventsub_demo(demo: _Demo) -> None:
    """The same bot on EventSub: ``transport="eventsub"`` is the only change."""
    async with EventSubEmulator() as emu:
        emu.add_token(BROADCASTER_TOKEN, CHANNEL, scopes=_BROADCASTER_SCOPES)
        emu.add_token(MODERATOR_TOKEN, MODERATOR, scopes=_MODERATOR_SCOPES)
        client = demo.client()
        demo.say(f"\nthe same bot on EventSub: embedded EventSub emulator at {emu.url}")
        pool = PubSubPool(
            client,
            transport="eventsub",
            **emu.urls,
            backoff_base=0.2,
            backoff_cap=2.0,
            connect_timeout=5.0,
        )
        async with pool:
            topics = _topics(BROADCASTER_TOKEN, MODERATOR_TOKEN)
            await pool.subscribe_topics(topics)
            demo.say(
                f"subscribed to {len(topics)} topics: {len(emu.enabled())} EventSub "
                f"subscriptions on {len(pool.nodes)} session(s), one per token user\n"
            )
            demo.say("one EventSub event of each kind, as the PubSub events the bot knows:")
            for type_, fields, events in _EVENTSUB_TRIGGERS:
                fields = {"broadcaster_user_id": CHANNEL, **fields}
                if type_ == "user.whisper.message":
                    fields.pop("broadcaster_user_id")
                await emu.trigger(type_, **fields)
                for event in events:
                    await demo.expect(event)

            demo.say("\nTwitch sends session_reconnect (new socket first; nothing re-created):")
            before = len(emu.subscriptions)
            started = time.perf_counter()
            await emu.send_reconnect()
            await emu.wait_until(
                lambda: (
                    len(emu.sessions) == 2 and all(s.status == "connected" for s in emu.sessions)
                ),
                10,
            )
            demo.reconnects += 1
            ms = (time.perf_counter() - started) * 1000
            demo.say(f"  ... both sessions moved in {ms:.0f} ms; still {before} subscriptions")
            await emu.trigger("channel.cheer", broadcaster_user_id=CHANNEL, bits=500)
            await demo.expect("pubsub_bits")
            await demo.expect("pubsub_bits")

            demo.say("\nthe broadcaster's session drops abruptly (no close frame):")
            old = pool.nodes[0].session_id
            wanted = len(emu.enabled(old))
            started = time.perf_counter()
            await emu.drop(old)
            await emu.wait_until(
                lambda: any(
                    s.session_id != old and len(emu.enabled(s.session_id)) == wanted
                    for s in emu.sessions
                    if s.owner and s.owner[0] == str(CHANNEL)
                ),
                10,
            )
            demo.reconnects += 1
            ms = (time.perf_counter() - started) * 1000
            demo.say(f"  ... new session, {wanted} subscriptions created again in {ms:.0f} ms")
            await emu.trigger(
                "channel.channel_points_custom_reward_redemption.add",
                broadcaster_user_id=CHANNEL,
                user_input="still here!",
            )
            await demo.expect("pubsub_channel_points")
        demo.say(f"pool closed: {len(emu.subscriptions)} subscriptions left on the server")


#: The demo's app, for the conduit act (its client credentials get the app token).
_APP, _SECRET = "demo-app", "demo-app-secret"


async def _conduit_demo(demo: _Demo) -> None:
    """Two pools ("processes") share one conduit of two shards: one subscribes, both
    serve; every cheer is handled once, by the pool holding the shard Twitch picked."""
    async with EventSubEmulator() as emu:
        emu.add_app(_APP, _SECRET)
        channels = [CHANNEL + n for n in range(6)]
        for channel in channels:
            emu.add_token(f"demo-token-{channel}", channel, scopes=["bits:read"], client_id=_APP)
        demo.say(
            "\nthe same bot as two processes sharing an EventSub conduit (transport='conduit'):"
        )
        heard: asyncio.Queue[tuple[int, PubSubMessage]] = asyncio.Queue()
        pools = []
        for index in (0, 1):
            client = twitchio.Client(token="demo-bot-token")

            async def on_bits(model: PubSubMessage, _index: int = index) -> None:
                await heard.put((_index, model))

            client.add_event(on_bits, "event_pubsub_bits")
            pools.append(
                PubSubPool(
                    client,
                    transport="conduit",
                    client_id=_APP,
                    client_secret=_SECRET,
                    shards=[index],
                    shard_count=2,
                    **emu.urls,
                    backoff_base=0.2,
                    backoff_cap=2.0,
                    connect_timeout=5.0,
                )
            )
        first, second = pools
        try:
            await first.subscribe_topics([t.bits(f"demo-token-{c}")[c] for c in channels])
            await first.conduit.start()
            await second.conduit.start()
            demo.say(
                f"conduit {first.conduit.id[:8]}...: process 1 subscribed {len(channels)} "
                "channels and serves shard 0; process 2 only serves shard 1\n"
            )

            async def cheers() -> None:
                for channel in channels:
                    await emu.trigger("channel.cheer", broadcaster_user_id=channel, bits=10)
                for _ in channels:
                    index, model = await asyncio.wait_for(heard.get(), 5.0)
                    demo.show("pubsub_bits", model, f"  -> process {index + 1}")

            await cheers()
            demo.say("\nprocess 1's shard session drops (no close frame); it is re-assigned:")
            conduit_id = first.conduit.id
            old = emu.shard(conduit_id, 0).session_id
            started = time.perf_counter()
            await emu.fault_shard(conduit_id, 0)
            await emu.wait_until(
                lambda: (
                    emu.shard(conduit_id, 0).status == "enabled"
                    and emu.shard(conduit_id, 0).session_id != old
                ),
                10,
            )
            demo.reconnects += 1
            ms = (time.perf_counter() - started) * 1000
            demo.say(f"  ... shard 0 on a new session in {ms:.0f} ms; no subscription re-created")
            homed = next(c for c in channels if route_hash(str(c)) % 2 == 0)  # on shard 0
            await emu.trigger("channel.cheer", broadcaster_user_id=homed, bits=500)
            index, model = await asyncio.wait_for(heard.get(), 5.0)
            demo.show("pubsub_bits", model, f"  -> process {index + 1}")
        finally:
            for pool in pools:
                await pool.close()
        left = [s for s in emu.conduit_subscriptions(conduit_id) if s["type"] == "channel.cheer"]
        demo.say(f"both closed: the conduit and its {len(left)} cheer subscriptions stay")
