"""Cheers: ``channel-bits-events-v2`` and ``channel-bits-events-v1``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from twitchio import PartialUser

from .base import (
    PubSubBadgeEntitlement,
    PubSubChatMessage,
    PubSubMessage,
    channel_id_of,
    make_user,
    register,
    to_datetime,
    to_dict,
    to_int,
    to_str,
)

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubBitsMessage",)


class PubSubBitsMessage(PubSubMessage):
    """A cheer (``pubsub_bits``).

    Attributes
    ----------
    message: :class:`PubSubChatMessage`
        The chat message sent with the cheer.
    badge_entitlement: Optional[:class:`PubSubBadgeEntitlement`]
        The Bits badge earned with this cheer, if any.
    bits_used: :class:`int`
        The amount of Bits cheered.
    total_bits_used: Optional[:class:`int`]
        The user's all-time total in this channel, when sent.
    channel_id: :class:`int`
        The channel cheered in.
    channel_name: Optional[:class:`str`]
        The channel's login, when sent.
    user: Optional[:class:`twitchio.PartialUser`]
        The cheerer; ``None`` for anonymous cheers.
    is_anonymous: :class:`bool`
        Whether the cheer was anonymous.
    timestamp: Optional[:class:`datetime.datetime`]
        When the cheer happened.
    version: :class:`str`
        The payload version.
    """

    __slots__ = (
        "badge_entitlement",
        "bits_used",
        "channel_id",
        "channel_name",
        "is_anonymous",
        "message",
        "timestamp",
        "total_bits_used",
        "user",
        "version",
    )

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data"))
        if not inner:
            # The oldest (2016) shape had the fields at the top level.
            inner = data
        self.version: str = to_str(data.get("version")) or "1.0"
        self.bits_used: int = to_int(inner.get("bits_used")) or 0
        self.total_bits_used: Optional[int] = to_int(inner.get("total_bits_used"))
        self.channel_id: int = channel_id_of(inner.get("channel_id"), topic)
        self.channel_name: Optional[str] = to_str(inner.get("channel_name"))
        anonymous = inner.get("is_anonymous", data.get("is_anonymous"))
        self.is_anonymous: bool = anonymous is True
        self.user: Optional[PartialUser] = (
            None
            if self.is_anonymous
            else make_user(client, inner.get("user_id"), inner.get("user_name"))
        )
        self.message = PubSubChatMessage(
            to_str(inner.get("chat_message")) or "",
            to_str(data.get("message_id")) or "",
            to_str(data.get("message_type")) or "bits_event",
        )
        badge = inner.get("badge_entitlement")
        if isinstance(badge, dict):
            self.badge_entitlement: Optional[PubSubBadgeEntitlement] = PubSubBadgeEntitlement(
                to_int(badge.get("new_version")) or 0, to_int(badge.get("previous_version")) or 0
            )
        else:
            self.badge_entitlement = None
        self.timestamp: Optional[datetime] = to_datetime(inner.get("time"))

    def __repr__(self) -> str:
        who = self.user.name if self.user else "anonymous"
        return (
            f"<PubSubBitsMessage channel_id={self.channel_id} user={who!r} "
            f"bits_used={self.bits_used}>"
        )


@register("channel-bits-events-v2", "pubsub_bits")
@register("channel-bits-events-v1", "pubsub_bits")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    return PubSubBitsMessage(client, topic, data)
