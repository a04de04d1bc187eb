"""Bits badge unlocks: ``channel-bits-badge-unlocks``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from twitchio import Channel, PartialUser

from .base import (
    PubSubMessage,
    channel_id_of,
    make_channel,
    make_user,
    register,
    to_datetime,
    to_int,
    to_str,
)

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubBitsBadgeMessage",)


class PubSubBitsBadgeMessage(PubSubMessage):
    """A user unlocked a new Bits badge and shared it in chat (``pubsub_bits_badge``).

    Attributes
    ----------
    user: Optional[:class:`twitchio.PartialUser`]
        The user receiving the badge.
    channel: Optional[:class:`twitchio.Channel`]
        The channel the badge was earned in (``None`` if the payload had no name).
    channel_id: :class:`int`
        The channel's id.
    badge_tier: :class:`int`
        The tier of the badge, e.g. ``1000``.
    message: :class:`str`
        The message sent in chat with the badge.
    timestamp: Optional[:class:`datetime.datetime`]
        When the badge was unlocked.
    """

    __slots__ = ("badge_tier", "channel", "channel_id", "message", "timestamp", "user")

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        self.user: Optional[PartialUser] = make_user(
            client, data.get("user_id"), data.get("user_name")
        )
        self.channel: Optional[Channel] = make_channel(client, data.get("channel_name"))
        self.channel_id: int = channel_id_of(data.get("channel_id"), topic)
        self.badge_tier: int = to_int(data.get("badge_tier")) or 0
        self.message: str = to_str(data.get("chat_message")) or ""
        self.timestamp: Optional[datetime] = to_datetime(data.get("time"))

    def __repr__(self) -> str:
        who = self.user.name if self.user else None
        return (
            f"<PubSubBitsBadgeMessage channel_id={self.channel_id} user={who!r} "
            f"badge_tier={self.badge_tier}>"
        )


@register("channel-bits-badge-unlocks", "pubsub_bits_badge")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    return PubSubBitsBadgeMessage(client, topic, data)
