"""Models for PubSub payloads, one module per topic family, and their registry.

Importing this package registers every family's parser; adding a topic family is one
new module that calls :func:`register`.
"""

from __future__ import annotations

from .base import (
    PubSubBadgeEntitlement,
    PubSubChatMessage,
    PubSubErrorEvent,
    PubSubMessage,
    event_for_topic,
    parse_message,
    register,
)
from .bits import PubSubBitsMessage

__all__ = (
    "PubSubBadgeEntitlement",
    "PubSubBitsMessage",
    "PubSubChatMessage",
    "PubSubErrorEvent",
    "PubSubMessage",
    "event_for_topic",
    "parse_message",
    "register",
)
