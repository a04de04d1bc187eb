"""The listening user's own held messages: ``user-moderation-notifications.<user>.<channel>``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .base import PubSubMessage, register, to_dict, to_str, topic_ids

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubUserModerationNotification",)


class PubSubUserModerationNotification(PubSubMessage):
    """AutoMod held, allowed or denied one of the listening user's messages.

    Dispatched as ``pubsub_user_moderation_notification``.

    Attributes
    ----------
    message_id: :class:`str`
        The id of the held message.
    status: :class:`str`
        ``PENDING``, ``ALLOWED``, ``DENIED`` or ``EXPIRED``.
    channel_id: :class:`int`
        The channel the message was sent in.
    user_id: Optional[:class:`int`]
        The listening user (from the topic).
    """

    __slots__ = ("channel_id", "message_id", "status", "user_id")

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data"))
        self.message_id: str = to_str(inner.get("message_id")) or ""
        self.status: str = to_str(inner.get("status")) or ""
        user_id, channel_id = topic_ids(topic)
        self.user_id: Optional[int] = user_id
        self.channel_id: int = channel_id

    def __repr__(self) -> str:
        return (
            f"<PubSubUserModerationNotification message_id={self.message_id!r} "
            f"status={self.status!r}>"
        )


@register("user-moderation-notifications", "pubsub_user_moderation_notification")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    if data.get("type") == "automod_caught_message":
        return PubSubUserModerationNotification(client, topic, data)
    return PubSubMessage(client, topic, data)
