"""Log lines the server can provoke, kept to a trickle."""

from __future__ import annotations

import logging
import time
from typing import Callable

__all__ = ("RateLimitedLog",)


class RateLimitedLog:
    """Logs a given kind of line at most once per ``interval`` seconds.

    A server that floods a client with bad frames must not flood its log too: the
    first line of a kind is logged at once, later ones within the interval are
    counted, and the next line logged says how many were left out.

    Parameters
    ----------
    logger: :class:`logging.Logger`
        Where the lines go.
    interval: :class:`float`
        The least time between two lines of one kind.
    clock: Callable[[], :class:`float`]
        The time source (monotonic seconds); injectable for tests.
    """

    __slots__ = ("_clock", "_last", "_logger", "_suppressed", "interval")

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless a line of ``kind`` was logged too recently.

        Returns whether the line was logged.
        """
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        if len(self._last) > 256:  # kinds come from a fixed set; stay bounded anyway
            self._last.clear()
        self._last[kind] = now
        skipped = self._suppressed.pop(kind, 0)
        if skipped:
            msg += " (%d similar line(s) left out)"
            args = (*args, skipped)
        self._logger.log(level, msg, *args)
        return True
