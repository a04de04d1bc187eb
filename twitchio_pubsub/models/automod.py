"""AutoMod queue: ``automod-queue.<moderator_id>.<channel_id>``."""

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

__all__ = ("PubSubAutoModQueueMessage",)


class PubSubAutoModQueueMessage(PubSubMessage):
    """AutoMod held a message, or a moderator resolved it (``pubsub_automod_queue``).

    Attributes
    ----------
    message_id: :class:`str`
        The held message's id (the same across PENDING and its resolution).
    content: :class:`str`
        The message text.
    fragments: List[:class:`dict`]
        The message split into fragments; flagged ones carry ``automod.topics``.
    sender: Optional[:class:`twitchio.PartialUser`]
        Who wrote the message.
    sender_display_name: Optional[:class:`str`]
        The sender's display name.
    sender_color: Optional[:class:`str`]
        The sender's chat colour, if sent.
    sender_badges: List[:class:`dict`]
        The sender's badges: ``{"id": str, "version": str}``.
    category: :class:`str`
        AutoMod's category, e.g. ``aggression``, ``swearing``.
    level: :class:`int`
        AutoMod's level for the category (1 to 4).
    status: :class:`str`
        ``PENDING``, ``ALLOWED``, ``DENIED`` or ``EXPIRED``.
    resolver: Optional[:class:`twitchio.PartialUser`]
        The moderator who allowed or denied it; ``None`` while pending.
    reason_code: :class:`str`
        Twitch's reason code (usually empty).
    sent_at: Optional[:class:`datetime.datetime`]
        When the message was sent.
    channel_id: :class:`int`
        The channel the message was sent in.
    moderator_id: Optional[:class:`int`]
        The moderator whose queue this is (from the topic).
    """

    __slots__ = (
        "category",
        "channel_id",
        "content",
        "fragments",
        "level",
        "message_id",
        "moderator_id",
        "reason_code",
        "resolver",
        "sender",
        "sender_badges",
        "sender_color",
        "sender_display_name",
        "sent_at",
        "status",
    )

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data")) if "type" in data else data  # 2021 docs: unwrapped
        message = to_dict(inner.get("message")) if "message" in inner else inner
        content = to_dict(message.get("content"))
        sender = to_dict(message.get("sender"))
        classification = to_dict(inner.get("content_classification"))
        self.message_id: str = to_str(message.get("id")) or ""
        self.content: str = to_str(content.get("text")) or ""
        fragments = content.get("fragments")
        self.fragments: list[dict[str, Any]] = list_of(fragments, dict)
        self.sender: Optional[PartialUser] = make_user(
            client, sender.get("user_id"), sender.get("login")
        )
        self.sender_display_name: Optional[str] = to_str(sender.get("display_name"))
        self.sender_color: Optional[str] = to_str(sender.get("chat_color")) or None
        badges = sender.get("badges")
        self.sender_badges: list[dict[str, Any]] = list_of(badges, dict)
        self.category: str = to_str(classification.get("category")) or ""
        self.level: int = to_int(classification.get("level")) or 0
        self.status: str = to_str(inner.get("status")) or ""
        self.resolver: Optional[PartialUser] = make_user(
            client, inner.get("resolver_id"), inner.get("resolver_login")
        )
        self.reason_code: str = to_str(inner.get("reason_code")) or ""
        self.sent_at: Optional[datetime] = to_datetime(message.get("sent_at"))
        self.moderator_id, self.channel_id = topic_ids(topic)

    def __repr__(self) -> str:
        who = self.sender.name if self.sender else None
        return (
            f"<PubSubAutoModQueueMessage status={self.status!r} sender={who!r} "
            f"category={self.category!r} level={self.level} content={self.content!r}>"
        )


@register("automod-queue", "pubsub_automod_queue")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    if data.get("type", "automod_caught_message") == "automod_caught_message":
        return PubSubAutoModQueueMessage(client, topic, data)
    return PubSubMessage(client, topic, data)
