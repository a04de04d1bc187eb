"""EventSubWebsocket: one EventSub session of one user, behind the pool's node boundary.

A node owns one WebSocket session and the subscriptions created on it. Like the PubSub
node it has one supervisor task that is the only thing that reconnects: it opens a
session (the welcome gives its id), runs the reconnect hook on every new session,
creates over Helix the subscriptions of every wanted topic and deletes those of topics
no longer wanted, then serves until the session must be replaced. On
``session_reconnect`` it opens the new socket first and keeps reading the old one until
the new welcome; subscriptions move with the session, and a ``message_id`` seen on
either socket is dispatched once.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import urlsplit

import aiohttp

from .. import protocol
from ..errors import ConnectionFailure
from ..logs import RateLimitedLog
from ..models.base import PubSubErrorEvent
from ..node_base import LinkLost, NodeBase, until_signal
from ..settings import Settings
from ..topics import Topic
from ..transport import NodeOwner, wait_finished, within
from . import protocol as esp
from .helix import Helix, HelixError, MalformedAnswer, TokenInfo, Tokens
from .mapping import Part, subscriptions_for, token_problem, translate
from .subscriptions import SubscriptionTable

if TYPE_CHECKING:
    from twitchio import Client

    from ..dispatch import Dispatcher

__all__ = ("EventSubWebsocket",)

log = logging.getLogger(__name__)

_node_ids = itertools.count(1)
#: Message ids remembered for de-duplication (Twitch re-sends with the same id).
SEEN_IDS = 2048
#: Called with a node's SubscriptionTable after every reconcile pass and revocation;
#: the test suite sets it to assert the table's invariants over real sockets.
check_table: Optional[Callable[[SubscriptionTable[Any]], None]] = None
#: Seconds a closing node spends deleting its subscriptions, at most.
CLOSE_TIMEOUT = 2.0
#: Helix create calls one node has in flight at once.
PARALLEL_CREATES = 16
#: What to add to the keepalive timeout before a silent session counts as dead.
_CLOSE_ADVICE = {
    4000: "server error",
    4001: "the server says this client sent it data; a bug in twitchio-pubsub, please report",
    4002: "a ping went unanswered",
    4003: "no subscription was made in time",
    4004: "the reconnect grace time expired",
    4005: "network timeout",
    4006: "network error",
    4007: "the reconnect URL was refused",
}


class _Link:
    """One socket of the node and what its reader saw."""

    __slots__ = (
        "id",
        "keepalive",
        "last_seen",
        "reader",
        "reconnect_url",
        "session_id",
        "signal",
        "ws",
    )

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, id: int, now: float) -> None:
        self.ws = ws
        self.id = id
        self.session_id = ""
        self.keepalive = 10.0
        self.last_seen = now
        self.reader: Optional[asyncio.Task[None]] = None
        self.reconnect_url: Optional[str] = None
        self.signal = asyncio.Event()

    @property
    def alive(self) -> bool:
        return not self.ws.closed and self.reader is not None and not self.reader.done()

    async def finish(self, grace: float = 2.0) -> None:
        """Close gracefully: frames already sent on this socket are still read."""
        if not self.ws.closed:
            await self.ws.close()
        reader = self.reader
        if reader is not None and not reader.done():
            await asyncio.wait((reader,), timeout=grace)
        await self.close()

    async def close(self) -> None:
        reader = self.reader
        if reader is not None and not reader.done():
            reader.cancel()
            await wait_finished(reader)
        if not self.ws.closed:
            await self.ws.close()


class _Seen:
    """The last :data:`SEEN_IDS` message ids, shared by every socket of a node."""

    __slots__ = ("_ids", "_order")

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._order: collections.deque[str] = collections.deque()

    def seen(self, message_id: str) -> bool:
        """Whether ``message_id`` is one of the ids remembered (without adding it)."""
        return message_id in self._ids

    def first_time(self, message_id: str) -> bool:
        if message_id in self._ids:
            return False
        self._ids.add(message_id)
        self._order.append(message_id)
        if len(self._order) > SEEN_IDS:
            self._ids.discard(self._order.popleft())
        return True


class EventSubWebsocket(NodeBase[_Link]):
    """One EventSub WebSocket session of one token user, holding that user's topics.

    Created by a :class:`~twitchio_pubsub.PubSubPool` with ``transport="eventsub"``; you
    meet it in :meth:`~twitchio_pubsub.PubSubPool.reconnect_hook`, as a PubSub node.

    Attributes
    ----------
    ENDPOINT: :class:`str`
        The default EventSub WebSocket URL.
    client: :class:`twitchio.Client`
        The client events are dispatched to.
    pool: :class:`~twitchio_pubsub.PubSubPool`
        The pool this node belongs to.
    user_id: :class:`str`
        The user whose tokens created this session's subscriptions (one per session).
    max_topics: :class:`int`
        The most subscriptions this session may hold (Twitch: 300).
    id: :class:`int`
        A number identifying the node in logs and events.
    reconnects: :class:`int`
        How many new sessions this node opened after its first (a ``session_reconnect``
        hand-over keeps the session and does not count).
    """

    ENDPOINT = "wss://eventsub.wss.twitch.tv/ws"
    _ids = _node_ids
    _task_prefix = "eventsub-node"
    _retry = "new session"

    def __init__(
        self,
        client: Client,
        pool: Any,
        *,
        user_id: str,
        max_topics: int,
        settings: Settings,
        dispatcher: Dispatcher,
        owner: NodeOwner,
        helix: Helix,
        tokens: Tokens,
        keepalive: int,
        keepalive_margin: float,
        endpoint: Optional[str] = None,
        released: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(client, pool, owner, max_topics, settings, dispatcher)
        self.user_id = user_id
        self._helix = helix
        self._tokens = tokens
        self._keepalive = keepalive
        self._margin = keepalive_margin
        self._endpoint = endpoint or type(self).ENDPOINT
        #: Told when this node may no longer need a token it held.
        self._released = released
        #: What the session holds and what is left to delete: the one owner of it.
        self._subs: SubscriptionTable[asyncio.Future[str]] = SubscriptionTable()
        self._seen = _Seen()
        #: Old sockets still read after a session_reconnect, each closed by its task.
        self._finishing: set[asyncio.Task[None]] = set()
        self._link_ids = itertools.count(1)
        self._noise = RateLimitedLog(log)
        #: Revocations read but not yet reported: reason -> topic keys (ordered).
        self._revoked: dict[str, dict[str, None]] = {}

    def __repr__(self) -> str:
        state = "connected" if self.connected else "connecting"
        name, topics = type(self).__name__, len(self._wanted)
        return f"<{name} id={self.id} {self._named()} topics={topics} {state}>"

    def _named(self) -> str:
        """What identifies the node in its ``repr`` besides its id."""
        return f"user_id={self.user_id}"

    # ------------------------------------------------------------------ public state

    @property
    def session_id(self) -> Optional[str]:
        """The current session's id (it changes on every new socket), ``None`` when down."""
        link = self._link
        return link.session_id if link is not None else None

    @property
    def subscriptions(self) -> int:
        """How many EventSub subscriptions this session holds now."""
        return len(self._subs)

    @property
    def endpoint(self) -> str:
        """The WebSocket URL new sessions are opened at."""
        return self._endpoint

    @property
    def latency(self) -> Optional[float]:
        """Always ``None``: EventSub has no application-level ping to time."""
        return None

    @property
    def down_since(self) -> Optional[float]:
        """Loop time since when the node has had no session; ``None`` while it has one.

        Once a session is welcomed the node counts as up even while its subscriptions
        are being created: those Helix calls are bounded by their own timeouts.
        """
        return None if self._ready or self._link is not None else self._down_since

    def describe_failure(self) -> str:
        """Why the node has no session, for :class:`ConnectionFailure` messages."""
        cause = self._last_error or (
            f"timed out: no session_welcome within {self._settings.connect_timeout:g} s"
        )
        return f"could not open an EventSub session at {self.endpoint}: {cause}"

    # ------------------------------------------------------------------ reference surface

    async def reconnect(self) -> None:
        """|coro|

        Open a new session now and create every subscription on it again (as after a
        lost connection); returns once it is connected.
        """
        link = self._link
        if link is None or self._closing or not self._ready:
            return
        before = self.reconnects
        link.reconnect_url = ""  # "" means: a new session at the base URL
        link.signal.set()
        limit = self._settings.connect_timeout + self._settings.listen_timeout
        await self._wait_state(lambda: self.reconnects > before and self.connected, limit)

    async def send(self, data: dict[str, Any]) -> None:
        """|coro|

        Refused: an EventSub client must never send a frame (the server closes the
        session with 4001).

        Raises
        ------
        ConnectionFailure
            Always.
        """
        raise ConnectionFailure(
            "EventSub sessions take no frames from clients; subscribe through the pool"
        )

    def tokens_needed(self) -> set[str]:
        """The tokens this node may still use: its topics' and those it deletes with."""
        need = {topic.token for topic in self._wanted.values() if topic.token}
        return need | self._subs.tokens()

    def _wanted_tokens(self) -> dict[str, Optional[str]]:
        return {key: topic.token for key, topic in self._wanted.items()}

    # ------------------------------------------------------------------ supervisor

    # The supervisor is NodeBase._supervise; these are EventSub's steps.

    _connect_errors: tuple[type[BaseException], ...] = (
        OSError,
        asyncio.TimeoutError,
        aiohttp.ClientError,
        LinkLost,
    )

    async def _connect(self) -> _Link:
        return await self._open(self._url())

    def _fresh(self, link: _Link) -> None:
        self._forget_session()

    async def _discard(self, link: _Link) -> None:
        await link.close()

    def _up(self, link: _Link) -> None:
        log.info(
            "node %d: session %s up, %d subscription(s)", self.id, link.session_id, len(self._subs)
        )

    async def _release(self, link: _Link, why: str) -> bool:
        await link.close()
        return False

    async def _shutdown(self, leftovers: list[_Link]) -> None:
        creating = list(self._subs.creating.values())
        for pending in creating:
            pending.cancel()  # its callers are gone with the supervisor
        if creating:
            await asyncio.wait(creating)
        for task in list(self._finishing):
            task.cancel()  # its finally closes that old socket
            await wait_finished(task)
        try:
            await self._delete_all()
        finally:
            for leftover in leftovers:
                await leftover.close()

    def _url(self) -> str:
        separator = "&" if "?" in self._endpoint else "?"
        return f"{self._endpoint}{separator}keepalive_timeout_seconds={self._keepalive}"

    def _forget_session(self) -> None:
        """A new session holds nothing: what the old one held is stale (deleted later)."""
        self._subs.forget_session(self._wanted_tokens())

    async def _open(self, url: str) -> _Link:
        """Open a socket and read its welcome."""
        loop = asyncio.get_running_loop()
        session = self._owner.session()
        limit = self._settings.connect_timeout
        ws = await within(
            session.ws_connect(url, autoping=True, max_msg_size=self._settings.max_message_size),
            limit,
            discard=aiohttp.ClientWebSocketResponse.close,
        )
        link = _Link(ws, next(self._link_ids), loop.time())
        try:
            msg = await ws.receive(timeout=limit)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                code = ws.close_code
                raise LinkLost(
                    f"closed before the welcome (close code {code}: "
                    f"{_CLOSE_ADVICE.get(code or 0, 'no reason given')})"
                )
            welcome = esp.parse(msg.data, keepalive=self._keepalive)
            if isinstance(welcome, esp.Invalid):
                self._bad_frame(welcome.raw, welcome.reason)
                raise LinkLost(f"invalid session_welcome: {welcome.reason}")
            if not isinstance(welcome, esp.Welcome):
                raise LinkLost(f"the first frame was a {type(welcome).__name__}, not a welcome")
        except BaseException:
            await ws.close()
            raise
        if welcome.clamped is not None:
            self._noise.log(
                logging.WARNING,
                "keepalive",
                "node %d: %s; using %g s",
                self.id,
                welcome.clamped,
                welcome.keepalive,
            )
        link.session_id = welcome.session_id
        link.keepalive = welcome.keepalive
        link.last_seen = loop.time()
        link.reader = loop.create_task(
            self._read(link), name=f"eventsub-node-{self.id}-reader-{link.id}"
        )
        return link

    async def _serve(self, link: _Link) -> str:
        """Reconcile on every wake until the session must be replaced; returns why."""
        loop = asyncio.get_running_loop()
        while True:
            link = self._link or link
            if not link.alive:
                code = link.ws.close_code
                if code == 4001:
                    log.error("node %d: closed with 4001: %s", self.id, _CLOSE_ADVICE[4001])
                advice = _CLOSE_ADVICE.get(code or 0)
                return (
                    f"session closed (code {code}: {advice})"
                    if advice
                    else (f"connection lost (close code {code})" if code else "connection lost")
                )
            if link.reconnect_url is not None:
                if link.reconnect_url == "":
                    return "reconnect requested"
                if not await self._hand_over(link, link.reconnect_url):
                    return "session_reconnect failed"
                continue
            silent_for = loop.time() - link.last_seen
            limit = link.keepalive + self._margin
            if silent_for > limit:
                log.warning(
                    "node %d: nothing received for %.1f s; session dead", self.id, silent_for
                )
                return "keepalive timeout"
            if self._wake_pending or self._settle_waiters:
                try:
                    await self._reconcile(link)
                except LinkLost as exc:
                    return f"subscribing failed ({exc})"
                continue
            await until_signal(link, timeout=limit - silent_for + 0.01)

    async def _hand_over(self, old: _Link, url: str) -> bool:
        """Follow ``session_reconnect``: the new socket first, then close the old one.

        Until the swap ``old`` is still ``self._link``, so a cancellation meanwhile
        leaves it to the supervisor's clean-up; after it, the hand-over task owns it.
        """
        try:
            new = await self._open(url)
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError, LinkLost) as exc:
            log.warning("node %d: following session_reconnect failed: %s", self.id, exc)
            return False
        self._link = new
        log.info("node %d: session moved to %s", self.id, new.session_id)
        self._dispatch.event("pubsub_ready", self)
        # The new welcome arrived, so nothing new is sent on the old socket; frames already
        # on their way still are. Keep reading it for handover_delay, then close it.
        task = asyncio.get_running_loop().create_task(
            self._finish_later(old), name=f"eventsub-node-{self.id}-handover-{old.id}"
        )
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return True

    async def _finish_later(self, old: _Link) -> None:
        try:
            await asyncio.sleep(self._settings.handover_delay)
        finally:
            await old.finish()

    # ------------------------------------------------------------------ reconciling

    async def _reconcile(
        self, link: _Link, skip: frozenset[str] = frozenset(), *, ready: bool = False
    ) -> None:
        """Create the subscriptions of wanted topics, delete those of unwanted ones."""
        while True:
            self._wake_pending = False
            waiters, self._settle_waiters = self._settle_waiters, []
            subs = self._subs
            held = subs.held
            add = [
                topic
                for key, topic in list(self._wanted.items())
                if key not in held and key not in skip
            ]
            moved = [
                (key, topic)
                for key, topic in self._wanted.items()
                if key in held and key not in skip and held[key].token != topic.token
            ]
            confirmed: dict[Optional[str], list[Topic]] = {}
            for key, topic in moved:
                subs.move(key, topic.token)  # same user: nothing to re-create
                confirmed.setdefault(topic.token, []).append(topic)
            drop = [key for key in held if key not in self._wanted]
            errors = await self._drop(drop) if drop else []
            stale = subs.take_stale()
            if stale:
                await self._delete_stale(stale)
            if subs.unsure:
                await self._delete_unsure()
            if drop or stale or moved:
                self._released()
            if add:
                for token, topics in (await self._add(link, add)).items():
                    confirmed.setdefault(token, []).extend(topics)
            if ready:
                self._set_ready(True)
                ready = False
            for token, topics in confirmed.items():
                self._owner.subscribed(self, topics, token)
            self._release_settle_waiters(errors, waiters)
            if check_table is not None:
                check_table(self._subs)
            if not self._wake_pending:
                return

    async def _add(self, link: _Link, topics: list[Topic]) -> dict[Optional[str], list[Topic]]:
        limiter = asyncio.Semaphore(PARALLEL_CREATES)
        results = await asyncio.gather(
            *(self._create_topic(link, topic, limiter) for topic in topics),
            return_exceptions=True,
        )
        confirmed: dict[Optional[str], list[Topic]] = {}
        lost: Optional[BaseException] = None
        for topic, result in zip(topics, results):
            if isinstance(result, LinkLost):
                lost = result
            elif isinstance(result, BaseException):
                raise result
            elif result:
                confirmed.setdefault(topic.token, []).append(topic)
        if lost is not None:
            raise lost
        return confirmed

    async def _create_topic(self, link: _Link, topic: Topic, limiter: asyncio.Semaphore) -> bool:
        """Create every subscription of ``topic``; whether it is now held."""
        key = topic.present or ""
        token = topic.token or ""
        info = self._tokens.known(token)
        if info is None:
            # A token the pool has not seen: one that reconnect_hook swapped in.
            try:
                info = await self._tokens.info(token)
            except HelixError as exc:
                if exc.status in (400, 401, 403):
                    self._refuse([topic], protocol.ERR_BADAUTH, "the token is invalid or expired")
                    return False
                raise LinkLost(f"cannot validate a token: {exc}") from None
        problem = self._token_problem(key, info)
        if problem is not None:
            self._refuse([topic], protocol.ERR_BADAUTH, problem)
            return False
        parts = subscriptions_for(key, info.user_id)
        subs = self._subs
        created: list[Part] = []
        for part in parts:
            if subs.route(key, part) is not None:
                created.append(part)
                continue
            # Two topics may share a subscription (bits v1 and v2 of one channel):
            # the second waits for the first one's create instead of getting a 409.
            pending = subs.creating.get(part)
            if pending is None:
                pending = asyncio.ensure_future(
                    self._create_limited(link, token, info, part, limiter)
                )
                subs.creating[part] = pending
                pending.add_done_callback(self._created)
            try:
                sub_id = await asyncio.shield(pending)
            except HelixError as exc:
                for done in (*created, part):
                    subs.unroute(key, done)
                return self._helix_refusal(topic, part, exc)
            if key not in subs.routes.get(part, ()):
                # Nothing routes it any more (revoked while it was created): delete it.
                if part not in subs.created:
                    subs.stale.append((token, sub_id))
                self.wake()
                return False
            subs.confirm(part, sub_id)
            created.append(part)
        subs.hold(key, token, parts)
        current = self._wanted.get(key)
        if current is None or current.token != token:
            self.wake()  # unsubscribed or moved meanwhile: the next pass sorts it out
            return False
        return True

    def _token_problem(self, key: str, info: TokenInfo) -> Optional[str]:
        """Why ``info``'s token cannot create topic ``key``'s subscriptions here, if it cannot."""
        problem = token_problem(key, info.user_id, sorted(info.scopes))
        if problem is None and info.user_id != self.user_id:
            problem = f"the token belongs to user {info.user_id}; this session is {self.user_id}'s"
        return problem

    async def _create_limited(
        self, link: _Link, token: str, info: Any, part: Part, limiter: asyncio.Semaphore
    ) -> str:
        async with limiter:
            return await self._create(link, token, info, part)

    def _created(self, done: asyncio.Future[str]) -> None:
        creating = self._subs.creating
        for part, pending in list(creating.items()):
            if pending is done:
                del creating[part]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter saw it, or none is left to

    async def _create(self, link: _Link, token: str, info: Any, part: Part) -> str:
        try:
            return await self._helix.create(token, info, part, link.session_id)
        except HelixError as exc:
            if exc.status != 409 and not isinstance(exc, MalformedAnswer):
                raise
        # It exists already (409), or may (an answer that could not be read): created by
        # a call whose answer was lost, or left over from a session that ended uncleanly.
        # Take ours, delete a stale one and try again.
        try:
            existing = await self._helix.find(token, info, part)
        except HelixError:
            self._subs.unsure.append((token, part))  # looked for again, and deleted, later
            raise
        if existing is not None:
            if existing.get("transport", {}).get("session_id") == link.session_id:
                return str(existing["id"])
            await self._helix.delete(token, info, str(existing["id"]))
        return await self._helix.create(token, info, part, link.session_id)

    async def _delete_unsure(self) -> None:
        """Delete what a create whose answer could not be read may have left behind."""
        subs = self._subs
        unsure, subs.unsure = subs.unsure, []
        for token, part in unsure:
            info = self._tokens.known(token)
            if info is None or part in subs.created:
                continue  # the token is gone, or the part was created (and routed) since
            try:
                existing = await self._helix.find(token, info, part)
                if existing is not None:
                    await self._helix.delete(token, info, str(existing["id"]))
            except HelixError as exc:
                log.info("node %d: cleaning up after a broken create failed: %s", self.id, exc)
                subs.unsure.append((token, part))

    def _helix_refusal(self, topic: Topic, part: Part, exc: HelixError) -> bool:
        if exc.status == 400 and "session" in exc.message:
            raise LinkLost(exc.message)
        if exc.status in (401, 403):
            if exc.status == 401:
                self._tokens.forget(topic.token or "")
            code = protocol.ERR_BADAUTH
        elif exc.status in (0, 429) or exc.status >= 500:
            code = protocol.ERR_SERVER
        else:
            code = protocol.ERR_BADTOPIC
        self._refuse([topic], code, f"{part.type} v{part.version}: {exc}")
        if code == protocol.ERR_SERVER and self._owner.refused(self, [topic], topic.token, code):
            raise LinkLost(f"Helix failed: {exc}")
        return False

    def _refuse(self, topics: list[Topic], code: str, reason: str) -> None:
        keys = ", ".join(t.present or "" for t in topics)
        log.warning("node %d: %s refused: %s", self.id, keys, reason)
        self._dispatch.error(
            PubSubErrorEvent(
                f"EventSub refused {keys}: {reason}",
                error=code,
                topic=topics[0].present if len(topics) == 1 else None,
                topics=list(topics),
                type="RESPONSE",
            )
        )
        if code != protocol.ERR_SERVER:
            self._owner.refused(self, topics, topics[0].token, code)

    async def _drop(self, keys: list[str]) -> list[tuple[list[str], str]]:
        """Delete the subscriptions of topics no longer wanted."""
        deletes = [deletion for key in keys for deletion in self._subs.drop(key)]
        errors: list[tuple[list[str], str]] = []
        pending: list[tuple[Optional[str], str]] = [(token, sub_id) for _, token, sub_id in deletes]
        self._subs.deleting_now(pending)
        cancelled = True
        try:
            results = await asyncio.gather(
                *(self._delete(token, sub_id) for token, sub_id in pending),
                return_exceptions=True,
            )
            cancelled = False
        finally:
            # Closing: what was not deleted yet is deleted (within a deadline) on close.
            self._subs.deleted(pending, failed=pending if cancelled else ())
        for (key, _, _), result in zip(deletes, results):
            if isinstance(result, HelixError):
                errors.append(([key], f"HTTP {result.status}"))
            elif isinstance(result, BaseException):
                raise result
        return errors

    async def _delete(self, token: Optional[str], sub_id: str) -> None:
        """Delete a subscription with a token of this node's user.

        A subscription belongs to the user, not to one token: the tokens the topics hold
        now are tried first, so after a refresh the new token deletes what the old one
        made; ``token`` (what created it) only while it is still known, never once it was
        replaced and forgotten.
        """
        tried: set[str] = set()
        current = (t.token for t in self._wanted.values())
        for candidate in (*current, token, *self._tokens.of_user(self.user_id)):
            info = self._tokens.known(candidate)
            if candidate is None or candidate in tried or info is None:
                continue
            if info.user_id != self.user_id:
                continue
            tried.add(candidate)
            try:
                await self._helix.delete(candidate, info, sub_id)
                return
            except HelixError as exc:
                if exc.status != 401:
                    raise
                self._tokens.forget(candidate)
        log.info("node %d: no valid token left to delete subscription %s", self.id, sub_id)

    async def _delete_stale(self, stale: list[tuple[Optional[str], str]]) -> None:
        """Delete ``stale`` (taken with :meth:`SubscriptionTable.take_stale`)."""
        try:
            await asyncio.gather(
                *(self._delete(token, sub_id) for token, sub_id in stale),
                return_exceptions=True,
            )
        finally:
            self._subs.deleted(stale)

    async def _delete_all(self) -> None:
        """On close: delete every subscription this node made (not just leave it disabled)."""
        self._forget_session()
        stale = self._subs.take_stale()  # until deleted, their tokens are not forgotten
        if not stale and not self._subs.unsure:
            return
        try:
            await within(self._clean_up(stale), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning(
                "node %d: deleting subscriptions on close took over %g s; left to Twitch "
                "(it disables a closed session's subscriptions)",
                self.id,
                CLOSE_TIMEOUT,
            )
        finally:
            self._subs.deleted(stale)
            self._released()

    async def _clean_up(self, stale: list[tuple[Optional[str], str]]) -> None:
        await self._delete_stale(stale)
        await self._delete_unsure()

    # ------------------------------------------------------------------ reading

    def _on_text(self, link: _Link, data: str) -> None:
        link.last_seen = asyncio.get_running_loop().time()
        message = esp.parse(data, keepalive=link.keepalive)
        if isinstance(message, esp.Notification):
            self._notification(message)
        elif isinstance(message, esp.Keepalive):
            pass  # last_seen is all it is for
        elif isinstance(message, esp.Reconnect):
            self._reconnect_to(link, message.url)
        elif isinstance(message, esp.Revocation):
            self._revocation(message)
        elif isinstance(message, esp.Invalid):
            self._bad_frame(message.raw, message.reason)
        else:
            self._bad_frame(data, "a second session_welcome on one socket")

    def _reconnect_to(self, link: _Link, url: str) -> None:
        """``session_reconnect``: follow ``url`` if it is on the configured server."""
        if not esp.same_origin(url, self._endpoint):
            # Following it would hand the session to another host. Stay on this socket;
            # when the server closes it, a new session opens at the configured URL.
            log.warning(
                "node %d: refused a session_reconnect to another host (%s)",
                self.id,
                _origin(url),
            )
            self._dispatch.error(
                PubSubErrorEvent(
                    f"session_reconnect to {_origin(url)} refused: not the configured "
                    f"EventSub server {_origin(self._endpoint)}",
                    type="INVALID_FRAME",
                )
            )
            return
        link.reconnect_url = url
        link.signal.set()

    def _bad_frame(self, raw: Optional[str], reason: str) -> None:
        self._noise.log(logging.WARNING, reason, "node %d: ignored a frame: %s", self.id, reason)
        self._dispatch.error(
            PubSubErrorEvent(f"invalid frame: {reason}", raw=raw, type="INVALID_FRAME")
        )

    def _notification(self, message: esp.Notification) -> None:
        message_id = message.message_id
        if not self._seen.first_time(message_id):
            return  # at-least-once delivery: a copy, on this socket or the old one
        keys = self._subs.keys_for(message.subscription_id, message.part)
        if keys:  # else: a subscription this session no longer serves
            self._dispatch_keys([k for k in keys if k in self._wanted], message.frame)

    def _dispatch_keys(self, keys: list[str], frame: dict[str, Any]) -> None:
        """Translate one notification for each topic in ``keys`` and dispatch the models."""
        first = True
        for key in keys:
            try:
                messages = translate(key, frame)
            except Exception as exc:
                self._dispatch.error(
                    PubSubErrorEvent(
                        "EventSub payload could not be translated",
                        topic=key,
                        raw=json.dumps(frame),
                        exception=exc,
                        type="PAYLOAD",
                    )
                )
                continue
            for out in messages:
                # Models get the dict itself (no JSON round trip); a second model made
                # from one notification (bits v1 and v2, one per moderation term) gets
                # a copy, so no two models share a nested object a handler might change.
                self._dispatch.message(key, out if first else copy.deepcopy(out))
                first = False

    def _flush_revoked(self) -> None:
        batches, self._revoked = self._revoked, {}
        for reason, keys in batches.items():
            wanted = [key for key in keys if key in self._wanted]
            if wanted:
                self._owner.revoked(self, wanted, reason)

    def _revocation(self, message: esp.Revocation) -> None:
        sub_id, reason = message.subscription_id, message.status
        revoked = self._subs.revoke(sub_id, self._wanted_tokens())
        if revoked is None:
            return
        # It serves nothing any more; it is deleted too, so the account is left clean.
        part, keys = revoked
        if check_table is not None:
            check_table(self._subs)
        topics = [self._wanted[k] for k in keys if k in self._wanted]
        if not topics:
            return
        names = ", ".join(t.present or "" for t in topics)
        log.warning(
            "node %d: %s v%s revoked (%s) for %s", self.id, part.type, part.version, reason, names
        )
        if reason in ("authorization_revoked", "user_removed", "moderator_removed"):
            # Twitch sends one revocation per subscription; the ones that arrive
            # together reach auth_fail_hook together, as PubSub's AUTH_REVOKED did.
            if not self._revoked:
                asyncio.get_running_loop().call_soon(self._flush_revoked)
            self._revoked.setdefault(reason, {}).update((t.present or "", None) for t in topics)
        else:
            self._dispatch.error(
                PubSubErrorEvent(
                    f"EventSub revoked {part.type} v{part.version} ({reason}) for {names}",
                    error=reason,
                    topic=topics[0].present if len(topics) == 1 else None,
                    topics=topics,
                    type="REVOKED",
                )
            )
            self._owner.refused(self, topics, topics[0].token, reason)
        self.wake()  # delete what is left of those topics' subscriptions


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, for messages (no path or query)."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"
