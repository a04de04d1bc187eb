"""Exceptions raised by twitchio_pubsub. Their messages never contain tokens."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .topics import Topic

__all__ = (
    "ConnectionFailure",
    "ListenError",
    "ListenTimeout",
    "PoolClosed",
    "PoolError",
    "PoolFull",
    "PubSubError",
)


class PubSubError(Exception):
    """Base class of every error this library raises.

    Attributes
    ----------
    topics: List[:class:`Topic`]
        The topics the failed operation was about (may be empty).
    error: Optional[:class:`str`]
        Twitch's error code (``ERR_BADTOPIC``, ...) when the server gave one.
    """

    def __init__(
        self, message: str, *, topics: Iterable[Topic] = (), error: str | None = None
    ) -> None:
        self.topics: list[Topic] = list(topics)
        self.error = error
        names = ", ".join(str(t.present) for t in self.topics[:5])
        if len(self.topics) > 5:
            names += f", ... ({len(self.topics)} topics)"
        detail = f" [{error}]" if error else ""
        super().__init__(f"{message}{detail}" + (f": {names}" if names else ""))


class ConnectionFailure(PubSubError):
    """No connection to the PubSub server could be made in time."""


class ListenError(PubSubError):
    """The server refused a LISTEN or UNLISTEN (bad topic, bad message, server error)."""


class ListenTimeout(ListenError):
    """The server did not answer a LISTEN or UNLISTEN in time."""


class PoolError(PubSubError):
    """A problem with the pool itself rather than with the server."""


class PoolFull(PoolError):
    """The topics do not fit in ``max_pool_size`` connections."""


class PoolClosed(PoolError):
    """The pool was closed; it cannot subscribe any more."""
