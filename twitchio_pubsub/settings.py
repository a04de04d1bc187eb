"""The pool's timings and limits: validated in one place, frozen afterwards."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ("Settings",)


def _number(name: str, value: Any, *, minimum: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = "above" if strict else "at least"
        raise ValueError(f"{name} must be {relation} {minimum:g}, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Timings and limits shared by a pool and its nodes (see :class:`PubSubPool`).

    Build it with :meth:`build`, which checks every value; the object is immutable.
    """

    endpoint: Optional[str] = None
    max_pool_size: int = 10
    max_connection_topics: int = 50
    ping_interval: float = 240.0
    pong_timeout: float = 10.0
    listen_timeout: float = 10.0
    connect_timeout: float = 30.0
    backoff_base: float = 1.0
    backoff_cap: float = 120.0
    backoff_reset_after: float = 30.0
    listen_retries: int = 2
    dedup_window: float = 5.0
    handover_delay: float = 0.5
    reconnect_hook_grace: float = 2.0
    max_message_size: int = 1024 * 1024
    rng: Optional[random.Random] = None

    @classmethod
    def build(cls, **values: Any) -> Settings:
        """Check ``values`` (the pool's keywords) and return the frozen settings.

        Raises
        ------
        TypeError
            A value has the wrong type.
        ValueError
            A value is out of range; the message names the keyword.
        """
        defaults = cls()
        get = values.get
        endpoint = get("endpoint")
        if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.strip()):
            raise TypeError("endpoint must be a non-empty URL string")
        rng = get("rng")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, not {type(rng).__name__}")
        settings = cls(
            endpoint=endpoint,
            max_pool_size=_integer(
                "max_pool_size", get("max_pool_size", defaults.max_pool_size), minimum=1
            ),
            max_connection_topics=_integer(
                "max_connection_topics",
                get("max_connection_topics", defaults.max_connection_topics),
                minimum=1,
            ),
            ping_interval=_number("ping_interval", get("ping_interval", defaults.ping_interval)),
            pong_timeout=_number("pong_timeout", get("pong_timeout", defaults.pong_timeout)),
            listen_timeout=_number(
                "listen_timeout", get("listen_timeout", defaults.listen_timeout)
            ),
            connect_timeout=_number(
                "connect_timeout", get("connect_timeout", defaults.connect_timeout)
            ),
            backoff_base=_number("backoff_base", get("backoff_base", defaults.backoff_base)),
            backoff_cap=_number("backoff_cap", get("backoff_cap", defaults.backoff_cap)),
            backoff_reset_after=_number(
                "backoff_reset_after", get("backoff_reset_after", defaults.backoff_reset_after)
            ),
            listen_retries=_integer(
                "listen_retries", get("listen_retries", defaults.listen_retries), minimum=0
            ),
            dedup_window=_number("dedup_window", get("dedup_window", defaults.dedup_window)),
            reconnect_hook_grace=_number(
                "reconnect_hook_grace",
                get("reconnect_hook_grace", defaults.reconnect_hook_grace),
                strict=False,
            ),
            handover_delay=_number(
                "handover_delay",
                get("handover_delay", defaults.handover_delay),
                strict=False,
            ),
            max_message_size=_integer(
                "max_message_size", get("max_message_size", defaults.max_message_size), minimum=1
            ),
            rng=rng,
        )
        if settings.ping_interval >= 300:
            raise ValueError("ping_interval must be below 300 s (Twitch needs a PING every 5 min)")
        if settings.backoff_cap < settings.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        return settings
