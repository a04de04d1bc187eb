"""twitchio-pubsub: a reliable Twitch PubSub client for TwitchIO 2.x bots.

Everything the TwitchIO ``twitchio.ext.pubsub`` reference documents is importable from
here: the pool, the topic factories, the models and the errors.
"""

from __future__ import annotations

from .errors import (
    ConnectionFailure,
    ListenError,
    ListenTimeout,
    PoolClosed,
    PoolError,
    PoolFull,
    PubSubError,
)
from .eventsub.conduit import Conduit, ConduitNode, ConduitShard, ShardInfo
from .eventsub.node import EventSubWebsocket
from .models import (
    PubSubAutoModQueueMessage,
    PubSubBadgeEntitlement,
    PubSubBitsBadgeMessage,
    PubSubBitsMessage,
    PubSubChannelPointsMessage,
    PubSubChannelPointsRedemptionUpdate,
    PubSubChannelSubscribe,
    PubSubChatMessage,
    PubSubCustomRewardUpdate,
    PubSubErrorEvent,
    PubSubLowTrustUserMessage,
    PubSubLowTrustUserNewMessage,
    PubSubMessage,
    PubSubModerationAction,
    PubSubModerationActionBanRequest,
    PubSubModerationActionChannelTerms,
    PubSubModerationActionModeratorAdd,
    PubSubModerationActionModeratorRemove,
    PubSubModerationActionVIPAdd,
    PubSubModerationRoleChange,
    PubSubUserModerationNotification,
    PubSubWhisperMessage,
)
from .pool import PubSubPool
from .topics import (
    Topic,
    automod_queue,
    bits,
    bits_badge,
    bits_v1,
    channel_points,
    channel_subscriptions,
    low_trust_users,
    moderation_user_action,
    user_moderation_notifications,
    whispers,
)
from .websocket import PubSubWebsocket

__version__ = "0.1.0"

__all__ = (
    "Conduit",
    "ConduitNode",
    "ConduitShard",
    "ConnectionFailure",
    "EventSubWebsocket",
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
    "PubSubPool",
    "PubSubUserModerationNotification",
    "PubSubWebsocket",
    "PubSubWhisperMessage",
    "ShardInfo",
    "Topic",
    "__version__",
    "automod_queue",
    "bits",
    "bits_badge",
    "bits_v1",
    "channel_points",
    "channel_subscriptions",
    "low_trust_users",
    "moderation_user_action",
    "user_moderation_notifications",
    "whispers",
)
