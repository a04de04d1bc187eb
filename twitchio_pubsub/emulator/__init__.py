"""Local Twitch servers for offline tests: the :class:`PubSubEmulator` (PubSub) and the
:class:`EventSubEmulator` (EventSub WebSocket, Helix subscriptions and token validation).

Twitch retired third-party PubSub on 2025-04-14; these emulators speak both protocols
over real sockets so bots and this library can be tested offline.
"""

from __future__ import annotations

from . import payloads
from .eventsub import EventSubEmulator, EventSubSession, EventSubToken, eventsub_urls
from .payloads import KINDS, build_event
from .server import DOCUMENTED_TOPIC_PATTERNS, EmulatorConnection, PubSubEmulator

__all__ = (
    "DOCUMENTED_TOPIC_PATTERNS",
    "KINDS",
    "EmulatorConnection",
    "EventSubEmulator",
    "EventSubSession",
    "EventSubToken",
    "PubSubEmulator",
    "build_event",
    "eventsub_urls",
    "payloads",
)
