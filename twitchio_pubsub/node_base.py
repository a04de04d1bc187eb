"""What every node shares, whichever transport it speaks.

A node (:class:`~twitchio_pubsub.PubSubWebsocket` or
:class:`~twitchio_pubsub.EventSubWebsocket`) owns one supervisor task, the socket(s) it
opens, and what the server holds on them; the pool owns which topics it carries. This
base holds the part that does not depend on the protocol: the wanted view, the owner's
controls (``start``, ``wake``, ``settled``, ``close``), waiting for a state, and the
reference surface that goes through the pool (``connect``, ``disconnect``,
``subscribe_topics``, ``unsubscribe_topic``, ``session``, ``connection``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Optional, Protocol, TypeVar

import aiohttp

from .backoff import Backoff
from .errors import ConnectionFailure
from .logs import RateLimitedLog
from .models.base import PubSubErrorEvent
from .settings import Settings
from .topics import Topic
from .transport import NodeOwner, wait_finished

if TYPE_CHECKING:
    from twitchio import Client

    from .dispatch import Dispatcher

__all__ = ("LinkLost", "NodeBase")

log = logging.getLogger(__name__)

#: Frames a reader handles before it yields to the event loop, whatever they are.
READ_BATCH = 64
_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)

#: A reconcile pass's failed removals: ``(keys, error)``.
Errors = list[tuple[list[str], str]]


class LinkLost(Exception):
    """The socket went away (or must be replaced) before the work on it was done."""


class _LinkLike(Protocol):
    id: int
    ws: aiohttp.ClientWebSocketResponse
    signal: asyncio.Event

    @property
    def alive(self) -> bool: ...


L = TypeVar("L", bound=_LinkLike)


async def until_signal(
    link: _LinkLike,
    *,
    also: Optional[asyncio.Future[Any]] = None,
    timeout: Optional[float] = None,
) -> None:
    """Wait until the socket's signal is set, ``also`` is done, or ``timeout`` passes.

    ``also`` is not cancelled when this returns or is cancelled: its owner decides. Built
    on :func:`asyncio.wait`, so a cancellation of the caller is never lost.
    """
    link.signal.clear()
    watch = asyncio.ensure_future(link.signal.wait())
    waits: set[asyncio.Future[Any]] = {watch} if also is None else {watch, also}
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()


class NodeBase(Generic[L]):
    """The transport-independent half of a node (not used on its own).

    A subclass sets :attr:`_ids`, :attr:`_task_prefix` and ``_noise`` (its rate-limited
    log), and implements ``_supervise()``, the coroutine of its supervisor task, and
    ``_on_text()``, which handles one text frame of its protocol.
    """

    _ids: itertools.count[int]
    _noise: RateLimitedLog
    #: What a backoff waits for, in the log line.
    _retry = "reconnecting"
    _task_prefix = "node"

    def __init__(
        self,
        client: Client,
        pool: Any,
        owner: NodeOwner,
        max_topics: int,
        settings: Settings,
        dispatcher: Dispatcher,
    ) -> None:
        self.client = client
        self.pool = pool
        self.max_topics = max_topics
        self.id = next(type(self)._ids)
        self.reconnects = 0
        self._owner = owner
        self._settings = settings
        self._dispatch = dispatcher
        self._rng = settings.rng or random.Random()
        self._wanted: Mapping[str, Topic] = owner.wanted(self)  # type: ignore[arg-type]
        self._link: Optional[L] = None
        self._ready = False
        self._state_waiters: list[asyncio.Future[None]] = []
        self._wake_pending = False
        self._settle_waiters: list[asyncio.Future[Errors]] = []
        self._supervisor: Optional[asyncio.Task[None]] = None
        self._closing = False
        self._down_since: Optional[float] = None
        self._last_error: Optional[str] = None

    # ------------------------------------------------------------------ the supervisor

    #: What a failed connect may raise (anything else is a bug, for the catch-all).
    _connect_errors: tuple[type[BaseException], ...] = ()

    async def _supervise(self) -> None:
        """The one supervisor: connect, run the hook, reconcile, serve, back off; again.

        Each transport gives only its steps: :meth:`_connect`, :meth:`_describe_error`,
        :meth:`_connect_failed`, :meth:`_fresh`, :meth:`_discard`, :meth:`_up`,
        :meth:`_release` and :meth:`_shutdown`. Everything it starts ends in ``finally``.
        """
        settings = self._settings
        backoff = Backoff(settings.backoff_base, settings.backoff_cap, rng=self._rng)
        loop = asyncio.get_running_loop()
        link: Optional[L] = None
        first = True
        failures = 0  # connects failed since the node was last up
        try:
            while True:
                try:
                    link = await self._connect()
                except self._connect_errors as exc:
                    self._last_error = self._describe_error(exc)
                    failures += 1
                    if failures == 1:
                        # Once per outage, where a bot with no logging set up still sees it
                        # (Python prints warnings then); the retries are INFO.
                        log.warning(
                            "node %d: cannot reach %s (%s); retrying with backoff, and saying "
                            "so here once connected",
                            self.id,
                            self.endpoint,
                            self._last_error,
                        )
                    await self._connect_failed()
                    await self._sleep(backoff.next_delay(), f"connect failed ({self._last_error})")
                    continue
                self._last_error = None
                self._link = link
                self._fresh(link)
                try:
                    if not first:
                        self.reconnects += 1
                        await self._run_reconnect_hook(link)
                    await self._reconcile(link, ready=True)
                except LinkLost as exc:
                    self._last_error = f"subscribing failed ({exc})"
                    self._link = None
                    await self._discard(link)
                    link = None
                    await self._sleep(backoff.next_delay(), f"subscribing failed ({exc})")
                    continue
                first = False  # _reconcile(ready=True) marked the node connected
                if failures:
                    log.warning(
                        "node %d: connected to %s after %d failed attempt(s)",
                        self.id,
                        self.endpoint,
                        failures,
                    )
                    failures = 0
                self._up(link)
                self._dispatch.event("pubsub_ready", self)
                started = loop.time()
                why = await self._serve(link)
                link = self._link or link  # a hand-over may have replaced it
                self._set_ready(False)
                self._down_since = loop.time()
                self._link = None
                self._release_settle_waiters([])
                if loop.time() - started >= settings.backoff_reset_after:
                    backoff.reset()
                served, link = link, None
                if not await self._release(served, why):
                    await self._sleep(backoff.next_delay(), why)
        finally:
            self._set_ready(False)
            leftovers = [lk for lk in (link, self._link) if lk is not None]
            self._link = None
            self._release_settle_waiters([])
            await self._shutdown(leftovers)

    async def _connect(self) -> L:
        """Open a socket (and, on EventSub, read its welcome)."""
        raise NotImplementedError

    @property
    def endpoint(self) -> str:
        """The URL this node connects to."""
        raise NotImplementedError

    def _describe_error(self, exc: BaseException) -> str:
        """A failed connect in words for logs and ConnectionFailure (never a token)."""
        return str(exc) or type(exc).__name__

    async def _connect_failed(self) -> None:
        """A connect failed (PubSub: give up a hand-over's old socket)."""

    def _fresh(self, link: L) -> None:
        """``link`` is a new socket: nothing is subscribed on it yet."""

    async def _discard(self, link: L) -> None:
        """Close a socket whose subscribing failed."""
        raise NotImplementedError

    def _up(self, link: L) -> None:
        """``link`` is subscribed and serving: start what serving needs."""

    async def _serve(self, link: L) -> str:
        """Reconcile on every wake until the socket must be replaced; returns why."""
        raise NotImplementedError

    async def _release(self, link: L, why: str) -> bool:
        """Dispose of a socket that ended for ``why``; ``True``: reconnect without a backoff."""
        raise NotImplementedError

    async def _shutdown(self, leftovers: list[L]) -> None:
        """The supervisor ends (closed): close ``leftovers`` and whatever else is open."""
        raise NotImplementedError

    def describe_failure(self) -> str:
        """Why the node has no connection, for :class:`ConnectionFailure` messages."""
        raise NotImplementedError

    def _on_text(self, link: L, data: str) -> None:
        """Handle one text frame read from ``link``."""
        raise NotImplementedError

    async def _reconcile(
        self, link: L, skip: frozenset[str] = frozenset(), *, ready: bool = False
    ) -> None:
        """Subscribe what is wanted (but not ``skip``) and drop what is not, on ``link``.

        With ``ready``, the node counts as connected once the pass succeeded. Raises
        :class:`LinkLost` when the socket is gone.
        """
        raise NotImplementedError

    async def _run_reconnect_hook(self, link: L) -> None:
        """Run the owner's reconnect hook on a new socket, serving the node meanwhile.

        Topics subscribed while the hook runs (by the hook itself, say) are subscribed at
        once, so a hook may wait for them. The topics the hook was shown wait for it
        ``reconnect_hook_grace`` seconds (it may swap their tokens); after that they are
        served with the tokens they have, and the hook's result, when it comes, is
        applied as a change. No hook, however slow, leaves the bot deaf, and no EventSub
        session is closed for want of a subscription.
        """
        loop = asyncio.get_running_loop()
        shown = dict(self._wanted)  # what the hook is shown, as the pool holds it now
        waiting = True
        deadline = loop.time() + self._settings.reconnect_hook_grace
        hook = self._owner.reconnected(self)  # type: ignore[arg-type]
        while not hook.done():
            if waiting and loop.time() >= deadline:
                log.info(
                    "node %d: reconnect_hook still runs after %g s; serving its %d topic(s) "
                    "with the tokens they have",
                    self.id,
                    self._settings.reconnect_hook_grace,
                    len(shown),
                )
                waiting = False
                await self._reconcile(link, ready=True)
                continue
            timeout = max(deadline - loop.time(), 0.0) if waiting else None
            await until_signal(link, also=hook, timeout=timeout)
            if not link.alive:
                raise LinkLost("connection lost during reconnect_hook")
            if self._wake_pending:
                # e.g. subscribe_topics called from inside the hook: serve it now. Only
                # the topics the pool has not changed since wait for the hook; one it
                # re-subscribed (a refreshed token, say) is served at once.
                skip = (
                    frozenset(k for k, t in shown.items() if self._wanted.get(k) is t)
                    if waiting
                    else frozenset()
                )
                await self._reconcile(link, skip)

    async def _sleep(self, delay: float, why: str) -> None:
        """Back off ``delay`` seconds after ``why``, telling the log and the bot."""
        log.info("node %d: %s; %s in %.2f s", self.id, why, self._retry, delay)
        self._dispatch.event("pubsub_reconnecting", self, delay)
        await asyncio.sleep(delay)

    # ------------------------------------------------------------------ reading

    async def _read(self, link: L) -> None:
        """A socket's reader task: each text frame to ``_on_text`` until the socket ends.

        ``receive()`` does not yield while frames are buffered, so the reader yields every
        :data:`READ_BATCH` frames, whatever they are: no burst can pile up the handlers'
        tasks or hold the loop. When the socket ends, the link's signal tells the
        supervisor.
        """
        ws = link.ws
        on_text = self._on_text
        text_type = aiohttp.WSMsgType.TEXT
        batch = READ_BATCH
        try:
            while True:
                msg = await ws.receive()
                batch -= 1
                if not batch:
                    batch = READ_BATCH
                    await asyncio.sleep(0)
                if msg.type is text_type:
                    try:
                        on_text(link, msg.data)
                    except Exception as exc:  # a bug: it must not end the reader
                        self._handler_failed(msg.data, exc)
                elif msg.type in _CLOSED:
                    log.debug("node %d: socket %d closed (%s)", self.id, link.id, ws.close_code)
                    return
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    self._read_error(link, msg.data)
                    return
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self._noise.log(
                        logging.WARNING,
                        "binary",
                        "node %d: ignored a binary frame (%d bytes)",
                        self.id,
                        len(msg.data),
                    )
                    self._dispatch.error(
                        PubSubErrorEvent("unexpected binary frame", type="INVALID_FRAME")
                    )
                # PING/PONG control frames are answered by aiohttp itself.
        finally:
            self._reader_ended(link)
            link.signal.set()

    def _reader_ended(self, link: L) -> None:
        """``link``'s socket is gone: fail what waits for an answer on it (none by default)."""

    def _handler_failed(self, raw: str, exc: Exception) -> None:
        self._noise.log(
            logging.ERROR,
            "handler",
            "node %d: handling a frame raised %s: %s (a bug in twitchio-pubsub, please report)",
            self.id,
            type(exc).__name__,
            exc,
        )
        self._dispatch.error(
            PubSubErrorEvent(
                f"handling a frame raised {type(exc).__name__}",
                raw=raw,
                exception=exc,
                type="INTERNAL",
            )
        )

    def _read_error(self, link: L, error: object) -> None:
        if isinstance(error, aiohttp.WebSocketError) and error.code == 1009:
            limit = self._settings.max_message_size
            log.warning(
                "node %d: a frame was larger than max_message_size (%d bytes); reconnecting",
                self.id,
                limit,
            )
            self._dispatch.error(
                PubSubErrorEvent(
                    f"frame too large (over max_message_size={limit} bytes)",
                    type="INVALID_FRAME",
                )
            )
        else:
            log.warning("node %d: socket %d error: %s", self.id, link.id, error)

    # ------------------------------------------------------------------ public state

    @property
    def topics(self) -> list[Topic]:
        """The topics the pool assigned to this node (a copy)."""
        return list(self._wanted.values())

    @property
    def connected(self) -> bool:
        """Whether the node is connected and its topics were subscribed on it."""
        return self._ready and not self._closing

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pool's HTTP session, which every node's sockets use."""
        return self._owner.session()

    @property
    def connection(self) -> Optional[aiohttp.ClientWebSocketResponse]:
        """The current websocket, or ``None`` while connecting."""
        link = self._link
        return link.ws if link is not None else None

    # ------------------------------------------------------------------ owner's controls

    def start(self) -> None:
        """Start the supervisor (the pool calls this once it assigned topics)."""
        if self._supervisor is None and not self._closing:
            loop = asyncio.get_running_loop()
            self._down_since = loop.time()
            self._supervisor = loop.create_task(
                self._supervise_forever(), name=f"{self._task_prefix}-{self.id}-supervisor"
            )

    async def _supervise_forever(self) -> None:
        """Run ``_supervise()``; if it fails (a bug), say so and start it again.

        ``_supervise()`` cleans up its own sockets in its ``finally``. An exception that
        escapes it is logged with its traceback and dispatched as a ``pubsub_error``
        (type ``INTERNAL``), and the node starts over after a backoff: it never dies
        silently while the pool still counts on it. Cancellation ends it, as always.
        """
        settings = self._settings
        backoff = Backoff(settings.backoff_base, settings.backoff_cap, rng=self._rng)
        while True:
            try:
                await self._supervise()
                return
            except Exception as exc:
                # _supervise's finally has already closed its sockets, cleared the link and
                # the ready state, and released the settle waiters.
                log.exception("node %d: the supervisor failed; starting it again", self.id)
                self._down_since = asyncio.get_running_loop().time()
                self._last_error = f"internal error: {type(exc).__name__}: {exc}"
                self._dispatch.error(
                    PubSubErrorEvent(
                        f"node {self.id} failed ({type(exc).__name__}: {exc}); starting over",
                        exception=exc,
                        topics=list(self._wanted.values()),
                        type="INTERNAL",
                    )
                )
                await self._sleep(backoff.next_delay(), "the supervisor failed")

    def wake(self) -> None:
        """The wanted topics changed; the supervisor reconciles them."""
        self._wake_pending = True
        link = self._link
        if link is not None:
            link.signal.set()

    def settled(self) -> asyncio.Future[Errors]:
        """A future resolved when a reconcile pass that begins after this call is done.

        Its result is that pass's removals that failed, as ``(keys, error)``. It is
        resolved at once with no connection: the next one simply does not subscribe
        what is not wanted.
        """
        future: asyncio.Future[Errors] = asyncio.get_running_loop().create_future()
        if self._link is None or self._closing:
            future.set_result([])
        else:
            self._settle_waiters.append(future)
            self.wake()
        return future

    async def close(self) -> None:
        """Stop the supervisor and close every socket; safe to call more than once."""
        first = not self._closing
        self._closing = True
        self._release_settle_waiters([])
        task = self._supervisor
        if task is not None and not task.done():
            if first:  # cancel once: a second cancel would cut the sockets' clean-up short
                task.cancel()
            await wait_finished(task)
        self._set_ready(False)

    # ------------------------------------------------------------------ state

    def _set_ready(self, ready: bool) -> None:
        self._ready = ready
        waiters, self._state_waiters = self._state_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_state(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds, checking on every connect or disconnect."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._state_waiters.append(waiter)
            await asyncio.wait((waiter,), timeout=remaining)
        return True

    def _release_settle_waiters(
        self,
        errors: Errors,
        waiters: Optional[list[asyncio.Future[Errors]]] = None,
    ) -> None:
        if waiters is None:
            waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(errors)

    # ------------------------------------------------------------------ reference surface

    async def connect(self) -> None:
        """|coro|

        Connect this node if it is not connected, and wait until its topics are
        subscribed. Nodes connect by themselves; this is for code written for the
        reference, which called it.

        Raises
        ------
        ConnectionFailure
            No connection within ``connect_timeout``; the message names the cause.
        """
        if self._closing:
            raise ConnectionFailure("this node was closed; subscribe through the pool")
        self.start()
        if not await self._wait_state(lambda: self.connected, self._settings.connect_timeout):
            raise ConnectionFailure(self.describe_failure())

    async def disconnect(self) -> None:
        """|coro|

        Close this connection for good. Its topics leave the pool (as if unsubscribed)
        and the pool forgets the node.
        """
        await self._owner.disconnect(self)  # type: ignore[arg-type]

    async def subscribe_topics(self, topics: list[Topic]) -> None:
        """|coro|

        Subscribe ``topics`` on this node, through its pool (which stays the one record
        of what is where).

        Raises
        ------
        ValueError
            They do not fit on this node.
        """
        await self._owner.subscribe(self, topics)  # type: ignore[arg-type]

    async def unsubscribe_topic(self, topics: list[Topic]) -> None:
        """|coro|

        Unsubscribe ``topics``, which must be on this node, through its pool.

        Raises
        ------
        ValueError
            A topic is not subscribed on this node.
        """
        missing = [t for t in topics if not isinstance(t, Topic) or t.present not in self._wanted]
        if missing:
            raise ValueError(
                f"not subscribed on node {self.id}: " + ", ".join(repr(t) for t in missing)
            )
        await self._owner.unsubscribe(topics)
