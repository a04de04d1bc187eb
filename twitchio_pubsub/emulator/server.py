"""A local Twitch PubSub server for tests, demos and offline bot development."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import WSMsgType, web

from .. import protocol
from . import payloads
from ._base import (
    BASE_CONTROLS,
    MAX_FAULTS,
    Connection,
    Control,
    EmulatorServer,
    Param,
    count,
)

__all__ = ("DOCUMENTED_TOPIC_PATTERNS", "EmulatorConnection", "PubSubEmulator")

log = logging.getLogger(__name__)

#: Regular expressions of the topic families Twitch documented for third parties.
DOCUMENTED_TOPIC_PATTERNS: tuple[str, ...] = (
    r"channel-bits-events-v1\.\d+",
    r"channel-bits-events-v2\.\d+",
    r"channel-bits-badge-unlocks\.\d+",
    r"channel-points-channel-v1\.\d+",
    r"channel-subscribe-events-v1\.\d+",
    r"chat_moderator_actions\.\d+\.\d+",
    r"automod-queue\.\d+\.\d+",
    r"user-moderation-notifications\.\d+\.\d+",
    r"low-trust-users\.\d+\.\d+",
    r"whispers\.\d+",
)


class EmulatorConnection(Connection):
    """One client connected to the PubSub emulator.

    Attributes
    ----------
    id: :class:`int`
        The connection's id, unique for the emulator's lifetime.
    topics: Dict[:class:`str`, Optional[:class:`str`]]
        The topics this connection listens to, mapped to the token that authorised them.
    silent: :class:`bool`
        When set, PINGs on this connection get no PONG.
    """

    __slots__ = ("silent", "topics")

    def __init__(self, id: int, ws: web.WebSocketResponse, request: web.Request) -> None:
        super().__init__(id, ws, request)
        self.topics: dict[str, str | None] = {}
        self.silent = False

    def __repr__(self) -> str:
        return f"<EmulatorConnection id={self.id} topics={len(self.topics)}>"


class PubSubEmulator(EmulatorServer[EmulatorConnection]):
    """A real websocket server that speaks Twitch's PubSub protocol.

    Use it as an async context manager; it listens on a free loopback port by default::

        async with PubSubEmulator() as emu:
            pool = PubSubPool(client, endpoint=emu.url)
            ...
            await emu.trigger("bits", channel=12345)

    The same port serves an HTTP control API under ``/control/`` (see the docs), so a
    running emulator can be driven from the command line or any language.

    Parameters
    ----------
    host: :class:`str`
        The address to bind, ``127.0.0.1`` by default.
    port: :class:`int`
        The port to bind; ``0`` (the default) picks a free one.
    max_topics: :class:`int`
        Topics allowed per connection (Twitch: 50); more fail with ``ERR_TOO_MANY_TOPICS``.
    extra_topic_patterns: Iterable[:class:`str`]
        Regular expressions of further topics to accept besides the documented families.
    reconnect_grace: Optional[:class:`float`]
        Seconds after a RECONNECT before the server drops that connection, as Twitch
        does within 30 s; ``None`` keeps it open.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_topics: int = 50,
        extra_topic_patterns: Iterable[str] = (),
        reconnect_grace: float | None = 30.0,
    ) -> None:
        super().__init__(host, port)
        self.max_topics = max_topics
        self.reconnect_grace = reconnect_grace
        patterns = (*DOCUMENTED_TOPIC_PATTERNS, *extra_topic_patterns)
        self._topic_re = re.compile("|".join(f"(?:{p})" for p in patterns))
        self._invalid_tokens: set[str] = set()
        self._listen_faults: list[str | None] = []
        self._unlisten_faults: list[str] = []
        #: LISTEN requests received (for tests).
        self.listen_count = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The websocket URL to give clients, e.g. ``ws://127.0.0.1:8765``."""
        return f"ws://{self._url_host}:{self._port()}"

    _kind = "PubSub emulator"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._ws_handler)
        app.router.add_get("/v1", self._ws_handler)

    async def __aenter__(self) -> PubSubEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ view

    @property
    def connections(self) -> list[EmulatorConnection]:
        """The open connections, oldest first."""
        return list(self._connections.values())

    def state(self) -> dict[str, Any]:
        """A JSON-ready view: ``{"connections": [{"id": ..., "topics": [...]}, ...]}``."""
        return {
            "connections": [
                {"id": c.id, "topics": sorted(c.topics), "silent": c.silent}
                for c in self._connections.values()
            ]
        }

    async def wait_for_topics(self, count: int, timeout: float = 5.0) -> None:
        """Wait until the connections hold ``count`` topics in all."""
        await self.wait_until(
            lambda: sum(len(c.topics) for c in self._connections.values()) == count, timeout
        )

    # ------------------------------------------------------------------ websocket side

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusing(request)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="this is a PubSub websocket endpoint")
        await ws.prepare(request)
        conn = EmulatorConnection(next(self._ids), ws, request)
        self._opened(conn)
        log.info("connection %d opened from %s", conn.id, request.remote)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._handle_frame(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    conn.send(protocol.build_response(None, protocol.ERR_BADMESSAGE))
        finally:
            await self._closed(conn)
            log.info("connection %d closed", conn.id)
        return ws

    async def _handle_frame(self, conn: EmulatorConnection, text: str) -> None:
        frame = protocol.parse_client_frame(text)
        if isinstance(frame, protocol.Ping):
            if not conn.silent:
                conn.send(protocol.build_pong())
            return
        if isinstance(frame, protocol.InvalidFrame):
            log.info("connection %d sent a bad frame: %s", conn.id, frame.reason)
            conn.send(protocol.build_response(None, protocol.ERR_BADMESSAGE))
            return
        if isinstance(frame, protocol.Unlisten):
            if self._unlisten_faults:
                fault = self._unlisten_faults.pop(0)
                log.info("connection %d UNLISTEN %s -> %s", conn.id, ", ".join(frame.topics), fault)
                conn.send(protocol.build_response(frame.nonce, fault))
                return
            for topic in frame.topics:
                conn.topics.pop(topic, None)
            self._changed.set()
            log.info("connection %d UNLISTEN %s", conn.id, ", ".join(frame.topics))
            conn.send(protocol.build_response(frame.nonce))
            return
        self.listen_count += 1
        error = self._check_listen(conn, frame)
        if error is None and self._listen_faults:
            error = self._listen_faults.pop(0)
            if error is None:
                log.info("connection %d LISTEN left unanswered (fault)", conn.id)
                return
        if error:
            log.info("connection %d LISTEN %s -> %s", conn.id, ", ".join(frame.topics), error)
        else:
            for topic in frame.topics:
                conn.topics[topic] = frame.auth_token
            self._changed.set()
            log.info("connection %d LISTEN %s", conn.id, ", ".join(frame.topics))
        conn.send(protocol.build_response(frame.nonce, error or ""))

    def _check_listen(self, conn: EmulatorConnection, frame: protocol.Listen) -> str | None:
        for topic in frame.topics:
            if not self._topic_re.fullmatch(topic):
                return protocol.ERR_BADTOPIC
        token = frame.auth_token
        if not token or token in self._invalid_tokens or token.startswith(("oauth:", "Bearer ")):
            return protocol.ERR_BADAUTH
        if len(set(conn.topics) | set(frame.topics)) > self.max_topics:
            return protocol.ERR_TOO_MANY_TOPICS
        return None

    # ------------------------------------------------------------------ events and faults

    async def publish(self, topic: str, message: dict[str, Any] | str) -> int:
        """Send an event to every connection listening to ``topic``.

        Parameters
        ----------
        topic: :class:`str`
            The full topic string.
        message: Union[:class:`dict`, :class:`str`]
            The inner message; a ``dict`` is JSON-encoded, a ``str`` is sent as is.

        Returns
        -------
        :class:`int`
            How many connections received it.
        """
        if not isinstance(topic, str) or not topic:
            raise TypeError("topic must be a non-empty string")
        if isinstance(message, dict):
            text = json.dumps(message, separators=(",", ":"))
        elif isinstance(message, str):
            text = message
        else:
            raise TypeError(f"message must be a dict or str, not {type(message).__name__}")
        conns = [c for c in self._connections.values() if topic in c.topics]
        return await self._send(conns, protocol.build_message(topic, text))

    async def trigger(
        self,
        kind: str,
        /,
        channel: int | str,
        user: int | str | None = None,
        **overrides: Any,
    ) -> int:
        """Publish a realistic event of ``kind`` (see :mod:`~twitchio_pubsub.emulator.payloads`).

        For two-id topics with no ``user``, the event goes to every listened topic of
        that family on ``channel`` (whoever the moderator is).

        ``overrides`` replace payload fields, any of them: ``channel_id``, ``user_id`` or
        ``kind`` included (dotted keys reach nested fields, ``None`` removes a key).

        Returns
        -------
        :class:`int`
            How many connections received it.
        """
        delivered, _, _ = await self._trigger(kind, channel, user, overrides)
        return delivered

    async def _trigger(
        self, kind: str, channel: int | str, user: int | str | None, overrides: dict[str, Any]
    ) -> tuple[int, list[str], dict[str, Any]]:
        """Build and publish; returns (connections reached, topics, message)."""
        kind = payloads.ALIASES.get(kind, kind)
        topic, message = payloads.build_event(kind, channel, user, **overrides)
        family, ids, _ = payloads.KINDS[kind]
        targets = [topic]
        if ids == 2 and user is None:
            suffix = f".{channel}"
            listened = {
                t
                for c in self._connections.values()
                for t in c.topics
                if t.startswith(family + ".") and t.endswith(suffix) and t.count(".") == 2
            }
            targets = sorted(listened) or targets
        delivered = 0
        for target in targets:
            delivered += await self.publish(target, message)
        log.info("triggered %s on %s: %d connection(s)", kind, ", ".join(targets), delivered)
        return delivered, targets, message

    async def send_reconnect(self, connection: int | None = None) -> int:
        """Send RECONNECT to one connection (by id) or to all; returns how many got it."""
        conns = self._select(connection)
        log.info("RECONNECT -> %d connection(s)", len(conns))
        sent = await self._send(conns, protocol.build_reconnect())
        if self.reconnect_grace is not None:
            loop = asyncio.get_running_loop()
            for conn in conns:
                if conn._drop_timer is None:
                    conn._drop_timer = loop.call_later(
                        self.reconnect_grace, self._drop_after_grace, conn
                    )
        return sent

    def _drop_after_grace(self, conn: EmulatorConnection) -> None:
        conn._drop_timer = None
        if self._connections.get(conn.id) is conn:
            log.info("connection %d ignored RECONNECT; dropping it", conn.id)
            self._drop_now(conn.id)

    async def send_raw(self, text: str, connection: int | None = None) -> int:
        """Send ``text`` as a text frame, unchecked, to one connection or all."""
        if not isinstance(text, str):
            raise TypeError("text must be a str")
        count = await self._send(self._select(connection), text)
        log.info("raw frame (%d chars) -> %d connection(s)", len(text), count)
        return count

    async def drop(self, connection: int | None = None) -> int:
        """Abort one connection or all at the TCP level, with no close frame.

        Returns
        -------
        :class:`int`
            How many connections were dropped.
        """
        return self._drop_now(connection)

    async def silence(self, connection: int | None = None, silent: bool = True) -> int:
        """Stop (or, with ``silent=False``, resume) answering PINGs."""
        conns = self._select(connection)
        for conn in conns:
            conn.silent = silent
        log.info("%s PONGs on %d connection(s)", "stopped" if silent else "resumed", len(conns))
        return len(conns)

    async def invalidate_token(self, token: str) -> None:
        """Make every later LISTEN with ``token`` fail with ``ERR_BADAUTH``."""
        self._invalid_tokens.add(token)
        log.info("a token was marked invalid")

    async def validate_token(self, token: str) -> None:
        """Accept ``token`` again after :meth:`invalidate_token` or :meth:`revoke_token`."""
        self._invalid_tokens.discard(token)

    async def revoke_token(self, token: str) -> list[str]:
        """Revoke ``token``: drop its topics with AUTH_REVOKED and refuse it from now on.

        Returns
        -------
        List[:class:`str`]
            The topics that were dropped.
        """
        self._invalid_tokens.add(token)
        revoked: list[str] = []
        for conn in list(self._connections.values()):
            topics = [t for t, tok in conn.topics.items() if tok == token]
            if not topics:
                continue
            for t in topics:
                del conn.topics[t]
            revoked.extend(topics)
            self._changed.set()
            await self._send([conn], protocol.build_auth_revoked(topics))
        log.info("revoked a token: %d topic(s) dropped", len(revoked))
        return revoked

    async def fail_next_listens(self, error: str | None, count: int = 1) -> None:
        """Answer the next ``count`` valid LISTENs with ``error``.

        ``error=None`` leaves them unanswered instead (to test timeouts).
        """
        if count < 0:
            raise ValueError("count must not be negative")
        if len(self._listen_faults) + count > MAX_FAULTS:
            raise ValueError(f"count must be at most {MAX_FAULTS} faults in all")
        self._listen_faults.extend([error] * count)
        log.info("the next %d LISTEN(s) will get %s", count, error or "no answer")

    async def fail_next_unlistens(self, error: str, count: int = 1) -> None:
        """Answer the next ``count`` UNLISTENs with ``error`` (the topics stay listened)."""
        if count < 0:
            raise ValueError("count must not be negative")
        self._unlisten_faults.extend([error] * count)
        log.info("the next %d UNLISTEN(s) will get %s", count, error)

    # ------------------------------------------------------------------ control API

    # The control API (see _base.Control): one entry per endpoint.

    async def _control_trigger(
        self, kind: str, channel: int | str, user: int | str | None, overrides: dict[str, Any]
    ) -> dict[str, Any]:
        delivered, topics, message = await self._trigger(kind, channel, user, overrides)
        answer: dict[str, Any] = {"delivered": delivered, "topics": topics, "message": message}
        if not delivered:
            answer["listened"] = sorted({t for c in self._connections.values() for t in c.topics})
        return answer

    async def _control_invalidate(self, token: str, valid: bool) -> None:
        await (self.validate_token(token) if valid else self.invalidate_token(token))


def _topic(value: str) -> str:
    if not value:
        raise ValueError("topic must not be empty")
    return value


_CONNECTION = Param("connection", int, None)
_CONNECTIONS = "connections"

#: The PubSub emulator's control API: ``POST /control/<name>`` with a JSON body.
PubSubEmulator.CONTROLS = {
    **BASE_CONTROLS,
    "publish": Control(
        "publish",
        (Param("topic", str, check=_topic), Param("message", (dict, str))),
        answer="delivered",
    ),
    "trigger": Control(
        "_control_trigger",
        (
            Param("kind", str),
            Param("channel", (int, str)),
            Param("user", (int, str), None),
            Param("set", dict, {}, arg="overrides"),
        ),
    ),
    "reconnect": Control("send_reconnect", (_CONNECTION,), answer=_CONNECTIONS),
    "drop": Control("drop", (_CONNECTION,), answer=_CONNECTIONS),
    "close": Control("close_connection", (_CONNECTION,), answer=_CONNECTIONS),
    "silence": Control("silence", (_CONNECTION, Param("silent", bool, True)), answer=_CONNECTIONS),
    "revoke": Control("revoke_token", (Param("token", str),), answer="topics"),
    "invalidate": Control(
        "_control_invalidate",
        (Param("token", str), Param("valid", bool, False)),
        answer=lambda emu, _, args: {"ok": True},
    ),
    "raw": Control("send_raw", (Param("text", str), _CONNECTION), answer=_CONNECTIONS),
    "fail-listen": Control(
        "fail_next_listens",
        (Param("error", str, None), Param("count", int, 1, check=count)),
        answer=lambda emu, _, args: {"pending_faults": len(emu._listen_faults)},
    ),
}
