"""A local Twitch EventSub server: the WebSocket transport, the Helix subscription API and
token validation, with faults, for testing EventSub clients offline.

The package's parts: :mod:`.records` (tokens, sessions, constants), :mod:`.state` (what
the parts share), :mod:`.sessions` (the WebSocket side), :mod:`.helix` (tokens, the
subscription API, rate limits and Helix faults) and :mod:`.server`
(:class:`EventSubEmulator`: lifecycle, views and the control API).
"""

from __future__ import annotations

from .records import (
    CLOSE_REASONS,
    GARBAGE_BODY,
    HELIX_CALLS,
    REVOCATION_REASONS,
    EventSubSession,
    EventSubToken,
    EventSubURLs,
    eventsub_urls,
)
from .server import EventSubEmulator

__all__ = (
    "CLOSE_REASONS",
    "GARBAGE_BODY",
    "HELIX_CALLS",
    "REVOCATION_REASONS",
    "EventSubEmulator",
    "EventSubSession",
    "EventSubToken",
    "EventSubURLs",
    "eventsub_urls",
)
