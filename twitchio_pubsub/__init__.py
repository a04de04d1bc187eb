"""twitchio-pubsub: a reliable Twitch PubSub client for TwitchIO 2.x bots."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ("__version__",)
