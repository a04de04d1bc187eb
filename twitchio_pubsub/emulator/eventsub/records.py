"""The EventSub emulator's records and constants: tokens, sessions, faults, close codes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Optional, TypedDict

from aiohttp import web

from .._base import Connection

if TYPE_CHECKING:
    from .helix import HelixMixin

__all__ = (
    "CLOSE_REASONS",
    "GARBAGE_BODY",
    "HELIX_CALLS",
    "REVOCATION_REASONS",
    "EventSubSession",
    "EventSubToken",
    "EventSubURLs",
    "eventsub_urls",
)

log = logging.getLogger("twitchio_pubsub.emulator.eventsub")

#: Close codes of the EventSub WebSocket and the text the emulator sends with each.
CLOSE_REASONS: Mapping[int, str] = {
    4000: "internal server error",
    4001: "sent inbound traffic",
    4002: "failed ping-pong",
    4003: "connection unused",
    4004: "reconnect grace time expired",
    4005: "network timeout",
    4006: "network error",
    4007: "invalid reconnect",
}

#: What a session's enabled subscriptions become when its socket ends with a code.
_DISABLED_STATUS: Mapping[int, str] = {
    4000: "websocket_internal_error",
    4001: "websocket_received_inbound_traffic",
    4002: "websocket_failed_ping_pong",
    4003: "websocket_connection_unused",
    4004: "websocket_failed_to_reconnect",
    4005: "websocket_network_timeout",
    4006: "websocket_network_error",
}

#: Revocation reasons Twitch documents for WebSocket subscriptions.
REVOCATION_REASONS = ("authorization_revoked", "user_removed", "version_removed")

_ERRORS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}  # fmt: skip

#: What a Helix fault may target: one route, or every subscription call (``None``).
HELIX_CALLS = ("create", "list", "delete", "validate", "conduits", "shards")
#: The body of a ``garbage`` Helix answer: JSON, but nothing a client can use.
GARBAGE_BODY = '{"data": "surprise", "pagination": 7}'
#: Client ids whose rate buckets are kept at once; expired ones are dropped past it.
MAX_RATE_BUCKETS = 1024


@dataclasses.dataclass
class _Fault:
    """One queued Helix fault: an error status, a delay, or a useless 200 answer."""

    call: Optional[str]
    status: int = 0
    reset_after: float = 1.0
    delay: float = 0.0
    garbage: bool = False

    def applies(self, call: str) -> bool:
        if self.call is None:
            return call != "validate"
        return self.call == call


_DIFFERENT_USERS = "websocket transport cannot have subscriptions created by different users"
_HelixCall = Callable[[web.Request, "EventSubToken", dict[str, str]], Awaitable[web.Response]]
_PAGE = 100


def _now_ns() -> int:
    return time.time_ns()


@dataclasses.dataclass
class EventSubToken:
    """A user access token the emulator knows (see :meth:`EventSubEmulator.add_token`).

    Attributes
    ----------
    token: :class:`str`
        The token itself (kept out of ``repr``).
    user_id: Optional[:class:`str`]
        The token's user; ``None`` for an app access token.
    login: :class:`str`
    client_id: :class:`str`
    scopes: FrozenSet[:class:`str`]
    expires_at: Optional[:class:`float`]
        ``time.monotonic()`` when it expires; ``None`` never.
    valid: :class:`bool`
        ``False`` once invalidated.
    """

    token: str = dataclasses.field(repr=False)
    user_id: Optional[str]
    login: str
    client_id: str
    scopes: frozenset[str]
    expires_at: Optional[float]
    valid: bool = True

    def usable(self) -> bool:
        """Whether the token is valid and not expired."""
        return self.valid and (self.expires_at is None or time.monotonic() < self.expires_at)

    def __repr__(self) -> str:
        return f"<EventSubToken user_id={self.user_id!r} login={self.login!r} valid={self.valid}>"


class EventSubURLs(TypedDict):
    """The emulator's URLs, named as :class:`~twitchio_pubsub.PubSubPool`'s keywords."""

    eventsub_url: str
    helix_url: str
    id_url: str


def eventsub_urls(address: str) -> EventSubURLs:
    """The pool's three URLs for an EventSub emulator at ``address``.

    For a bot in another process than the emulator (``twitchio-pubsub eventsub serve``
    prints its address)::

        urls = eventsub_urls("http://127.0.0.1:8080")
        pool = PubSubPool(client, transport="eventsub", **urls)

    Parameters
    ----------
    address: :class:`str`
        The emulator's HTTP address, ``http://host:port`` (a trailing ``/`` is fine).

    Raises
    ------
    ValueError
        ``address`` is not an ``http://`` or ``https://`` address.
    """
    base = address.strip().rstrip("/")
    scheme, sep, rest = base.partition("://")
    if not sep or scheme not in ("http", "https") or not rest:
        raise ValueError(
            f"expected the emulator's address, like http://127.0.0.1:8080, got {address!r}"
        )
    socket_scheme = "wss" if scheme == "https" else "ws"
    return EventSubURLs(
        eventsub_url=f"{socket_scheme}://{rest}/ws",
        helix_url=f"{base}/helix",
        id_url=f"{base}/oauth2",
    )


class EventSubSession(Connection):
    """One WebSocket client: its session id, keepalive and subscriptions.

    Attributes
    ----------
    session_id: :class:`str`
        The id sent in this socket's welcome.
    keepalive: :class:`int`
        The session's ``keepalive_timeout_seconds``.
    status: :class:`str`
        ``connected``, ``reconnecting`` (after ``session_reconnect``) or ``closed``.
    keepalives: :class:`bool`
        Whether the emulator sends keepalives on it (a fault turns them off).
    """

    __slots__ = (
        "_tasks",
        "close_code",
        "closing",
        "connected_at",
        "keepalive",
        "keepalives",
        "last_sent",
        "moved_to",
        "owner",
        "ponged",
        "reconnect_id",
        "session_id",
        "status",
        "used",
    )

    def __init__(self, id: int, ws: web.WebSocketResponse, request: web.Request) -> None:
        super().__init__(id, ws, request)
        self.session_id = ""
        self.keepalive = 10
        self.status = "connected"
        self.keepalives = True
        self.connected_at = ""
        self.last_sent = time.monotonic()
        #: (user id, client id) of whoever created its subscriptions.
        self.owner: Optional[tuple[str, str]] = None
        self.used = False
        self.reconnect_id: Optional[str] = None
        self.moved_to: Optional[EventSubSession] = None
        self.close_code: Optional[int] = None
        self.closing: Optional[asyncio.Task[bool]] = None
        self.ponged = True
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<EventSubSession id={self.session_id!r} status={self.status}>"

    def send(self, text: str) -> bool:
        self.last_sent = time.monotonic()
        return super().send(text)


class _HelixFault(Exception):
    def __init__(
        self, status: int, headers: dict[str, str], message: str = "emulated failure"
    ) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.message = message

    def response(self, emulator: HelixMixin) -> web.Response:
        return emulator._helix_error(self.status, self.message, self.headers)
