"""Moderator actions: ``chat_moderator_actions.<moderator_id>.<channel_id>``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from twitchio import PartialUser

from .base import (
    PubSubMessage,
    channel_id_of,
    make_user,
    register,
    to_datetime,
    to_dict,
    to_str,
)

if TYPE_CHECKING:
    from twitchio import Client

__all__ = (
    "PubSubModerationAction",
    "PubSubModerationActionBanRequest",
    "PubSubModerationActionChannelTerms",
    "PubSubModerationActionModeratorAdd",
    "PubSubModerationActionModeratorRemove",
    "PubSubModerationActionVIPAdd",
    "PubSubModerationRoleChange",
)


def _args(value: Any) -> Optional[list[str]]:
    """The payload's ``args``: ``None`` when it is null or missing, as the reference has it."""
    if not isinstance(value, list):
        return None
    return [v if isinstance(v, str) else str(v) for v in value if v is not None]


class PubSubModerationAction(PubSubMessage):
    """A moderator action (``type`` ``moderation_action``): ban, timeout, delete, slow, ...

    Attributes
    ----------
    action: :class:`str`
        The action taken, e.g. ``ban``, ``timeout``, ``delete``, ``slow``, ``unvip``.
    args: Optional[List[:class:`str`]]
        The command's arguments as strings, for a timeout ``[login, seconds, reason]``;
        ``None`` when Twitch sends ``null`` (as in ``twitchio.ext.pubsub``).
    created_by: Optional[:class:`twitchio.PartialUser`]
        Who took the action (``None`` on notifications sent to the target).
    message_id: Optional[:class:`str`]
        The id of the message concerned, if any.
    target: Optional[:class:`twitchio.PartialUser`]
        Who the action targets (``None`` for channel-wide actions such as slow mode).
    from_automod: :class:`bool`
        Whether AutoMod took the action.
    moderation_type: Optional[:class:`str`]
        ``chat_login_moderation``, ``chat_channel_moderation`` or
        ``chat_targeted_login_moderation``.
    channel_id: :class:`int`
        The channel the action happened in.
    created_at: Optional[:class:`datetime.datetime`]
        When it happened, if sent.
    """

    __slots__ = (
        "action",
        "args",
        "channel_id",
        "created_at",
        "created_by",
        "from_automod",
        "message_id",
        "moderation_type",
        "target",
    )

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data"))
        self.action: str = to_str(inner.get("moderation_action")) or ""
        self.args: Optional[list[str]] = _args(inner.get("args"))
        self.moderation_type: Optional[str] = to_str(inner.get("type"))
        self.created_by: Optional[PartialUser] = make_user(
            client, inner.get("created_by_user_id"), inner.get("created_by")
        )
        self.message_id: Optional[str] = to_str(inner.get("msg_id")) or None
        login = to_str(inner.get("target_user_login"))
        if not login and self.moderation_type == "chat_login_moderation" and self.args:
            login = self.args[0]  # Twitch often leaves the login empty but puts it in args
        self.target: Optional[PartialUser] = make_user(client, inner.get("target_user_id"), login)
        self.from_automod: bool = inner.get("from_automod") is True
        self.channel_id: int = channel_id_of(None, topic)
        self.created_at: Optional[datetime] = to_datetime(inner.get("created_at"))

    def __repr__(self) -> str:
        target = self.target.name if self.target else None
        by = self.created_by.name if self.created_by else None
        return (
            f"<PubSubModerationAction action={self.action!r} target={target!r} "
            f"by={by!r} args={self.args!r}>"
        )


class PubSubModerationActionBanRequest(PubSubMessage):
    """An unban request was approved or denied (``approve_unban_request``/``deny_unban_request``).

    Attributes
    ----------
    action: :class:`str`
        ``APPROVE_UNBAN_REQUEST`` or ``DENY_UNBAN_REQUEST``.
    args: Optional[:class:`str`]
        The moderator's message (a string, as in ``twitchio.ext.pubsub``); ``None`` when
        the payload has none.
    moderator_message: :class:`str`
        The note the moderator left for the user.
    created_by: Optional[:class:`twitchio.PartialUser`]
        The moderator who resolved the request.
    target: Optional[:class:`twitchio.PartialUser`]
        The user who asked to be unbanned.
    channel_id: :class:`int`
        The channel concerned.
    """

    __slots__ = ("action", "args", "channel_id", "created_by", "moderator_message", "target")

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data"))
        self.action: str = (
            to_str(inner.get("moderation_action")) or str(data.get("type", "")).upper()
        )
        message = to_str(inner.get("moderator_message"))
        self.moderator_message: str = message or ""
        # twitchio.ext.pubsub put the moderator's message itself (a str) here.
        self.args: Optional[str] = message
        self.created_by: Optional[PartialUser] = make_user(
            client, inner.get("created_by_id"), inner.get("created_by_login")
        )
        self.target: Optional[PartialUser] = make_user(
            client, inner.get("target_user_id"), inner.get("target_user_login")
        )
        self.channel_id: int = channel_id_of(None, topic)


class PubSubModerationActionChannelTerms(PubSubMessage):
    """A blocked or permitted term was added or removed (``channel_terms_action``).

    Attributes
    ----------
    type: :class:`str`
        ``add_blocked_term``, ``delete_blocked_term``, ``add_permitted_term`` or
        ``delete_permitted_term``.
    channel_id: :class:`int`
        The channel the term belongs to.
    id: :class:`str`
        The id of the term.
    text: :class:`str`
        The term itself.
    requester: Optional[:class:`twitchio.PartialUser`]
        Who changed the term.
    from_automod: :class:`bool`
        Whether it was done from an AutoMod decision.
    expires_at: Optional[:class:`datetime.datetime`]
        When a temporary term expires; ``None`` for permanent ones.
    updated_at: Optional[:class:`datetime.datetime`]
        When the term changed.
    """

    __slots__ = (
        "channel_id",
        "expires_at",
        "from_automod",
        "id",
        "requester",
        "text",
        "type",
        "updated_at",
    )

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data"))
        self.type: str = to_str(inner.get("type")) or ""
        self.channel_id: int = channel_id_of(inner.get("channel_id"), topic)
        self.id: str = to_str(inner.get("id")) or ""
        self.text: str = to_str(inner.get("text")) or ""
        self.requester: Optional[PartialUser] = make_user(
            client, inner.get("requester_id"), inner.get("requester_login")
        )
        self.from_automod: bool = inner.get("from_automod") is True
        self.expires_at: Optional[datetime] = to_datetime(inner.get("expires_at"))
        self.updated_at: Optional[datetime] = to_datetime(inner.get("updated_at"))


class PubSubModerationRoleChange(PubSubMessage):
    """Base of the role changes: a moderator or VIP added or removed.

    Attributes
    ----------
    channel_id: :class:`int`
        The channel the role is in.
    moderation_action: :class:`str`
        ``mod``, ``unmod`` or ``vip`` (Twitch sends none for VIPs; it is filled in).
    target: Optional[:class:`twitchio.PartialUser`]
        Who gained or lost the role.
    created_by: Optional[:class:`twitchio.PartialUser`]
        Who changed it.
    """

    __slots__ = ("channel_id", "created_by", "moderation_action", "target")

    _default_action = ""

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data"))
        self.channel_id: int = channel_id_of(inner.get("channel_id"), topic)
        self.moderation_action: str = to_str(inner.get("moderation_action")) or self._default_action
        self.target: Optional[PartialUser] = make_user(
            client, inner.get("target_user_id"), inner.get("target_user_login")
        )
        self.created_by: Optional[PartialUser] = make_user(
            client, inner.get("created_by_user_id"), inner.get("created_by")
        )

    def __repr__(self) -> str:
        target = self.target.name if self.target else None
        return f"<{type(self).__name__} channel_id={self.channel_id} target={target!r}>"


class PubSubModerationActionModeratorAdd(PubSubModerationRoleChange):
    """A moderator was added (``moderator_added``); see :class:`PubSubModerationRoleChange`."""

    __slots__ = ()
    _default_action = "mod"


class PubSubModerationActionModeratorRemove(PubSubModerationRoleChange):
    """A moderator was removed (``moderator_removed``)."""

    __slots__ = ()
    _default_action = "unmod"


class PubSubModerationActionVIPAdd(PubSubModerationRoleChange):
    """A VIP was added (``vip_added``). VIP removals arrive as ``unvip`` actions."""

    __slots__ = ()
    _default_action = "vip"


_TYPES: dict[str, type[PubSubMessage]] = {
    "moderation_action": PubSubModerationAction,
    "approve_unban_request": PubSubModerationActionBanRequest,
    "deny_unban_request": PubSubModerationActionBanRequest,
    "channel_terms_action": PubSubModerationActionChannelTerms,
    "moderator_added": PubSubModerationActionModeratorAdd,
    "moderator_removed": PubSubModerationActionModeratorRemove,
    "vip_added": PubSubModerationActionVIPAdd,
}


@register("chat_moderator_actions", "pubsub_moderation")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    return _TYPES.get(str(data.get("type")), PubSubMessage)(client, topic, data)
