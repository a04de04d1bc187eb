"""Suspicious users: ``low-trust-users.<moderator_id>.<channel_id>``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from twitchio import PartialUser

from .base import (
    PubSubMessage,
    list_of,
    make_user,
    register,
    to_datetime,
    to_dict,
    to_int,
    to_str,
    topic_ids,
)

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubLowTrustUserMessage", "PubSubLowTrustUserNewMessage")


class PubSubLowTrustUserMessage(PubSubMessage):
    """A user's low-trust treatment changed (``low_trust_user_treatment_update``).

    Dispatched as ``pubsub_low_trust_user``.

    Attributes
    ----------
    target: Optional[:class:`twitchio.PartialUser`]
        The suspicious user.
    updated_by: Optional[:class:`twitchio.PartialUser`]
        The moderator who changed the treatment.
    treatment: :class:`str`
        ``NO_TREATMENT``, ``ACTIVE_MONITORING`` or ``RESTRICTED``.
    types: List[:class:`str`]
        Why the user is low-trust, e.g. ``MANUALLY_ADDED``, ``BAN_EVADER``.
    channel_id: :class:`int`
        The channel concerned.
    updated_at: Optional[:class:`datetime.datetime`]
        When the treatment changed.
    low_trust_id: :class:`str`
        ``<channel_id>.<user_id>``.
    ban_evasion_evaluation: :class:`str`
        Twitch's ban evasion verdict (may be empty).
    evaluated_at: Optional[:class:`datetime.datetime`]
        When that verdict was made.
    moderator_id: Optional[:class:`int`]
        The listening moderator (from the topic).
    """

    __slots__ = (
        "ban_evasion_evaluation",
        "channel_id",
        "evaluated_at",
        "low_trust_id",
        "moderator_id",
        "target",
        "treatment",
        "types",
        "updated_at",
        "updated_by",
    )

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        self._fill(client, topic, to_dict(data.get("data")))

    def _fill(self, client: Client, topic: str, inner: dict[str, Any]) -> None:
        updated_by = to_dict(inner.get("updated_by"))
        self.updated_by: Optional[PartialUser] = make_user(
            client, updated_by.get("id"), updated_by.get("login")
        )
        self.target: Optional[PartialUser] = make_user(
            client, inner.get("target_user_id"), inner.get("target_user")
        )
        self.treatment: str = to_str(inner.get("treatment")) or ""
        types = inner.get("types")
        self.types: list[str] = list_of(types, str)
        self.moderator_id, topic_channel = topic_ids(topic)
        channel = to_int(inner.get("channel_id"))
        self.channel_id: int = channel if channel is not None else topic_channel
        self.updated_at: Optional[datetime] = to_datetime(inner.get("updated_at"))
        self.low_trust_id: str = to_str(inner.get("low_trust_id")) or ""
        self.ban_evasion_evaluation: str = to_str(inner.get("ban_evasion_evaluation")) or ""
        evaluated = to_datetime(inner.get("evaluated_at"))
        # Twitch sends 0001-01-01 for "never evaluated".
        self.evaluated_at: Optional[datetime] = (
            evaluated if evaluated and evaluated.year > 1 else None
        )

    def __repr__(self) -> str:
        target = self.target.name if self.target else None
        return (
            f"<{type(self).__name__} channel_id={self.channel_id} target={target!r} "
            f"treatment={self.treatment!r}>"
        )


class PubSubLowTrustUserNewMessage(PubSubLowTrustUserMessage):
    """A monitored or restricted user sent a message (``low_trust_user_new_message``).

    Has the attributes of :class:`PubSubLowTrustUserMessage` (read from the payload's
    ``low_trust_user`` object, :attr:`target` being the sender) and:

    Attributes
    ----------
    message_id: :class:`str`
        The chat message's id.
    content: :class:`str`
        The chat message's text.
    sent_at: Optional[:class:`datetime.datetime`]
        When it was sent.
    """

    __slots__ = ("content", "message_id", "sent_at")

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        PubSubMessage.__init__(self, client, topic, data)
        inner = to_dict(data.get("data"))
        user = dict(to_dict(inner.get("low_trust_user")))
        sender = to_dict(user.get("sender"))
        user.setdefault("target_user_id", sender.get("user_id") or user.get("id"))
        user.setdefault("target_user", sender.get("login"))
        self._fill(client, topic, user)
        content = to_dict(inner.get("message_content"))
        self.message_id: str = to_str(inner.get("message_id")) or ""
        self.content: str = to_str(content.get("text")) or ""
        self.sent_at: Optional[datetime] = to_datetime(inner.get("sent_at"))


@register("low-trust-users", "pubsub_low_trust_user")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    kind = data.get("type")
    if kind == "low_trust_user_treatment_update":
        return PubSubLowTrustUserMessage(client, topic, data)
    if kind == "low_trust_user_new_message":
        return PubSubLowTrustUserNewMessage(client, topic, data)
    return PubSubMessage(client, topic, data)
