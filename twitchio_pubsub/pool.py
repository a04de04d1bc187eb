"""PubSubPool: the one owner of which topic is where; packs, hooks, closes.

Every topic the user wants has one record here: its topic object (with the token), the
node it is assigned to, and, while a subscribe waits for the server, the future that
the node's answer resolves. Nodes receive a live, read-only view of the topics assigned
to them and report back through the :class:`~twitchio_pubsub.transport.NodeOwner`
callbacks; nothing else writes the records.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import aiohttp

from . import protocol
from .dispatch import Dispatcher
from .errors import (
    ConnectionFailure,
    ListenError,
    ListenTimeout,
    PoolClosed,
    PubSubError,
)
from .models.base import PubSubErrorEvent
from .settings import Settings
from .topics import Topic
from .transport import (
    CLOSED,
    NOT_CONNECTED,
    OK,
    TIMEOUT,
    TRANSIENT,
    WITHDRAWN,
    Node,
    NodeOwner,
    Transport,
    wait_finished,
)
from .transports import build_transport
from .websocket import by_token

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubPool",)

log = logging.getLogger(__name__)

T = TypeVar("T")

_MODES = ("group",)
#: What the pool speaks unless told otherwise, as twitchio.ext.pubsub did.
_DEFAULT_TRANSPORT = "pubsub"
#: A subscription's outcome: a code (``OK``, an ``ERR_*``, ``TIMEOUT``, ...) and words.
_Outcome = tuple[str, str]


class _Record:
    """One wanted topic: where it is and, while a subscribe waits, its outcome."""

    __slots__ = ("future", "node", "previous", "since", "topic", "waiters")

    def __init__(
        self,
        topic: Topic,
        node: Node,
        future: Optional[asyncio.Future[_Outcome]],
        since: float = 0.0,
    ) -> None:
        self.topic = topic
        self.node = node
        self.future = future
        self.since = since
        self.waiters = 0
        #: While a move to another token waits for the server: the topic as the server
        #: holds it now (with the token that works), to fall back to if the move is refused.
        self.previous: Optional[Topic] = None

    @property
    def pending(self) -> bool:
        return self.future is not None and not self.future.done()

    def resolve(self, code: str, detail: str = "") -> None:
        future, self.future = self.future, None
        if future is not None and not future.done():
            future.set_result((code, detail))


class TransportHost:
    """What a transport may need of its pool beyond the nodes the pool asks it for (a
    conduit opens its shards itself): the client, the pool, its dispatcher and owner."""

    __slots__ = ("client", "dispatcher", "owner", "pool")

    def __init__(self, client: Client, pool: Any, dispatcher: Dispatcher, owner: NodeOwner) -> None:
        self.client = client
        self.pool = pool
        self.dispatcher = dispatcher
        self.owner = owner


class _Owner:
    """The pool as its nodes see it: the :class:`~twitchio_pubsub.transport.NodeOwner`.

    A separate object, so that the callbacks stay off the pool's public surface (and out
    of the way of subclasses).
    """

    __slots__ = ("_pool",)

    def __init__(self, pool: PubSubPool) -> None:
        self._pool = pool

    def session(self) -> aiohttp.ClientSession:
        return self._pool._session_for_nodes()

    def wanted(self, node: Node) -> Mapping[str, Topic]:
        return self._pool._wanted(node)

    def handover_slot(self) -> asyncio.Semaphore:
        return self._pool._handover_slot()

    def subscribed(self, node: Node, topics: Sequence[Topic], token: Optional[str]) -> None:
        self._pool._subscribed(node, topics, token)

    def refused(
        self, node: Node, topics: Sequence[Topic], token: Optional[str], error: str
    ) -> bool:
        return self._pool._refused(node, topics, token, error)

    def revoked(self, node: Node, keys: Sequence[str], reason: Optional[str] = None) -> None:
        self._pool._revoked(node, keys, reason)

    def reconnected(self, node: Node) -> asyncio.Task[None]:
        return self._pool._reconnected(node)

    async def subscribe(self, node: Node, topics: list[Topic]) -> None:
        await self._pool._subscribe(topics, "subscribe_topics", node)

    async def unsubscribe(self, topics: list[Topic]) -> None:
        await self._pool.unsubscribe_topics(topics)

    async def disconnect(self, node: Node) -> None:
        await self._pool._disconnect(node)


class PubSubPool:
    """The pool that manages connections to the PubSub server and spreads topics over them.

    Subclass it to override :meth:`auth_fail_hook` and :meth:`reconnect_hook`.

    Parameters
    ----------
    client: :class:`twitchio.Client`
        The client events are dispatched to.
    max_pool_size: :class:`int`
        The most connections (nodes) to open; Twitch recommends at most 10 per IP. During
        a server RECONNECT one extra socket may be open for a moment, never more.
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
        Seconds after a RECONNECT hand-over during which late copies of events that the
        old socket delivered are still recognised and dropped.
    handover_delay: :class:`float`
        After a RECONNECT, how long the old socket stays open once the new one is
        listening, so that events already in flight on it are not lost.
    reconnect_hook_grace: :class:`float`
        How long a node waits for :meth:`reconnect_hook` before it serves its topics
        with the tokens they have; the hook's result is applied when it returns. Topics
        the hook subscribes are served at once. (A hook may be slow, e.g. waiting on a
        token server, and EventSub closes a session with no subscription after 10 s.)
    max_message_size: :class:`int`
        The largest frame accepted, in bytes (1 MiB by default). A larger frame is
        reported as a ``pubsub_error`` and the connection is replaced.
    rng: Optional[:class:`random.Random`]
        The source of jitter, for reproducible tests.
    transport: :class:`str`
        ``"pubsub"`` (the default), ``"eventsub"`` or ``"conduit"``: the same topics,
        hooks, events and models, fed from Twitch's EventSub WebSocket (see *Keeping
        PubSub bots alive on EventSub* in the docs) or, with ``"conduit"``, from an
        EventSub conduit whose shards many processes share (see *Past one process*).
        With ``"eventsub"``, topics are grouped into sessions by
        token user (at most 3 sessions per user and 300 subscriptions per session,
        Twitch's limits) and ``max_pool_size``, ``max_connection_topics``,
        ``ping_interval`` and ``pong_timeout`` do not apply.
    eventsub_url: Optional[:class:`str`]
        The EventSub WebSocket URL (``wss://eventsub.wss.twitch.tv/ws``).
    helix_url: Optional[:class:`str`]
        The Helix API base (``https://api.twitch.tv/helix``).
    id_url: Optional[:class:`str`]
        The OAuth base; tokens are validated at ``{id_url}/validate``
        (``https://id.twitch.tv/oauth2``). ``**EventSubEmulator().urls`` gives all three.
    keepalive_timeout: :class:`int`
        EventSub: the keepalive timeout asked for, 10 to 600 seconds.
    keepalive_margin: :class:`float`
        EventSub: how much longer than the keepalive timeout a silent session is given
        before it counts as dead and is replaced.
    validate_interval: :class:`float`
        EventSub: seconds between re-validations of every token in use (Twitch asks
        for hourly); a token found invalid goes to :meth:`auth_fail_hook` with its topics.
    client_id: Optional[:class:`str`]
        Conduit: the app's client id. The topics' user tokens must have been issued to it.
    client_secret: Optional[:class:`str`]
        Conduit: the app's secret, for its app access token (client credentials).
    conduit_id: Optional[:class:`str`]
        Conduit: the conduit to serve; ``None`` takes the client's only conduit, or
        creates one when it has none.
    shards: Optional[Iterable[:class:`int`]]
        Conduit: the shard ids this process serves (``range(0, 4)``); ``None``: all.
    shard_count: Optional[:class:`int`]
        Conduit: the shard count to create the conduit with or resize it to; by default
        enough for ``shards`` (or 1).
    audit_interval: :class:`float`
        Conduit: seconds between checks of this process's shards with Helix (a shard
        Twitch disabled is assigned again).

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
        reconnect_hook_grace: float = 2.0,
        max_message_size: int = 1024 * 1024,
        rng: Optional[random.Random] = None,
        transport: str = _DEFAULT_TRANSPORT,
        eventsub_url: Optional[str] = None,
        helix_url: Optional[str] = None,
        id_url: Optional[str] = None,
        keepalive_timeout: int = 10,
        keepalive_margin: float = 5.0,
        validate_interval: float = 3600.0,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        conduit_id: Optional[str] = None,
        shards: Optional[Iterable[int]] = None,
        shard_count: Optional[int] = None,
        audit_interval: float = 120.0,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(_MODES)}")
        self._settings = Settings.build(
            endpoint=endpoint,
            max_pool_size=max_pool_size,
            max_connection_topics=max_connection_topics,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            listen_timeout=listen_timeout,
            connect_timeout=connect_timeout,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            backoff_reset_after=backoff_reset_after,
            listen_retries=listen_retries,
            dedup_window=dedup_window,
            handover_delay=handover_delay,
            reconnect_hook_grace=reconnect_hook_grace,
            max_message_size=max_message_size,
            rng=rng,
        )
        self.client = client
        self._mode = mode
        self._dispatcher = Dispatcher(client)
        self._records: dict[str, _Record] = {}
        self._nodes: list[Node] = []
        self._assigned: dict[Node, dict[str, Topic]] = {}
        #: Nodes taken out of the pool, with the task closing each.
        self._retiring: dict[Node, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot: Optional[asyncio.Semaphore] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._owner = _Owner(self)
        self._closed = False
        self._loop_checked = False
        self._revalidating: Optional[asyncio.Task[None]] = None
        #: Work that user calls wait on (token validation, ...): close() ends it.
        self._calls: set[asyncio.Task[Any]] = set()
        self._closed_signal: Optional[asyncio.Future[None]] = None
        #: auth_fail_hook runs under way, by (topic key, token).
        self._auth_runs: dict[tuple[str, Optional[str]], asyncio.Task[None]] = {}
        #: Everything that depends on what the nodes speak.
        self._transport: Transport = build_transport(
            transport,
            self._session_for_nodes,
            self._settings,
            {
                "eventsub_url": eventsub_url,
                "helix_url": helix_url,
                "id_url": id_url,
                "keepalive_timeout": keepalive_timeout,
                "keepalive_margin": keepalive_margin,
                "validate_interval": validate_interval,
                "tokens_in_use": self._tokens_in_use,
                "client_id": client_id,
                "client_secret": client_secret,
                "conduit_id": conduit_id,
                "shards": shards,
                "shard_count": shard_count,
                "audit_interval": audit_interval,
                "host": TransportHost(client, self, self._dispatcher, self._owner),
            },
        )

    def __repr__(self) -> str:
        name = self._transport.name
        transport = "" if name == _DEFAULT_TRANSPORT else f" transport={name}"
        return f"<PubSubPool{transport} nodes={len(self._nodes)} topics={len(self._records)}>"

    @property
    def transport(self) -> str:
        """``"pubsub"``, ``"eventsub"`` or ``"conduit"``: what the pool's nodes speak."""
        return self._transport.name

    @property
    def conduit(self) -> Any:
        """The :class:`~twitchio_pubsub.Conduit` this pool serves (``transport="conduit"``),
        else ``None``: its ``id``, this process's ``shards``, ``start()`` and ``resize()``."""
        return getattr(self._transport, "conduit", None)

    # ------------------------------------------------------------------ views

    @property
    def nodes(self) -> list[Any]:
        """The open connections (:class:`PubSubWebsocket`, or
        :class:`~twitchio_pubsub.EventSubWebsocket` sessions), oldest first."""
        return list(self._nodes)

    @property
    def _pool(self) -> list[Any]:
        # twitchio.ext.pubsub kept its nodes here, and bots reach for it to shut down
        # (``for node in pool._pool: await node.disconnect()``).
        return self.nodes

    @property
    def topics(self) -> list[Topic]:
        """Every topic subscribed or being subscribed, across all connections."""
        return [record.topic for record in self._records.values()]

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # ------------------------------------------------------------------ what nodes report

    def _session_for_nodes(self) -> aiohttp.ClientSession:
        """The pool's HTTP session.

        Its connector has no overall limit: every open socket holds one of its
        connections for as long as it lives, and aiohttp's default of 100 would leave
        Helix calls (and the 101st EventSub session or conduit shard) waiting for one
        until they time out. Helix calls are bounded where they are made.
        """
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    def _tokens_in_use(self) -> set[str]:
        """Every token a topic uses, or falls back to if a refresh is refused."""
        tokens = set()
        for record in self._records.values():
            tokens.add(record.topic.token or "")
            if record.previous is not None:
                tokens.add(record.previous.token or "")
        return tokens

    def _wanted(self, node: Node) -> Mapping[str, Topic]:
        """The topics assigned to ``node``."""
        return self._assigned.setdefault(node, {})

    def _handover_slot(self) -> asyncio.Semaphore:
        """The one extra socket the whole pool may open during a RECONNECT."""
        if self._slot is None:
            self._slot = asyncio.Semaphore(1)
        return self._slot

    def _subscribed(self, node: Node, topics: Sequence[Topic], token: Optional[str]) -> None:
        """The server confirmed ``topics`` on ``node``."""
        for topic in topics:
            record = self._records.get(topic.present or "")
            if record is not None and record.node is node and record.topic.token == token:
                record.previous = None
                record.resolve(OK)

    def _refused(
        self, node: Node, topics: Sequence[Topic], token: Optional[str], error: str
    ) -> bool:
        """The server refused ``topics`` on ``node``; whether they are kept."""
        kept = False
        dropped: list[Topic] = []
        for topic in topics:
            record = self._records.get(topic.present or "")
            if record is None or record.node is not node or record.topic.token != token:
                continue
            if error in TRANSIENT and not record.pending:
                kept = True  # held before: keep it and let the node try a new socket
                continue
            if error == protocol.ERR_BADAUTH and record.previous is not None:
                # A token refresh the server refused: the topic stays under the token
                # that works (the node subscribes it with that again), and the refused
                # topic goes to auth_fail_hook.
                self._revert_move(record)
                continue
            if not self._remove(record, error):
                dropped.append(record.topic)
        if dropped:
            if error == protocol.ERR_BADAUTH:
                self._auth_fail(dropped)
            else:
                # The node dispatched the error response as pubsub_error already.
                log.warning("the server refused (%s): %s", error, _names(dropped))
        self._retire_if_empty(node)
        return kept

    def _revoked(self, node: Node, keys: Sequence[str], reason: Optional[str] = None) -> None:
        """The server revoked these topics' authorization on ``node``."""
        revoked: list[Topic] = []
        for key in keys:
            record = self._records.get(key)
            if record is None or record.node is not node:
                continue
            # A subscribe call waiting for it runs the hook itself.
            if not self._remove(record, protocol.ERR_BADAUTH):
                revoked.append(record.topic)
        if revoked:
            log.info("AUTH_REVOKED for %s", _names(revoked))
            self._dispatcher.error(
                PubSubErrorEvent(
                    f"authorization revoked ({reason})" if reason else "authorization revoked",
                    error=protocol.ERR_BADAUTH,
                    topics=revoked,
                    type="AUTH_REVOKED",
                )
            )
            self._auth_fail(revoked)
        self._retire_if_empty(node)

    def _reconnected(self, node: Node) -> asyncio.Task[None]:
        """``node`` has a new socket: run :meth:`reconnect_hook` in a pool task."""
        return self._spawn(self._apply_reconnect_hook(node), f"pubsub-reconnect-hook-{node.id}")

    async def _until_closed(self, work: Coroutine[Any, Any, T], topics: list[Topic]) -> T:
        """Await ``work`` for a user call; if the pool closes first, end it and raise.

        ``work`` runs in a task the pool owns, so :meth:`close` can cancel it (and wait
        for it) wherever the call's own task is.

        Raises
        ------
        PoolClosed
            The pool was closed before ``work`` finished.
        """
        if self._closed_signal is None:
            self._closed_signal = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(work)
        self._calls.add(task)
        try:
            await asyncio.wait((task, self._closed_signal), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._calls.discard(task)
            if not task.done():
                task.cancel()
                await asyncio.wait((task,))
        if task.cancelled() or self._closed:
            if not task.cancelled():
                task.exception()  # retrieved: the caller hears PoolClosed instead
            raise PoolClosed("the pool was closed", topics=topics)
        return task.result()

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

    # ------------------------------------------------------------------ subscribing

    async def subscribe_topics(self, topics: list[Topic]) -> None:
        """|coro|

        Subscribes to a list of topics.

        Returns once the server has confirmed every LISTEN. Topics already subscribed
        with the same token are skipped; a topic being subscribed by another call shares
        that call's outcome. A topic already subscribed with *another* token moves to
        the token given here (the way to refresh an expired token): it is LISTENed again
        with the new token on the same connection, without a gap or a duplicate event.
        Topics whose token the server rejects (``ERR_BADAUTH``) are handed to
        :meth:`auth_fail_hook` instead of raising.

        Cancelling the call withdraws the topics it added that the server has not
        confirmed yet; nothing is left half-subscribed.

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
            No connection could be made within ``connect_timeout``; the message names
            the endpoint and the cause.
        PoolClosed
            The pool was closed.
        """
        await self._subscribe(topics, "subscribe_topics")

    async def _subscribe(self, topics: object, verb: str, node: Optional[Node] = None) -> None:
        checked = self._check_topics(topics, verb)
        for topic in checked:
            if not isinstance(topic.token, str):
                raise TypeError(f"{topic!r} has no token; the token must be a str")
            if not topic.token.strip():
                raise ValueError(f"{topic!r} has an empty token")
        if self._closed:
            raise PoolClosed("the pool is closed", topics=checked)
        self._check_loop()
        loop = asyncio.get_running_loop()
        checked, refused, groups = await self._until_closed(self._authorize(checked), checked)
        waits: list[tuple[_Record, asyncio.Future[_Outcome]]] = []
        new: list[Topic] = []
        for topic in checked:
            key = topic.present or ""
            record = self._records.get(key)
            if record is not None and self._transport.group_of(record.node) != groups[key]:
                # A token of another group (EventSub: user) needs a node of that group.
                self._withdraw(record)
                record = None
            if record is None:
                new.append(topic)
                continue
            if record.topic.token != topic.token:
                self._move_token(record, topic, loop)
            if record.future is not None and not record.future.done():
                waits.append((record, record.future))
        if new:
            waits.extend(self._place(new, groups, loop, node))
        if not waits:
            await self._auth_failed(refused)
            return
        asked = {topic.present: topic for topic in checked}
        for record, _ in waits:
            record.waiters += 1
        try:
            await self._await_outcomes(waits, loop)
        finally:
            for record, future in waits:
                record.waiters -= 1
                if not future.done() and record.waiters == 0:
                    self._withdraw(record)  # the caller was cancelled before the answer
        auth_failed: list[Topic] = []
        failures: list[tuple[Topic, _Outcome]] = []
        for record, future in waits:
            outcome = future.result()
            topic = asked.get(record.topic.present, record.topic)  # the token it asked with
            if outcome[0] == protocol.ERR_BADAUTH:
                auth_failed.append(topic)
            elif outcome[0] not in (OK, WITHDRAWN):
                failures.append((topic, outcome))
        await self._auth_failed(refused + auth_failed)
        if failures:
            raise self._failure(failures)

    async def _auth_failed(self, topics: list[Topic]) -> None:
        """Run :meth:`auth_fail_hook` for ``topics`` (see :meth:`_auth_fail`) and wait for it.

        Raises
        ------
        PoolClosed
            The pool was closed meanwhile.
        """
        current = asyncio.current_task()
        runs = [task for task in self._auth_fail(topics) if task is not current]
        if runs:
            # A hook that subscribes again and is refused again does not wait for itself.
            await asyncio.gather(*(wait_finished(task) for task in runs))
        if self._closed and topics:
            raise PoolClosed("the pool was closed", topics=topics)

    def _auth_fail(self, topics: Iterable[Topic]) -> list[asyncio.Task[None]]:
        """Start :meth:`auth_fail_hook` for refused ``topics``: one run per token.

        A topic whose run for the same token is still under way joins that run instead:
        however many callers and paths see one refusal (two subscribe calls sharing it,
        a re-validation and a subscribe), the hook hears of each topic once.
        """
        runs: dict[asyncio.Task[None], None] = {}
        fresh: list[Topic] = []
        for topic in topics:
            running = self._auth_runs.get((topic.present or "", topic.token))
            if running is not None and not running.done():
                runs[running] = None
            else:
                fresh.append(topic)
        if self._closed:
            return list(runs)
        for group in by_token(fresh).values():
            task = self._spawn(self._run_auth_fail_hook(group), "pubsub-auth-fail-hook")
            keys = [(topic.present or "", topic.token) for topic in group]
            for key in keys:
                self._auth_runs[key] = task
            task.add_done_callback(functools.partial(self._auth_run_done, keys=keys))
            runs[task] = None
        return list(runs)

    def _auth_run_done(
        self, task: asyncio.Task[None], keys: list[tuple[str, Optional[str]]]
    ) -> None:
        for key in keys:
            if self._auth_runs.get(key) is task:
                del self._auth_runs[key]

    def _revert_move(self, record: _Record) -> None:
        """Put a topic back under the token the server holds it with (a refused move)."""
        previous, record.previous = record.previous, None
        if previous is None:
            return
        refused = record.topic
        record.topic = previous
        self._transport.tokens_changed()
        assigned = self._assigned.get(record.node)
        if assigned is not None:
            assigned[previous.present or ""] = previous
        log.warning(
            "the server refused the new token of %s; keeping the previous one", refused.present
        )
        record.resolve(protocol.ERR_BADAUTH)
        record.node.wake()

    async def _authorize(
        self, topics: list[Topic]
    ) -> tuple[list[Topic], list[Topic], dict[str, Optional[str]]]:
        """Have the transport check the topics' tokens before anything is placed.

        Returns the topics that may go on, those refused (a ``pubsub_error`` naming the
        reason dispatched; a topic held with another token stays held), and each good
        topic's group.
        """
        self._transport.check(topics)
        ok, failed = await self._transport.authorize(topics)
        if self._closed:
            raise PoolClosed("the pool was closed", topics=topics)
        refused: list[Topic] = []
        for topic, reason in failed:
            record = self._records.get(topic.present or "")
            if record is not None and record.topic.token == topic.token:
                self._withdraw(record)
            # else: a refresh with a token that cannot serve it; the held topic stays.
            name = self._transport.title
            log.warning("%s cannot serve %s: %s", name, topic.present, reason)
            self._dispatcher.error(
                PubSubErrorEvent(
                    f"{name} refused {topic.present}: {reason}",
                    error=protocol.ERR_BADAUTH,
                    topic=topic.present,
                    topics=[topic],
                    type="RESPONSE",
                )
            )
            refused.append(topic)
        groups = {topic.present or "": group for topic, group in ok}
        if refused:
            self._transport.tokens_changed()  # a refused token is not kept
        self._start_revalidation()
        return [topic for topic, _ in ok], refused, groups

    def _weight(self, node: Node) -> int:
        """The room ``node``'s topics take (EventSub: their subscriptions)."""
        weight = self._transport.weight
        return sum(weight(topic) for topic in self._assigned.get(node, {}).values())

    def _start_revalidation(self) -> None:
        interval = self._transport.validate_interval
        if self._revalidating is None and interval is not None and not self._closed:
            self._revalidating = self._spawn(self._revalidate(interval), "pubsub-revalidate")

    async def _revalidate(self, interval: float) -> None:
        """Re-validate every token in use, as Twitch requires (hourly by default)."""
        while True:
            await asyncio.sleep(interval)
            in_use = {record.topic.token or "" for record in self._records.values()}
            lost = set(await self._transport.revalidate(in_use))
            if not lost:
                continue
            gone = [r for r in self._records.values() if r.topic.token in lost]
            topics = [r.topic for r in gone]
            for record in gone:
                self._remove(record, protocol.ERR_BADAUTH)
            for node in {record.node: None for record in gone}:
                if not self._retire_if_empty(node):
                    node.wake()
            if topics:
                log.warning("a token is no longer valid: %s", _names(topics))
                self._dispatcher.error(
                    PubSubErrorEvent(
                        "the token is no longer valid (re-validation failed)",
                        error=protocol.ERR_BADAUTH,
                        topics=topics,
                        type="AUTH_REVOKED",
                    )
                )
                self._auth_fail(topics)  # in tasks of their own: close() may be called there

    def _place(
        self,
        topics: list[Topic],
        groups: Mapping[str, Optional[str]],
        loop: asyncio.AbstractEventLoop,
        target: Optional[Node] = None,
    ) -> list[tuple[_Record, asyncio.Future[_Outcome]]]:
        """Assign new topics to nodes of their group (no await: nothing can interleave).

        With ``target`` (a node's own ``subscribe_topics``) they all go to that node.
        """
        transport = self._transport
        by_group: dict[Optional[str], list[Topic]] = {}
        for topic in topics:
            by_group.setdefault(groups[topic.present or ""], []).append(topic)
        plans: list[tuple[Optional[str], list[Node], list[int], list[Topic]]] = []
        for group, members in by_group.items():
            mine = [n for n in self._nodes if transport.group_of(n) == group]
            if target is not None:
                if target not in self._nodes:
                    raise PoolClosed(f"node {target.id} was closed", topics=topics)
                if target not in mine:
                    raise ValueError(f"node {target.id} holds another user's topics")
                mine = [target]
            capacity = transport.capacity(mine)
            free = [capacity - self._weight(n) for n in mine]
            allowed = (
                0
                if target is not None
                else transport.more_nodes(group, len(mine), len(self._nodes))
            )
            weights = [transport.weight(t) for t in members]
            spots = transport.plan(free, allowed, capacity, weights)
            if spots is None:
                raise transport.full(group, members, weights, free, allowed, capacity, target)
            plans.append((group, mine, spots, members))
        waits: list[tuple[_Record, asyncio.Future[_Outcome]]] = []
        touched: dict[Node, None] = {}
        now = loop.time()
        for group, mine, spots, members in plans:
            fresh: dict[int, Node] = {}
            for topic, spot in zip(members, spots):
                if spot >= 0:
                    node = mine[spot]
                else:
                    if spot not in fresh:
                        fresh[spot] = self._new_node(group)
                    node = fresh[spot]
                key = topic.present or ""
                future: asyncio.Future[_Outcome] = loop.create_future()
                record = _Record(topic, node, future, now)
                self._records[key] = record
                self._assigned.setdefault(node, {})[key] = topic
                waits.append((record, future))
                touched[node] = None
        for node in touched:
            node.start()
            node.wake()
        return waits

    def _move_token(self, record: _Record, topic: Topic, loop: asyncio.AbstractEventLoop) -> None:
        """A held topic is subscribed again with another token: move it to that token.

        The node LISTENs with the new token on the same socket (the server then holds
        the topic under it; no UNLISTEN, so no event is lost or doubled), and every
        later socket uses the new token.
        """
        key = topic.present or ""
        if record.previous is None and not record.pending:
            record.previous = record.topic  # confirmed with it: the fallback if refused
        record.topic = topic
        self._assigned[record.node][key] = topic
        self._transport.tokens_changed()
        if record.future is None or record.future.done():
            record.future = loop.create_future()
            record.since = loop.time()
        record.node.wake()

    def _new_node(self, group: Optional[str]) -> Node:
        node = self._transport.new_node(group, self.client, self, self._dispatcher, self._owner)
        self._nodes.append(node)
        log.debug("opened node %d (%d in the pool)", node.id, len(self._nodes))
        return node

    async def _await_outcomes(
        self,
        waits: list[tuple[_Record, asyncio.Future[_Outcome]]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Wait for every future; fail those whose node stays down past connect_timeout."""
        limit = self._settings.connect_timeout
        pending = {future for _, future in waits if not future.done()}
        while pending:
            now = loop.time()
            deadline: Optional[float] = None
            for record, future in waits:
                if future.done() or record.future is not future:
                    continue
                down = record.node.down_since
                if down is None:
                    continue  # connected: the node times its own requests
                expires = max(record.since, down) + limit
                if expires <= now:
                    self._fail_unconnected(record)
                elif deadline is None or expires < deadline:
                    deadline = expires
            pending = {future for future in pending if not future.done()}
            if not pending:
                break
            # Connected nodes answer within listen_timeout; look again after
            # connect_timeout in case one of them went down meanwhile.
            timeout = limit if deadline is None else max(deadline - now, 0.001)
            await asyncio.wait(pending, timeout=timeout)
            pending = {future for future in pending if not future.done()}

    def _fail_unconnected(self, record: _Record) -> None:
        node = record.node
        detail = node.describe_failure()
        self._remove(record, NOT_CONNECTED, detail)
        self._retire_if_empty(node)

    def _failure(self, failures: list[tuple[Topic, _Outcome]]) -> PubSubError:
        topics = [topic for topic, _ in failures]
        codes = sorted({code for _, (code, _) in failures})
        if self._closed or codes == [CLOSED]:
            return PoolClosed("the pool was closed before the server confirmed", topics=topics)
        if codes == [NOT_CONNECTED]:
            detail = next(detail for _, (_, detail) in failures)
            return ConnectionFailure(detail, topics=topics)
        if codes == [TIMEOUT]:
            return ListenTimeout("the server did not confirm the LISTEN in time", topics=topics)
        code = next((c for c in codes if c not in (TIMEOUT, NOT_CONNECTED, CLOSED)), codes[0])
        return ListenError(f"the server refused {len(topics)} topic(s)", topics=topics, error=code)

    # ------------------------------------------------------------------ unsubscribing

    async def unsubscribe_topics(self, topics: list[Topic]) -> None:
        """|coro|

        Unsubscribes from a list of topics.

        The topics leave the pool at once (no event of theirs is dispatched after this
        call starts), even while a subscribe of them still waits for the server. Sends
        UNLISTEN (one per token and connection), waits for the answer, and closes
        connections left without topics before returning. With
        ``transport="eventsub"`` the topics' subscriptions are deleted instead.

        Parameters
        ----------
        topics: List[:class:`Topic`]
            The topics to unsubscribe from; a topic matches whatever token it has.

        Raises
        ------
        ValueError
            A topic is not subscribed; nothing is sent.
        ListenError
            The server refused an UNLISTEN; the topics are dropped all the same.
        """
        checked = self._check_topics(topics, "unsubscribe_topics")
        unknown = [t for t in checked if (t.present or "") not in self._records]
        if unknown:
            raise ValueError("not subscribed to: " + ", ".join(str(t.present) for t in unknown))
        nodes: dict[Node, None] = {}
        for topic in checked:
            record = self._records[topic.present or ""]
            self._remove(record, WITHDRAWN)
            nodes[record.node] = None
        settling = []
        closing = []
        for node in nodes:
            if not self._retire_if_empty(node):
                node.wake()
                settling.append(node.settled())
            elif node in self._retiring:
                # Left empty: closed (EventSub: its subscriptions deleted) before returning.
                closing.append(self._retiring[node])
        results = await self._until_closed(_settle(settling, closing), checked)
        failed = [(keys, error) for errors in results for keys, error in errors]
        if failed:
            by_key = {t.present: t for t in checked}
            refused = [by_key[key] for keys, _ in failed for key in keys if key in by_key]
            raise ListenError(
                f"the server refused to UNLISTEN {len(refused)} topic(s); they were dropped",
                topics=refused,
                error=failed[0][1],
            )

    async def _disconnect(self, node: Node) -> None:
        """A node's own ``disconnect()``: its topics leave the pool and it closes."""
        for record in list(self._records.values()):
            if record.node is node:
                self._remove(record, WITHDRAWN)
        self._retire_if_empty(node)
        closing = self._retiring.get(node)
        if closing is not None:
            await wait_finished(closing)

    def _remove(self, record: _Record, outcome: str, detail: str = "") -> bool:
        """Take ``record`` out of the pool and give a waiting subscribe ``outcome``.

        Returns whether a subscribe call was waiting for it.
        """
        key = record.topic.present or ""
        if self._records.get(key) is record:
            del self._records[key]
            assigned = self._assigned.get(record.node)
            if assigned is not None:
                assigned.pop(key, None)
        waiting = record.pending
        record.resolve(outcome, detail)
        self._transport.tokens_changed()
        return waiting

    def _withdraw(self, record: _Record) -> None:
        self._remove(record, WITHDRAWN)
        if not self._retire_if_empty(record.node):
            record.node.wake()

    def _retire_if_empty(self, node: Node) -> bool:
        """Close ``node`` if nothing is assigned to it any more; whether it was."""
        if node not in self._nodes:
            return True
        if self._assigned.get(node):
            return False
        self._nodes.remove(node)
        self._assigned.pop(node, None)
        log.debug("closing empty node %d", node.id)
        self._retiring[node] = self._spawn(self._close_node(node), f"pubsub-node-{node.id}-close")
        return True

    async def _close_node(self, node: Node) -> None:
        try:
            await node.close()
        finally:
            self._retiring.pop(node, None)
        if (
            not self._nodes
            and not self._retiring
            and self._session is not None
            and not self._transport.in_use()
        ):
            # Nothing left to connect: release the HTTP session too (a new one is made
            # on the next subscribe), so that a bot that shuts down node by node, as
            # with twitchio.ext.pubsub, leaves nothing open. (A conduit's shards keep
            # using it: they serve the process, not its topics.)
            session, self._session = self._session, None
            await session.close()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ hooks

    async def auth_fail_hook(self, topics: list[Topic]) -> None:
        """|coro|

        A hook that can be overridden in a subclass; it is called when the server
        rejects a token (``ERR_BADAUTH`` on LISTEN) or revokes it (``AUTH_REVOKED``).

        From here you can refresh the token (or ask the user for a new one) and
        subscribe again. The topics have already been removed from the pool and are
        **not** resubscribed automatically: call :meth:`subscribe_topics` yourself.
        One exception: a topic that was held with another token and re-subscribed with
        a token the server refused (a refresh) stays subscribed under the previous
        token; the hook gets it with the refused one. Each refused topic reaches the
        hook once per failure, however many calls shared it.

        A ``pubsub_error`` event naming the topics and the error was dispatched before
        the hook is called. The default logs a warning naming the topics.

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
        log.warning("authorization failed for %d topic(s): %s", len(topics), _names(topics))

    async def reconnect_hook(self, node: Any, topics: list[Topic]) -> list[Topic]:
        """|coro|

        A low-level hook that can be overridden in a subclass; it is called whenever
        a node reconnects, for any reason, before its topics are listened again.

        Return the topics the node should have: you may change tokens, drop topics,
        or add some (up to the node's ``max_topics``). The default returns ``topics``.
        Any iterable of :class:`Topic` may be returned; ``None`` keeps the topics as
        they are. What the pool changed meanwhile wins: a topic unsubscribed while the
        hook ran stays unsubscribed, and one subscribed meanwhile stays subscribed.

        The hook runs in a task of the pool's own, so it may call
        :meth:`subscribe_topics`, :meth:`unsubscribe_topics` and :meth:`close`.

        Parameters
        ----------
        node: Union[:class:`PubSubWebsocket`, :class:`~twitchio_pubsub.EventSubWebsocket`]
            The node that is reconnecting (with ``transport="eventsub"``, the session
            whose subscriptions are about to be created again).
        topics: List[:class:`Topic`]
            The topics this node has (a new list; edit freely).

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
                PubSubErrorEvent("auth_fail_hook raised", topics=topics, exception=exc, type="HOOK")
            )

    async def _apply_reconnect_hook(self, node: Node) -> None:
        assigned = self._assigned.get(node)
        if assigned is None:
            return
        before = dict(assigned)
        tokens = {key: topic.token for key, topic in before.items()}
        try:
            result = await self.reconnect_hook(node, list(before.values()))
        except Exception as exc:
            log.exception("reconnect_hook raised; keeping the node's topics")
            self._dispatcher.error(
                PubSubErrorEvent(
                    "reconnect_hook raised",
                    topics=list(before.values()),
                    exception=exc,
                    type="HOOK",
                )
            )
            return
        if self._assigned.get(node) is not assigned or result is None:
            return  # the node was closed meanwhile, or the hook kept everything
        returned = self._hook_result(result, list(before.values()))
        if returned is None:
            return
        # Apply the hook's edits as a change against what it was shown, so that what
        # the pool did meanwhile (unsubscribes, subscribes) is not undone.
        for key in before:
            record = self._records.get(key)
            if key not in returned and record is not None and record.node is node:
                self._remove(record, WITHDRAWN)
        overflow: list[Topic] = []
        for key, topic in returned.items():
            record = self._records.get(key)
            if record is not None:
                # An edit is a topic other than the one shown, or a token changed on it;
                # a topic returned as shown keeps what the pool did meanwhile (e.g. the
                # hook's own subscribe_topics with a refreshed token).
                edited = topic is not before.get(key) or topic.token != tokens.get(key)
                if record.node is node and edited:
                    record.topic = topic
                    assigned[key] = topic
                    self._transport.tokens_changed()
                continue
            if key in before:
                continue  # unsubscribed while the hook ran: do not bring it back
            transport = self._transport
            if not transport.serves(topic) or (
                self._weight(node) + transport.weight(topic) > node.max_topics
            ):
                overflow.append(topic)
                continue
            # Nobody waits for it: the node subscribes it on the new socket.
            self._records[key] = _Record(topic, node, None)
            assigned[key] = topic
        if overflow:
            log.error(
                "reconnect_hook returned more topics than node %d can hold; dropped %s",
                node.id,
                _names(overflow),
            )
            self._dispatcher.error(
                PubSubErrorEvent(
                    "reconnect_hook returned too many topics", topics=overflow, type="HOOK"
                )
            )
        if not self._retire_if_empty(node):
            node.wake()

    def _hook_result(self, result: object, shown: list[Topic]) -> Optional[dict[str, Topic]]:
        """The topics a reconnect_hook returned, by key; ``None`` if unusable."""
        if isinstance(result, (str, bytes, Topic)) or not isinstance(result, Iterable):
            log.error(
                "reconnect_hook returned %s, not an iterable of topics; keeping the topics",
                type(result).__name__,
            )
            self._dispatcher.error(
                PubSubErrorEvent(
                    f"reconnect_hook returned {type(result).__name__}, not an iterable of "
                    "Topic; the node's topics were kept",
                    topics=shown,
                    type="HOOK",
                )
            )
            return None
        returned: dict[str, Topic] = {}
        bad: list[object] = []
        for item in result:
            if (
                isinstance(item, Topic)
                and item.present is not None
                and isinstance(item.token, str)
                and item.token.strip()
            ):
                returned.setdefault(item.present, item)
            else:
                bad.append(item)
        if bad:
            log.error("reconnect_hook returned %d unusable item(s); ignored them", len(bad))
            self._dispatcher.error(
                PubSubErrorEvent(
                    f"reconnect_hook returned {len(bad)} item(s) that are not complete "
                    "Topic objects with a token; they were ignored",
                    type="HOOK",
                )
            )
        return returned

    # ------------------------------------------------------------------ closing

    async def close(self, *, delete: bool = False) -> None:
        """|coro|

        Close every connection, cancel running hooks and close the HTTP session.

        Safe to call more than once, and from inside a hook (the hook is not
        cancelled; it runs on after ``close()`` returns). Subscribe calls still waiting
        raise :class:`PoolClosed`. Afterwards no task, socket or session is left.

        Parameters
        ----------
        delete: :class:`bool`
            Conduit only: also delete the subscriptions this pool holds, and the conduit
            if this pool created it. By default closing detaches only this process's
            shards, and the conduit and its subscriptions stay for the other processes.
            (PubSub topics and EventSub WebSocket subscriptions end with their
            connection either way.)
        """
        if not isinstance(delete, bool):
            raise TypeError("delete must be a bool")
        if not self._closed:
            self._transport.closing(delete)
        self._closed = True
        if self._closed_signal is not None and not self._closed_signal.done():
            self._closed_signal.set_result(None)
        for record in self._records.values():
            record.resolve(CLOSED)
        current = asyncio.current_task()
        tasks = [task for task in (*self._tasks, *self._calls) if task is not current]
        for task in tasks:
            task.cancel()
        nodes = [*self._nodes, *self._retiring]
        await asyncio.gather(*(node.close() for node in nodes))
        for task in tasks:
            await wait_finished(task)
        await self._transport.close()
        self._nodes.clear()
        self._retiring.clear()
        self._assigned.clear()
        self._records.clear()
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> PubSubPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _settle(
    settling: list[asyncio.Future[list[tuple[list[str], str]]]],
    closing: list[asyncio.Task[None]],
) -> list[list[tuple[list[str], str]]]:
    """The nodes' reconcile passes' failed removals, once nodes left empty have closed."""
    results = await asyncio.gather(*settling)
    for task in closing:
        await wait_finished(task)
    return list(results)


def _names(topics: Iterable[Topic]) -> str:
    return ", ".join(str(topic.present) for topic in topics)
