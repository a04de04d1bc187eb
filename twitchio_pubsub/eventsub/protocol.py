"""The EventSub WebSocket protocol without I/O: text in, typed messages out.

Like :mod:`twitchio_pubsub.protocol` for PubSub, this layer takes the text of one frame
and returns one message object, validating every field the node acts on. It never
raises on bad input: anything malformed, of a wrong type or out of range becomes an
:class:`Invalid` naming the reason (a node surfaces it as a ``pubsub_error``), and a
``keepalive_timeout_seconds`` outside Twitch's 10-600 s is clamped into that range, so
that no value a server sends reaches a timer raw.

Nothing here knows about sockets, the pool or time; the node passes in what it asked for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import urlsplit

from .mapping import Part

__all__ = (
    "KEEPALIVE_MAX",
    "KEEPALIVE_MIN",
    "EventSubMessage",
    "Invalid",
    "Keepalive",
    "Notification",
    "Reconnect",
    "Revocation",
    "Welcome",
    "clamp_keepalive",
    "parse",
    "same_origin",
)

#: Twitch's range for ``keepalive_timeout_seconds``.
KEEPALIVE_MIN = 10
KEEPALIVE_MAX = 600

_loads = json.loads


@dataclass(frozen=True)
class Welcome:
    """``session_welcome``: the session's id and its keepalive window.

    Attributes
    ----------
    session_id: :class:`str`
    keepalive: :class:`float`
        Seconds, always within 10-600 (see :attr:`clamped`).
    clamped: Optional[:class:`str`]
        Why the server's keepalive value was not used as sent, if it was not.
    """

    __slots__ = ("clamped", "keepalive", "session_id")
    session_id: str
    keepalive: float
    clamped: Optional[str]


@dataclass(frozen=True)
class Keepalive:
    """``session_keepalive``: the session is alive and idle."""

    __slots__ = ()


@dataclass(frozen=True)
class Notification:
    """``notification``: an event of one subscription.

    Attributes
    ----------
    message_id: :class:`str`
        Unique per event; a re-sent event keeps it.
    subscription_id: :class:`str`
    part: Optional[:class:`~twitchio_pubsub.eventsub.mapping.Part`]
        The subscription's type, version and condition as the frame states them (used to
        route an event that arrives before the client read its subscription's id).
    frame: Dict[:class:`str`, Any]
        The whole decoded frame, for translation into a PubSub message.
    """

    __slots__ = ("frame", "message_id", "part", "subscription_id")
    message_id: str
    subscription_id: str
    part: Optional[Part]
    frame: dict[str, Any]


@dataclass(frozen=True)
class Reconnect:
    """``session_reconnect``: move to :attr:`url` (a ``ws``/``wss`` URL)."""

    __slots__ = ("url",)
    url: str


@dataclass(frozen=True)
class Revocation:
    """``revocation``: Twitch ended a subscription.

    Attributes
    ----------
    subscription_id: :class:`str`
    status: :class:`str`
        Why, e.g. ``authorization_revoked`` or ``version_removed``.
    """

    __slots__ = ("status", "subscription_id")
    subscription_id: str
    status: str


@dataclass(frozen=True)
class Invalid:
    """A frame that is not a valid EventSub message.

    Attributes
    ----------
    raw: :class:`str`
        The frame's text.
    reason: :class:`str`
        What is wrong with it, in words for a log line.
    """

    __slots__ = ("raw", "reason")
    raw: str
    reason: str


#: What :func:`parse` returns.
EventSubMessage = Union[Welcome, Keepalive, Notification, Reconnect, Revocation, Invalid]

_KEEPALIVE = Keepalive()


def clamp_keepalive(value: object, asked: float) -> tuple[float, Optional[str]]:
    """The keepalive window to use for a server's ``value``, and why it differs if it does.

    A number outside 10-600 is clamped into it; anything that is not a finite number
    (``None``, a string, NaN, a boolean) gives ``asked``, the value the client asked for
    (itself clamped).

    Parameters
    ----------
    value: Any
        ``keepalive_timeout_seconds`` as decoded from the welcome.
    asked: :class:`float`
        What the client asked for in its URL.
    """
    fallback = min(max(float(asked), KEEPALIVE_MIN), KEEPALIVE_MAX)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return fallback, f"keepalive_timeout_seconds is not a number ({value!r})"
    number = float(value)
    if math.isnan(number):
        return fallback, "keepalive_timeout_seconds is NaN"
    if number < KEEPALIVE_MIN:
        return float(KEEPALIVE_MIN), f"keepalive_timeout_seconds {number:g} is below 10"
    if number > KEEPALIVE_MAX:
        return float(KEEPALIVE_MAX), f"keepalive_timeout_seconds {number:g} is above 600"
    return number, None


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` has the scheme, host and port of ``base`` (a ``reconnect_url`` check).

    A server may only move a session within itself: following a URL on another host
    would hand the session (and the bot's events) to whoever runs it.
    """
    try:
        a, b = urlsplit(url), urlsplit(base)
        return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)
    except ValueError:
        return False


def _is_ws_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme.lower() in ("ws", "wss") and bool(parts.hostname)


def _text(obj: Any, key: str) -> Optional[str]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def _part(subscription: dict[str, Any]) -> Optional[Part]:
    condition = subscription.get("condition")
    kind, version = _text(subscription, "type"), _text(subscription, "version")
    if kind is None or version is None or not isinstance(condition, dict):
        return None
    pairs = tuple(sorted((str(k), str(v)) for k, v in condition.items()))
    return Part(kind, version, pairs)


def parse(text: str, *, keepalive: float = KEEPALIVE_MIN) -> EventSubMessage:
    """Parse one text frame of an EventSub WebSocket session.

    Parameters
    ----------
    text: :class:`str`
        The frame's text.
    keepalive: :class:`float`
        The keepalive window the client asked for: a welcome whose value is not a
        number gets this one.

    Returns
    -------
    Union[:class:`Welcome`, :class:`Keepalive`, :class:`Notification`, :class:`Reconnect`, :class:`Revocation`, :class:`Invalid`]
        The message; :class:`Invalid` for anything malformed or of an unknown type.
    """  # noqa: E501
    try:
        frame = _loads(text)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested arrays; json gives up before the frame's end.
        return Invalid(text, "not valid JSON")
    if not isinstance(frame, dict):
        return Invalid(text, "not a JSON object")
    metadata = frame.get("metadata")
    payload = frame.get("payload")
    kind = _text(metadata, "message_type")
    if kind is None:
        return Invalid(text, "no metadata.message_type")
    if not isinstance(payload, dict):
        return Invalid(text, f"{kind} without a payload object")
    if kind == "session_keepalive":
        return _KEEPALIVE
    if kind == "notification":
        subscription = payload.get("subscription")
        message_id = _text(metadata, "message_id")
        sub_id = _text(subscription, "id")
        if message_id is None or sub_id is None or not isinstance(subscription, dict):
            return Invalid(text, "notification without message_id or subscription id")
        if not isinstance(payload.get("event"), dict):
            return Invalid(text, "notification without an event object")
        return Notification(message_id, sub_id, _part(subscription), frame)
    if kind == "revocation":
        subscription = payload.get("subscription")
        sub_id = _text(subscription, "id")
        if sub_id is None:
            return Invalid(text, "revocation without a subscription id")
        return Revocation(sub_id, _text(subscription, "status") or "revoked")
    session = payload.get("session")
    if kind == "session_welcome":
        session_id = _text(session, "id")
        if session_id is None or not isinstance(session, dict):
            return Invalid(text, "session_welcome without a session id")
        value, clamped = clamp_keepalive(session.get("keepalive_timeout_seconds"), keepalive)
        return Welcome(session_id, value, clamped)
    if kind == "session_reconnect":
        url = _text(session, "reconnect_url")
        if url is None:
            return Invalid(text, "session_reconnect without a reconnect_url")
        if not _is_ws_url(url):
            return Invalid(text, "session_reconnect with a reconnect_url that is not ws/wss")
        return Reconnect(url)
    return Invalid(text, f"unknown message_type {kind[:40]!r}")
