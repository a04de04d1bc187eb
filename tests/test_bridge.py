"""The EventSub bridge end to end: every topic family, on the EventSub emulator.

Each test subscribes PubSub topics on ``PubSubPool(client, transport="eventsub")``,
triggers the EventSub event(s) on the emulator and checks the PubSub event and model the
bot receives, as a bot written for PubSub would.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import EventSubEmulator
from twitchio_pubsub.eventsub.mapping import scopes_for

from .conftest import Recorder

B, M, U = 1337, 1338, 9001  # broadcaster, moderator, chatter

MOD_SCOPES = scopes_for("chat_moderator_actions", "automod-queue", "low-trust-users")

BRIDGE_FAST = {
    "listen_timeout": 3.0,
    "connect_timeout": 3.0,
    "backoff_base": 0.05,
    "backoff_cap": 0.3,
    "keepalive_margin": 0.5,
}


def bridge_pool(client: Any, emu: EventSubEmulator, cls: Any = None, **kw: Any) -> Any:
    """A bridge pool aimed at ``emu`` with fast timings and a seeded rng."""
    settings = {**BRIDGE_FAST, "rng": random.Random(7), **kw}
    return (cls or tp.PubSubPool)(client, transport="eventsub", **emu.urls, **settings)


@pytest.fixture
async def emu() -> AsyncIterator[EventSubEmulator]:
    async with EventSubEmulator() as e:
        e.add_token("broadcaster", B, scopes=["bits:read", "channel:read:redemptions",
                                               "channel:read:subscriptions"])  # fmt: skip
        e.add_token("moderator", M, scopes=MOD_SCOPES)
        e.add_token("chatter", U, scopes=["user:read:chat", "user:read:whispers"])
        yield e


@pytest.fixture
async def pool(client: Any, emu: EventSubEmulator) -> AsyncIterator[Any]:
    p = bridge_pool(client, emu)
    yield p
    await p.close()


EVENTS = (
    "pubsub_bits",
    "pubsub_bits_badge",
    "pubsub_channel_points",
    "pubsub_subscription",
    "pubsub_moderation",
    "pubsub_whisper",
    "pubsub_automod_queue",
    "pubsub_user_moderation_notification",
    "pubsub_low_trust_user",
    "pubsub_message",
    "pubsub_error",
)


@pytest.fixture
def seen(client: Any) -> Recorder:
    return Recorder(client, *EVENTS)


async def test_bits(pool: Any, emu: EventSubEmulator, seen: Recorder) -> None:
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    assert await emu.trigger("channel.cheer", broadcaster_user_id=B, bits=250, message="hi") == 1
    [cheer] = await seen.wait("pubsub_bits")
    assert isinstance(cheer, tp.PubSubBitsMessage)
    assert (cheer.bits_used, cheer.channel_id, cheer.is_anonymous) == (250, B, False)
    assert (cheer.user.id, cheer.user.name) == (9001, "cheery_viewer")
    assert cheer.message.content == "hi"
    assert cheer.total_bits_used is None and cheer.badge_entitlement is None
    assert cheer.timestamp is not None
    [generic] = await seen.wait("pubsub_message")
    assert generic.full_topic == f"channel-bits-events-v2.{B}"


async def test_anonymous_cheer_and_the_v1_topic(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    await emu.trigger("channel.cheer", broadcaster_user_id=B, is_anonymous=True)
    [cheer] = await seen.wait("pubsub_bits")
    assert cheer.is_anonymous is True and cheer.user is None
    await pool.unsubscribe_topics([tp.bits("broadcaster")[B]])
    await pool.subscribe_topics([tp.bits_v1("broadcaster")[B]])
    await emu.trigger("channel.cheer", broadcaster_user_id=B, is_anonymous=True)
    await emu.trigger("channel.cheer", broadcaster_user_id=B, bits=5)
    cheers = await seen.wait("pubsub_bits", 2)
    assert cheers[1].bits_used == 5  # v1 never carried anonymous cheers: dropped
    assert len(seen.values("pubsub_bits")) == 2


async def test_bits_badge(pool: Any, emu: EventSubEmulator, seen: Recorder) -> None:
    # Any chatter's token works: the bot reads the channel's chat notifications.
    await pool.subscribe_topics([tp.bits_badge("chatter")[B]])
    tier = {"bits_badge_tier.tier": 5000, "message.text": "yay"}
    await emu.trigger("channel.chat.notification", broadcaster_user_id=B, notice_type="resub")
    await emu.trigger("channel.chat.notification", broadcaster_user_id=B,
                      notice_type="bits_badge_tier", **tier)  # fmt: skip
    [badge] = await seen.wait("pubsub_bits_badge")
    assert isinstance(badge, tp.PubSubBitsBadgeMessage)
    assert (badge.badge_tier, badge.channel_id, badge.message) == (5000, B, "yay")
    assert badge.user.name == "cheery_viewer"
    assert len(seen.values("pubsub_bits_badge")) == 1  # the resub notice is not a badge


async def test_channel_points(pool: Any, emu: EventSubEmulator, seen: Recorder) -> None:
    await pool.subscribe_topics([tp.channel_points("broadcaster")[B]])
    assert len(emu.enabled()) == 3  # one topic, three subscriptions
    await emu.trigger("channel.channel_points_custom_reward_redemption.add",
                      broadcaster_user_id=B, user_input="hello")  # fmt: skip
    await emu.trigger("channel.channel_points_custom_reward_redemption.update",
                      broadcaster_user_id=B, status="fulfilled", user_input="")  # fmt: skip
    await emu.trigger("channel.channel_points_custom_reward.update", broadcaster_user_id=B,
                      title="Stretch", cost=42)  # fmt: skip
    redeemed, updated, reward = await seen.wait("pubsub_channel_points", 3)
    assert type(redeemed) is tp.PubSubChannelPointsMessage
    assert (redeemed.input, redeemed.status, redeemed.channel_id) == ("hello", "UNFULFILLED", B)
    assert redeemed.reward.title == "Hydrate!" and redeemed.reward.cost == 500
    assert type(updated) is tp.PubSubChannelPointsRedemptionUpdate
    assert (updated.status, updated.input) == ("FULFILLED", None)
    assert type(reward) is tp.PubSubCustomRewardUpdate
    assert (reward.reward.title, reward.reward.cost) == ("Stretch", 42)


async def test_subscriptions(pool: Any, emu: EventSubEmulator, seen: Recorder) -> None:
    await pool.subscribe_topics([tp.channel_subscriptions("broadcaster")[B]])
    await emu.trigger("channel.subscribe", broadcaster_user_id=B, tier="2000")
    await emu.trigger("channel.subscribe", broadcaster_user_id=B, is_gift=True)
    await emu.trigger("channel.subscription.message", broadcaster_user_id=B,
                      cumulative_months=7, streak_months=None)  # fmt: skip
    sub, gift, resub = await seen.wait("pubsub_subscription", 3)
    assert isinstance(sub, tp.PubSubChannelSubscribe)
    assert (sub.context, sub.tier, sub.user.name, sub.is_gift) == ("sub", 2, "cheery_viewer", False)
    assert (gift.context, gift.is_gift, gift.user) == ("subgift", True, None)
    assert gift.recipient.name == "cheery_viewer"
    assert (resub.context, resub.cumulative_months, resub.streak_months) == ("resub", 7, None)
    assert resub.message == "Love the stream! Kappa"
    assert resub.emotes == [{"start": 17, "end": 21, "id": "25"}]


async def test_moderation(pool: Any, emu: EventSubEmulator, seen: Recorder) -> None:
    await pool.subscribe_topics([tp.moderation_user_action("moderator")[B][M]])
    mod = {"broadcaster_user_id": B}
    await emu.trigger("channel.moderate", action="timeout", **mod)
    await emu.trigger("channel.moderate", action="ban", **mod)
    await emu.trigger("channel.moderate", action="uniquechat", **mod)
    await emu.trigger("channel.moderate", action="vip", **mod)
    await emu.trigger("channel.moderate", action="mod", **mod)
    await emu.trigger("channel.moderate", action="add_blocked_term", **{**mod,
                      "automod_terms.terms": ["a.example", "b.example"]})  # fmt: skip
    await emu.trigger("channel.moderate", action="approve_unban_request", **mod)
    timeout, ban, r9k, vip, modded, term_a, term_b, unban = await seen.wait("pubsub_moderation", 8)
    assert isinstance(timeout, tp.PubSubModerationAction)
    assert timeout.action == "timeout" and timeout.args[:2] == ["cheery_viewer", "600"]
    assert timeout.created_by.name == "helpful_mod" and timeout.channel_id == B
    assert (ban.action, ban.args) == ("ban", ["cheery_viewer", "spam"])
    assert r9k.action == "r9kbeta"
    assert isinstance(vip, tp.PubSubModerationActionVIPAdd)
    assert isinstance(modded, tp.PubSubModerationActionModeratorAdd)
    assert isinstance(term_a, tp.PubSubModerationActionChannelTerms)
    assert (term_a.text, term_b.text) == ("a.example", "b.example")
    assert isinstance(unban, tp.PubSubModerationActionBanRequest)
    assert unban.action == "APPROVE_UNBAN_REQUEST"


async def test_whispers(pool: Any, emu: EventSubEmulator, seen: Recorder) -> None:
    await pool.subscribe_topics([tp.whispers("chatter")[U]])
    await emu.trigger("user.whisper.message", user_id=U, from_user_id="42",
                      **{"whisper.text": "psst"})  # fmt: skip
    [whisper] = await seen.wait("pubsub_whisper")
    assert isinstance(whisper, tp.PubSubWhisperMessage)
    assert whisper.content == "psst"
    assert whisper.user.id == 42 and whisper.recipient.id == U
    assert whisper.thread_id == f"42_{U}"


async def test_automod_queue(pool: Any, emu: EventSubEmulator, seen: Recorder) -> None:
    await pool.subscribe_topics([tp.automod_queue("moderator")[B][M]])
    await emu.trigger("automod.message.hold", broadcaster_user_id=B, message_id="held-1")
    await emu.trigger("automod.message.update", broadcaster_user_id=B, message_id="held-1",
                      status="approved")  # fmt: skip
    held, resolved = await seen.wait("pubsub_automod_queue", 2)
    assert isinstance(held, tp.PubSubAutoModQueueMessage)
    assert (held.message_id, held.status, held.category) == ("held-1", "PENDING", "bullying")
    assert held.content == "you are a Kappa clown"
    assert (resolved.status, resolved.message_id) == ("ALLOWED", "held-1")


async def test_user_moderation_notifications(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    await pool.subscribe_topics([tp.user_moderation_notifications("chatter")[B][U]])
    await emu.trigger("channel.chat.user_message_hold", broadcaster_user_id=B, user_id=U,
                      message_id="m-1")  # fmt: skip
    await emu.trigger("channel.chat.user_message_update", broadcaster_user_id=B, user_id=U,
                      message_id="m-1", status="denied")  # fmt: skip
    held, denied = await seen.wait("pubsub_user_moderation_notification", 2)
    assert isinstance(held, tp.PubSubUserModerationNotification)
    assert (held.message_id, held.status) == ("m-1", "PENDING")
    assert denied.status == "DENIED"


async def test_low_trust_users(pool: Any, emu: EventSubEmulator, seen: Recorder) -> None:
    await pool.subscribe_topics([tp.low_trust_users("moderator")[B][M]])
    await emu.trigger("channel.suspicious_user.update", broadcaster_user_id=B,
                      low_trust_status="restricted")  # fmt: skip
    await emu.trigger("channel.suspicious_user.message", broadcaster_user_id=B)
    update, message = await seen.wait("pubsub_low_trust_user", 2)
    assert isinstance(update, tp.PubSubLowTrustUserMessage)
    assert update.treatment == "RESTRICTED" and update.channel_id == B
    assert update.updated_by.name == "helpful_mod"
    assert isinstance(message, tp.PubSubLowTrustUserNewMessage)
    assert message.content == "hi again Kappa"
    assert message.ban_evasion_evaluation == "LIKELY_EVADER"


async def test_one_session_per_user_and_close_deletes_everything(
    client: Any, emu: EventSubEmulator
) -> None:
    pool = bridge_pool(client, emu)
    await pool.subscribe_topics([tp.bits("broadcaster")[B], tp.channel_points("broadcaster")[B]])
    await pool.subscribe_topics([tp.moderation_user_action("moderator")[B][M]])
    await pool.subscribe_topics([tp.whispers("chatter")[U], tp.bits_badge("chatter")[B]])
    assert sorted(n.user_id for n in pool.nodes) == [str(B), str(M), str(U)]
    assert all(isinstance(n, tp.EventSubWebsocket) for n in pool.nodes)
    assert {s["user_id"] for s in emu.state()["sessions"]} == {str(B), str(M), str(U)}
    assert len(emu.enabled()) == 7
    await pool.close()
    assert emu.subscriptions == {}  # deleted, not merely disabled
    await emu.wait_until(lambda: not emu.sessions)
    await pool.close()  # twice is fine


async def test_unsubscribe_deletes_only_that_topics_subscriptions(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    await pool.subscribe_topics([tp.bits("broadcaster")[B], tp.channel_points("broadcaster")[B]])
    await pool.unsubscribe_topics([tp.channel_points("broadcaster")[B]])
    assert [s["type"] for s in emu.subscriptions.values()] == ["channel.cheer"]
    assert await emu.trigger("channel.cheer", broadcaster_user_id=B) == 1
    await seen.wait("pubsub_bits")


async def test_models_of_one_notification_share_no_nested_object(
    pool: Any, emu: EventSubEmulator, seen: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Models are built from the translated dict (no JSON round trip). The two topics'
    # models of one cheer must still be independent, so that a handler that edits one
    # does not change what the other sees, even with a translator that puts one nested
    # object in both (as one passing an event's sub-object through would).
    from twitchio_pubsub.eventsub import node as node_module

    shared = {"nested": ["list"]}
    real = node_module.translate

    def sharing(key: str, frame: Any) -> Any:
        return [{**out, "shared": shared} for out in real(key, frame)]

    monkeypatch.setattr(node_module, "translate", sharing)
    await pool.subscribe_topics([tp.bits("broadcaster")[B], tp.bits_v1("broadcaster")[B]])
    await emu.trigger("channel.cheer", broadcaster_user_id=B, bits=5, user_id=U)
    first, second = await seen.wait("pubsub_bits", 2)
    assert first.topic != second.topic
    assert first.data["shared"] == second.data["shared"] == shared
    assert first.data["shared"] is not second.data["shared"]
    assert first.data["shared"]["nested"] is not second.data["shared"]["nested"]
    assert first.raw and second.raw  # text made on demand


async def test_more_sessions_than_aiohttp_holds_connections_by_default(client: Any) -> None:
    """105 broadcasters, each with their own token, need 105 sessions (a session serves
    one user). aiohttp's default connector holds at most 100 connections: the sockets
    took them all and the Helix calls waited for one until they timed out."""
    users = [str(5000 + i) for i in range(105)]
    async with EventSubEmulator(ping_interval=None) as emu:
        for user in users:
            emu.add_token(f"t{user}", user, scopes=["bits:read"])
        seen = Recorder(client, "pubsub_bits")
        pool = bridge_pool(client, emu, connect_timeout=5.0, listen_timeout=3.0)
        try:
            await pool.subscribe_topics([tp.bits(f"t{u}")[int(u)] for u in users])
            assert len(pool.nodes) == 105
            assert len(emu.enabled()) == 105
            await emu.trigger("channel.cheer", broadcaster_user_id=users[-1], bits=5)
            assert (await seen.wait("pubsub_bits"))[0].channel_id == int(users[-1])
        finally:
            await pool.close()


async def test_more_creates_than_the_rate_limit_allows_are_paced_not_refused(
    client: Any,
) -> None:
    """60 broadcasters' topics, 10 Helix requests per window: Twitch's 800 a minute,
    scaled down. Every create waits its turn; none is refused for having been told 429
    too often (the whole herd used to retry at each reset, 10 getting through each time,
    and after 4 rounds the rest failed)."""
    users = [str(6000 + i) for i in range(60)]
    async with EventSubEmulator(ping_interval=None, rate_limit=10, rate_window=1.0) as emu:
        for user in users:
            emu.add_token(f"t{user}", user, scopes=["bits:read"])
        seen = Recorder(client, "pubsub_error")
        pool = bridge_pool(client, emu, connect_timeout=30.0, listen_timeout=30.0)
        try:
            await pool.subscribe_topics([tp.bits(f"t{u}")[int(u)] for u in users])
            assert len(emu.enabled()) == 60
            assert seen.events["pubsub_error"] == []
        finally:
            await pool.close()
