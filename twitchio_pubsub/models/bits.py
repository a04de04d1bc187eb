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
    is_plain_int,
    make_user,
    register,
    to_datetime,
    to_int,
    to_str,
)

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubBitsMessage",)

_UNSET = object()


class PubSubBitsMessage(PubSubMessage):
    """A cheer (``pubsub_bits``).

    Attributes
    ----------
    message: :class:`PubSubChatMessage`
        The chat message sent with the cheer.
    badge_entitlement: Optional[:class:`PubSubBadgeEntitlement`]
        The Bits badge earned with this cheer, if any.
    bits_used: Optional[:class:`int`]
        The amount of Bits cheered; ``None`` if the payload had no readable amount.
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
    version: :class:`str`
        The payload version.
    """

    __slots__ = (
        "_chat",
        "_message",
        "_message_id",
        "_message_type",
        "_time",
        "_timestamp",
        "_user",
        "_user_id",
        "_user_name",
        "badge_entitlement",
        "bits_used",
        "channel_id",
        "channel_name",
        "is_anonymous",
        "total_bits_used",
        "version",
    )

    _compact = True

    # The hottest model (cheer bursts): every field is copied out of the payload here,
    # with inlined type checks and the tolerant helpers as fallback, so the payload's
    # dicts can be dropped at once; the objects (user, message, timestamp) are built on
    # first access from the copied values.
    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        self._client = client
        self.full_topic = self.topic = topic
        self._data = data
        self._raw = None
        inner = data.get("data")
        if type(inner) is not dict or not inner:
            inner = data  # the oldest (2016) shape had the fields at the top level
        get = inner.get
        bits = get("bits_used")
        self.bits_used: Optional[int] = bits if type(bits) is int else to_int(bits)
        total = get("total_bits_used")
        self.total_bits_used: Optional[int] = total if type(total) is int else to_int(total)
        channel = get("channel_id")
        self.channel_id: int = (
            int(str(channel)) if is_plain_int(channel) else channel_id_of(channel, topic)
        )
        self.channel_name: Optional[str] = to_str(get("channel_name"))
        self.is_anonymous: bool = get("is_anonymous", data.get("is_anonymous")) is True
        self.version: str = to_str(data.get("version")) or "1.0"
        self._user_id = get("user_id")
        self._user_name = get("user_name")
        self._chat = get("chat_message")
        self._message_id = data.get("message_id")
        self._message_type = data.get("message_type")
        self._time = get("time")
        badge = get("badge_entitlement")
        self.badge_entitlement: Optional[PubSubBadgeEntitlement] = (
            None
            if badge is None or type(badge) is not dict
            else PubSubBadgeEntitlement(
                to_int(badge.get("new_version")) or 0, to_int(badge.get("previous_version")) or 0
            )
        )
        self._user: Any = _UNSET
        self._message: Any = _UNSET
        self._timestamp: Any = _UNSET

    @property
    def user(self) -> Optional[PartialUser]:
        """The cheerer; ``None`` for anonymous cheers."""
        if self._user is _UNSET:
            self._user = (
                None
                if self.is_anonymous
                else make_user(self._client, self._user_id, self._user_name)
            )
        return self._user

    @property
    def message(self) -> PubSubChatMessage:
        """The chat message sent with the cheer."""
        if self._message is _UNSET:
            self._message = PubSubChatMessage(
                to_str(self._chat) or "",
                to_str(self._message_id) or "",
                to_str(self._message_type) or "bits_event",
            )
        return self._message  # type: ignore[no-any-return]

    @property
    def timestamp(self) -> Optional[datetime]:
        """When the cheer happened."""
        if self._timestamp is _UNSET:
            self._timestamp = to_datetime(self._time)
        return self._timestamp  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        who = self.user.name if self.user else "anonymous"
        return (
            f"<PubSubBitsMessage channel_id={self.channel_id} user={who!r} "
            f"bits_used={self.bits_used}>"
        )


# The class itself is the parser: one call less on the hot path.
register("channel-bits-events-v2", "pubsub_bits")(PubSubBitsMessage)
register("channel-bits-events-v1", "pubsub_bits")(PubSubBitsMessage)
