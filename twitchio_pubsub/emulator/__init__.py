"""A local Twitch PubSub server: the :class:`PubSubEmulator` and its payload builders.

Twitch retired third-party PubSub on 2025-04-14; this emulator speaks the same
protocol over a real websocket so bots and this library can be tested offline.
"""

from __future__ import annotations

from . import payloads
from .payloads import KINDS, build_event
from .server import DOCUMENTED_TOPIC_PATTERNS, EmulatorConnection, PubSubEmulator

__all__ = (
    "DOCUMENTED_TOPIC_PATTERNS",
    "KINDS",
    "EmulatorConnection",
    "PubSubEmulator",
    "build_event",
    "payloads",
)
