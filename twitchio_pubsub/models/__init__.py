"""Models for PubSub payloads, one module per topic family, and their registry.

Importing this package registers every family's parser; adding a topic family is one
new module whose parser is decorated with :func:`register`, plus its import here.
"""

from __future__ import annotations

# twitchio.ext.pubsub defined its errors in its models module, and bots import them
# from there: offer them here too (the same classes as twitchio_pubsub.errors).
from ..errors import (
    ConnectionFailure,
    ListenError,
    ListenTimeout,
    PoolClosed,
    PoolError,
    PoolFull,
    PubSubError,
)
from .automod import PubSubAutoModQueueMessage
from .base import (
    PubSubBadgeEntitlement,
    PubSubChatMessage,
    PubSubErrorEvent,
    PubSubMessage,
    parse_message,
    register,
)
from .bits import PubSubBitsMessage
from .bits_badge import PubSubBitsBadgeMessage
from .channel_points import (
    PubSubChannelPointsMessage,
    PubSubChannelPointsRedemptionUpdate,
    PubSubCustomRewardUpdate,
)
from .low_trust import PubSubLowTrustUserMessage, PubSubLowTrustUserNewMessage
from .moderation import (
    PubSubModerationAction,
    PubSubModerationActionBanRequest,
    PubSubModerationActionChannelTerms,
    PubSubModerationActionModeratorAdd,
    PubSubModerationActionModeratorRemove,
    PubSubModerationActionVIPAdd,
    PubSubModerationRoleChange,
)
from .subscriptions import PubSubChannelSubscribe
from .user_moderation import PubSubUserModerationNotification
from .whispers import PubSubWhisperMessage

__all__ = (
    "ConnectionFailure",
    "ListenError",
    "ListenTimeout",
    "PoolClosed",
    "PoolError",
    "PoolFull",
    "PubSubAutoModQueueMessage",
    "PubSubBadgeEntitlement",
    "PubSubBitsBadgeMessage",
    "PubSubBitsMessage",
    "PubSubChannelPointsMessage",
    "PubSubChannelPointsRedemptionUpdate",
    "PubSubChannelSubscribe",
    "PubSubChatMessage",
    "PubSubCustomRewardUpdate",
    "PubSubError",
    "PubSubErrorEvent",
    "PubSubLowTrustUserMessage",
    "PubSubLowTrustUserNewMessage",
    "PubSubMessage",
    "PubSubModerationAction",
    "PubSubModerationActionBanRequest",
    "PubSubModerationActionChannelTerms",
    "PubSubModerationActionModeratorAdd",
    "PubSubModerationActionModeratorRemove",
    "PubSubModerationActionVIPAdd",
    "PubSubModerationRoleChange",
    "PubSubUserModerationNotification",
    "PubSubWhisperMessage",
    "parse_message",
    "register",
)
