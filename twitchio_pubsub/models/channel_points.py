"""Channel points: ``channel-points-channel-v1``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from twitchio import CustomReward, PartialUser

from .base import (
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

__all__ = (
    "PubSubChannelPointsMessage",
    "PubSubChannelPointsRedemptionUpdate",
    "PubSubCustomRewardUpdate",
)

_SETTINGS = {
    "max_per_stream": ("is_enabled", "max_per_stream"),
    "max_per_user_per_stream": ("is_enabled", "max_per_user_per_stream"),
    "global_cooldown": ("is_enabled", "global_cooldown_seconds"),
}


def _reward_dict(raw: Any, channel_id: int) -> dict[str, Any]:
    """Fill in what :class:`twitchio.CustomReward` needs, whatever the payload left out."""
    reward = dict(to_dict(raw))
    reward.setdefault("channel_id", str(channel_id))
    reward.setdefault("id", "")
    reward.setdefault("title", "")
    reward.setdefault("prompt", "")
    reward["cost"] = to_int(reward.get("cost")) or 0
    for key in ("is_enabled", "is_in_stock"):
        reward.setdefault(key, True)
    for key in ("is_user_input_required", "is_paused", "should_redemptions_skip_request_queue"):
        reward.setdefault(key, False)
    reward.setdefault("background_color", None)
    reward.setdefault("redemptions_redeemed_current_stream", None)
    reward.setdefault("cooldown_expires_at", None)
    for key, (flag, amount) in _SETTINGS.items():
        setting = dict(to_dict(reward.get(key)))
        setting.setdefault(flag, False)
        setting.setdefault(amount, 0)
        reward[key] = setting
    if not isinstance(reward.get("image"), dict):
        reward["image"] = None
    if reward["image"] is None and not isinstance(reward.get("default_image"), dict):
        reward["default_image"] = {"url_1x": None, "url_2x": None, "url_4x": None}
    for key in ("image", "default_image"):
        if isinstance(reward.get(key), dict):
            reward[key] = {"url_1x": None, **reward[key]}
    return reward


def make_reward(client: Client, raw: Any, channel_id: int) -> CustomReward:
    """Build a :class:`twitchio.CustomReward` from a (possibly partial) reward object."""
    return CustomReward(
        client._http, _reward_dict(raw, channel_id), PartialUser(client._http, channel_id, None)
    )


class PubSubChannelPointsMessage(PubSubMessage):
    """A channel points reward was redeemed (``pubsub_channel_points``, ``reward-redeemed``).

    Attributes
    ----------
    timestamp: Optional[:class:`datetime.datetime`]
        When the event happened.
    channel_id: :class:`int`
        The channel the reward was redeemed in.
    id: :class:`str`
        The id of the redemption.
    user: Optional[:class:`twitchio.PartialUser`]
        The user who redeemed the reward; its ``name`` is the display name, as in
        ``twitchio.ext.pubsub``.
    user_login: Optional[:class:`str`]
        The user's login (lower-case account name).
    reward: :class:`twitchio.CustomReward`
        The reward being redeemed.
    input: Optional[:class:`str`]
        What the user typed, if the reward takes input.
    status: :class:`str`
        The redemption's status (``UNFULFILLED``, ``FULFILLED``, ...).
    redeemed_at: Optional[:class:`datetime.datetime`]
        When the reward was redeemed.
    """

    __slots__ = (
        "channel_id",
        "id",
        "input",
        "redeemed_at",
        "reward",
        "status",
        "timestamp",
        "user",
        "user_login",
    )

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data"))
        redemption = to_dict(inner.get("redemption"))
        self.timestamp: Optional[datetime] = to_datetime(inner.get("timestamp"))
        self.channel_id: int = channel_id_of(redemption.get("channel_id"), topic)
        self.id: str = to_str(redemption.get("id")) or ""
        user = to_dict(redemption.get("user"))
        self.user_login: Optional[str] = to_str(user.get("login"))
        # As in twitchio.ext.pubsub, the user's name is the display name.
        self.user: Optional[PartialUser] = make_user(
            client, user.get("id"), to_str(user.get("display_name")) or self.user_login
        )
        self.reward: CustomReward = make_reward(client, redemption.get("reward"), self.channel_id)
        self.input: Optional[str] = to_str(redemption.get("user_input"))
        self.status: str = to_str(redemption.get("status")) or ""
        self.redeemed_at: Optional[datetime] = to_datetime(redemption.get("redeemed_at"))

    def __repr__(self) -> str:
        who = self.user.name if self.user else None
        return (
            f"<{type(self).__name__} channel_id={self.channel_id} user={who!r} "
            f"reward={self.reward.title!r} status={self.status!r}>"
        )


class PubSubChannelPointsRedemptionUpdate(PubSubChannelPointsMessage):
    """A queued redemption was completed or rejected (``redemption-status-update``).

    Undocumented by Twitch but sent on the same topic; same attributes as
    :class:`PubSubChannelPointsMessage`, with :attr:`status` usually ``ACTION_TAKEN``.
    """

    __slots__ = ()


class PubSubCustomRewardUpdate(PubSubMessage):
    """A reward's settings changed (``custom-reward-updated``, undocumented).

    Attributes
    ----------
    timestamp: Optional[:class:`datetime.datetime`]
        When the change happened.
    channel_id: :class:`int`
        The channel owning the reward.
    reward: :class:`twitchio.CustomReward`
        The reward as it is now.
    """

    __slots__ = ("channel_id", "reward", "timestamp")

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        inner = to_dict(data.get("data"))
        raw = to_dict(inner.get("updated_reward"))
        self.timestamp: Optional[datetime] = to_datetime(inner.get("timestamp"))
        self.channel_id: int = channel_id_of(raw.get("channel_id"), topic)
        self.reward: CustomReward = make_reward(client, raw, self.channel_id)


_TYPES: dict[str, type[PubSubMessage]] = {
    "reward-redeemed": PubSubChannelPointsMessage,
    "redemption-status-update": PubSubChannelPointsRedemptionUpdate,
    "custom-reward-updated": PubSubCustomRewardUpdate,
}


@register("channel-points-channel-v1", "pubsub_channel_points")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    return _TYPES.get(str(data.get("type")), PubSubMessage)(client, topic, data)
