"""PubSubWebsocket: one connection to the PubSub server, kept alive by a supervisor.

The node never decides which topics it carries: its owner (the pool) hands it a live
view of the wanted topics, and the node alone records what the server confirmed on the
current socket. Its supervisor reconciles the two, LISTENing what is wanted and not
confirmed and UNLISTENing what is confirmed and no longer wanted, after every change
and on every new socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

import aiohttp

from . import protocol
from .dedup import Deduplicator
from .errors import ConnectionFailure
from .logs import RateLimitedLog
from .models.base import PubSubErrorEvent
from .node_base import LinkLost, NodeBase, until_signal
from .settings import Settings
from .topics import Topic
from .transport import NodeOwner, wait_finished, within

if TYPE_CHECKING:
    from twitchio import Client

    from .dispatch import Dispatcher

__all__ = ("PubSubWebsocket", "describe_connect_failure")

log = logging.getLogger(__name__)

_HAS_WS_TIMEOUT = hasattr(aiohttp, "ClientWSTimeout")  # aiohttp >= 3.10
_node_ids = itertools.count(1)
#: Why a socket is replaced, when it may stay open until the new one is listening.
_RECONNECT = "the server asked to reconnect"
_NO_PONG = "no PONG within the timeout"
_CONNECT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)
#: The day Twitch switched third-party PubSub off.
RETIRED_ON = "2025-04-14"


def describe_connect_failure(endpoint: str, cause: str) -> str:
    """The message of a failed first connection: the endpoint, the cause, and advice.

    Parameters
    ----------
    endpoint: :class:`str`
        The URL that was tried.
    cause: :class:`str`
        What went wrong (``connection refused``, ``HTTP 503``, ...).
    """
    text = f"could not connect to the PubSub server at {endpoint}: {cause}"
    if endpoint.rstrip("/") == PubSubWebsocket.ENDPOINT:
        text += (
            f". Twitch retired third-party PubSub on {RETIRED_ON}, so its server no longer "
            "answers: pass endpoint= to point the pool at a PubSub server such as "
            "twitchio_pubsub.emulator.PubSubEmulator, or move to EventSub"
        )
    return text


def _describe(exc: BaseException) -> str:
    """A short, token-free description of a connection error."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"HTTP {exc.status} on the websocket handshake"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return f"TLS error ({exc})"
    if isinstance(exc, getattr(aiohttp, "ClientConnectorDNSError", ())):
        return f"DNS lookup failed ({exc})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        if "Name or service not known" in str(exc) or "nodename nor servname" in str(exc):
            return f"DNS lookup failed ({exc})"
        return f"{type(os_error).__name__}: {os_error}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Confirmed:
    """A LISTEN the server confirmed, reported to the owner at the end of the pass."""

    __slots__ = ("token", "topics")

    def __init__(self, topics: list[Topic], token: Optional[str]) -> None:
        self.topics = topics
        self.token = token


class _Link:
    """One websocket and the tasks reading and pinging it."""

    __slots__ = ("id", "pinger", "pong", "reader", "reconnect", "signal", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, id: int) -> None:
        self.ws = ws
        self.id = id
        self.reader: Optional[asyncio.Task[None]] = None
        self.pinger: Optional[asyncio.Task[None]] = None
        self.pong = asyncio.Event()
        #: Set whenever the supervisor should look again (reader or pinger ended,
        #: RECONNECT received, wanted topics changed).
        self.signal = asyncio.Event()
        self.reconnect = False

    @property
    def alive(self) -> bool:
        return not self.ws.closed and self.reader is not None and not self.reader.done()

    async def close(self) -> None:
        tasks = [t for t in (self.pinger, self.reader) if t is not None]
        for task in tasks:
            task.cancel()
        if not self.ws.closed:
            with contextlib.suppress(asyncio.TimeoutError, aiohttp.ClientError, OSError):
                await within(self.ws.close(), 2.0)
        for task in tasks:
            await wait_finished(task)


class PubSubWebsocket(NodeBase[_Link]):
    """One connection to the PubSub server holding up to ``max_topics`` topics.

    Nodes are created and owned by a :class:`PubSubPool`; you meet them in
    :meth:`PubSubPool.reconnect_hook`. Each node runs one supervisor task that owns a
    reader and a pinger, and is the only thing that reconnects: on a server RECONNECT
    (opening the new socket before closing the old), a dropped socket, a missing PONG or
    a failed handshake (with exponential backoff), until the pool is closed.

    Attributes
    ----------
    ENDPOINT: :class:`str`
        The class-wide default server URL, used when the pool gives no ``endpoint``.
    client: :class:`twitchio.Client`
        The client events are dispatched to.
    pool: :class:`PubSubPool`
        The pool this node belongs to.
    max_topics: :class:`int`
        The most topics this node may hold.
    id: :class:`int`
        A number identifying the node in logs and events.
    reconnects: :class:`int`
        How many times this node has replaced its socket.
    timeout: :class:`asyncio.Event`
        Set when a PONG arrives and cleared when a PING goes out, as in the reference.
    """

    ENDPOINT = "wss://pubsub-edge.twitch.tv"
    _ids = _node_ids
    _task_prefix = "pubsub-node"

    def __init__(
        self,
        client: Client,
        pool: Any,
        *,
        max_topics: int = 50,
        settings: Optional[Settings] = None,
        dispatcher: Optional[Dispatcher] = None,
        owner: Optional[NodeOwner] = None,
    ) -> None:
        from .dispatch import Dispatcher

        if owner is None:
            raise TypeError("nodes are created by a PubSubPool; subscribe through the pool")
        super().__init__(
            client,
            pool,
            owner,
            max_topics,
            settings or Settings(),
            dispatcher or Dispatcher(client),
        )
        #: What the server confirmed on the current socket: key -> token.
        self._confirmed: dict[str, Optional[str]] = {}
        #: Set when a PONG arrives, cleared when a PING goes out (as in the reference).
        self.timeout = asyncio.Event()
        self._pending: dict[str, tuple[asyncio.Future[protocol.Response], _Link]] = {}
        self._latency: Optional[float] = None
        self._dedup = Deduplicator(self._settings.dedup_window)
        #: During a hand-over: the old socket, read until the new one listens.
        self._old: Optional[_Link] = None
        #: Closes the old socket handover_delay after the new one listens.
        self._handover: Optional[asyncio.Task[None]] = None
        self._link_ids = itertools.count(1)
        self._noise = RateLimitedLog(log)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "connecting"
        return f"<PubSubWebsocket id={self.id} topics={len(self._wanted)} {state}>"

    # ------------------------------------------------------------------ public state

    @property
    def latency(self) -> Optional[float]:
        """The last PING/PONG round trip in seconds, ``None`` before the first PONG."""
        return self._latency

    @property
    def endpoint(self) -> str:
        """The URL this node connects to."""
        return self._settings.endpoint or type(self).ENDPOINT

    @property
    def down_since(self) -> Optional[float]:
        """Loop time since when the node has had no live socket; ``None`` while up."""
        return None if self._ready else self._down_since

    def describe_failure(self) -> str:
        """Why the node has no connection, for :class:`ConnectionFailure` messages."""
        cause = self._last_error
        if cause is None:
            cause = (
                "timed out: the handshake did not complete within "
                f"{self._settings.connect_timeout:g} s"
            )
        return describe_connect_failure(self.endpoint, cause)

    # ------------------------------------------------------------------ reference surface

    async def reconnect(self) -> None:
        """|coro|

        Replace the socket now, as a server RECONNECT would: a new socket is opened,
        :meth:`PubSubPool.reconnect_hook` runs, the topics are listened on it, and only
        then is the old one closed. Returns once the new socket is connected (or at
        once if the node is connecting anyway).
        """
        link = self._link
        if link is None or self._closing or not self._ready:
            return
        before = self.reconnects
        link.reconnect = True
        link.signal.set()
        limit = self._settings.connect_timeout + self._settings.listen_timeout
        await self._wait_state(lambda: self.reconnects > before and self.connected, limit)

    async def send(self, data: dict[str, Any]) -> None:
        """|coro|

        Send a frame (a JSON object) on the current socket, e.g. ``{"type": "PING"}``.

        LISTEN and UNLISTEN are refused here: the pool would not know about them. Use
        :meth:`subscribe_topics` and :meth:`unsubscribe_topic`.

        Raises
        ------
        ValueError
            ``data`` is a LISTEN or UNLISTEN.
        ConnectionFailure
            The node has no socket right now.
        """
        if not isinstance(data, dict):
            raise TypeError(f"send takes a dict, not {type(data).__name__}")
        if data.get("type") in ("LISTEN", "UNLISTEN"):
            raise ValueError(
                "LISTEN and UNLISTEN go through subscribe_topics / unsubscribe_topic, so "
                "that the pool knows what this node holds"
            )
        link = self._link
        if link is None or not link.alive:
            raise ConnectionFailure(f"node {self.id} has no connection right now")
        await link.ws.send_str(json.dumps(data))

    # ------------------------------------------------------------------ supervisor

    # The supervisor is NodeBase._supervise; these are PubSub's steps. A hand-over
    # (server RECONNECT, or a silent socket) keeps the old socket in self._old until the
    # new one listens, then self._handover closes it after handover_delay.

    _connect_errors = _CONNECT_ERRORS

    async def _connect(self) -> _Link:
        return await self._open()

    def _describe_error(self, exc: BaseException) -> str:
        return _describe(exc)

    async def _connect_failed(self) -> None:
        old, self._old = self._old, None
        if old is not None:
            await self._drop_link(old)
            self._owner.handover_slot().release()
            self._dedup.reset()

    def _fresh(self, link: _Link) -> None:
        self._confirmed = {}

    async def _discard(self, link: _Link) -> None:
        await self._drop_link(link)

    def _up(self, link: _Link) -> None:
        link.pinger = asyncio.get_running_loop().create_task(
            self._ping(link), name=f"pubsub-node-{self.id}-pinger-{link.id}"
        )
        log.info("node %d: connected, %d topic(s) listened", self.id, len(self._confirmed))
        old, self._old = self._old, None
        if old is not None:
            self._handover = asyncio.get_running_loop().create_task(
                self._finish_handover(old), name=f"pubsub-node-{self.id}-handover"
            )

    async def _release(self, link: _Link, why: str) -> bool:
        handover, self._handover = self._handover, None
        if handover is not None:
            await wait_finished(handover)
        if await self._keep_for_handover(link, why):
            log.info("node %d: %s; opening a new socket before closing it", self.id, why)
            self._dispatch.event("pubsub_reconnecting", self, 0.0)
            if link.pinger is not None:
                link.pinger.cancel()
            self._dedup.begin()
            self._old = link
            return True
        await self._drop_link(link)
        self._dedup.reset()
        return False

    async def _shutdown(self, leftovers: list[_Link]) -> None:
        handover, self._handover = self._handover, None
        if handover is not None:
            handover.cancel()
            await wait_finished(handover)
        old, self._old = self._old, None
        for leftover in (*leftovers, *([old] if old is not None else [])):
            await self._drop_link(leftover)
        if old is not None:
            self._owner.handover_slot().release()

    async def _open(self) -> _Link:
        loop = asyncio.get_running_loop()
        session = self._owner.session()
        size = self._settings.max_message_size
        if _HAS_WS_TIMEOUT:
            connecting = session.ws_connect(
                self.endpoint,
                autoping=True,
                max_msg_size=size,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
        else:  # pragma: no cover - aiohttp 3.9
            connecting = session.ws_connect(
                self.endpoint, autoping=True, max_msg_size=size, timeout=2.0
            )  # type: ignore[call-overload]
        ws = await within(
            connecting,
            self._settings.connect_timeout,
            discard=aiohttp.ClientWebSocketResponse.close,
        )
        link = _Link(ws, next(self._link_ids))
        link.reader = loop.create_task(
            self._read(link), name=f"pubsub-node-{self.id}-reader-{link.id}"
        )
        log.debug("node %d: socket %d open to %s", self.id, link.id, self.endpoint)
        return link

    async def _drop_link(self, link: _Link) -> None:
        self._fail_pending(link)
        await link.close()

    async def _keep_for_handover(self, link: _Link, why: str) -> bool:
        """Whether the old socket stays open (and reading) while a new one is made.

        After RECONNECT the node waits for the pool's hand-over slot. After a missing
        PONG it takes the slot only if it is free at once: the socket may be dead, or
        merely silent while events still arrive on it.
        """
        if why == _RECONNECT:
            return await self._take_handover_slot(link)
        slot = self._owner.handover_slot()
        if why == _NO_PONG and link.alive and not slot.locked():
            await slot.acquire()  # free: returns without suspending
            return True
        return False

    async def _take_handover_slot(self, link: _Link) -> bool:
        """Wait for the pool's hand-over slot; ``False`` if the old socket died first."""
        slot = self._owner.handover_slot()
        acquiring = asyncio.ensure_future(slot.acquire())
        taken = False
        try:
            while not acquiring.done() and link.alive:
                await until_signal(link, also=acquiring)
            taken = acquiring.done() and link.alive
            return taken
        finally:
            if not acquiring.done():
                acquiring.cancel()
            elif not taken:
                slot.release()

    async def _finish_handover(self, old: _Link) -> None:
        """Keep the old socket a little longer (events in flight), then close it."""
        try:
            await asyncio.sleep(self._settings.handover_delay)
        finally:
            try:
                await self._drop_link(old)
            finally:
                self._owner.handover_slot().release()
                self._dedup.end(asyncio.get_running_loop().time())

    async def _serve(self, link: _Link) -> str:
        """Reconcile on every wake until the socket must be replaced; returns why."""
        assert link.reader is not None and link.pinger is not None
        while True:
            if link.reader.done():
                code = link.ws.close_code
                return f"connection lost (close code {code})" if code else "connection lost"
            if link.reconnect:
                return _RECONNECT
            if link.pinger.done():
                return _NO_PONG
            if self._wake_pending or self._settle_waiters:
                try:
                    await self._reconcile(link)
                except LinkLost as exc:
                    return f"subscribing failed ({exc})"
                continue
            link.signal.clear()
            await link.signal.wait()

    # ------------------------------------------------------------------ reconciling

    async def _reconcile(
        self, link: _Link, skip: frozenset[str] = frozenset(), *, ready: bool = False
    ) -> None:
        """LISTEN what is wanted and not confirmed, UNLISTEN what is no longer wanted.

        With ``ready``, the node counts as connected once the first pass succeeded,
        before the subscribe calls waiting on that pass are told.
        """
        while True:
            self._wake_pending = False
            waiters, self._settle_waiters = self._settle_waiters, []
            listen: dict[Optional[str], list[Topic]] = {}
            for key, topic in list(self._wanted.items()):
                if key not in skip and self._confirmed.get(key, "") != topic.token:
                    listen.setdefault(topic.token, []).append(topic)
            unlisten: dict[Optional[str], list[str]] = {}
            for key, token in self._confirmed.items():
                if key not in self._wanted:
                    unlisten.setdefault(token, []).append(key)
            if not listen and not unlisten:
                if ready:
                    self._set_ready(True)
                self._release_settle_waiters([], waiters)
                return
            results = await asyncio.gather(
                *(self._listen(link, token, group) for token, group in listen.items()),
                *(self._unlisten(link, token, keys) for token, keys in unlisten.items()),
                return_exceptions=True,
            )
            errors: list[tuple[list[str], str]] = []
            confirmed: list[tuple[list[Topic], Optional[str]]] = []
            lost: Optional[BaseException] = None
            for result in results:
                if isinstance(result, LinkLost):
                    lost = result
                elif isinstance(result, BaseException):  # pragma: no cover - a bug
                    raise result
                elif isinstance(result, _Confirmed):
                    confirmed.append((result.topics, result.token))
                elif result is not None:
                    errors.append(result)
            if ready and lost is None:
                self._set_ready(True)
                ready = False
            for topics, token in confirmed:
                self._owner.subscribed(self, topics, token)
            self._release_settle_waiters(errors, waiters)
            if lost is not None:
                raise lost
            if not self._wake_pending:
                return

    async def _listen(
        self, link: _Link, token: Optional[str], group: list[Topic]
    ) -> Optional[_Confirmed]:
        keys = [topic.present or "" for topic in group]
        attempt = 0
        while True:
            error = await self._request(link, "LISTEN", keys, token, group)
            if error != protocol.ERR_SERVER or attempt >= self._settings.listen_retries:
                break
            attempt += 1
            await asyncio.sleep(min(0.25 * 2**attempt, 5.0) * self._rng.uniform(0.5, 1.0))
        if not error:
            for key in keys:
                self._confirmed[key] = token
            return _Confirmed(group, token)
        if error == protocol.ERR_BADAUTH:
            # A topic held with another token (a refused refresh) is LISTENed with that
            # token again if the pool keeps it: what the server holds now is unknown.
            for key in keys:
                self._confirmed.pop(key, None)
        if self._owner.refused(self, group, token, error):
            raise LinkLost(f"LISTEN answered {error}")
        return None

    async def _unlisten(
        self, link: _Link, token: Optional[str], keys: list[str]
    ) -> Optional[tuple[list[str], str]]:
        error = await self._request(link, "UNLISTEN", keys, token)
        for key in keys:
            if self._confirmed.get(key, "") == token:
                del self._confirmed[key]
        if error:
            log.warning("node %d: UNLISTEN of %s answered %s", self.id, ", ".join(keys), error)
            return keys, error
        return None

    # ------------------------------------------------------------------ requests

    def _reader_ended(self, link: _Link) -> None:
        # A LISTEN sent on this socket will never be answered: fail it now, so that the
        # supervisor replaces the socket and sends it again, instead of waiting out
        # listen_timeout with every topic of the node deaf.
        self._fail_pending(link)

    def _fail_pending(self, link: _Link) -> None:
        for nonce, (future, owner) in list(self._pending.items()):
            if owner is link:
                del self._pending[nonce]
                if not future.done():
                    future.set_exception(LinkLost("connection lost"))

    async def _request(
        self,
        link: _Link,
        kind: str,
        keys: list[str],
        token: Optional[str],
        topics: Optional[list[Topic]] = None,
    ) -> str:
        """Send a LISTEN or UNLISTEN and wait for its answer: ``""`` or an error code.

        Every answer is also dispatched, as the reference does: ``pubsub_nonce`` with the
        response for a success, ``pubsub_error`` for an error.
        """
        if not link.alive:
            raise LinkLost("connection lost")
        if kind == "LISTEN":
            nonce, frame = protocol.build_listen(keys, token)
        else:
            nonce, frame = protocol.build_unlisten(keys, token)
        future: asyncio.Future[protocol.Response] = asyncio.get_running_loop().create_future()
        self._pending[nonce] = (future, link)
        log.debug("node %d: %s nonce=%s topics=%s", self.id, kind, nonce, keys)
        try:
            try:
                await link.ws.send_str(frame)
            except (ConnectionError, RuntimeError) as exc:
                raise LinkLost("connection lost") from exc
            try:
                response = await within(future, self._settings.listen_timeout)
            except asyncio.TimeoutError:
                log.warning(
                    "node %d: no answer to %s within %.1f s",
                    self.id,
                    kind,
                    self._settings.listen_timeout,
                )
                return "timeout"
        finally:
            self._pending.pop(nonce, None)
        if response.error:
            self._dispatch.error(
                PubSubErrorEvent(
                    f"the server refused {kind} of {', '.join(keys)}",
                    error=response.error,
                    nonce=response.nonce,
                    topic=keys[0] if len(keys) == 1 else None,
                    topics=list(topics or ()),
                    type="RESPONSE",
                )
            )
        else:
            self._dispatch.event(
                "pubsub_nonce", {"type": "RESPONSE", "error": "", "nonce": response.nonce}
            )
        return response.error

    # ------------------------------------------------------------------ reading

    def _on_text(self, link: _Link, data: str) -> None:
        frame = protocol.parse_server_frame(data)
        if type(frame) is protocol.Message:
            topic = frame.topic
            if topic not in self._wanted:
                log.debug("node %d: dropped a message for unwanted %s", self.id, topic)
                return
            dedup = self._dedup
            if dedup.active and dedup.duplicate(
                link.id, topic, frame.message, asyncio.get_running_loop().time()
            ):
                return
            self._dispatch.message(topic, frame.message)
        else:
            self._handle_control(link, frame)

    def _handle_control(self, link: _Link, frame: protocol.ServerFrame) -> None:
        if isinstance(frame, protocol.Response):
            entry = self._pending.pop(frame.nonce or "", None)
            if entry is None:
                log.debug("node %d: RESPONSE for unknown nonce %s", self.id, frame.nonce)
                if frame.error:
                    self._dispatch.error(
                        PubSubErrorEvent(
                            "unsolicited error response",
                            error=frame.error,
                            nonce=frame.nonce,
                            type="RESPONSE",
                        )
                    )
            elif not entry[0].done():
                entry[0].set_result(frame)
        elif isinstance(frame, protocol.Pong):
            link.pong.set()
            self.timeout.set()
            self._dispatch.event("pubsub_pong")
        elif isinstance(frame, protocol.Reconnect):
            link.reconnect = True
            link.signal.set()
        elif isinstance(frame, protocol.AuthRevoked):
            if link is self._link:
                for key in frame.topics:
                    self._confirmed.pop(key, None)
            self._owner.revoked(self, frame.topics)
        elif isinstance(frame, protocol.InvalidFrame):
            self._noise.log(
                logging.WARNING,
                "invalid",
                "node %d: ignored an invalid frame: %s",
                self.id,
                frame.reason,
            )
            self._dispatch.error(
                PubSubErrorEvent(
                    f"invalid frame: {frame.reason}", raw=frame.raw, type="INVALID_FRAME"
                )
            )

    # ------------------------------------------------------------------ pinging

    async def _ping(self, link: _Link) -> None:
        try:
            await self._ping_loop(link)
        finally:
            link.signal.set()

    async def _ping_loop(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        settings = self._settings
        while True:
            # Jitter downwards only, so the configured interval is never exceeded.
            await asyncio.sleep(settings.ping_interval * self._rng.uniform(0.9, 1.0))
            link.pong.clear()
            self.timeout.clear()
            sent = loop.time()
            try:
                await link.ws.send_str(protocol.build_ping())
                await within(link.pong.wait(), settings.pong_timeout)
            except asyncio.TimeoutError:
                log.warning("node %d: no PONG within %.1f s", self.id, settings.pong_timeout)
                return
            except (ConnectionError, RuntimeError):
                return
            self._latency = loop.time() - sent


def by_token(topics: Iterable[Topic]) -> dict[Optional[str], list[Topic]]:
    """Group topics by their token, keeping their order."""
    groups: dict[Optional[str], list[Topic]] = {}
    for topic in topics:
        groups.setdefault(topic.token, []).append(topic)
    return groups
