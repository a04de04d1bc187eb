"""The PubSub wire protocol, without any I/O.

This module turns text frames into typed, immutable event objects and builds the
frames a client or a server sends. It never touches a socket, a clock or the
event loop, so both the client (:mod:`twitchio_pubsub.websocket`) and the
emulator (:mod:`twitchio_pubsub.emulator`) share it, and it is tested with plain
synchronous unit tests.

Parsing never raises: anything that is not a well-formed frame of a known type
comes back as an :class:`InvalidFrame` carrying the raw text and the reason.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Union

__all__ = (
    "ERRORS",
    "ERR_BADAUTH",
    "ERR_BADMESSAGE",
    "ERR_BADTOPIC",
    "ERR_SERVER",
    "ERR_TOO_MANY_TOPICS",
    "AuthRevoked",
    "ClientFrame",
    "InvalidFrame",
    "Listen",
    "Message",
    "Ping",
    "Pong",
    "Reconnect",
    "Response",
    "ServerFrame",
    "Unlisten",
    "build_auth_revoked",
    "build_listen",
    "build_message",
    "build_ping",
    "build_pong",
    "build_reconnect",
    "build_response",
    "build_unlisten",
    "new_nonce",
    "parse_client_frame",
    "parse_server_frame",
)

#: The command frame was malformed or not understood.
ERR_BADMESSAGE = "ERR_BADMESSAGE"
#: The token is missing, invalid, expired, or lacks the rights for a topic.
ERR_BADAUTH = "ERR_BADAUTH"
#: The server failed internally; the request may be retried later.
ERR_SERVER = "ERR_SERVER"
#: A topic string is unknown or malformed.
ERR_BADTOPIC = "ERR_BADTOPIC"
#: Undocumented: the connection would hold more topics than allowed (50).
ERR_TOO_MANY_TOPICS = "ERR_TOO_MANY_TOPICS"

#: Every error string this library knows, documented or not.
ERRORS = frozenset({ERR_BADMESSAGE, ERR_BADAUTH, ERR_SERVER, ERR_BADTOPIC, ERR_TOO_MANY_TOPICS})

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads


def new_nonce() -> str:
    """Return a fresh, unguessable request nonce (32 hexadecimal characters)."""
    return secrets.token_hex(16)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Pong:
    """The server's answer to a PING."""

    __slots__ = ()


@dataclass(frozen=True)
class Reconnect:
    """The server asks the client to reconnect (it drops the socket within 30 s)."""

    __slots__ = ()


@dataclass(frozen=True)
class Response:
    """The server's answer to one LISTEN or UNLISTEN.

    Attributes
    ----------
    nonce: Optional[:class:`str`]
        The nonce of the request being answered, if it had one.
    error: :class:`str`
        An empty string on success, otherwise an error code such as ``ERR_BADAUTH``.
    """

    __slots__ = ("error", "nonce")
    nonce: str | None
    error: str

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return not self.error


class Message(tuple):  # type: ignore[type-arg]
    """An event on a topic.

    The hot path of the library creates one per event, so this is an immutable tuple
    subclass (cheaper to build than a frozen dataclass) that compares equal only to
    another :class:`Message`. Its :attr:`topic` is the full topic string, e.g.
    ``channel-bits-events-v2.12345``; its :attr:`message` the payload as JSON text,
    still to be decoded.
    """

    __slots__ = ()

    def __new__(cls, topic: str, message: str) -> Message:
        return tuple.__new__(cls, (topic, message))

    @property
    def topic(self) -> str:
        """The full topic string."""
        return self[0]  # type: ignore[no-any-return]

    @property
    def message(self) -> str:
        """The payload as JSON text."""
        return self[1]  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        return type(other) is Message and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("Message", *self))

    def __repr__(self) -> str:
        return f"Message(topic={self[0]!r}, message={self[1]!r})"


@dataclass(frozen=True)
class AuthRevoked:
    """The authorization behind some topics was revoked; the server dropped them.

    Attributes
    ----------
    topics: Tuple[:class:`str`, ...]
        The topic strings that were dropped.
    """

    __slots__ = ("topics",)
    topics: tuple[str, ...]


@dataclass(frozen=True)
class InvalidFrame:
    """A frame that is not valid JSON, not an object, or of an unknown type.

    Attributes
    ----------
    raw: :class:`str`
        The frame exactly as received.
    reason: :class:`str`
        Why it was rejected, for logs.
    """

    __slots__ = ("raw", "reason")
    raw: str
    reason: str


@dataclass(frozen=True)
class Ping:
    """A client's PING."""

    __slots__ = ()


@dataclass(frozen=True)
class Listen:
    """A client's LISTEN request.

    Attributes
    ----------
    nonce: Optional[:class:`str`]
        The request nonce, echoed in the server's response.
    topics: Tuple[:class:`str`, ...]
        The topics to subscribe to.
    auth_token: Optional[:class:`str`]
        The OAuth token (``None`` when the frame had none).
    """

    __slots__ = ("auth_token", "nonce", "topics")
    nonce: str | None
    topics: tuple[str, ...]
    auth_token: str | None

    def __repr__(self) -> str:
        return f"Listen(nonce={self.nonce!r}, topics={self.topics!r})"


@dataclass(frozen=True)
class Unlisten:
    """A client's UNLISTEN request (same fields as :class:`Listen`)."""

    __slots__ = ("auth_token", "nonce", "topics")
    nonce: str | None
    topics: tuple[str, ...]
    auth_token: str | None

    def __repr__(self) -> str:
        return f"Unlisten(nonce={self.nonce!r}, topics={self.topics!r})"


#: What :func:`parse_server_frame` returns.
ServerFrame = Union[Pong, Reconnect, Response, Message, AuthRevoked, InvalidFrame]
#: What :func:`parse_client_frame` returns.
ClientFrame = Union[Ping, Listen, Unlisten, InvalidFrame]

_PONG = Pong()
_RECONNECT = Reconnect()
_PING = Ping()


# --------------------------------------------------------------------------- parsing


def _decode_object(text: str) -> dict[str, Any] | InvalidFrame:
    try:
        obj = _loads(text)
    except (ValueError, RecursionError):
        return InvalidFrame(text, "not valid JSON")
    if not isinstance(obj, dict):
        return InvalidFrame(text, "not a JSON object")
    return obj


def _string_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_server_frame(text: str) -> ServerFrame:
    """Parse one text frame sent by a PubSub server.

    Parameters
    ----------
    text: :class:`str`
        The frame's text.

    Returns
    -------
    Union[:class:`Pong`, :class:`Reconnect`, :class:`Response`, :class:`Message`, :class:`AuthRevoked`, :class:`InvalidFrame`]
        The event; :class:`InvalidFrame` for anything malformed or unknown.
    """  # noqa: E501
    obj = _decode_object(text)
    if isinstance(obj, InvalidFrame):
        return obj
    kind = obj.get("type")
    if kind == "MESSAGE":
        data = obj.get("data")
        if not isinstance(data, dict):
            return InvalidFrame(text, "MESSAGE without a data object")
        topic = data.get("topic")
        message = data.get("message")
        if not isinstance(topic, str) or not topic:
            return InvalidFrame(text, "MESSAGE without a topic")
        if isinstance(message, (dict, list)):
            # Old documentation showed the payload as an object; accept it.
            message = _dumps(message)
        if not isinstance(message, str):
            return InvalidFrame(text, "MESSAGE without a message string")
        return Message(topic, message)
    if kind == "RESPONSE":
        error = obj.get("error")
        if error is None:
            error = ""
        if not isinstance(error, str):
            return InvalidFrame(text, "RESPONSE error is not a string")
        return Response(_string_or_none(obj.get("nonce")) or None, error)
    if kind == "PONG":
        return _PONG
    if kind == "RECONNECT":
        return _RECONNECT
    if kind == "AUTH_REVOKED":
        data = obj.get("data")
        topics = data.get("topics") if isinstance(data, dict) else None
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            return InvalidFrame(text, "AUTH_REVOKED without a list of topics")
        return AuthRevoked(tuple(topics))
    if isinstance(kind, str):
        return InvalidFrame(text, f"unknown frame type {kind[:50]!r}")
    return InvalidFrame(text, "frame has no type")


def parse_client_frame(text: str) -> ClientFrame:
    """Parse one text frame sent by a PubSub client (used by the emulator).

    Parameters
    ----------
    text: :class:`str`
        The frame's text.

    Returns
    -------
    Union[:class:`Ping`, :class:`Listen`, :class:`Unlisten`, :class:`InvalidFrame`]
        The request; :class:`InvalidFrame` for anything malformed or unknown.
    """
    obj = _decode_object(text)
    if isinstance(obj, InvalidFrame):
        return obj
    kind = obj.get("type")
    if kind == "PING":
        return _PING
    if kind in ("LISTEN", "UNLISTEN"):
        nonce = obj.get("nonce")
        if nonce is not None and not isinstance(nonce, str):
            return InvalidFrame(text, "nonce is not a string")
        data = obj.get("data")
        if not isinstance(data, dict):
            return InvalidFrame(text, f"{kind} without a data object")
        topics = data.get("topics")
        if (
            not isinstance(topics, list)
            or not topics
            or not all(isinstance(t, str) for t in topics)
        ):
            return InvalidFrame(text, f"{kind} without a non-empty list of topic strings")
        token = data.get("auth_token")
        if token is not None and not isinstance(token, str):
            return InvalidFrame(text, "auth_token is not a string")
        cls = Listen if kind == "LISTEN" else Unlisten
        return cls(nonce, tuple(topics), token)
    if isinstance(kind, str):
        return InvalidFrame(text, f"unknown request type {kind[:50]!r}")
    return InvalidFrame(text, "request has no type")


# --------------------------------------------------------------------------- building


def build_ping() -> str:
    """Build a PING frame."""
    return '{"type":"PING"}'


def _build_request(kind: str, topics: Iterable[str], token: str | None, nonce: str) -> str:
    data: dict[str, Any] = {"topics": list(topics)}
    if token is not None:
        data["auth_token"] = token
    return _dumps({"type": kind, "nonce": nonce, "data": data})


def build_listen(
    topics: Iterable[str], token: str | None, nonce: str | None = None
) -> tuple[str, str]:
    """Build a LISTEN frame.

    Parameters
    ----------
    topics: Iterable[:class:`str`]
        The topic strings.
    token: Optional[:class:`str`]
        The bare OAuth user token (no ``oauth:`` prefix).
    nonce: Optional[:class:`str`]
        The nonce to use; a fresh one from :func:`new_nonce` by default.

    Returns
    -------
    Tuple[:class:`str`, :class:`str`]
        The nonce and the frame text. The frame contains the token: never log it.
    """
    nonce = nonce or new_nonce()
    return nonce, _build_request("LISTEN", topics, token, nonce)


def build_unlisten(
    topics: Iterable[str], token: str | None = None, nonce: str | None = None
) -> tuple[str, str]:
    """Build an UNLISTEN frame; see :func:`build_listen`."""
    nonce = nonce or new_nonce()
    return nonce, _build_request("UNLISTEN", topics, token, nonce)


def build_pong() -> str:
    """Build a PONG frame (server side)."""
    return '{"type":"PONG"}'


def build_reconnect() -> str:
    """Build a RECONNECT frame (server side)."""
    return '{"type":"RECONNECT"}'


def build_response(nonce: str | None, error: str = "") -> str:
    """Build a RESPONSE frame (server side) answering the request with ``nonce``."""
    return _dumps({"type": "RESPONSE", "error": error, "nonce": nonce or ""})


def build_message(topic: str, message: str) -> str:
    """Build a MESSAGE frame (server side); ``message`` is the payload's JSON text."""
    return _dumps({"type": "MESSAGE", "data": {"topic": topic, "message": message}})


def build_auth_revoked(topics: Iterable[str]) -> str:
    """Build an AUTH_REVOKED frame (server side) for ``topics``."""
    return _dumps({"type": "AUTH_REVOKED", "data": {"topics": list(topics)}})
