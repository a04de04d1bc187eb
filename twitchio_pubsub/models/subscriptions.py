"""Subscriptions: ``channel-subscribe-events-v1``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from twitchio import Channel, PartialUser

from .base import (
    PubSubMessage,
    channel_id_of,
    list_of,
    make_channel,
    make_user,
    register,
    to_datetime,
    to_dict,
    to_int,
    to_str,
)

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubChannelSubscribe",)


class PubSubChannelSubscribe(PubSubMessage):
    """A sub, resub or gift sub (``pubsub_subscription``).

    Attributes
    ----------
    channel: Optional[:class:`twitchio.Channel`]
        The channel subscribed to.
    channel_id: :class:`int`
        The channel's id.
    context: :class:`str`
        ``sub``, ``resub``, ``subgift``, ``anonsubgift``, ``resubgift``,
        ``anonresubgift`` or ``extendsub``.
    user: Optional[:class:`twitchio.PartialUser`]
        The subscriber, or the gifter for gifts; ``None`` for anonymous gifts.
    display_name: Optional[:class:`str`]
        The subscriber's (or gifter's) display name.
    message: :class:`str`
        The message shared with the sub (may be empty).
    emotes: Optional[List[:class:`dict`]]
        Emotes in :attr:`message`: ``{"start": int, "end": int, "id": str}``; ``None``
        when the payload has no emote list (null or missing).
    is_gift: :class:`bool`
        Whether this is a gifted sub.
    recipient: Optional[:class:`twitchio.PartialUser`]
        Who received the gift, when the payload gives their id.
    recipient_name: Optional[:class:`str`]
        The recipient's login, when given (``resubgift`` has it but no id).
    sub_plan: :class:`str`
        ``Prime``, ``1000``, ``2000`` or ``3000``.
    sub_plan_name: :class:`str`
        The channel's name for the plan.
    tier: Optional[:class:`int`]
        ``1``, ``2`` or ``3`` for paid plans, ``None`` for Prime.
    time: Optional[:class:`datetime.datetime`]
        When the subscription happened.
    months: Optional[:class:`int`]
        The legacy months field (months gifted for gifts).
    cumulative_months: Optional[:class:`int`]
        Total months subscribed, when sent.
    streak_months: Optional[:class:`int`]
        The current streak, only when the user chose to share it.
    multi_month_duration: Optional[:class:`int`]
        Months bought or gifted at once.
    """

    __slots__ = (
        "channel",
        "channel_id",
        "context",
        "cumulative_months",
        "display_name",
        "emotes",
        "is_gift",
        "message",
        "months",
        "multi_month_duration",
        "recipient",
        "recipient_name",
        "streak_months",
        "sub_plan",
        "sub_plan_name",
        "tier",
        "time",
        "user",
    )

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        self.channel: Optional[Channel] = make_channel(client, data.get("channel_name"))
        self.channel_id: int = channel_id_of(data.get("channel_id"), topic)
        self.context: str = to_str(data.get("context")) or ""
        self.user: Optional[PartialUser] = make_user(
            client, data.get("user_id"), data.get("user_name")
        )
        self.display_name: Optional[str] = to_str(data.get("display_name"))
        sub_message = to_dict(data.get("sub_message"))
        self.message: str = to_str(sub_message.get("message")) or ""
        emotes = sub_message.get("emotes")
        # None when the payload has no list (as in twitchio.ext.pubsub).
        self.emotes: Optional[list[dict[str, Any]]] = (
            list_of(emotes, dict) if isinstance(emotes, list) else None
        )
        self.is_gift: bool = data.get("is_gift") is True
        self.recipient: Optional[PartialUser] = make_user(
            client, data.get("recipient_id"), data.get("recipient_user_name")
        )
        self.recipient_name: Optional[str] = to_str(data.get("recipient_user_name"))
        self.sub_plan: str = to_str(data.get("sub_plan")) or ""
        self.sub_plan_name: str = to_str(data.get("sub_plan_name")) or ""
        plan = to_int(self.sub_plan)
        self.tier: Optional[int] = plan // 1000 if plan else None
        self.time: Optional[datetime] = to_datetime(data.get("time"))
        self.months: Optional[int] = to_int(data.get("months"))
        self.cumulative_months: Optional[int] = to_int(data.get("cumulative_months"))
        self.streak_months: Optional[int] = to_int(data.get("streak_months"))
        self.multi_month_duration: Optional[int] = to_int(data.get("multi_month_duration"))

    @property
    def timestamp(self) -> Optional[datetime]:
        """Alias of :attr:`time`, like the other models."""
        return self.time

    def __repr__(self) -> str:
        who = self.user.name if self.user else None
        return (
            f"<PubSubChannelSubscribe channel_id={self.channel_id} context={self.context!r} "
            f"user={who!r} sub_plan={self.sub_plan!r}>"
        )


@register("channel-subscribe-events-v1", "pubsub_subscription")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    return PubSubChannelSubscribe(client, topic, data)
