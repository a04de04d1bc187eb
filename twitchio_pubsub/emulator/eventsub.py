"""A local Twitch EventSub server: the WebSocket transport, the Helix subscription API and
token validation, with faults, for testing EventSub clients offline."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Optional, TypedDict

from aiohttp import WSMsgType, web

from ..eventsub.types import SUBSCRIPTION_TYPES, SubscriptionType, missing_scopes
from . import eventsub_payloads as payloads
from ._base import MAX_FAULTS, Connection, EmulatorServer, Handler, _BadRequest

__all__ = (
    "CLOSE_REASONS",
    "EventSubEmulator",
    "EventSubSession",
    "EventSubToken",
    "EventSubURLs",
)

log = logging.getLogger(__name__)

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
HELIX_CALLS = ("create", "list", "delete", "validate")
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


class EventSubEmulator(EmulatorServer[EventSubSession]):
    """A real server that speaks Twitch's EventSub WebSocket protocol and its Helix API.

    One port serves the WebSocket (``/ws``), the Helix subscription API
    (``/helix/eventsub/subscriptions``, also at ``/eventsub/subscriptions`` as in Twitch
    CLI), token validation (``/oauth2/validate``) and the control API (``/control/``)::

        async with EventSubEmulator() as emu:
            emu.add_token("tok", "1337", scopes=["bits:read"], client_id="my-app")
            pool = PubSubPool(client, transport="eventsub", **emu.urls)
            ...
            await emu.trigger("channel.cheer", broadcaster_user_id="1337", bits=100)

    Parameters
    ----------
    host: :class:`str`
        The address to bind, ``127.0.0.1`` by default.
    port: :class:`int`
        The port to bind; ``0`` (the default) picks a free one.
    reconnect_grace: :class:`float`
        Seconds after ``session_reconnect`` before the old socket is closed with 4004.
    ping_interval: Optional[:class:`float`]
        Seconds between the server's WebSocket Pings; a Ping unanswered by the next one
        closes the socket with 4002. ``None`` sends none.
    min_keepalive: :class:`int`
        The lowest ``keepalive_timeout_seconds`` accepted (Twitch: 10); tests lower it to
        exercise watchdogs and the subscribe window quickly.
    max_subscriptions: :class:`int`
        Enabled subscriptions per session (Twitch: 300).
    max_sessions: :class:`int`
        Sessions with enabled subscriptions per user and client id (Twitch: 3).
    max_total_cost: :class:`int`
        Total cost of a user's enabled subscriptions (Twitch: 10).
    rate_limit: :class:`int`
        Helix requests per minute and client id (Twitch: 800); one more gets 429 until
        the ``Ratelimit-Reset`` time.
    subscribe_window: Optional[:class:`float`]
        Seconds a new session may go without a subscription before it is closed with
        4003 (Twitch: 10); ``None`` uses the session's keepalive timeout, as before.
        Tests lower it to exercise slow clients quickly.
    """

    _kind = "EventSub emulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reconnect_grace: float = 30.0,
        ping_interval: Optional[float] = 5.0,
        min_keepalive: int = 10,
        max_subscriptions: int = 300,
        max_sessions: int = 3,
        max_total_cost: int = 10,
        rate_limit: int = 800,
        subscribe_window: Optional[float] = None,
    ) -> None:
        super().__init__(host, port)
        if subscribe_window is not None and not (
            math.isfinite(subscribe_window) and 0 < subscribe_window <= 600
        ):
            raise ValueError("subscribe_window must be from 0 to 600 seconds")
        self.subscribe_window = subscribe_window
        if not 1 <= min_keepalive <= 600:
            raise ValueError("min_keepalive must be from 1 to 600")
        self.reconnect_grace = reconnect_grace
        self.ping_interval = ping_interval
        self.min_keepalive = min_keepalive
        self.max_subscriptions = max_subscriptions
        self.max_sessions = max_sessions
        self.max_total_cost = max_total_cost
        self.rate_limit = rate_limit
        self._tokens: dict[str, EventSubToken] = {}
        self._sessions: dict[str, EventSubSession] = {}
        self._reconnect_ids: dict[str, EventSubSession] = {}
        #: Every subscription ever created, by id (disabled ones stay visible, as on Twitch).
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._helix_faults: list[_Fault] = []
        #: Overrides for the next welcomes: (fields to set, fields to remove).
        self._welcome_overrides: list[tuple[dict[str, Any], tuple[str, ...]]] = []
        self._stopping: Optional[asyncio.Future[None]] = None
        self._duplicates = 0
        self._rate: dict[str, tuple[float, int]] = {}
        #: Helix requests received and notifications sent (for tests).
        self.helix_requests = 0
        self.notifications_sent = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The WebSocket URL, e.g. ``ws://127.0.0.1:8080/ws``."""
        return f"ws://{self._url_host}:{self._port()}/ws"

    @property
    def urls(self) -> EventSubURLs:
        """``eventsub_url``, ``helix_url`` and ``id_url``: the pool's keywords, ready to pass."""
        base = self.http_url
        return EventSubURLs(
            eventsub_url=self.url, helix_url=f"{base}/helix", id_url=f"{base}/oauth2"
        )

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._ws_handler)
        for prefix in ("/helix", ""):
            path = f"{prefix}/eventsub/subscriptions"
            app.router.add_post(path, self._helix("create", self._h_create))
            app.router.add_get(path, self._helix("list", self._h_list))
            app.router.add_delete(path, self._helix("delete", self._h_delete))
        app.router.add_get("/oauth2/validate", self._h_validate)

    async def _before_close(self) -> None:
        stopping = self._stop_signal()
        if not stopping.done():
            stopping.set_result(None)  # Helix answers held back by a fault end now
        for session in self._connections.values():
            for task in session._tasks:
                task.cancel()

    async def __aenter__(self) -> EventSubEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ tokens

    def add_token(
        self,
        token: str,
        user_id: Optional[str | int],
        *,
        scopes: Iterable[str] = (),
        client_id: str = "emulator-client-id",
        login: Optional[str] = None,
        expires_in: Optional[float] = None,
    ) -> None:
        """Register a user access token; Helix and ``/validate`` refuse unknown tokens (401).

        Parameters
        ----------
        token: :class:`str`
            The token, without ``oauth:``.
        user_id: Optional[Union[:class:`str`, :class:`int`]]
            Its user; ``None`` registers an app access token (refused for WebSockets).
        scopes: Iterable[:class:`str`]
            Its scopes.
        client_id: :class:`str`
            The client id that issued it; Helix requests must send it as ``Client-Id``.
        login: Optional[:class:`str`]
            Its user's login (``user<user_id>`` by default).
        expires_in: Optional[:class:`float`]
            Seconds until it expires; ``None`` never.
        """
        if not isinstance(token, str) or not token:
            raise TypeError("token must be a non-empty str")
        if isinstance(scopes, str):
            raise TypeError("scopes must be an iterable of scope names, not one str")
        if expires_in is not None and not (math.isfinite(expires_in) and expires_in >= 0):
            raise ValueError("expires_in must be finite and not negative")
        uid = None if user_id is None else str(user_id)
        self._tokens[token] = EventSubToken(
            token=token,
            user_id=uid,
            login=login or (f"user{uid}" if uid else ""),
            client_id=client_id,
            scopes=frozenset(scopes),
            expires_at=None if expires_in is None else time.monotonic() + expires_in,
        )
        log.info("registered a token of user %s with %d scope(s)", uid, len(set(scopes)))

    async def expire_token(self, token: str) -> None:
        """Make ``token`` expired from now on (``/validate`` and Helix answer 401)."""
        self._token(token).expires_at = time.monotonic()

    async def invalidate_token(self, token: str, valid: bool = False) -> None:
        """Make ``token`` invalid (or, with ``valid=True``, valid again)."""
        self._token(token).valid = valid

    def _token(self, token: str) -> EventSubToken:
        try:
            return self._tokens[token]
        except KeyError:
            raise ValueError("no such token is registered") from None

    # ------------------------------------------------------------------ view

    @property
    def sessions(self) -> list[EventSubSession]:
        """The open sockets, oldest first."""
        return list(self._connections.values())

    def enabled(self, session_id: Optional[str] = None) -> list[dict[str, Any]]:
        """The enabled subscriptions, of one session or all."""
        return [
            sub
            for sub in self.subscriptions.values()
            if sub["status"] == "enabled"
            and (session_id is None or sub["transport"]["session_id"] == session_id)
        ]

    def state(self) -> dict[str, Any]:
        """A JSON-ready view of the sessions and of every subscription."""
        return {
            "sessions": [
                {
                    "id": s.session_id,
                    "status": s.status,
                    "keepalive_timeout_seconds": s.keepalive,
                    "keepalives": s.keepalives,
                    "user_id": s.owner[0] if s.owner else None,
                    "subscriptions": [sub["id"] for sub in self.enabled(s.session_id)],
                }
                for s in self._connections.values()
            ],
            "subscriptions": [self._public(sub) for sub in self.subscriptions.values()],
        }

    async def wait_for_subscriptions(self, count: int, timeout: float = 5.0) -> None:
        """Wait until exactly ``count`` subscriptions are enabled."""
        await self.wait_until(lambda: len(self.enabled()) == count, timeout)

    # ------------------------------------------------------------------ websocket side

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusing(request)
        if refusal is not None:
            return refusal
        keepalive = self._keepalive_param(request.query.get("keepalive_timeout_seconds"))
        if keepalive is None:
            return web.Response(status=400, text="keepalive_timeout_seconds must be a number")
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="this is an EventSub websocket endpoint")
        await ws.prepare(request)
        session = EventSubSession(next(self._ids), ws, request)
        self._opened(session)
        reconnect_id = request.query.get("reconnect_id")
        try:
            if reconnect_id is not None:
                old = self._reconnect_ids.pop(reconnect_id, None)
                if old is None or old.status != "reconnecting":
                    log.info("socket %d used an invalid reconnect URL", session.id)
                    await self._close(session, 4007)
                    return ws
                keepalive = old.keepalive
            self._welcome(session, keepalive, moved_from=old if reconnect_id else None)
            await self._read(session)
        finally:
            await self._ended(session)
        return ws

    def _keepalive_param(self, raw: Optional[str]) -> Optional[int]:
        if raw is None:
            return 10 if self.min_keepalive <= 10 else self.min_keepalive
        try:
            value = float(raw)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        # Twitch clamps a number outside 10-600 to the range rather than refusing it.
        return int(min(600, max(self.min_keepalive, value)))

    def _welcome(
        self, session: EventSubSession, keepalive: int, moved_from: Optional[EventSubSession]
    ) -> None:
        session.session_id = f"{secrets.token_hex(4)}_{secrets.token_hex(4)}"
        session.keepalive = keepalive
        session.connected_at = payloads.rfc3339(_now_ns())
        self._sessions[session.session_id] = session
        if moved_from is not None:
            # The new socket takes the session's subscriptions; nothing is re-created.
            session.owner, session.used = moved_from.owner, True
            moved_from.moved_to = session
            for sub in self.enabled(moved_from.session_id):
                sub["transport"]["session_id"] = session.session_id
                sub["transport"]["connected_at"] = session.connected_at
        session_object = self._session_object(session, "connected", keepalive, None)
        if self._welcome_overrides:
            changes, removals = self._welcome_overrides.pop(0)
            session_object.update(changes)
            for name in removals:
                session_object.pop(name, None)
        self._send_frame(session, "session_welcome", {"session": session_object})
        loop = asyncio.get_running_loop()
        session._tasks.append(loop.create_task(self._keepalives(session)))
        if self.ping_interval is not None:
            session._tasks.append(loop.create_task(self._pings(session, self.ping_interval)))
        if moved_from is None:
            session._tasks.append(loop.create_task(self._unused_after(session)))
        self._changed.set()
        log.info("socket %d is session %s", session.id, session.session_id)

    @staticmethod
    def _session_object(
        session: EventSubSession, status: str, keepalive: Optional[int], url: Optional[str]
    ) -> dict[str, Any]:
        return {
            "id": session.session_id,
            "status": status,
            "connected_at": session.connected_at,
            "keepalive_timeout_seconds": keepalive,
            "reconnect_url": url,
        }

    def _send_frame(
        self,
        session: EventSubSession,
        message_type: str,
        payload: dict[str, Any],
        subscription: Optional[dict[str, Any]] = None,
        message_id: Optional[str] = None,
    ) -> bool:
        metadata = {
            "message_id": message_id or str(uuid.uuid4()),
            "message_type": message_type,
            "message_timestamp": payloads.rfc3339(_now_ns()),
        }
        if subscription is not None:
            metadata["subscription_type"] = subscription["type"]
            metadata["subscription_version"] = subscription["version"]
        text = json.dumps({"metadata": metadata, "payload": payload}, separators=(",", ":"))
        if session.ws.closed:
            return False
        if session.send(text):
            return True
        log.info("session %s left too many messages unread; dropping it", session.session_id)
        self.slow_clients_dropped += 1
        self._drop_now(session.id)
        return False

    async def _read(self, session: EventSubSession) -> None:
        async for msg in session.ws:
            if msg.type == WSMsgType.PING:
                await session.ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                session.ponged = True
            elif msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                # The protocol is server to client only: anything else ends the session.
                log.info("session %s sent a data frame; closing 4001", session.session_id)
                await self._close(session, 4001)  # reading on takes in the client's close

    async def _pings(self, session: EventSubSession, interval: float) -> None:
        while not session.ws.closed:
            session.ponged = False
            await session.ws.ping()
            await asyncio.sleep(interval)
            if not session.ponged:
                log.info("session %s did not answer a ping; closing 4002", session.session_id)
                await self._close(session, 4002)
                return

    async def _keepalives(self, session: EventSubSession) -> None:
        # Twitch sends a keepalive only when nothing else went out for the whole window.
        while not session.ws.closed:
            due = session.last_sent + session.keepalive - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            if session.keepalives:
                self._send_frame(session, "session_keepalive", {})
            else:
                session.last_sent = time.monotonic()

    async def _unused_after(self, session: EventSubSession) -> None:
        window = self.subscribe_window
        await asyncio.sleep(session.keepalive if window is None else window)
        if not session.used and not session.ws.closed:
            log.info("session %s made no subscription in time; closing 4003", session.session_id)
            await self._close(session, 4003)

    async def _close(self, session: EventSubSession, code: int) -> None:
        """Send the close frame now; the handshake finishes in the background.

        A fault must not wait for a client that is not reading at that moment.
        """
        if session.closing is not None:
            return
        session.close_code = code
        reason = CLOSE_REASONS.get(code, "").encode()
        session.closing = asyncio.get_running_loop().create_task(
            session.ws.close(code=code, message=reason), name=f"eventsub-close-{session.id}"
        )
        await asyncio.sleep(0)  # the frame is written before the caller goes on

    def _lost(self, session: EventSubSession) -> None:
        """The session is over: its subscriptions are disabled (unless they moved on)."""
        self._sessions.pop(session.session_id, None)
        session.status = "closed"
        if session.moved_to is None and session.session_id:
            status = _DISABLED_STATUS.get(session.close_code or 0, "websocket_disconnected")
            stamp = payloads.rfc3339(_now_ns())
            for sub in self.enabled(session.session_id):
                sub["status"] = status
                sub["transport"]["disconnected_at"] = stamp
        self._changed.set()

    def _drop_now(self, connection: Optional[int] = None) -> int:
        # At once, not when the handler notices: nothing is counted as delivered on a
        # socket that is already gone.
        for session in self._select(connection):
            self._lost(session)
        return super()._drop_now(connection)

    async def _ended(self, session: EventSubSession) -> None:
        current = asyncio.current_task()
        others: list[asyncio.Future[Any]] = [t for t in session._tasks if t is not current]
        for task in others:
            task.cancel()
        if session.closing is not None:
            others.append(session.closing)  # it ends with the socket; not cancelled
        await asyncio.gather(*others, return_exceptions=True)
        if session.reconnect_id is not None:
            self._reconnect_ids.pop(session.reconnect_id, None)
        self._lost(session)
        await self._closed(session)
        log.info("session %s closed", session.session_id or f"(socket {session.id})")

    # ------------------------------------------------------------------ events

    async def trigger(self, type: str, *, version: Optional[str] = None, **fields: Any) -> int:
        """Send a realistic ``type`` event to every subscription it matches.

        Parameters
        ----------
        type: :class:`str`
            A subscription type, e.g. ``channel.cheer``.
        version: Optional[:class:`str`]
            Only subscriptions of this version; ``None``: every version subscribed.
        **fields:
            Event fields to override (dotted keys reach nested ones, e.g.
            ``**{"message.text": "hi"}``) and condition ids such as
            ``broadcaster_user_id``; ``channel.chat.notification`` takes ``notice_type``
            and ``channel.moderate`` ``action`` to pick the event's form.

        Returns
        -------
        :class:`int`
            How many sessions received it.

        Raises
        ------
        ValueError
            Unknown type or version, or a field the event does not have.
        """
        delivered, _ = await self._trigger(type, version, fields)
        return delivered

    async def _trigger(
        self, type: str, version: Optional[str], fields: Mapping[str, Any]
    ) -> tuple[int, Optional[dict[str, Any]]]:
        versions = [version] if version is not None else None
        if versions is None:
            subscribed = {sub["version"] for sub in self.enabled() if sub["type"] == type}
            versions = sorted(subscribed, key=int) or [payloads.latest_version(type)]
        delivered = 0
        first: Optional[dict[str, Any]] = None
        for v in versions:
            spec = SUBSCRIPTION_TYPES.get((type, str(v)))
            if spec is None:
                payloads.latest_version(type)  # names the known types when type is unknown
                raise ValueError(f"{type} has no version {v!r}")
            overrides, filters = payloads.split_fields(spec, fields)
            event = payloads.build_event(spec, overrides, _now_ns())
            first = first or event
            for sub in self.enabled():
                if (sub["type"], sub["version"]) != (type, spec.version):
                    continue
                if self._matches(spec, sub["condition"], event, filters):
                    delivered += self._notify(sub, event)
        await asyncio.sleep(0)  # let the writers run before the next event is queued
        log.info("triggered %s: %d session(s)", type, delivered)
        return delivered, first

    @staticmethod
    def _matches(
        spec: SubscriptionType,
        condition: Mapping[str, str],
        event: Mapping[str, Any],
        filters: Mapping[str, str],
    ) -> bool:
        for key, wanted in condition.items():
            if key in filters:
                if filters[key] != wanted:
                    return False
                continue
            path = spec.event_path(key)
            if path is None:
                continue
            value: Any = event
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is None or str(value) != wanted:
                return False
        return True

    def _notify(self, sub: dict[str, Any], event: dict[str, Any]) -> int:
        session = self._sessions.get(sub["transport"]["session_id"])
        if session is None:
            return 0
        payload = {"subscription": self._public(sub, wire=True), "event": event}
        message_id = str(uuid.uuid4())
        sent = self._send_frame(session, "notification", payload, sub, message_id)
        if sent and self._duplicates:
            # At-least-once delivery: the same notification, the same message_id, again.
            self._duplicates -= 1
            self._send_frame(session, "notification", payload, sub, message_id)
        self.notifications_sent += sent
        return int(sent)

    @staticmethod
    def _public(sub: dict[str, Any], wire: bool = False) -> dict[str, Any]:
        shown = {k: v for k, v in sub.items() if not k.startswith("_")}
        shown["condition"] = dict(sub["condition"])
        transport = dict(sub["transport"])
        if wire:
            transport.pop("connected_at", None)
            transport.pop("disconnected_at", None)
        shown["transport"] = transport
        return shown

    # ------------------------------------------------------------------ faults

    def _pick(self, session: Optional[str]) -> list[EventSubSession]:
        if session is None:
            return [s for s in self._connections.values() if s.status == "connected"]
        found = self._sessions.get(session)
        return [found] if found is not None else []

    async def send_reconnect(
        self, session: Optional[str] = None, *, url: Optional[str] = None
    ) -> int:
        """Send ``session_reconnect`` to one session (by id) or all; returns how many.

        The ``reconnect_url`` points at this server, or is ``url`` when given (a hostile
        server's move to another host; a client should not follow it). The new socket's
        welcome carries the session's subscriptions under a new session id. The old socket
        is closed with 4004 ``reconnect_grace`` seconds later if the client has not closed
        it by then, and if the client never moved, its subscriptions are disabled.
        """
        sessions = self._pick(session)
        loop = asyncio.get_running_loop()
        for s in sessions:
            s.status = "reconnecting"
            s.reconnect_id = secrets.token_urlsafe(12)
            self._reconnect_ids[s.reconnect_id] = s
            target = url or f"{self.url}?reconnect_id={s.reconnect_id}"
            session_object = self._session_object(s, "reconnecting", None, target)
            self._send_frame(s, "session_reconnect", {"session": session_object})
            s._tasks.append(loop.create_task(self._grace(s)))
        self._changed.set()
        log.info("session_reconnect -> %d session(s)", len(sessions))
        await asyncio.sleep(0)
        return len(sessions)

    async def _grace(self, session: EventSubSession) -> None:
        await asyncio.sleep(self.reconnect_grace)
        if not session.ws.closed:
            log.info("session %s did not close after reconnecting; 4004", session.session_id)
            await self._close(session, 4004)

    async def drop(self, session: Optional[str] = None) -> int:
        """Abort one session's socket (by session id) or all, with no close frame."""
        sessions = self._pick(session) if session is not None else self.sessions
        for s in sessions:
            self._drop_now(s.id)
        return len(sessions)

    async def close_session(self, session: Optional[str] = None, code: int = 4000) -> int:
        """Close one session or all with close ``code`` (4000-4007, or 1000-1011)."""
        if not (4000 <= code <= 4007 or 1000 <= code <= 1011):
            raise ValueError("code must be an EventSub close code (4000-4007) or 1000-1011")
        sessions = self._pick(session) if session is not None else self.sessions
        for s in sessions:
            await self._close(s, code)
        log.info("closed %d session(s) with %d", len(sessions), code)
        return len(sessions)

    async def stop_keepalives(self, session: Optional[str] = None, stopped: bool = True) -> int:
        """Stop (or, with ``stopped=False``, resume) keepalives, to test watchdogs."""
        sessions = self._pick(session)
        for s in sessions:
            s.keepalives = not stopped
        self._changed.set()
        return len(sessions)

    async def revoke(
        self,
        reason: str = "authorization_revoked",
        *,
        subscription: Optional[str] = None,
        type: Optional[str] = None,
        user_id: Optional[str | int] = None,
        token: Optional[str] = None,
    ) -> list[str]:
        """Revoke enabled subscriptions, sending each session a ``revocation`` message.

        Filters combine: one subscription id, a type, the user who created them or the
        token they were created with. With ``token`` and ``authorization_revoked`` the
        token itself becomes invalid too, as when a user disconnects the app.

        Returns
        -------
        List[:class:`str`]
            The ids of the revoked subscriptions.
        """
        if not isinstance(reason, str) or not reason:
            raise ValueError("reason must be a non-empty string, e.g. authorization_revoked")
        uid = None if user_id is None else str(user_id)
        revoked: list[str] = []
        for sub in self.enabled():
            if subscription is not None and sub["id"] != subscription:
                continue
            if type is not None and sub["type"] != type:
                continue
            if uid is not None and sub["_user_id"] != uid:
                continue
            if token is not None and sub["_token"] != token:
                continue
            sub["status"] = reason
            revoked.append(sub["id"])
            session = self._sessions.get(sub["transport"]["session_id"])
            if session is not None:
                payload = {"subscription": self._public(sub, wire=True)}
                self._send_frame(session, "revocation", payload, sub)
        if token is not None and reason == "authorization_revoked" and token in self._tokens:
            self._tokens[token].valid = False
        self._changed.set()
        await asyncio.sleep(0)
        log.info("revoked %d subscription(s): %s", len(revoked), reason)
        return revoked

    async def fail_next_helix(
        self, status: int, count: int = 1, *, reset_after: float = 1.0
    ) -> None:
        """Answer the next ``count`` Helix subscription requests with ``status``.

        ``429`` carries ``Ratelimit-Remaining: 0`` and a ``Ratelimit-Reset``
        ``reset_after`` seconds ahead; ``500`` and ``503`` are server errors.
        """
        if status not in (429, 500, 502, 503, 504):
            raise ValueError("status must be 429, 500, 502, 503 or 504")
        if not (math.isfinite(reset_after) and 0 <= reset_after <= 3600):
            raise ValueError("reset_after must be from 0 to 3600 seconds")
        self._queue_faults(count, _Fault(None, status=status, reset_after=reset_after))
        log.info("the next %d Helix call(s) will get %d", count, status)

    async def slow_next_helix(
        self, seconds: float, count: int = 1, *, call: Optional[str] = None
    ) -> None:
        """Hold back the answers to the next ``count`` Helix requests by ``seconds``.

        The request is carried out after the delay. ``call`` picks the route
        (``"create"``, ``"list"``, ``"delete"`` or ``"validate"``); ``None`` means any
        subscription call. A delay longer than the test is a server that never answers:
        it ends when the emulator closes.
        """
        if not (math.isfinite(seconds) and 0 <= seconds <= 86_400):
            raise ValueError("seconds must be from 0 to 86400")
        self._queue_faults(count, _Fault(self._call_name(call), delay=float(seconds)))

    async def garbage_next_helix(self, count: int = 1, *, call: Optional[str] = None) -> None:
        """Answer the next ``count`` Helix requests with ``200`` and a useless JSON body.

        The request is carried out first (a create creates, a delete deletes), as when a
        proxy or a broken server mangles the answer on its way back. ``call`` as in
        :meth:`slow_next_helix`.
        """
        self._queue_faults(count, _Fault(self._call_name(call), garbage=True))

    @staticmethod
    def _call_name(call: Optional[str]) -> Optional[str]:
        if call is not None and call not in HELIX_CALLS:
            raise ValueError(f"call must be one of {', '.join(HELIX_CALLS)} or None")
        return call

    def _queue_faults(self, count: int, fault: _Fault) -> None:
        if count < 0 or len(self._helix_faults) + count > MAX_FAULTS:
            raise ValueError(f"count must be from 0 to {MAX_FAULTS} faults in all")
        self._helix_faults.extend(dataclasses.replace(fault) for _ in range(count))

    def _take_fault(self, call: str) -> Optional[_Fault]:
        for index, fault in enumerate(self._helix_faults):
            if fault.applies(call):
                return self._helix_faults.pop(index)
        return None

    async def next_welcome(
        self, count: int = 1, *, remove: Iterable[str] = (), **fields: Any
    ) -> None:
        """Change the session object of the next ``count`` welcomes, as a hostile server.

        ``fields`` replace the session's fields as given (``id=None``,
        ``keepalive_timeout_seconds=float("nan")``: NaN and Infinity are written as
        JavaScript's literals); the names in ``remove`` are left out.
        """
        if not 0 <= count <= MAX_FAULTS:
            raise ValueError(f"count must be from 0 to {MAX_FAULTS}")
        removals = tuple(remove)
        self._welcome_overrides.extend((dict(fields), removals) for _ in range(count))

    async def send_raw(self, text: str, session: Optional[str] = None) -> int:
        """Send ``text`` as it is, as one frame, to one session (by id) or all.

        For testing how a client takes malformed frames; returns how many got it.
        """
        if not isinstance(text, str):
            raise TypeError("text must be a str")
        sessions = self._pick(session)
        sent = sum(1 for s in sessions if not s.ws.closed and s.send(text))
        await asyncio.sleep(0)
        return sent

    async def duplicate_next(self, count: int = 1) -> None:
        """Deliver each of the next ``count`` notifications twice, with one ``message_id``."""
        if not 0 <= count <= MAX_FAULTS:
            raise ValueError(f"count must be from 0 to {MAX_FAULTS}")
        self._duplicates += count

    # ------------------------------------------------------------------ Helix

    def _helix_error(
        self, status: int, message: str, headers: Optional[dict[str, str]] = None
    ) -> web.Response:
        body = {"error": _ERRORS.get(status, "Error"), "status": status, "message": message}
        return web.json_response(body, status=status, headers=headers)

    def _rate_headers(self, client_id: str) -> tuple[dict[str, str], bool]:
        """The rate-limit headers of a call, and whether the bucket was already empty.

        Only authenticated client ids get a bucket, and expired buckets are dropped once
        there are many: nothing a request makes up is kept.
        """
        now = time.time()
        if client_id not in self._rate and len(self._rate) >= MAX_RATE_BUCKETS:
            self._rate = {k: v for k, v in self._rate.items() if v[0] > now}
        reset, remaining = self._rate.get(client_id, (now + 60, self.rate_limit))
        if now >= reset:
            reset, remaining = now + 60, self.rate_limit
        empty = remaining <= 0
        remaining = max(0, remaining - 1)
        self._rate[client_id] = (reset, remaining)
        headers = {
            "Ratelimit-Limit": str(self.rate_limit),
            "Ratelimit-Remaining": str(remaining),
            "Ratelimit-Reset": str(math.ceil(reset)),
        }
        return headers, empty

    def _authorize(
        self, request: web.Request
    ) -> tuple[Optional[EventSubToken], Optional[str], dict[str, str]]:
        """The token, an error message (401) and the rate-limit headers of a Helix call.

        The token is checked before the rate limit: a request that is not authenticated
        touches no bucket.
        """
        client_id = request.headers.get("Client-Id", "")
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if not client_id:
            return None, "Client-Id header required", {}
        if token is None or not token.usable():
            return None, "Invalid OAuth token", {}
        if token.client_id != client_id:
            return None, "Client ID and OAuth token do not match", {}
        headers, empty = self._rate_headers(client_id)
        if empty:
            raise _HelixFault(429, headers)
        return token, None, headers

    def _stop_signal(self) -> asyncio.Future[None]:
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_future()
        return self._stopping

    async def _fault_before(
        self, request: web.Request, call: str
    ) -> tuple[Optional[web.StreamResponse], Optional[_Fault]]:
        """Guard a Helix or OAuth route (loopback Host) and apply the next queued fault.

        Returns an answer to give instead of the call's, and the fault taken, if any.
        """
        refusal = self._refuse_host(request)
        if refusal is not None:
            return refusal, None
        fault = self._take_fault(call)
        if fault is None:
            return None, None
        if fault.delay:
            await asyncio.wait((self._stop_signal(),), timeout=fault.delay)
        if fault.status:
            headers: dict[str, str] = {}
            if fault.status == 429:
                headers["Ratelimit-Remaining"] = "0"
                headers["Ratelimit-Reset"] = str(math.ceil(time.time() + fault.reset_after))
            return _HelixFault(fault.status, headers).response(self), fault
        return None, fault

    @staticmethod
    def _garbage(answer: web.StreamResponse, fault: Optional[_Fault]) -> web.StreamResponse:
        if fault is None or not fault.garbage:
            return answer
        return web.Response(status=200, text=GARBAGE_BODY, content_type="application/json")

    def _helix(self, call_name: str, call: _HelixCall) -> Handler:
        """A route handler: guard, apply a fault, authorize, then ``call``."""

        async def handler(request: web.Request) -> web.StreamResponse:
            self.helix_requests += 1
            answer, fault = await self._fault_before(request, call_name)
            if answer is not None:
                return answer
            try:
                token, error, headers = self._authorize(request)
            except _HelixFault as limited:
                return limited.response(self)
            if token is None:
                return self._helix_error(401, error or "Invalid OAuth token", headers)
            return self._garbage(await call(request, token, headers), fault)

        return handler

    async def _h_create(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> web.Response:
        try:
            body = json.loads(await request.text()) if request.can_read_body else None
        except ValueError:
            body = None
        if request.content_type != "application/json" or not isinstance(body, dict):
            return self._helix_error(400, "the body must be a JSON object", headers)
        status, message, data = self._create(token, body)
        if status != 202:
            return self._helix_error(status, message, headers)
        return web.json_response(data, status=202, headers=headers)

    def _create(
        self, token: EventSubToken, body: dict[str, Any]
    ) -> tuple[int, str, dict[str, Any]]:
        spec = SUBSCRIPTION_TYPES.get((str(body.get("type")), str(body.get("version"))))
        if spec is None or not isinstance(body.get("version"), str):
            return 400, "The combination of values in the type and version fields is not valid", {}
        condition = body.get("condition")
        if not isinstance(condition, dict) or any(
            not isinstance(condition.get(k), str) or not condition[k] for k in spec.condition
        ):
            need = ", ".join(spec.condition)
            return 400, f"condition must have the string fields {need}", {}
        extra = set(condition) - set(spec.condition) - set(spec.optional)
        if extra:
            return 400, f"condition has unknown fields: {', '.join(sorted(extra))}", {}
        transport = body.get("transport")
        if not isinstance(transport, dict) or transport.get("method") != "websocket":
            return 400, "transport.method must be websocket", {}
        session = self._sessions.get(str(transport.get("session_id")))
        if session is None or session.status != "connected" or session.ws.closed:
            return 400, "websocket transport session does not exist or has already disconnected", {}
        if token.user_id is None:
            return 401, "an app access token cannot create websocket subscriptions", {}
        missing = missing_scopes(spec, token.scopes)
        if missing:
            return 403, f"subscription missing proper authorization: missing scope {missing[0]}", {}
        if spec.token_user is not None and condition[spec.token_user] != token.user_id:
            return (
                403,
                (
                    f"subscription missing proper authorization: {spec.token_user} "
                    "must be the token's user"
                ),
                {},
            )
        owner = (token.user_id, token.client_id)
        if (
            session.owner is not None
            and session.owner != owner
            and self.enabled(session.session_id)
        ):
            return 400, _DIFFERENT_USERS, {}
        mine = [s for s in self.enabled() if (s["_user_id"], s["_client_id"]) == owner]
        key = (spec.type, tuple(sorted(condition.items())))
        if any((s["type"], tuple(sorted(s["condition"].items()))) == key for s in mine):
            return 409, "subscription already exists", {}
        if len(self.enabled(session.session_id)) >= self.max_subscriptions:
            return 429, "websocket transport has the maximum number of subscriptions", {}
        sessions = {s["transport"]["session_id"] for s in mine}
        if session.session_id not in sessions and len(sessions) >= self.max_sessions:
            return 429, "number of websocket transports limit exceeded", {}
        cost = 0 if token.user_id in condition.values() else 1
        total = sum(s["cost"] for s in mine)
        if total + cost > self.max_total_cost:
            return 429, "total cost exceeded", {}
        sub: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "status": "enabled",
            "type": spec.type,
            "version": spec.version,
            "condition": dict(condition),
            "created_at": payloads.rfc3339(_now_ns()),
            "transport": {
                "method": "websocket",
                "session_id": session.session_id,
                "connected_at": session.connected_at,
            },
            "cost": cost,
            "_user_id": token.user_id,
            "_client_id": token.client_id,
            "_token": token.token,
        }
        self.subscriptions[sub["id"]] = sub
        session.owner, session.used = owner, True
        self._changed.set()
        log.info("session %s: created %s v%s", session.session_id, spec.type, spec.version)
        data = {
            "data": [self._public(sub)],
            "total": len(mine) + 1,
            "total_cost": total + cost,
            "max_total_cost": self.max_total_cost,
        }
        return 202, "", data

    async def _h_list(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> web.Response:
        query = request.query
        filters = [k for k in ("status", "type", "user_id", "subscription_id") if k in query]
        if len(filters) > 1:
            return self._helix_error(400, "use at most one of status, type and user_id", headers)
        subs = [
            s
            for s in self.subscriptions.values()
            if s["_client_id"] == token.client_id and s["_user_id"] == token.user_id
        ]
        if "status" in query:
            subs = [s for s in subs if s["status"] == query["status"]]
        elif "type" in query:
            subs = [s for s in subs if s["type"] == query["type"]]
        elif "user_id" in query:
            subs = [s for s in subs if query["user_id"] in s["condition"].values()]
        elif "subscription_id" in query:
            subs = [s for s in subs if s["id"] == query["subscription_id"]]
        try:
            start = int(query.get("after", "0"))
        except ValueError:
            return self._helix_error(400, "invalid cursor", headers)
        page = subs[start : start + _PAGE]
        enabled = [s for s in subs if s["status"] == "enabled"]
        body = {
            "data": [self._public(s) for s in page],
            "total": len(subs),
            "total_cost": sum(s["cost"] for s in enabled),
            "max_total_cost": self.max_total_cost,
            "pagination": {"cursor": str(start + _PAGE)} if start + _PAGE < len(subs) else {},
        }
        return web.json_response(body, headers=headers)

    async def _h_delete(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> web.Response:
        sub_id = request.query.get("id")
        if not sub_id:
            return self._helix_error(400, "missing required parameter id", headers)
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub["_client_id"] != token.client_id or sub["_user_id"] != token.user_id:
            return self._helix_error(404, "subscription not found", headers)
        del self.subscriptions[sub_id]
        self._changed.set()
        return web.Response(status=204, headers=headers)

    async def _h_validate(self, request: web.Request) -> web.StreamResponse:
        answer, fault = await self._fault_before(request, "validate")
        if answer is not None:
            return answer
        return self._garbage(self._validate(request), fault)

    def _validate(self, request: web.Request) -> web.Response:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self._tokens.get(value.strip()) if scheme.lower() in ("oauth", "bearer") else None
        if token is None or not token.usable():
            return web.json_response({"status": 401, "message": "invalid access token"}, status=401)
        body: dict[str, Any] = {
            "client_id": token.client_id,
            "scopes": sorted(token.scopes),
            "expires_in": (
                0
                if token.expires_at is None
                else max(0, math.floor(token.expires_at - time.monotonic()))
            ),
        }
        if token.user_id is not None:
            body.update(login=token.login, user_id=token.user_id)
        return web.json_response(body)

    # ------------------------------------------------------------------ control API

    def _control_routes(self) -> dict[str, Handler]:
        return {
            "state": self._c_state,
            "token": self._c_token,
            "trigger": self._c_trigger,
            "reconnect": self._c_reconnect,
            "drop": self._c_drop,
            "close": self._c_close,
            "keepalive": self._c_keepalive,
            "revoke": self._c_revoke,
            "refuse": self._c_refuse,
            "fail-helix": self._c_fail_helix,
            "duplicate": self._c_duplicate,
            "expire": self._c_expire,
            "invalidate": self._c_invalidate,
        }

    def _session_field(self, body: dict[str, Any]) -> Optional[str]:
        session: Optional[str] = self._optional(body, "session", str, None)
        return session

    async def _c_token(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        token = self._field(body, "token", str)
        user_id = self._optional(body, "user_id", (str, int), None)
        scopes = self._optional(body, "scopes", list, [])
        if not all(isinstance(s, str) for s in scopes):
            raise _BadRequest("field 'scopes' must be a list of strings")
        expires_in = self._optional(body, "expires_in", (int, float), None)
        self.add_token(
            token,
            user_id,
            scopes=scopes,
            client_id=self._optional(body, "client_id", str, "emulator-client-id"),
            login=self._optional(body, "login", str, None),
            expires_in=expires_in,
        )
        return web.json_response({"ok": True})

    async def _c_trigger(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        type_ = self._field(body, "type", str)
        version = self._optional(body, "version", (str, int), None)
        fields = self._optional(body, "fields", dict, {})
        delivered, event = await self._trigger(
            type_, None if version is None else str(version), fields
        )
        return web.json_response({"delivered": delivered, "event": event})

    async def _c_reconnect(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return web.json_response({"sessions": await self.send_reconnect(self._session_field(body))})

    async def _c_drop(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return web.json_response({"sessions": await self.drop(self._session_field(body))})

    async def _c_close(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        code = self._optional(body, "code", int, 4000)
        count = await self.close_session(self._session_field(body), code)
        return web.json_response({"sessions": count})

    async def _c_keepalive(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        enabled = self._optional(body, "enabled", bool, False)
        count = await self.stop_keepalives(self._session_field(body), stopped=not enabled)
        return web.json_response({"sessions": count})

    async def _c_revoke(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        revoked = await self.revoke(
            self._optional(body, "reason", str, "authorization_revoked"),
            subscription=self._optional(body, "subscription", str, None),
            type=self._optional(body, "type", str, None),
            user_id=self._optional(body, "user_id", (str, int), None),
            token=self._optional(body, "token", str, None),
        )
        return web.json_response({"subscriptions": revoked})

    async def _c_fail_helix(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        status = self._field(body, "status", int)
        reset_after = float(self._optional(body, "reset_after", (int, float), 1.0))
        await self.fail_next_helix(status, self._count(body), reset_after=reset_after)
        return web.json_response({"pending_faults": len(self._helix_faults)})

    async def _c_duplicate(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        await self.duplicate_next(self._count(body))
        return web.json_response({"pending": self._duplicates})

    async def _c_expire(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        await self.expire_token(self._field(body, "token", str))
        return web.json_response({"ok": True})

    async def _c_invalidate(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        valid = self._optional(body, "valid", bool, False)
        await self.invalidate_token(self._field(body, "token", str), valid)
        return web.json_response({"ok": True})


class _HelixFault(Exception):
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers

    def response(self, emulator: EventSubEmulator) -> web.Response:
        return emulator._helix_error(self.status, "emulated failure", self.headers)
