"""Exponential backoff with full jitter: a small, pure object."""

from __future__ import annotations

import random

__all__ = ("Backoff",)


class Backoff:
    """Delays for reconnect attempts: exponential, capped, with full jitter.

    Attempt ``n`` (counting from 0) waits a random time in
    ``[floor, min(cap, base * 2**n)]``, where ``floor`` is a tenth of ``base`` so that
    retries never spin. :meth:`reset` starts over after a healthy connection.

    Parameters
    ----------
    base: :class:`float`
        The ceiling of the first delay, in seconds (Twitch suggests about 1 s).
    cap: :class:`float`
        The largest delay, in seconds (Twitch: 120 s).
    rng: Optional[:class:`random.Random`]
        The source of randomness; inject a seeded one for reproducible tests.
    """

    __slots__ = ("_attempt", "_rng", "base", "cap")

    def __init__(self, base: float = 1.0, cap: float = 120.0, *, rng: random.Random | None = None):
        if base <= 0:
            raise ValueError("base must be positive")
        if cap < base:
            raise ValueError("cap must be at least base")
        self.base = float(base)
        self.cap = float(cap)
        self._rng = rng or random.Random()
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # Stop growing the exponent once the cap is reached, so it never overflows.
        return min(self.cap, self.base * float(2 ** min(self._attempt, 64)))

    def next_delay(self) -> float:
        """Return the next delay in seconds and advance the attempt counter."""
        ceiling = self.ceiling()
        self._attempt += 1
        return float(self._rng.uniform(self.base / 10, ceiling))

    def reset(self) -> None:
        """Start again from the first, shortest delay."""
        self._attempt = 0
