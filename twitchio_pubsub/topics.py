"""Topics and the factories that build them.

A factory is called with a user OAuth token and then indexed with ids, channel first::

    topic = bits(user_token)[channel_id]
    topic = moderation_user_action(user_token)[channel_id][moderator_id]

Two-id topics are rendered in Twitch's wire order, which puts the moderator (or chatter)
before the channel: ``chat_moderator_actions.<moderator_id>.<channel_id>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Protocol, cast

__all__ = (
    "Topic",
    "automod_queue",
    "bits",
    "bits_badge",
    "bits_v1",
    "channel_points",
    "channel_subscriptions",
    "low_trust_users",
    "moderation_user_action",
    "user_moderation_notifications",
    "whispers",
)


class Topic:
    """Represents a PubSub topic.

    Do not create these by hand for documented topics: use the factories such as
    :func:`bits`. Indexing a topic (``topic[12345]``) returns a new topic with one more
    id filled in; the original is left untouched.

    Parameters
    ----------
    topic: :class:`str`
        The topic template, with ``{0}``, ``{1}`` standing for the ids in the order
        they are indexed, e.g. ``"chat_moderator_actions.{1}.{0}"``.
    args: Sequence[:class:`str`]
        A name for each id, in indexing order (used in error messages), e.g.
        ``["channel_id", "moderator_id"]``.

    Attributes
    ----------
    token: Optional[:class:`str`]
        The OAuth token used to authorize this topic. It may be replaced, for example
        in :meth:`PubSubPool.auth_fail_hook`; it never appears in ``repr()``.
    args: List[:class:`int`]
        The ids given so far, in indexing order.
    """

    __slots__ = ("_names", "_template", "args", "token")

    def __init__(self, topic: str, args: Sequence[str]) -> None:
        if not isinstance(topic, str) or not topic:
            raise TypeError("topic must be a non-empty template string")
        self._template = topic
        self._names: tuple[str, ...] = tuple(str(a) for a in args)
        self.token: str | None = None
        self.args: list[int] = []

    @property
    def family(self) -> str:
        """The topic's family: the part of the wire string before the first dot."""
        return self._template.split(".", 1)[0]

    @property
    def present(self) -> str | None:
        """The websocket-ready topic string, or ``None`` while ids are still missing."""
        if len(self.args) != len(self._names):
            return None
        return self._template.format(*self.args)

    def _copy(self) -> Topic:
        new = Topic.__new__(Topic)
        new._template = self._template
        new._names = self._names
        new.token = self.token
        new.args = list(self.args)
        return new

    def copy(self) -> Topic:
        """Return an independent copy of this topic (same ids, same token).

        ``twitchio.ext.pubsub``'s ``Topic.copy()`` returned a topic with neither ids
        nor token; this one copies them too.
        """
        return self._copy()

    def with_token(self, token: str) -> Topic:
        """Return a copy of this topic that uses ``token``."""
        new = self._copy()
        new.token = _check_token(token)
        return new

    def __getitem__(self, item: int) -> Topic:
        name = self.present or self._template
        if len(self.args) >= len(self._names):
            raise ValueError(
                f"topic {name!r} takes {len(self._names)} id(s) "
                f"({', '.join(self._names)}); got an extra id {item!r}"
            )
        expected = self._names[len(self.args)]
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(
                f"topic {self.family!r} expects {expected} as an int, "
                f"got {type(item).__name__} {item!r}"
            )
        if item < 0:
            raise ValueError(f"topic {self.family!r}: {expected} must not be negative")
        new = self._copy()
        new.args.append(item)
        return new

    def _key(self) -> Any:
        present = self.present
        return present if present is not None else (self._template, tuple(self.args))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topic):
            return NotImplemented
        return bool(self._key() == other._key())

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        present = self.present
        if present is None:
            missing = ", ".join(self._names[len(self.args) :])
            return f"<Topic {self._template} args={self.args} missing={missing}>"
        return f"<Topic {present}>"


def _check_token(token: object) -> str:
    if not isinstance(token, str):
        raise TypeError(f"the OAuth token must be a str, not {type(token).__name__}")
    token = token.strip()
    if token.startswith("oauth:"):
        token = token[len("oauth:") :]
    if not token:
        raise ValueError("the OAuth token must not be empty")
    return token


def _factory(template: str, names: Sequence[str], oauth_token: str) -> Topic:
    topic = Topic(template, names)
    topic.token = _check_token(oauth_token)
    return topic


class TopicFactory(Protocol):
    """A topic factory such as :func:`bits`: call it with a token, index the result."""

    def __call__(self, oauth_token: str) -> Topic: ...

    def copy(self) -> TopicFactory:
        """Return the factory itself: factories hold no state (``twitchio.ext.pubsub``'s
        factory objects had this method)."""
        ...


def _copyable(function: Callable[[str], Topic]) -> TopicFactory:
    # The reference's factories were objects with a ``copy()``; code calls it.
    factory = cast(TopicFactory, function)
    function.copy = lambda: factory  # type: ignore[attr-defined]
    return factory


@_copyable
def bits(oauth_token: str) -> Topic:
    """Cheers in a channel (``channel-bits-events-v2``); scope ``bits:read``.

    Index with the channel id: ``bits(token)[channel_id]``. Dispatches the
    ``pubsub_bits`` event with a :class:`PubSubBitsMessage`; anonymous cheers included.
    """
    return _factory("channel-bits-events-v2.{0}", ["channel_id"], oauth_token)


@_copyable
def bits_v1(oauth_token: str) -> Topic:
    """Cheers on the older ``channel-bits-events-v1`` topic; scope ``bits:read``.

    Index with the channel id. Anonymous cheers are not sent on this version.
    Dispatches ``pubsub_bits`` with a :class:`PubSubBitsMessage`.
    """
    return _factory("channel-bits-events-v1.{0}", ["channel_id"], oauth_token)


@_copyable
def bits_badge(oauth_token: str) -> Topic:
    """Bits badge unlocks that users share in chat; scope ``bits:read``.

    Index with the channel id. Dispatches ``pubsub_bits_badge`` with a
    :class:`PubSubBitsBadgeMessage`.
    """
    return _factory("channel-bits-badge-unlocks.{0}", ["channel_id"], oauth_token)


@_copyable
def channel_points(oauth_token: str) -> Topic:
    """Channel points redemptions; scope ``channel:read:redemptions``.

    Index with the channel id. Dispatches ``pubsub_channel_points`` with a
    :class:`PubSubChannelPointsMessage`.
    """
    return _factory("channel-points-channel-v1.{0}", ["channel_id"], oauth_token)


@_copyable
def channel_subscriptions(oauth_token: str) -> Topic:
    """Subscriptions, resubscriptions and gifts; scope ``channel:read:subscriptions``.

    Index with the channel id. Dispatches ``pubsub_subscription`` with a
    :class:`PubSubChannelSubscribe`.
    """
    return _factory("channel-subscribe-events-v1.{0}", ["channel_id"], oauth_token)


@_copyable
def moderation_user_action(oauth_token: str) -> Topic:
    """Moderator actions in a channel; scope ``channel:moderate``.

    Index with the channel id, then the moderator's (or your own) user id:
    ``moderation_user_action(token)[channel_id][moderator_id]``; the wire topic is
    ``chat_moderator_actions.<moderator_id>.<channel_id>``. Dispatches
    ``pubsub_moderation``.
    """
    return _factory("chat_moderator_actions.{1}.{0}", ["channel_id", "moderator_id"], oauth_token)


@_copyable
def whispers(oauth_token: str) -> Topic:
    """Whispers received by a user; scope ``whispers:read``.

    Index with the receiving user's id. Dispatches ``pubsub_whisper`` with a
    :class:`PubSubWhisperMessage`.
    """
    return _factory("whispers.{0}", ["user_id"], oauth_token)


@_copyable
def automod_queue(oauth_token: str) -> Topic:
    """Messages held by AutoMod, as moderators see them; scope ``channel:moderate``.

    Index with the channel id, then the moderator id; the wire topic is
    ``automod-queue.<moderator_id>.<channel_id>``. Dispatches ``pubsub_automod_queue``.
    """
    return _factory("automod-queue.{1}.{0}", ["channel_id", "moderator_id"], oauth_token)


@_copyable
def user_moderation_notifications(oauth_token: str) -> Topic:
    """What happened to the listening user's own held messages; scope ``chat:read``.

    Index with the channel id, then the user's own id; the wire topic is
    ``user-moderation-notifications.<user_id>.<channel_id>``. Dispatches
    ``pubsub_user_moderation_notification``.
    """
    return _factory("user-moderation-notifications.{1}.{0}", ["channel_id", "user_id"], oauth_token)


@_copyable
def low_trust_users(oauth_token: str) -> Topic:
    """Suspicious-user treatment changes and their messages; scope ``channel:moderate``.

    Index with the channel id, then the moderator id; the wire topic is
    ``low-trust-users.<moderator_id>.<channel_id>`` (the order Twitch really used).
    Dispatches ``pubsub_low_trust_user``.
    """
    return _factory("low-trust-users.{1}.{0}", ["channel_id", "moderator_id"], oauth_token)
