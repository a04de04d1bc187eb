"""Fast unit tests of the EventSub bridge's pure layers: mapping, planner, settings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import twitchio_pubsub as tp
from twitchio_pubsub.eventsub.mapping import (
    FAMILIES,
    Part,
    required_user,
    subscriptions_for,
    token_problem,
    translate,
)
from twitchio_pubsub.eventsub.types import SUBSCRIPTION_TYPES
from twitchio_pubsub.models.base import parse_message
from twitchio_pubsub.planner import plan_weighted

from .eventsub_helpers import EVENTSUB_SAMPLES

#: The topic each mapped sample is served on, and the PubSub event it must become.
SERVED = {
    "channel.cheer": ("channel-bits-events-v2.1337", "pubsub_bits"),
    "channel.chat.notification": ("channel-bits-badge-unlocks.1337", "pubsub_bits_badge"),
    "channel.channel_points_custom_reward_redemption.add": (
        "channel-points-channel-v1.1337", "pubsub_channel_points"),
    "channel.channel_points_custom_reward_redemption.update": (
        "channel-points-channel-v1.1337", "pubsub_channel_points"),
    "channel.channel_points_custom_reward.update": (
        "channel-points-channel-v1.1337", "pubsub_channel_points"),
    "channel.subscribe": ("channel-subscribe-events-v1.1337", "pubsub_subscription"),
    "channel.subscription.message": ("channel-subscribe-events-v1.1337", "pubsub_subscription"),
    "channel.moderate": ("chat_moderator_actions.1338.1337", "pubsub_moderation"),
    "user.whisper.message": ("whispers.4242", "pubsub_whisper"),
    "automod.message.hold": ("automod-queue.1338.1337", "pubsub_automod_queue"),
    "automod.message.update": ("automod-queue.1338.1337", "pubsub_automod_queue"),
    "channel.chat.user_message_hold": (
        "user-moderation-notifications.9001.1337", "pubsub_user_moderation_notification"),
    "channel.chat.user_message_update": (
        "user-moderation-notifications.9001.1337", "pubsub_user_moderation_notification"),
    "channel.suspicious_user.message": ("low-trust-users.1338.1337", "pubsub_low_trust_user"),
    "channel.suspicious_user.update": ("low-trust-users.1338.1337", "pubsub_low_trust_user"),
}  # fmt: skip

STAMP = "2025-03-02T18:04:05.123456789Z"
MOD_CONDITION = {"broadcaster_user_id": "5", "moderator_user_id": "7"}


def frame(sample: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "message_id": "m-1",
            "message_type": "notification",
            "message_timestamp": STAMP,
            "subscription_type": sample["subscription_type"],
            "subscription_version": sample["version"],
        },
        "payload": {"subscription": {"id": "s-1"}, "event": sample["event"]},
    }


def _mapped_samples() -> list[str]:
    names = []
    for path in sorted(EVENTSUB_SAMPLES.glob("*.json")):
        if not path.name.startswith("_"):
            sample = json.loads(path.read_text())
            # Chat notifications serve only the bits-badge topic (subscriptions use
            # channel.subscribe and channel.subscription.message, as PubSub's scope did).
            notice = sample["event"].get("notice_type", "bits_badge_tier")
            if sample["subscription_type"] in SERVED and notice == "bits_badge_tier":
                names.append(path.name)
    return names


@pytest.mark.parametrize("name", _mapped_samples())
async def test_every_mapped_sample_becomes_its_pubsub_event(client: Any, name: str) -> None:
    sample = json.loads((EVENTSUB_SAMPLES / name).read_text())
    key, event = SERVED[sample["subscription_type"]]
    messages = translate(key, frame(sample))
    assert messages, name
    for message in messages:
        got, model = parse_message(client, key, json.dumps(message))
        assert got == event
        assert isinstance(model, tp.PubSubMessage)


def test_the_families_use_only_known_types() -> None:
    for pairs in FAMILIES.values():
        for pair in pairs:
            assert pair in SUBSCRIPTION_TYPES


@pytest.mark.parametrize(
    ("key", "user", "parts"),
    [
        ("channel-bits-events-v2.5", "5", [("channel.cheer", "1", {"broadcaster_user_id": "5"})]),
        ("channel-bits-badge-unlocks.5", "9", [("channel.chat.notification", "1",
                                               {"broadcaster_user_id": "5", "user_id": "9"})]),
        ("chat_moderator_actions.7.5", "7", [("channel.moderate", "2", MOD_CONDITION)]),
        ("user-moderation-notifications.9.5", "9", [
            ("channel.chat.user_message_hold", "1", {"broadcaster_user_id": "5", "user_id": "9"}),
            ("channel.chat.user_message_update", "1", {"broadcaster_user_id": "5", "user_id": "9"}),
        ]),
        ("whispers.9", "9", [("user.whisper.message", "1", {"user_id": "9"})]),
    ],
)  # fmt: skip
def test_subscriptions_for(
    key: str, user: str, parts: list[tuple[str, str, dict[str, str]]]
) -> None:
    got = subscriptions_for(key, user)
    assert [(p.type, p.version, dict(p.condition)) for p in got] == parts
    assert got[0].body("sess")["transport"] == {"method": "websocket", "session_id": "sess"}


def test_required_user_is_the_first_id_on_the_wire() -> None:
    assert required_user("chat_moderator_actions.7.5") == "7"
    assert required_user("channel-points-channel-v1.5") == "5"
    assert required_user("channel-bits-badge-unlocks.5") is None
    with pytest.raises(ValueError, match="no EventSub counterpart"):
        subscriptions_for("video-playback.5", "5")


def test_token_problem_names_user_or_scope() -> None:
    assert token_problem("whispers.9", "9", ["user:read:whispers"]) is None
    assert "needs a token of user 9" in str(token_problem("whispers.9", "8", []))
    problem = token_problem("automod-queue.7.5", "7", ["channel:moderate"])
    assert problem == "the token lacks scope moderator:manage:automod"


def test_anonymous_cheer_is_not_sent_on_the_v1_topic() -> None:
    sample = json.loads((EVENTSUB_SAMPLES / "channel.cheer.v1.anonymous.json").read_text())
    assert translate("channel-bits-events-v1.1337", frame(sample)) == []
    [v2] = translate("channel-bits-events-v2.1337", frame(sample))
    assert v2["data"]["is_anonymous"] is True and "user_id" not in v2["data"]


def test_timeout_seconds_come_from_the_expiry() -> None:
    sample = json.loads((EVENTSUB_SAMPLES / "channel.moderate.v1.json").read_text())
    [message] = translate("chat_moderator_actions.1338.1337", frame(sample))
    assert message["data"]["args"] == ["cheery_viewer", "600", "spam"]


def test_non_badge_chat_notifications_and_shared_chat_copies_are_dropped() -> None:
    sample = json.loads((EVENTSUB_SAMPLES / "channel.chat.notification.v1.resub.json").read_text())
    assert translate("channel-bits-badge-unlocks.1337", frame(sample)) == []
    badge = json.loads(
        (EVENTSUB_SAMPLES / "channel.chat.notification.v1.bits_badge_tier.json").read_text()
    )
    badge["event"]["source_broadcaster_user_id"] = "4444"
    assert translate("channel-bits-badge-unlocks.1337", frame(badge)) == []


def test_a_malformed_notification_raises_for_the_caller_to_report() -> None:
    with pytest.raises(KeyError):
        translate("whispers.1", {"metadata": {}, "payload": {}})
    with pytest.raises(TypeError):
        translate(
            "whispers.1",
            {"metadata": {"subscription_type": "x"}, "payload": {"event": "not an object"}},
        )


def test_part_is_hashable_and_knows_its_rules() -> None:
    part = subscriptions_for("channel-bits-events-v2.5", "5")[0]
    assert part == Part("channel.cheer", "1", (("broadcaster_user_id", "5"),))
    assert {part: 1}[part] == 1
    assert part.spec.token_user == "broadcaster_user_id"


# ---------------------------------------------------------------- planner


def test_plan_weighted_keeps_a_call_together_when_it_fits() -> None:
    assert plan_weighted([5, 10], 1, 10, [3, 3, 3]) == [1, 1, 1]
    assert plan_weighted([5], 1, 10, [3, 3, 3]) == [0, -1, -1]
    assert plan_weighted([0], 0, 10, [1]) is None
    assert plan_weighted([], 3, 10, [11]) is None


@given(
    st.lists(st.integers(0, 300), max_size=3),
    st.integers(0, 3),
    st.lists(st.integers(1, 3), max_size=400),
)
def test_plan_weighted_never_overfills(free: list[int], new: int, weights: list[int]) -> None:
    cap = 300
    spots = plan_weighted(free, new, cap, weights)
    if spots is None:
        return
    used: dict[int, int] = {}
    for spot, weight in zip(spots, weights):
        used[spot] = used.get(spot, 0) + weight
    for spot, total in used.items():
        assert total <= (free[spot] if spot >= 0 else cap)
    assert len({s for s in spots if s < 0}) <= new


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("kw", "error", "text"),
    [
        ({"transport": "irc"}, ValueError, "unknown transport 'irc'"),
        ({"transport": "eventsub", "endpoint": "ws://x"}, ValueError, "give eventsub_url"),
        ({"transport": "eventsub", "keepalive_timeout": 5}, ValueError, "from 10 to 600"),
        ({"transport": "eventsub", "keepalive_timeout": 10.5}, TypeError, "must be an int"),
        ({"transport": "eventsub", "keepalive_margin": 0}, ValueError, "keepalive_margin"),
        ({"transport": "eventsub", "validate_interval": -1}, ValueError, "validate_interval"),
        ({"transport": "eventsub", "helix_url": ""}, TypeError, "helix_url"),
    ],
)
async def test_bridge_settings_are_checked(client: Any, kw: dict, error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        tp.PubSubPool(client, **kw)


async def test_topics_without_an_eventsub_counterpart_are_refused(client: Any) -> None:
    from twitchio_pubsub.topics import Topic

    odd = Topic("video-playback.{0}", ["channel_id"])[5]
    odd.token = "t"
    pool = tp.PubSubPool(client, transport="eventsub", eventsub_url="ws://127.0.0.1:9/ws")
    with pytest.raises(ValueError, match="no EventSub counterpart"):
        await pool.subscribe_topics([odd])
    assert pool.transport == "eventsub" and "eventsub" in repr(pool)
    await pool.close()


def test_the_eventsub_docs_page_lists_every_type_and_scope() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "eventsub.rst").read_text()
    flat = " ".join(page.split())
    for pairs in FAMILIES.values():
        for type_, version in pairs:
            assert f"``{type_}`` v{version}" in flat, type_
            for group in SUBSCRIPTION_TYPES[(type_, version)].scopes:
                assert any(f"``{scope}``" in flat for scope in group), (type_, group)


def test_scopes_for_lists_the_read_form_of_each_group() -> None:
    from twitchio_pubsub.eventsub.mapping import scopes_for

    assert scopes_for("whispers") == ["user:read:whispers"]
    assert scopes_for("channel-bits-events-v2", "channel-bits-events-v1") == ["bits:read"]
    moderation = scopes_for("chat_moderator_actions")
    assert len(moderation) == 8 and "moderator:read:warnings" in moderation
    assert token_problem("chat_moderator_actions.7.5", "7", moderation) is None


def test_rate_bucket_paces_by_the_headers_and_refills_once_per_window() -> None:
    import time

    from twitchio_pubsub.eventsub.helix import _RateBucket

    now = time.time()
    rate = _RateBucket()
    rate.update("800", "2", str(now + 30))
    assert rate.known and rate.limit == 800 and rate.remaining == 2
    assert rate.wait(now) == 0 and rate.wait(now) == 0  # two slots left: taken
    assert rate.wait(now) == pytest.approx(30, abs=0.01)  # none: until the reset
    # A late answer of this window with a higher count does not give slots back.
    rate.update("800", "5", str(now + 30))
    assert rate.remaining == 0
    # The window ends: one refill to the limit, then the answers tell the new window.
    later = now + 31
    assert rate.wait(later) == 0 and rate.remaining == 799
    rate.update("800", "100", str(later + 20))  # another process used most of it
    assert rate.remaining == 100 and rate.reset == pytest.approx(later + 20, abs=0.01)
    rate.update("800", "790", str(now + 30))  # a late answer from the old window
    assert rate.remaining == 100
    # A 429 empties the bucket until the reset it names (a second when it names none).
    rate.exhausted(None)
    assert rate.remaining == 0 and rate.wait(time.time()) > 0


@given(st.lists(st.tuples(st.integers(0, 900), st.integers(-5, 120)), max_size=30))
def test_rate_bucket_never_lets_more_out_than_a_header_allowed(
    answers: list[tuple[int, int]],
) -> None:
    import time

    from twitchio_pubsub.eventsub.helix import _RateBucket

    rate = _RateBucket()
    now = time.time()
    most = 0
    for left, ends_in in answers:
        rate.update("800", str(left), str(now + ends_in))
        most = max(most, min(left, 800))
        assert rate.remaining is None or 0 <= rate.remaining <= most
        if rate.remaining is not None and rate.remaining > 0:
            before = rate.remaining
            assert rate.wait(now) == 0 and rate.remaining == before - 1
