"""Every captured or documented sample, published by the emulator, becomes the right model."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

import pytest
import twitchio

import twitchio_pubsub as tp
import twitchio_pubsub.models
from twitchio_pubsub.emulator import PubSubEmulator

from .conftest import FAST, SAMPLES_DIR, Recorder, load_samples

UTC = timezone.utc
P = "pubsub_"

# file -> (event, model class, {dotted attribute: expected value})
EXPECTED: dict[str, tuple[str, type, dict[str, Any]]] = {
    "automod-queue.allowed-with-mention.json": (
        P + "automod_queue",
        tp.PubSubAutoModQueueMessage,
        {
            "status": "ALLOWED",
            "category": "aggression",
            "level": 1,
            "message_id": "87b2ae08-ac64-43e7-b2b7-28ae168e00ce",
            "sender.id": 1234,
            "sender.name": "justintvfan",
            "sender_display_name": "justintvfan",
            "sender_color": "#DAA520",
            "resolver.id": 27620241,
            "resolver.name": "emilgardis",
            "channel_id": 27620241,
            "moderator_id": 27620241,
            "len(fragments)": 4,
            "len(sender_badges)": 2,
            "sent_at": datetime(2021, 6, 27, 19, 28, 48, 747156, UTC),
        },
    ),
    "automod-queue.allowed.json": (
        P + "automod_queue",
        tp.PubSubAutoModQueueMessage,
        {
            "status": "ALLOWED",
            "category": "sexwords",
            "level": 3,
            "content": "vagina",
            "resolver.name": "testaccount_420",
            "sender.id": 99631238,
        },
    ),
    "automod-queue.denied.json": (
        P + "automod_queue",
        tp.PubSubAutoModQueueMessage,
        {
            "status": "DENIED",
            "category": "swearing",
            "level": 2,
            "content": "fuck you xd",
            "sender.name": "prettyb0i_swe",
            "sender_color": None,
            "sender_badges": [],
        },
    ),
    "automod-queue.documented-2021.json": (
        P + "automod_queue",
        tp.PubSubAutoModQueueMessage,
        {
            "status": "PENDING",
            "category": "swearing",
            "level": 2,
            "content": "a bad word",
            "message_id": "some-automod-caught-message-id",
            "sender.id": 559969259,
            "resolver": None,
        },
    ),
    "automod-queue.json": (
        P + "automod_queue",
        tp.PubSubAutoModQueueMessage,
        {
            "status": "PENDING",
            "category": "misogyny",
            "level": 2,
            "content": "kurwa",
            "resolver": None,
            "reason_code": "",
            "sent_at.year": 2022,
        },
    ),
    "automod-queue.non-broadcaster-language.json": (
        P + "automod_queue",
        tp.PubSubAutoModQueueMessage,
        {
            "status": "PENDING",
            "category": "homophobia",
            "level": 1,
            "sender.name": "justinfan123",
        },
    ),
    "channel-bits-badge-unlocks.documented.json": (
        P + "bits_badge",
        tp.PubSubBitsBadgeMessage,
        {
            "user.id": 232889822,
            "user.name": "willowolf",
            "channel_id": 401394874,
            "channel.name": "fun_test12345",
            "badge_tier": 1000,
            "message": "this should be received by the public pubsub listener",
            "timestamp": datetime(2020, 12, 6, 0, 1, 43, 712531, UTC),
        },
    ),
    "channel-bits-badge-unlocks.json": (
        P + "bits_badge",
        tp.PubSubBitsBadgeMessage,
        {
            "user.id": 1234,
            "user.name": "tmi",
            "channel_id": 12345,
            "badge_tier": 25000,
            "message": "All the bits was for this. Worth it.",
        },
    ),
    "channel-bits-events-v1.documented.json": (
        P + "bits",
        tp.PubSubBitsMessage,
        {
            "bits_used": 10000,
            "total_bits_used": 25000,
            "channel_id": 44322889,
            "user.id": 129454141,
            "user.name": "dallasnchains",
            "badge_entitlement.new": 25000,
            "badge_entitlement.old": 10000,
            "message.content": "cheer10000 New badge hype!",
            "version": "1.0",
            "is_anonymous": False,
            "timestamp": datetime(2017, 2, 9, 13, 23, 58, 168000, UTC),
        },
    ),
    "channel-bits-events-v1.json": (
        P + "bits",
        tp.PubSubBitsMessage,
        {
            "bits_used": 1,
            "user.name": "bbaper",
            "badge_entitlement": None,
            "message.id": "540ee281-2f64-5463-ae85-ca79a6126037",
            "message.type": "bits_event",
        },
    ),
    "channel-bits-events-v2.captured-2021.json": (
        P + "bits",
        tp.PubSubBitsMessage,
        {
            "bits_used": 244,
            "total_bits_used": 2400,
            "user.name": "sir_klausi",
            "user.id": 209386371,
            "channel_id": 474725923,
            "channel_name": "togglebit",
        },
    ),
    "channel-bits-events-v2.documented.json": (
        P + "bits",
        tp.PubSubBitsMessage,
        {
            "bits_used": 10000,
            "is_anonymous": True,
            "user": None,
            "channel_id": 46024993,
        },
    ),
    "channel-bits-events-v2.json": (
        P + "bits",
        tp.PubSubBitsMessage,
        {
            "bits_used": 5,
            "user.id": 12345,
            "user.name": "justintv",
            "channel_id": 1234,
            "message.content": "Corgo1 Corgo1 Corgo1 Corgo1 Corgo1",
            "timestamp": datetime(2020, 10, 19, 17, 50, 24, 807841, UTC),
        },
    ),
    "channel-points-channel-v1.custom-reward-updated.undocumented.json": (
        P + "channel_points",
        tp.PubSubCustomRewardUpdate,
        {
            "reward.title": "Up the difficulty ",
            "reward.cost": 20000,
            "channel_id": 27620241,
            "reward.paused": True,
        },
    ),
    "channel-points-channel-v1.redemption-status-update.undocumented.json": (
        P + "channel_points",
        tp.PubSubChannelPointsRedemptionUpdate,
        {
            "status": "ACTION_TAKEN",
            "input": "a",
            "user.name": "emilgardis",
            "reward.title": "Hydration",
            "id": "844fff0c-6185-44c7-8c30-3d68a565fe1b",
        },
    ),
    "channel-points-channel-v1.reward-redeemed.documented.json": (
        P + "channel_points",
        tp.PubSubChannelPointsMessage,
        {
            "id": "9203c6f0-51b6-4d1d-a9ae-8eafdb0d6d47",
            "user.id": 30515034,
            "user.name": "davethecust",
            "input": "yeooo",
            "status": "FULFILLED",
            "reward.title": "hit a gleesh walk on stream",
            "reward.cost": 10,
            "reward.input_required": True,
            "channel_id": 30515034,
            "timestamp": datetime(2019, 11, 12, 1, 29, 34, 983297, UTC),
        },
    ),
    "channel-points-channel-v1.reward-redeemed.json": (
        P + "channel_points",
        tp.PubSubChannelPointsMessage,
        {
            "id": "b021f290-bedb-49c2-b90f-e6ceb1c0d4ab",
            "input": "bap",
            "status": "UNFULFILLED",
            "reward.cost": 2000,
            "reward.title": "Hydration",
            "user.id": 27620241,
            "reward.image": "https://static-cdn.jtvnw.net/custom-reward-images/default-1.png",
        },
    ),
    "channel-points-channel-v1.reward-redeemed.no-user-input.json": (
        P + "channel_points",
        tp.PubSubChannelPointsMessage,
        {
            "input": None,
            "status": "UNFULFILLED",
            "reward.title": "hydrate! (maybe)",
            "reward.cost": 100,
            "user.name": "togglebit",
            "channel_id": 474725923,
        },
    ),
    "channel-subscribe-events-v1.anonsubgift.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "context": "anonsubgift",
            "user": None,
            "recipient.id": 72902587,
            "recipient.name": "slch000",
            "is_gift": True,
            "months": 3,
            "tier": 1,
            "channel_id": 11148817,
            "channel.name": "pajlada",
            "emotes": None,
        },
    ),
    "channel-subscribe-events-v1.extendsub.undocumented.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "context": "extendsub",
            "user.id": 1234,
            "display_name": "User!",
            "cumulative_months": 5,
        },
    ),
    "channel-subscribe-events-v1.resub.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "context": "resub",
            "user.name": "rotten_pizza",
            "cumulative_months": 24,
            "streak_months": 24,
            "message": "!#playsound cheese pajaCheese",
            "recipient": None,
            "time": datetime(2023, 6, 11, 11, 33, 1, 381805, UTC),
        },
    ),
    "channel-subscribe-events-v1.resub.prime-no-streak.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "sub_plan": "Prime",
            "tier": None,
            "streak_months": None,
            "cumulative_months": 54,
        },
    ),
    "channel-subscribe-events-v1.resub.with-emotes.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "emotes": [
                {"start": 7, "end": 11, "id": "80481"},
                {"start": 26, "end": 33, "id": "303660952"},
            ],
            "message": "forsen pajaW FeelsDankMan m0xyGift",
        },
    ),
    "channel-subscribe-events-v1.resubgift.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "context": "resubgift",
            "recipient": None,
            "recipient_name": "champi70",
            "user.name": "emilgardis",
            "is_gift": True,
            "len(emotes)": 1,
        },
    ),
    "channel-subscribe-events-v1.sub.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "context": "sub",
            "user.id": 1234,
            "cumulative_months": 1,
            "months": 0,
            "is_gift": False,
            "sub_plan_name": "Channel Subscription (emilgardis)",
        },
    ),
    "channel-subscribe-events-v1.subgift.documented.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "context": "subgift",
            "user.name": "tww2",
            "recipient.id": 19571752,
            "months": 9,
            "multi_month_duration": None,
            "time": datetime(2015, 12, 20, 0, 39, 57, tzinfo=UTC),
        },
    ),
    "channel-subscribe-events-v1.subgift.json": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {
            "recipient.name": "ultrainstinctcocabear",
            "user.name": "pajlada",
            "multi_month_duration": 1,
        },
    ),
    "chat_moderator_actions.approve_unban_request.json": (
        P + "moderation",
        tp.PubSubModerationActionBanRequest,
        {
            "action": "APPROVE_UNBAN_REQUEST",
            "args": "ok",
            "moderator_message": "ok",
            "created_by.id": 27620241,
            "created_by.name": "emilgardis",
            "target.id": 465894629,
            "target.name": "emil_the_impostor",
        },
    ),
    "chat_moderator_actions.channel_terms_action.from-automod.json": (
        P + "moderation",
        tp.PubSubModerationActionChannelTerms,
        {
            "type": "add_permitted_term",
            "text": "vagina",
            "from_automod": True,
            "requester.name": "testaccount_420",
            "channel_id": 117166826,
            "expires_at.year": 2022,
        },
    ),
    "chat_moderator_actions.channel_terms_action.json": (
        P + "moderation",
        tp.PubSubModerationActionChannelTerms,
        {
            "type": "delete_blocked_term",
            "id": "41a8f582-4c60-4ca1-aa10-91ec06161118",
            "text": "Hype",
            "requester.id": 27620241,
            "expires_at": None,
            "from_automod": False,
        },
    ),
    "chat_moderator_actions.deny_unban_request.json": (
        P + "moderation",
        tp.PubSubModerationActionBanRequest,
        {
            "action": "DENY_UNBAN_REQUEST",
            "target.name": "emil_the_impostor",
        },
    ),
    "chat_moderator_actions.moderation_action.delete.json": (
        P + "moderation",
        tp.PubSubModerationAction,
        {
            "action": "delete",
            "args": ["tmo", "bop", "e513c02d-dca5-4480-9af5-e6078d954e42"],
            "target.id": 1234,
            "target.name": "tmo",
            "created_by.name": "emilgardis",
            "message_id": None,
            "moderation_type": "chat_login_moderation",
        },
    ),
    "chat_moderator_actions.moderation_action.json": (
        P + "moderation",
        tp.PubSubModerationAction,
        {
            "action": "ban",
            "args": ["1xelerate", ""],
            "target.id": 140114344,
            "target.name": "1xelerate",
            "created_by.id": 117691339,
            "from_automod": False,
            "created_at": datetime(2021, 11, 20, 0, 12, 23, 282996, UTC),
            "channel_id": 117691339,
        },
    ),
    "chat_moderator_actions.moderation_action.modified_automod_properties.json": (
        P + "moderation",
        tp.PubSubModerationAction,
        {
            "action": "modified_automod_properties",
            "args": None,
            "target": None,
            "moderation_type": "chat_channel_moderation",
        },
    ),
    "chat_moderator_actions.moderation_action.slow.json": (
        P + "moderation",
        tp.PubSubModerationAction,
        {
            "action": "slow",
            "args": ["5"],
            "target": None,
            "created_by.name": "tmo",
        },
    ),
    "chat_moderator_actions.moderation_action.targeted-delete-notification.json": (
        P + "moderation",
        tp.PubSubModerationAction,
        {
            "action": "delete_notification",
            "created_by": None,
            "target.id": 27620241,
            "message_id": "b7ffbf8a-ca9f-497e-bc6f-ae0e606e99dc",
            "channel_id": 80525799,
            "moderation_type": "chat_targeted_login_moderation",
        },
    ),
    "chat_moderator_actions.moderation_action.timeout-with-reason.json": (
        P + "moderation",
        tp.PubSubModerationAction,
        {
            "action": "timeout",
            "args": ["doge41732", "5", "This is the reason for the timeout"],
            "target.name": "doge41732",
            "from_automod": False,
            "message_id": None,
        },
    ),
    "chat_moderator_actions.moderation_action.timeout.json": (
        P + "moderation",
        tp.PubSubModerationAction,
        {
            "action": "timeout",
            "args": ["tmo", "1", ""],
            "created_at": None,
        },
    ),
    "chat_moderator_actions.moderation_action.unvip.json": (
        P + "moderation",
        tp.PubSubModerationAction,
        {
            "action": "unvip",
            "target.id": 465894629,
            "target.name": "emil_the_impostor",
        },
    ),
    "chat_moderator_actions.moderator_added.json": (
        P + "moderation",
        tp.PubSubModerationActionModeratorAdd,
        {
            "moderation_action": "mod",
            "target.name": "nightbot",
            "target.id": 19264788,
            "created_by.name": "emilgardis",
            "channel_id": 27620241,
        },
    ),
    "chat_moderator_actions.moderator_removed.json": (
        P + "moderation",
        tp.PubSubModerationActionModeratorRemove,
        {
            "moderation_action": "unmod",
            "target.name": "rewardmore",
            "channel_id": 129546453,
        },
    ),
    "chat_moderator_actions.vip_added.json": (
        P + "moderation",
        tp.PubSubModerationActionVIPAdd,
        {
            "moderation_action": "vip",
            "target.name": "bossquest",
            "created_by.id": 80525799,
        },
    ),
    "low-trust-users.json": (
        P + "low_trust_user",
        tp.PubSubLowTrustUserMessage,
        {
            "target.id": 268669435,
            "updated_by.id": 53888434,
            "treatment": "ACTIVE_MONITORING",
            "types": ["MANUALLY_ADDED"],
            "channel_id": 53888434,
            "low_trust_id": "53888434.268669435",
            "updated_at": datetime(2023, 5, 14, 1, 42, 9, tzinfo=UTC),
            "evaluated_at": None,
            "moderator_id": 53888434,
        },
    ),
    "user-moderation-notifications.json": (
        P + "user_moderation_notification",
        tp.PubSubUserModerationNotification,
        {
            "message_id": "d6f608f8-8f34-4f65-947c-0a92e31b0bfc",
            "status": "PENDING",
            "user_id": 27620241,
            "channel_id": 268131879,
        },
    ),
    "whispers.thread.undocumented.json": (
        P + "whisper",
        tp.PubSubMessage,
        {
            "message_type": "thread",
        },
    ),
    "whispers.whisper_received.documented-2016.json": (
        P + "whisper",
        tp.PubSubWhisperMessage,
        {
            "id": 41,
            "thread_id": "39141793_45963323",
            "content": "hello",
            "user.id": 39141793,
            "user.name": "xangold",
            "recipient.id": 45963323,
            "recipient.name": "xantest",
            "color": "#8A2BE2",
            "len(badges)": 2,
            "timestamp": datetime(2016, 11, 14, 21, 46, 49, tzinfo=UTC),
        },
    ),
    "whispers.whisper_received.json": (
        P + "whisper",
        tp.PubSubWhisperMessage,
        {
            "id": 9042,
            "message_id": "e0e48a09-73f4-41e1-b92a-685776084467",
            "thread_id": "11148817_82008718",
            "content": "me Kappa",
            "user.id": 82008718,
            "user.name": "pajbot",
            "display_name": "pajbot",
            "recipient.id": 11148817,
            "recipient.name": "pajlada",
            "emotes": [{"emote_id": "25", "start": 3, "end": 7}],
            "badges": [],
            "color": "#2E8B57",
            "timestamp": datetime(2022, 4, 16, 12, 45, 46, tzinfo=UTC),
        },
    ),
}


def resolve(obj: Any, path: str) -> Any:
    if path.startswith("len(") and path.endswith(")"):
        return len(resolve(obj, path[4:-1]))
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_sample_has_an_expectation() -> None:
    assert {name for name, _ in load_samples()} == set(EXPECTED)
    assert len(EXPECTED) >= 47


@pytest.fixture
async def sample_pool(emulator: PubSubEmulator) -> Any:
    client = twitchio.Client(token="bot")
    pool = tp.PubSubPool(client, endpoint=emulator.url, **FAST)
    yield client, pool
    await pool.close()


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_sample_through_emulator(
    name: str, emulator: PubSubEmulator, sample_pool: Any
) -> None:
    client, pool = sample_pool
    event, cls, attrs = EXPECTED[name]
    sample = json.loads((SAMPLES_DIR / name).read_text(encoding="utf-8"))
    topic_str: str = sample["topic"]
    family, *ids = topic_str.split(".")
    topic = tp.Topic(
        f"{family}." + ".".join(f"{{{i}}}" for i in range(len(ids))),
        [f"id{i}" for i in range(len(ids))],
    )
    topic.token = "sample-token"
    for value in ids:
        topic = topic[int(value)]
    rec = Recorder(client, event, "pubsub_message", "pubsub_error")
    await pool.subscribe_topics([topic])
    assert await emulator.publish(topic_str, sample["message"]) == 1
    (model,) = await rec.wait(event)
    (generic,) = await rec.wait("pubsub_message")
    # As with twitchio.ext.pubsub: the model shows the family, pubsub_message gets a
    # plain message showing the full topic.
    assert type(generic) is tp.PubSubMessage and generic.topic == topic_str
    assert generic.data == model.data and generic.raw == model.raw
    assert type(model) is cls
    assert model.topic == family and model.full_topic == topic_str
    assert isinstance(model.data, dict)
    for path, expected in attrs.items():
        assert resolve(model, path) == expected, path
    for attr in (
        "user",
        "target",
        "created_by",
        "sender",
        "recipient",
        "requester",
        "resolver",
        "updated_by",
    ):
        value = getattr(model, attr, None)
        assert value is None or isinstance(value, twitchio.PartialUser), attr
    if cls in (
        tp.PubSubChannelPointsMessage,
        tp.PubSubChannelPointsRedemptionUpdate,
        tp.PubSubCustomRewardUpdate,
    ):
        assert isinstance(model.reward, twitchio.CustomReward)
    for attr in ("timestamp", "sent_at", "created_at", "updated_at", "time"):
        value = getattr(model, attr, None)
        assert value is None or (isinstance(value, datetime) and value.tzinfo is not None), attr
    assert type(model).__name__ in repr(model)
    assert not hasattr(model, "__dict__")
    await asyncio.sleep(0)
    assert rec.events["pubsub_error"] == []


TRIGGER_EXPECTED: dict[str, tuple[str, type, dict[str, Any], dict[str, Any]]] = {
    # kind: (event, class, overrides, {attribute: value})
    "bits": (
        P + "bits",
        tp.PubSubBitsMessage,
        {"bits_used": 500},
        {"bits_used": 500, "user.name": "cheerfan"},
    ),
    "bits_v1": (P + "bits", tp.PubSubBitsMessage, {}, {"bits_used": 100, "is_anonymous": False}),
    "bits_badge": (
        P + "bits_badge",
        tp.PubSubBitsBadgeMessage,
        {"badge_tier": 5000},
        {"badge_tier": 5000},
    ),
    "channel_points": (
        P + "channel_points",
        tp.PubSubChannelPointsMessage,
        {"user_input": "hi"},
        {"input": "hi", "reward.title": "Hydrate!"},
    ),
    "subscription": (
        P + "subscription",
        tp.PubSubChannelSubscribe,
        {"cumulative_months": 9},
        {"cumulative_months": 9, "streak_months": 6},
    ),
    "moderation": (
        P + "moderation",
        tp.PubSubModerationAction,
        {},
        {"action": "timeout", "args": ["spammer42", "600", "spamming links"]},
    ),
    "whisper": (
        P + "whisper",
        tp.PubSubWhisperMessage,
        {"body": "psst"},
        {"content": "psst", "recipient.id": 12345},
    ),
    "automod_queue": (
        P + "automod_queue",
        tp.PubSubAutoModQueueMessage,
        {"status": "ALLOWED"},
        {"status": "ALLOWED", "level": 2},
    ),
    "user_moderation_notification": (
        P + "user_moderation_notification",
        tp.PubSubUserModerationNotification,
        {},
        {"status": "DENIED", "channel_id": 12345},
    ),
    "low_trust_user": (
        P + "low_trust_user",
        tp.PubSubLowTrustUserMessage,
        {"treatment": "RESTRICTED"},
        {"treatment": "RESTRICTED", "target.name": "suspicious_user"},
    ),
}


@pytest.mark.parametrize("kind", sorted(TRIGGER_EXPECTED))
async def test_trigger_builders_produce_accepted_payloads(
    kind: str, emulator: PubSubEmulator, sample_pool: Any
) -> None:
    from twitchio_pubsub.emulator import payloads

    client, pool = sample_pool
    event, cls, overrides, attrs = TRIGGER_EXPECTED[kind]
    topic_str = payloads.event_topic(kind, 12345, 67890)
    family, *ids = topic_str.split(".")
    topic = tp.Topic(
        f"{family}." + ".".join(f"{{{i}}}" for i in range(len(ids))), ["a", "b"][: len(ids)]
    )
    topic.token = "t"
    for value in ids:
        topic = topic[int(value)]
    rec = Recorder(client, event, "pubsub_error")
    await pool.subscribe_topics([topic])
    assert await emulator.trigger(kind, 12345, 67890, **overrides) == 1
    (model,) = await rec.wait(event)
    assert type(model) is cls
    for path, expected in attrs.items():
        assert resolve(model, path) == expected, path
    assert rec.events["pubsub_error"] == []


async def test_registry_takes_a_new_family(
    emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twitchio_pubsub.models import base

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setattr(base, "_BY_TOPIC", {})

    class HypeTrain(tp.PubSubMessage):
        __slots__ = ("level",)

        def __init__(self, client: Any, topic: str, data: dict[str, Any]) -> None:
            super().__init__(client, topic, data)
            self.level = data.get("level")

    @tp.models.register("hype-train-events-v1", "pubsub_hype_train")
    def _parse(client: Any, topic: str, data: dict[str, Any]) -> tp.PubSubMessage:
        return HypeTrain(client, topic, data)

    async with PubSubEmulator(extra_topic_patterns=[r"hype-train-events-v1\.\d+"]) as emu:
        client = twitchio.Client(token="bot")
        rec = Recorder(client, "pubsub_hype_train", "pubsub_message")
        async with tp.PubSubPool(client, endpoint=emu.url, **FAST) as pool:
            topic = tp.Topic("hype-train-events-v1.{0}", ["channel_id"])
            topic.token = "t"
            await pool.subscribe_topics([topic[5]])
            await emu.publish("hype-train-events-v1.5", {"level": 3})
            (model,) = await rec.wait("pubsub_hype_train")
            assert isinstance(model, HypeTrain) and model.level == 3
            generic = (await rec.wait("pubsub_message"))[0]
            assert type(generic) is tp.PubSubMessage and generic.topic == "hype-train-events-v1.5"


async def test_unregistered_topic_is_dispatched_as_pubsub_message() -> None:
    async with PubSubEmulator(extra_topic_patterns=[r"video-playback-by-id\.\d+"]) as emu:
        client = twitchio.Client(token="bot")
        rec = Recorder(client, "pubsub_message")
        async with tp.PubSubPool(client, endpoint=emu.url, **FAST) as pool:
            topic = tp.Topic("video-playback-by-id.{0}", ["channel_id"])
            topic.token = "t"
            await pool.subscribe_topics([topic[5]])
            await emu.publish("video-playback-by-id.5", {"type": "viewcount", "viewers": 7})
            (model,) = await rec.wait("pubsub_message")
            assert type(model) is tp.PubSubMessage
            assert model.data == {"type": "viewcount", "viewers": 7}
            assert model.message_type == "viewcount"
