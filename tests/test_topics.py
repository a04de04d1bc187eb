"""Unit tests for topics and the factories."""

from __future__ import annotations

import pytest

import twitchio_pubsub as tp


@pytest.mark.parametrize(
    ("topic", "present"),
    [
        (tp.bits("t")[1], "channel-bits-events-v2.1"),
        (tp.bits_v1("t")[1], "channel-bits-events-v1.1"),
        (tp.bits_badge("t")[2], "channel-bits-badge-unlocks.2"),
        (tp.channel_points("t")[3], "channel-points-channel-v1.3"),
        (tp.channel_subscriptions("t")[4], "channel-subscribe-events-v1.4"),
        (tp.whispers("t")[5], "whispers.5"),
        (tp.moderation_user_action("t")[12345][67890], "chat_moderator_actions.67890.12345"),
        (tp.automod_queue("t")[12345][67890], "automod-queue.67890.12345"),
        (tp.user_moderation_notifications("t")[1][2], "user-moderation-notifications.2.1"),
        (tp.low_trust_users("t")[1][2], "low-trust-users.2.1"),
    ],
)
def test_factories_render_wire_topics(topic: tp.Topic, present: str) -> None:
    assert topic.present == present
    assert topic.token == "t"


def test_incomplete_topic_has_no_present() -> None:
    topic = tp.moderation_user_action("t")[1]
    assert topic.present is None
    assert topic.args == [1]
    assert "missing=moderator_id" in repr(topic)


def test_indexing_returns_a_new_topic() -> None:
    base = tp.bits("t")
    a, b = base[1], base[2]
    assert base.args == []
    assert (a.present, b.present) == ("channel-bits-events-v2.1", "channel-bits-events-v2.2")


def test_equality_and_hash_follow_present() -> None:
    a = tp.bits("token-a")[1]
    b = tp.bits("token-b")[1]
    assert a == b and hash(a) == hash(b)
    assert a != tp.bits("token-a")[2]
    assert len({a, b, tp.bits_v1("x")[1]}) == 2
    assert a != "channel-bits-events-v2.1"


@pytest.mark.parametrize("bad", ["12345", 1.5, None, True, [1]])
def test_non_integer_id_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"channel-bits-events-v2.*channel_id"):
        tp.bits("t")[bad]  # type: ignore[index]


def test_too_many_ids_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"whispers\.1.*1 id"):
        tp.whispers("t")[1][2]
    with pytest.raises(ValueError, match="moderator_id"):
        tp.moderation_user_action("t")[1][2][3]


def test_negative_id_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        tp.bits("t")[-1]


@pytest.mark.parametrize(
    ("token", "exc"), [(None, TypeError), (123, TypeError), ("", ValueError), ("  ", ValueError)]
)
def test_bad_tokens(token: object, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        tp.bits(token)  # type: ignore[arg-type]


def test_oauth_prefix_is_stripped_and_token_never_in_repr() -> None:
    topic = tp.bits("oauth:s3cret")[1]
    assert topic.token == "s3cret"
    assert "s3cret" not in repr(topic)
    assert repr(topic) == "<Topic channel-bits-events-v2.1>"


def test_with_token_copies() -> None:
    topic = tp.bits("old")[1]
    fresh = topic.with_token("new")
    assert fresh == topic and fresh.token == "new" and topic.token == "old"


def test_custom_topic() -> None:
    topic = tp.Topic("hype-train-events-v1.{0}", ["channel_id"])
    topic.token = "t"
    assert topic[9].present == "hype-train-events-v1.9"
    assert topic.family == "hype-train-events-v1"
