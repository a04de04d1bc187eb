"""PubSubWebsocket: one connection to the PubSub server, kept alive by a supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import aiohttp

from . import protocol
from .backoff import Backoff
from .models.base import PubSubErrorEvent
from .topics import Topic

if TYPE_CHECKING:
    from twitchio import Client

    from .dispatch import Dispatcher
    from .pool import PubSubPool

__all__ = ("PubSubWebsocket",)

log = logging.getLogger(__name__)

_HAS_WS_TIMEOUT = hasattr(aiohttp, "ClientWSTimeout")  # aiohttp >= 3.10
_node_ids = itertools.count(1)
#: Frames dispatched before the reader yields to the event loop.
_READ_BATCH = 64

#: What LISTEN outcomes are reported as, besides Twitch's own error codes.
TIMEOUT = "timeout"
NOT_CONNECTED = "not connected"


@dataclass
class Settings:
    """Timings and limits shared by a pool's nodes (see :class:`PubSubPool`)."""

    endpoint: Optional[str] = None
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
    rng: Optional[random.Random] = None


class _LinkLost(Exception):
    """The socket a request was sent on went away before the answer came."""


class _Link:
    """One websocket and the tasks reading and pinging it."""

    __slots__ = ("id", "pinger", "pong", "reader", "reconnect", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, id: int) -> None:
        self.ws = ws
        self.id = id
        self.reader: Optional[asyncio.Task[None]] = None
        self.pinger: Optional[asyncio.Task[None]] = None
        self.pong = asyncio.Event()
        self.reconnect = asyncio.Event()

    async def close(self) -> None:
        for task in (self.pinger, self.reader):
            if task is not None and not task.done():
                task.cancel()
        if not self.ws.closed:
            with contextlib.suppress(asyncio.TimeoutError, aiohttp.ClientError, OSError):
                await asyncio.wait_for(self.ws.close(), 2.0)
        for task in (self.pinger, self.reader):
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    if not task.cancelled():
                        raise
                except Exception:
                    log.exception("a websocket task failed")


class PubSubWebsocket:
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
    topics: List[:class:`Topic`]
        The topics this node holds (confirmed by the server).
    max_topics: :class:`int`
        The most topics this node may hold.
    id: :class:`int`
        A number identifying the node in logs and events.
    reconnects: :class:`int`
        How many times this node has replaced its socket.
    """

    ENDPOINT = "wss://pubsub-edge.twitch.tv"

    def __init__(
        self,
        client: Client,
        pool: PubSubPool,
        *,
        max_topics: int = 50,
        settings: Optional[Settings] = None,
        dispatcher: Optional[Dispatcher] = None,
    ) -> None:
        from .dispatch import Dispatcher

        self.client = client
        self.pool = pool
        self.max_topics = max_topics
        self.topics: list[Topic] = []
        self.id = next(_node_ids)
        self._settings = settings or Settings()
        self._dispatch = dispatcher or Dispatcher(client)
        self._rng = self._settings.rng or random.Random()
        self._reserved = 0
        self._link: Optional[_Link] = None
        self._ready = asyncio.Event()
        self._gone = asyncio.Event()
        self._pending: dict[str, tuple[asyncio.Future[protocol.Response], _Link]] = {}
        self._generation = 0
        self._latency: Optional[float] = None
        self._supervisor: Optional[asyncio.Task[None]] = None
        self._closing = False
        self._dedup_until = 0.0
        self._dedup_always = False
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._link_ids = itertools.count(1)
        self.reconnects = 0

    def __repr__(self) -> str:
        state = "connected" if self.connected else "connecting"
        return f"<PubSubWebsocket id={self.id} topics={len(self.topics)} {state}>"

    # ------------------------------------------------------------------ public state

    @property
    def latency(self) -> Optional[float]:
        """The last PING/PONG round trip in seconds, ``None`` before the first PONG."""
        return self._latency

    @property
    def connected(self) -> bool:
        """Whether the node has a live socket with all its topics listened."""
        return self._ready.is_set()

    @property
    def endpoint(self) -> str:
        """The URL this node connects to."""
        return self._settings.endpoint or type(self).ENDPOINT

    @property
    def _load(self) -> int:
        return len(self.topics) + self._reserved

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"pubsub-node-{self.id}-supervisor"
            )

    async def _close(self) -> None:
        self._closing = True
        self._gone.set()  # wakes subscribe calls waiting for a connection
        task, self._supervisor = self._supervisor, None
        if task is not None and not task.done():
            task.cancel()
            if task is not asyncio.current_task():  # e.g. close() from reconnect_hook
                try:
                    await task
                except asyncio.CancelledError:
                    if not task.cancelled():
                        raise
        self._ready.clear()

    async def _wait_ready(self, timeout: float) -> bool:
        """Wait until connected; ``False`` on timeout or when the node is closed."""
        if self._ready.is_set():
            return True
        loop = asyncio.get_running_loop()
        ready = loop.create_task(self._ready.wait(), name=f"pubsub-node-{self.id}-ready-wait")
        gone = loop.create_task(self._gone.wait(), name=f"pubsub-node-{self.id}-closed-wait")
        try:
            await asyncio.wait((ready, gone), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            gone.cancel()
        return self._ready.is_set() and not self._closing

    async def _sleep(self, delay: float, why: str) -> None:
        log.info("node %d: %s; reconnecting in %.2f s", self.id, why, delay)
        self._dispatch.event("pubsub_reconnecting", self, delay)
        await asyncio.sleep(delay)

    async def _supervise(self) -> None:
        settings = self._settings
        backoff = Backoff(settings.backoff_base, settings.backoff_cap, rng=self._rng)
        loop = asyncio.get_running_loop()
        old: Optional[_Link] = None
        first = True
        link: Optional[_Link] = None
        try:
            while not self._closing:
                try:
                    link = await self._open()
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    await self._sleep(backoff.next_delay(), f"connect failed ({_describe(exc)})")
                    continue
                try:
                    if not first:
                        self._generation += 1
                        await self.pool._apply_reconnect_hook(self)
                    await self._listen_all(link)
                except (_LinkLost, asyncio.TimeoutError, _ServerBusy) as exc:
                    await self._drop_link(link)
                    link = None
                    await self._sleep(backoff.next_delay(), f"re-LISTEN failed ({_describe(exc)})")
                    continue
                first = False
                self._link = link
                link.pinger = loop.create_task(
                    self._ping(link), name=f"pubsub-node-{self.id}-pinger-{link.id}"
                )
                self._ready.set()
                log.info("node %d: connected, %d topic(s) listened", self.id, len(self.topics))
                self._dispatch.event("pubsub_ready", self)
                if old is not None:
                    # Let events already in flight on the old socket arrive (duplicates
                    # are dropped) before closing it: closing discards unread frames.
                    await asyncio.sleep(settings.handover_delay)
                    await self._drop_link(old)
                    old = None
                    self._dedup_always = False
                    self._dedup_until = loop.time() + settings.dedup_window
                started = loop.time()
                why = await self._watch(link, link.reader, link.pinger)
                self._ready.clear()
                self._link = None
                if loop.time() - started >= settings.backoff_reset_after:
                    backoff.reset()
                self.reconnects += 1
                if why == "reconnect":
                    log.info("node %d: server asked to reconnect; opening a new socket", self.id)
                    self._dispatch.event("pubsub_reconnecting", self, 0.0)
                    if link.pinger is not None:
                        link.pinger.cancel()
                    old, link = link, None
                    self._dedup_always = True
                    continue
                await self._drop_link(link)
                link = None
                await self._sleep(backoff.next_delay(), why)
        finally:
            self._ready.clear()
            self._dedup_always = False
            for leftover in (link, old, self._link):
                if leftover is not None:
                    await self._drop_link(leftover)
            self._link = None

    async def _open(self) -> _Link:
        session = self.pool._get_session()
        if _HAS_WS_TIMEOUT:
            connecting = session.ws_connect(
                self.endpoint,
                autoping=True,
                max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
        else:  # pragma: no cover - aiohttp 3.9
            connecting = session.ws_connect(
                self.endpoint, autoping=True, max_msg_size=0, timeout=2.0
            )  # type: ignore[call-overload]
        ws = await asyncio.wait_for(connecting, self._settings.connect_timeout)
        link = _Link(ws, next(self._link_ids))
        link.reader = asyncio.get_running_loop().create_task(
            self._read(link), name=f"pubsub-node-{self.id}-reader-{link.id}"
        )
        log.debug("node %d: socket %d open to %s", self.id, link.id, self.endpoint)
        return link

    async def _drop_link(self, link: _Link) -> None:
        self._fail_pending(link)
        await link.close()

    async def _watch(self, link: _Link, *tasks: Optional[asyncio.Task[None]]) -> str:
        reconnect = asyncio.get_running_loop().create_task(
            link.reconnect.wait(), name=f"pubsub-node-{self.id}-reconnect-wait"
        )
        try:
            done, _ = await asyncio.wait(
                [t for t in (*tasks, reconnect) if t is not None],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            reconnect.cancel()
        if reconnect in done or link.reconnect.is_set():
            return "reconnect"
        if link.pinger in done:
            return "no PONG within the timeout"
        code = link.ws.close_code
        return f"connection lost (close code {code})" if code else "connection lost"

    # ------------------------------------------------------------------ reading

    async def _read(self, link: _Link) -> None:
        ws = link.ws
        parse = protocol.parse_server_frame
        message_cls = protocol.Message
        dispatch_message = self._dispatch.message
        text_type = aiohttp.WSMsgType.TEXT
        loop = asyncio.get_running_loop()
        batch = _READ_BATCH
        while True:
            msg = await ws.receive()
            if msg.type is text_type:
                frame = parse(msg.data)
                if type(frame) is message_cls:
                    if (self._dedup_always or self._dedup_until) and self._duplicate(
                        frame, loop.time()
                    ):
                        continue
                    dispatch_message(frame.topic, frame.message)
                    batch -= 1
                    if not batch:
                        # receive() does not yield while frames are buffered: let the
                        # handlers of this batch run before reading on, so a burst
                        # cannot pile up thousands of pending events in memory.
                        batch = _READ_BATCH
                        await asyncio.sleep(0)
                else:
                    self._handle_control(link, frame)
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                log.debug("node %d: socket %d closed (%s)", self.id, link.id, ws.close_code)
                return
            elif msg.type is aiohttp.WSMsgType.ERROR:
                log.warning("node %d: socket %d error: %s", self.id, link.id, msg.data)
                return
            elif msg.type is aiohttp.WSMsgType.BINARY:
                log.warning("node %d: ignored a binary frame (%d bytes)", self.id, len(msg.data))
                self._dispatch.error(PubSubErrorEvent("unexpected binary frame"))
            # PING/PONG control frames are answered by aiohttp itself.

    def _duplicate(self, frame: protocol.Message, now: float) -> bool:
        if not self._dedup_always and now > self._dedup_until:
            self._dedup_until = 0.0
            self._seen.clear()
            return False
        key = (frame.topic, frame.message)
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > 50_000:
            self._seen.popitem(last=False)
        return False

    def _handle_control(self, link: _Link, frame: protocol.ServerFrame) -> None:
        if isinstance(frame, protocol.Response):
            entry = self._pending.pop(frame.nonce or "", None)
            if entry is None:
                log.debug("node %d: RESPONSE for unknown nonce %s", self.id, frame.nonce)
                if frame.error:
                    self._dispatch.error(
                        PubSubErrorEvent("unsolicited error response", error=frame.error)
                    )
            elif not entry[0].done():
                entry[0].set_result(frame)
        elif isinstance(frame, protocol.Pong):
            link.pong.set()
        elif isinstance(frame, protocol.Reconnect):
            link.reconnect.set()
        elif isinstance(frame, protocol.AuthRevoked):
            self.pool._on_auth_revoked(self, frame.topics)
        elif isinstance(frame, protocol.InvalidFrame):
            log.warning("node %d: ignored an invalid frame: %s", self.id, frame.reason)
            self._dispatch.error(PubSubErrorEvent(f"invalid frame: {frame.reason}", raw=frame.raw))

    # ------------------------------------------------------------------ pinging

    async def _ping(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        settings = self._settings
        while True:
            # Jitter downwards only, so the configured interval is never exceeded.
            await asyncio.sleep(settings.ping_interval * self._rng.uniform(0.9, 1.0))
            link.pong.clear()
            sent = loop.time()
            try:
                await link.ws.send_str(protocol.build_ping())
                await asyncio.wait_for(link.pong.wait(), settings.pong_timeout)
            except asyncio.TimeoutError:
                log.warning("node %d: no PONG within %.1f s", self.id, settings.pong_timeout)
                return
            except (ConnectionError, RuntimeError):
                return
            self._latency = loop.time() - sent
            self._dispatch.event("pubsub_pong")

    # ------------------------------------------------------------------ requests

    def _fail_pending(self, link: _Link) -> None:
        for nonce, (future, owner) in list(self._pending.items()):
            if owner is link:
                del self._pending[nonce]
                if not future.done():
                    future.set_exception(_LinkLost())

    async def _request(
        self, link: _Link, kind: str, topics: list[Topic], token: Optional[str]
    ) -> str:
        presents = [t.present or "" for t in topics]
        if kind == "LISTEN":
            nonce, frame = protocol.build_listen(presents, token)
        else:
            nonce, frame = protocol.build_unlisten(presents, token)
        future: asyncio.Future[protocol.Response] = asyncio.get_running_loop().create_future()
        self._pending[nonce] = (future, link)
        log.debug("node %d: %s nonce=%s topics=%s", self.id, kind, nonce, presents)
        try:
            try:
                await link.ws.send_str(frame)
            except (ConnectionError, RuntimeError) as exc:
                raise _LinkLost() from exc
            response = await asyncio.wait_for(future, self._settings.listen_timeout)
        finally:
            self._pending.pop(nonce, None)
        return response.error

    async def _listen_all(self, link: _Link) -> None:
        """LISTEN every topic of this node on a fresh socket (after connect/reconnect)."""
        groups = _by_token(self.topics)
        results = await asyncio.gather(
            *(self._listen_with_retry(link, token, group) for token, group in groups.items())
        )
        for (_, group), error in zip(groups.items(), results):
            if not error:
                continue
            if error == protocol.ERR_SERVER:
                raise _ServerBusy(error)
            self._remove(group)
            if error == protocol.ERR_BADAUTH:
                self.pool._on_auth_failed(self, group)
            else:
                log.warning(
                    "node %d: server refused re-LISTEN (%s) of %s",
                    self.id,
                    error,
                    ", ".join(str(t.present) for t in group),
                )
                self.pool._forget(group)
                self._dispatch.error(
                    PubSubErrorEvent("re-LISTEN refused", error=error, topics=group)
                )

    async def _listen_with_retry(
        self, link: _Link, token: Optional[str], group: list[Topic]
    ) -> str:
        attempt = 0
        while True:
            error = await self._request(link, "LISTEN", group, token)
            if error != protocol.ERR_SERVER or attempt >= self._settings.listen_retries:
                return error
            attempt += 1
            await self._server_retry_pause(attempt)

    async def _server_retry_pause(self, attempt: int) -> None:
        """Wait before retrying a LISTEN answered with ERR_SERVER (short, jittered)."""
        await asyncio.sleep(min(0.25 * 2**attempt, 5.0) * self._rng.uniform(0.5, 1.0))

    async def _subscribe(self, topics: list[Topic]) -> list[tuple[list[Topic], str]]:
        """LISTEN ``topics`` (already reserved on this node) and keep those confirmed.

        Returns the failed groups with their error codes; the reservation is released.
        """
        try:
            groups = _by_token(topics)
            results = await asyncio.gather(
                *(self._subscribe_group(token, group) for token, group in groups.items())
            )
            return [(group, error) for (_, group), error in zip(groups.items(), results) if error]
        finally:
            self._reserved -= len(topics)

    async def _subscribe_group(self, token: Optional[str], group: list[Topic]) -> str:
        loop = asyncio.get_running_loop()
        settings = self._settings
        deadline = loop.time() + settings.connect_timeout + settings.listen_timeout
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return TIMEOUT
            if not await self._wait_ready(remaining):
                return NOT_CONNECTED
            link = self._link
            if link is None:
                await asyncio.sleep(0)
                continue
            generation = self._generation
            try:
                error = await self._request(link, "LISTEN", group, token)
            except _LinkLost:
                continue
            except asyncio.TimeoutError:
                return TIMEOUT
            if error == protocol.ERR_SERVER and attempt < settings.listen_retries:
                attempt += 1
                await self._server_retry_pause(attempt)
                continue
            if error:
                return error
            if generation != self._generation or link is not self._link:
                # A reconnect began meanwhile and took its topic snapshot without these.
                continue
            have = set(self.topics)
            self.topics.extend(t for t in group if t not in have)
            return ""

    def _remove(self, topics: Iterable[Topic]) -> None:
        gone = set(topics)
        self.topics = [t for t in self.topics if t not in gone]

    async def _unsubscribe(self, topics: list[Topic]) -> Optional[str]:
        """UNLISTEN ``topics`` and drop them from this node; returns an error code or None."""
        self._remove(topics)
        link = self._link
        if link is None or not self._ready.is_set():
            return None  # the next connection will simply not LISTEN them
        errors = []
        for token, group in _by_token(topics).items():
            try:
                error = await self._request(link, "UNLISTEN", group, token)
            except _LinkLost:
                return None
            except asyncio.TimeoutError:
                error = TIMEOUT
            if error:
                errors.append(error)
        return errors[0] if errors else None


class _ServerBusy(Exception):
    """ERR_SERVER persisted through the retries of a re-LISTEN."""


def _by_token(topics: Iterable[Topic]) -> dict[Optional[str], list[Topic]]:
    groups: dict[Optional[str], list[Topic]] = {}
    for topic in topics:
        groups.setdefault(topic.token, []).append(topic)
    return groups


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"HTTP {exc.status}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
