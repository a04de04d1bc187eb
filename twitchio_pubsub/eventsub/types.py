"""The EventSub subscription types this project speaks: conditions, scopes, token user.

One table serves both sides: the emulator checks Helix requests against it, and the
bridge reads which scopes a token needs before it asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Optional

__all__ = (
    "SHARD_DISABLED",
    "SUBSCRIPTION_TYPES",
    "SubscriptionType",
    "missing_scopes",
    "subscription_type",
)


@dataclass(frozen=True)
class SubscriptionType:
    """One EventSub subscription type at one version.

    Attributes
    ----------
    type: :class:`str`
        The type, e.g. ``channel.cheer``.
    version: :class:`str`
        The version, e.g. ``"1"``.
    condition: Tuple[:class:`str`, ...]
        The condition keys a subscription must give.
    optional: Tuple[:class:`str`, ...]
        Condition keys it may give besides (``reward_id``).
    scopes: Tuple[FrozenSet[:class:`str`], ...]
        What the token needs: every group, and any one scope of a group.
    token_user: Optional[:class:`str`]
        The condition key whose user must be the token's user.
    match: Mapping[:class:`str`, Optional[:class:`str`]]
        For delivering events: the event field (dotted path) a condition key is compared
        with, or ``None`` when the key does not narrow delivery (the subscribing
        moderator of ``channel.moderate`` receives every moderator's actions).
    """

    type: str
    version: str
    condition: tuple[str, ...]
    scopes: tuple[frozenset[str], ...]
    token_user: Optional[str]
    optional: tuple[str, ...] = ()
    match: Mapping[str, Optional[str]] = field(default_factory=dict)

    def event_path(self, key: str) -> Optional[str]:
        """The event field condition ``key`` is matched against (``None``: any)."""
        return self.match.get(key, key)


def _any(*scopes: str) -> frozenset[str]:
    return frozenset(scopes)


def _rw(name: str) -> frozenset[str]:
    return _any(f"moderator:read:{name}", f"moderator:manage:{name}")


_B = ("broadcaster_user_id",)
_BM = ("broadcaster_user_id", "moderator_user_id")
_BU = ("broadcaster_user_id", "user_id")
_ANY_MOD = {"moderator_user_id": None}

_MODERATE_V1 = (
    _rw("blocked_terms"),
    _rw("chat_settings"),
    _rw("unban_requests"),
    _rw("banned_users"),
    _rw("chat_messages"),
    _any("moderator:read:moderators"),
    _any("moderator:read:vips"),
)

_REDEMPTIONS = (_any("channel:read:redemptions", "channel:manage:redemptions"),)
_AUTOMOD = (_any("moderator:manage:automod"),)
_CHAT = (_any("user:read:chat"),)


def _table() -> dict[tuple[str, str], SubscriptionType]:
    def broadcaster(
        name: str,
        *scopes: frozenset[str],
        optional: tuple[str, ...] = (),
        match: Optional[Mapping[str, Optional[str]]] = None,
    ) -> SubscriptionType:
        return SubscriptionType(name, "1", _B, scopes, "broadcaster_user_id", optional, match or {})

    def moderator(name: str, version: str, *scopes: frozenset[str]) -> SubscriptionType:
        return SubscriptionType(name, version, _BM, scopes, "moderator_user_id", match=_ANY_MOD)

    reward_match = {"reward_id": "reward.id"}
    types = [
        broadcaster("channel.cheer", _any("bits:read")),
        broadcaster("channel.bits.use", _any("bits:read")),
        SubscriptionType(
            "channel.chat.notification", "1", _BU, _CHAT, "user_id", match={"user_id": None}
        ),
        broadcaster(
            "channel.channel_points_custom_reward_redemption.add",
            *_REDEMPTIONS,
            optional=("reward_id",),
            match=reward_match,
        ),
        broadcaster(
            "channel.channel_points_custom_reward_redemption.update",
            *_REDEMPTIONS,
            optional=("reward_id",),
            match=reward_match,
        ),
        *(
            broadcaster(
                f"channel.channel_points_custom_reward.{verb}",
                *_REDEMPTIONS,
                optional=("reward_id",),
                match={"reward_id": "id"},
            )
            for verb in ("add", "update", "remove")
        ),
        broadcaster("channel.subscribe", _any("channel:read:subscriptions")),
        broadcaster("channel.subscription.message", _any("channel:read:subscriptions")),
        broadcaster("channel.subscription.gift", _any("channel:read:subscriptions")),
        moderator("channel.moderate", "1", *_MODERATE_V1),
        moderator("channel.moderate", "2", *_MODERATE_V1, _rw("warnings")),
        broadcaster("channel.ban", _any("channel:moderate")),
        broadcaster("channel.unban", _any("channel:moderate")),
        broadcaster("channel.moderator.add", _any("moderation:read")),
        broadcaster("channel.moderator.remove", _any("moderation:read")),
        broadcaster("channel.vip.add", _any("channel:read:vips", "channel:manage:vips")),
        broadcaster("channel.vip.remove", _any("channel:read:vips", "channel:manage:vips")),
        moderator("channel.unban_request.resolve", "1", _rw("unban_requests")),
        moderator("automod.terms.update", "1", *_AUTOMOD),
        SubscriptionType(
            "user.whisper.message",
            "1",
            ("user_id",),
            (_any("user:read:whispers", "user:manage:whispers"),),
            "user_id",
            match={"user_id": "to_user_id"},
        ),
        *(
            moderator(f"automod.message.{verb}", version, *_AUTOMOD)
            for verb in ("hold", "update")
            for version in ("1", "2")
        ),
        SubscriptionType("channel.chat.user_message_hold", "1", _BU, _CHAT, "user_id"),
        SubscriptionType("channel.chat.user_message_update", "1", _BU, _CHAT, "user_id"),
        moderator("channel.suspicious_user.message", "1", _any("moderator:read:suspicious_users")),
        moderator("channel.suspicious_user.update", "1", _any("moderator:read:suspicious_users")),
    ]
    return {(t.type, t.version): t for t in types}


#: Every supported subscription type, by ``(type, version)``.
SUBSCRIPTION_TYPES: Mapping[tuple[str, str], SubscriptionType] = _table()


#: ``conduit.shard.disabled`` v1: for an app token of the client named in the condition,
#: on a conduit (not a topic's counterpart, so not in :data:`SUBSCRIPTION_TYPES`).
SHARD_DISABLED = SubscriptionType(
    "conduit.shard.disabled", "1", ("client_id",), (), None, ("conduit_id",), {}
)


def subscription_type(type: str, version: str) -> Optional[SubscriptionType]:
    """The :class:`SubscriptionType` for ``type`` at ``version``, or ``None``."""
    return SUBSCRIPTION_TYPES.get((type, version))


def missing_scopes(spec: SubscriptionType, scopes: Iterable[str]) -> list[str]:
    """The scope groups ``scopes`` does not satisfy, each as ``"a"`` or ``"a or b"``."""
    held = set(scopes)
    return [" or ".join(sorted(group)) for group in spec.scopes if not group & held]
