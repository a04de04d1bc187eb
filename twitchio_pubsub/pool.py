"""PubSubPool: packs topics onto connections, runs the hooks, owns every resource."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional

import aiohttp

from . import protocol
from .dispatch import Dispatcher
from .errors import (
    ConnectionFailure,
    ListenError,
    ListenTimeout,
    PoolClosed,
    PoolFull,
    PubSubError,
)
from .models.base import PubSubErrorEvent
from .topics import Topic
from .websocket import NOT_CONNECTED, TIMEOUT, PubSubWebsocket, Settings

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubPool",)

log = logging.getLogger(__name__)

_MODES = ("group",)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


class PubSubPool:
    """The pool that manages connections to the PubSub server and spreads topics over them.

    Subclass it to override :meth:`auth_fail_hook` and :meth:`reconnect_hook`.

    Parameters
    ----------
    client: :class:`twitchio.Client`
        The client events are dispatched to.
    max_pool_size: :class:`int`
        The most connections (nodes) to open; Twitch recommends at most 10 per IP.
    max_connection_topics: :class:`int`
        The most topics per connection; Twitch allows 50.
    mode: :class:`str`
        How topics are packed. ``"group"`` (the only mode) fills the first connection
        with room before opening another.
    endpoint: Optional[:class:`str`]
        The server URL; defaults to :attr:`PubSubWebsocket.ENDPOINT`. Point it at a
        :class:`~twitchio_pubsub.emulator.PubSubEmulator` for tests.
    ping_interval: :class:`float`
        Seconds between PINGs (each jittered 0-10 % shorter); below 300.
    pong_timeout: :class:`float`
        Seconds to wait for a PONG before the connection is deemed dead and replaced.
    listen_timeout: :class:`float`
        Seconds to wait for the server's answer to one LISTEN or UNLISTEN.
    connect_timeout: :class:`float`
        Seconds a handshake may take, and how long :meth:`subscribe_topics` waits for a
        connection before raising :class:`ConnectionFailure`.
    backoff_base: :class:`float`
        Ceiling of the first reconnect delay; each failure doubles it (full jitter).
    backoff_cap: :class:`float`
        The longest reconnect delay.
    backoff_reset_after: :class:`float`
        A connection that lived this long resets the backoff.
    listen_retries: :class:`int`
        How often a LISTEN answered with ``ERR_SERVER`` is retried.
    dedup_window: :class:`float`
        Seconds after a RECONNECT hand-over during which duplicate events are dropped.
    handover_delay: :class:`float`
        After a RECONNECT, how long the old socket stays open once the new one is
        listening, so that events already in flight on it are not lost.
    rng: Optional[:class:`random.Random`]
        The source of jitter, for reproducible tests.

    Attributes
    ----------
    client: :class:`twitchio.Client`
        The client that the pool dispatches events to.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_pool_size: int = 10,
        max_connection_topics: int = 50,
        mode: str = "group",
        endpoint: Optional[str] = None,
        ping_interval: float = 240.0,
        pong_timeout: float = 10.0,
        listen_timeout: float = 10.0,
        connect_timeout: float = 30.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 120.0,
        backoff_reset_after: float = 30.0,
        listen_retries: int = 2,
        dedup_window: float = 5.0,
        handover_delay: float = 0.5,
        rng: Optional[random.Random] = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(_MODES)}")
        if endpoint is not None and (not isinstance(endpoint, str) or not endpoint):
            raise TypeError("endpoint must be a non-empty URL string")
        if _positive("ping_interval", ping_interval) >= 300:
            raise ValueError("ping_interval must be below 300 s (Twitch needs a PING every 5 min)")
        if _positive("backoff_cap", backoff_cap) < _positive("backoff_base", backoff_base):
            raise ValueError("backoff_cap must be at least backoff_base")
        if isinstance(listen_retries, bool) or not isinstance(listen_retries, int):
            raise TypeError("listen_retries must be an int")
        if listen_retries < 0:
            raise ValueError("listen_retries must not be negative")
        self.client = client
        self._max_size = _positive_int("max_pool_size", max_pool_size)
        self._max_connection_topics = _positive_int("max_connection_topics", max_connection_topics)
        self._mode = mode
        self._settings = Settings(
            endpoint=endpoint,
            ping_interval=float(ping_interval),
            pong_timeout=_positive("pong_timeout", pong_timeout),
            listen_timeout=_positive("listen_timeout", listen_timeout),
            connect_timeout=_positive("connect_timeout", connect_timeout),
            backoff_base=float(backoff_base),
            backoff_cap=float(backoff_cap),
            backoff_reset_after=_positive("backoff_reset_after", backoff_reset_after),
            listen_retries=listen_retries,
            dedup_window=_positive("dedup_window", dedup_window),
            handover_delay=_positive("handover_delay", handover_delay),
            rng=rng,
        )
        self._dispatcher = Dispatcher(client)
        self._pool: list[PubSubWebsocket] = []
        self._topics: dict[Topic, PubSubWebsocket] = {}
        self._lock_obj: Optional[asyncio.Lock] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop_checked = False

    def __repr__(self) -> str:
        return f"<PubSubPool nodes={len(self._pool)} topics={len(self._topics)}>"

    # ------------------------------------------------------------------ views

    @property
    def nodes(self) -> list[PubSubWebsocket]:
        """The open connections, oldest first."""
        return list(self._pool)

    @property
    def topics(self) -> list[Topic]:
        """Every topic currently subscribed, across all connections."""
        return list(self._topics)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def _lock(self) -> asyncio.Lock:
        # Created on first use so that it belongs to the running event loop.
        if self._lock_obj is None:
            self._lock_obj = asyncio.Lock()
        return self._lock_obj

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # ------------------------------------------------------------------ validation

    def _check_topics(self, topics: object, verb: str) -> list[Topic]:
        if isinstance(topics, (Topic, str, bytes)) or not isinstance(topics, Iterable):
            raise TypeError(f"{verb} takes a list of Topic objects, not {type(topics).__name__}")
        checked: dict[Topic, None] = {}  # ordered, and de-duplicated in linear time
        for topic in topics:
            if not isinstance(topic, Topic):
                raise TypeError(f"{verb} takes Topic objects, got {type(topic).__name__}")
            if topic.present is None:
                raise ValueError(
                    f"{topic!r} is missing ids; index it, e.g. bits(token)[channel_id]"
                )
            checked.setdefault(topic)
        return list(checked)

    # ------------------------------------------------------------------ subscribing

    async def subscribe_topics(self, topics: list[Topic]) -> None:
        """|coro|

        Subscribes to a list of topics.

        Returns once the server has confirmed every LISTEN. Topics already subscribed
        are skipped. Topics whose token the server rejects (``ERR_BADAUTH``) are handed
        to :meth:`auth_fail_hook` instead of raising.

        Parameters
        ----------
        topics: List[:class:`Topic`]
            The topics to subscribe to.

        Raises
        ------
        TypeError
            ``topics`` is not a list of :class:`Topic`, or a token is not a string.
        ValueError
            A topic is missing ids or has an empty token.
        PoolFull
            The topics do not fit in ``max_pool_size`` connections; nothing was sent.
        ListenError
            The server refused some topics (``.error`` is the code, ``.topics`` them);
            :class:`ListenTimeout` if it did not answer in time.
        ConnectionFailure
            No connection could be made within ``connect_timeout``.
        PoolClosed
            The pool was closed.
        """
        checked = self._check_topics(topics, "subscribe_topics")
        for topic in checked:
            if not isinstance(topic.token, str):
                raise TypeError(f"{topic!r} has no token; the token must be a str")
            if not topic.token.strip():
                raise ValueError(f"{topic!r} has an empty token")
        if self._closed:
            raise PoolClosed("the pool is closed", topics=checked)
        self._check_loop()
        new = [t for t in checked if t not in self._topics]
        if not new:
            return
        async with self._lock:
            plan = self._plan(new)
            for node, chunk in plan:
                node._reserved += len(chunk)
                for topic in chunk:
                    self._topics[topic] = node
        for node, _ in plan:
            node._start()
        outcomes = await asyncio.gather(*(node._subscribe(chunk) for node, chunk in plan))

        auth_failed: list[list[Topic]] = []
        failures: list[tuple[list[Topic], str]] = []
        for (node, chunk), failed in zip(plan, outcomes):
            failed_topics = {t for group, _ in failed for t in group}
            for topic in chunk:
                if topic in failed_topics and self._topics.get(topic) is node:
                    del self._topics[topic]
            for group, error in failed:
                if error == protocol.ERR_BADAUTH:
                    auth_failed.append(group)
                else:
                    failures.append((group, error))
        await self._close_empty_nodes()
        for group in auth_failed:
            if not self._closed:
                await self._run_auth_fail_hook(group)
        if failures:
            raise self._failure(failures)

    def _check_loop(self) -> None:
        if self._loop_checked:
            return
        self._loop_checked = True
        client_loop = getattr(self.client, "loop", None)
        if client_loop is not None and client_loop is not asyncio.get_running_loop():
            log.warning(
                "client.loop is not the running event loop, so twitchio will never run "
                "your event handlers; create the Client inside the running loop or run "
                "your code with client.loop.run_until_complete(...)"
            )

    def _plan(self, topics: list[Topic]) -> list[tuple[PubSubWebsocket, list[Topic]]]:
        cap = self._max_connection_topics
        nodes = [n for n in self._pool if not n._closing]
        for node in nodes:
            if cap - node._load >= len(topics):
                return [(node, topics)]
        free_existing = sum(max(cap - n._load, 0) for n in nodes)
        new_nodes_allowed = self._max_size - len(self._pool)
        if free_existing + new_nodes_allowed * cap < len(topics):
            raise PoolFull(
                f"{len(topics)} topic(s) do not fit: {free_existing} free slot(s) on "
                f"{len(nodes)} connection(s) and room for {max(new_nodes_allowed, 0)} more "
                f"connection(s) of {cap}",
                topics=topics,
            )
        plan: list[tuple[PubSubWebsocket, list[Topic]]] = []
        remaining = list(topics)
        # A call that fits one connection goes to a new one; bigger calls are split,
        # new connections first, then whatever room the existing ones have.
        while remaining and new_nodes_allowed > 0:
            node = self._new_node()
            new_nodes_allowed -= 1
            plan.append((node, remaining[:cap]))
            remaining = remaining[cap:]
        for node in nodes:
            if not remaining:
                break
            room = cap - node._load
            if room > 0:
                plan.append((node, remaining[:room]))
                remaining = remaining[room:]
        return plan

    def _new_node(self) -> PubSubWebsocket:
        node = PubSubWebsocket(
            self.client,
            self,
            max_topics=self._max_connection_topics,
            settings=self._settings,
            dispatcher=self._dispatcher,
        )
        self._pool.append(node)
        log.debug("opened node %d (%d in the pool)", node.id, len(self._pool))
        return node

    def _failure(self, failures: list[tuple[list[Topic], str]]) -> PubSubError:
        topics = [t for group, _ in failures for t in group]
        if self._closed:
            return PoolClosed("the pool was closed before the server confirmed", topics=topics)
        codes = sorted({error for _, error in failures})
        if codes == [NOT_CONNECTED]:
            return ConnectionFailure("could not connect to the PubSub server", topics=topics)
        if codes == [TIMEOUT]:
            return ListenTimeout("the server did not confirm the LISTEN in time", topics=topics)
        code = next((c for c in codes if c not in (TIMEOUT, NOT_CONNECTED)), codes[0])
        return ListenError(f"the server refused {len(topics)} topic(s)", topics=topics, error=code)

    async def unsubscribe_topics(self, topics: list[Topic]) -> None:
        """|coro|

        Unsubscribes from a list of topics.

        Sends UNLISTEN (one per token and connection), waits for the answer, frees the
        capacity, and closes connections left without topics.

        Parameters
        ----------
        topics: List[:class:`Topic`]
            The topics to unsubscribe from.

        Raises
        ------
        ValueError
            A topic is not subscribed; nothing is sent.
        ListenError
            The server refused an UNLISTEN; the topics are dropped all the same.
        """
        checked = self._check_topics(topics, "unsubscribe_topics")
        unknown = [t for t in checked if t not in self._topics]
        if unknown:
            raise ValueError("not subscribed to: " + ", ".join(str(t.present) for t in unknown))
        by_node: dict[PubSubWebsocket, list[Topic]] = {}
        for topic in checked:
            by_node.setdefault(self._topics.pop(topic), []).append(topic)
        errors = await asyncio.gather(
            *(node._unsubscribe(group) for node, group in by_node.items())
        )
        await self._close_empty_nodes()
        failed = [(group, error) for (_, group), error in zip(by_node.items(), errors) if error]
        if failed:
            raise self._failure(failed)

    async def _close_empty_nodes(self) -> None:
        async with self._lock:
            empty = [n for n in self._pool if n._load == 0]
            for node in empty:
                self._pool.remove(node)
        for node in empty:
            log.debug("closing empty node %d", node.id)
            await node._close()

    def _forget(self, topics: Iterable[Topic]) -> None:
        for topic in topics:
            self._topics.pop(topic, None)

    # ------------------------------------------------------------------ hooks

    async def auth_fail_hook(self, topics: list[Topic]) -> None:
        """|coro|

        A hook that can be overridden in a subclass; it is called when the server
        rejects a token (``ERR_BADAUTH`` on LISTEN) or revokes it (``AUTH_REVOKED``).

        From here you can refresh the token (or ask the user for a new one) and
        subscribe again. The topics have already been removed from the pool and are
        **not** resubscribed automatically: call :meth:`subscribe_topics` yourself.

        The default logs a warning naming the topics and dispatches ``pubsub_error``.

        Example::

            class MyPool(PubSubPool):
                async def auth_fail_hook(self, topics):
                    new_token = await refresh(topics[0].token)
                    for topic in topics:
                        topic.token = new_token
                    await self.subscribe_topics(topics)

        Parameters
        ----------
        topics: List[:class:`Topic`]
            The topics that lost their authorization; usually they share one token.
        """
        log.warning(
            "authorization failed for %d topic(s): %s",
            len(topics),
            ", ".join(str(t.present) for t in topics),
        )
        self._dispatcher.error(
            PubSubErrorEvent("authorization failed", error=protocol.ERR_BADAUTH, topics=topics)
        )

    async def reconnect_hook(self, node: PubSubWebsocket, topics: list[Topic]) -> list[Topic]:
        """|coro|

        A low-level hook that can be overridden in a subclass; it is called whenever
        a node reconnects, for any reason, before its topics are listened again.

        Return the topics the node should have: you may change tokens, drop topics,
        or add some (up to the node's ``max_topics``). The default returns ``topics``.

        Parameters
        ----------
        node: :class:`PubSubWebsocket`
            The node that is reconnecting.
        topics: List[:class:`Topic`]
            The topics this node has (a copy; edit freely).

        Returns
        -------
        List[:class:`Topic`]
            The list of topics this node should have.
        """
        return topics

    async def _run_auth_fail_hook(self, topics: list[Topic]) -> None:
        try:
            await self.auth_fail_hook(topics)
        except Exception as exc:
            log.exception("auth_fail_hook raised")
            self._dispatcher.error(
                PubSubErrorEvent("auth_fail_hook raised", topics=topics, exception=exc)
            )

    def _spawn_auth_fail_hook(self, topics: list[Topic]) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(
            self._run_auth_fail_hook(topics), name="pubsub-auth-fail-hook"
        )
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

    def _on_auth_failed(self, node: PubSubWebsocket, topics: list[Topic]) -> None:
        """A re-LISTEN on ``node`` got ERR_BADAUTH: forget the topics, run the hook."""
        self._forget(topics)
        self._spawn_auth_fail_hook(topics)

    def _on_auth_revoked(self, node: PubSubWebsocket, presents: Sequence[str]) -> None:
        wanted = set(presents)
        revoked = [t for t in node.topics if t.present in wanted]
        if not revoked:
            return
        node._remove(revoked)
        self._forget(revoked)
        log.info("AUTH_REVOKED for %s", ", ".join(str(t.present) for t in revoked))
        self._spawn_auth_fail_hook(revoked)

    async def _apply_reconnect_hook(self, node: PubSubWebsocket) -> None:
        current = list(node.topics)
        try:
            result = await self.reconnect_hook(node, list(current))
        except Exception as exc:
            log.exception("reconnect_hook raised; keeping the node's topics")
            self._dispatcher.error(
                PubSubErrorEvent("reconnect_hook raised", topics=current, exception=exc)
            )
            return
        if result is None:
            result = current
        wanted: list[Topic] = []
        for topic in result if isinstance(result, (list, tuple)) else ():
            if not isinstance(topic, Topic) or topic.present is None or not topic.token:
                log.warning("reconnect_hook returned an unusable entry %r; ignored", topic)
                continue
            owner = self._topics.get(topic)
            if owner is not None and owner is not node:
                continue  # already held elsewhere
            if topic not in wanted:
                wanted.append(topic)
        room = node.max_topics - node._reserved
        if len(wanted) > room:
            dropped = wanted[room:]
            wanted = wanted[:room]
            log.error(
                "reconnect_hook returned more topics than node %d can hold; dropped %s",
                node.id,
                ", ".join(str(t.present) for t in dropped),
            )
            self._dispatcher.error(
                PubSubErrorEvent("reconnect_hook returned too many topics", topics=dropped)
            )
        for topic in current:
            if topic not in wanted:
                self._topics.pop(topic, None)
        for topic in wanted:
            self._topics.pop(topic, None)
            self._topics[topic] = node
        node.topics = wanted

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """|coro|

        Close every connection, cancel running hooks and close the HTTP session.

        Safe to call more than once. Afterwards no task, socket or session is left.
        """
        self._closed = True
        current = asyncio.current_task()
        hooks = [t for t in self._hook_tasks if t is not current]
        for task in hooks:
            task.cancel()
        if hooks:
            await asyncio.gather(*hooks, return_exceptions=True)
        nodes, self._pool = self._pool, []
        # A node whose own supervisor is running this (close() from reconnect_hook) is
        # closed here, in its task: it cancels itself and winds down on its next await.
        own = [node for node in nodes if node._supervisor is current]
        await asyncio.gather(*(node._close() for node in nodes if node not in own))
        for node in own:
            await node._close()
        self._topics.clear()
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> PubSubPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
