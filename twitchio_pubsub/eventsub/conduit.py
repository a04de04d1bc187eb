"""``transport="conduit"``: one bot's topics served by Twitch's conduits, across processes.

A conduit holds the subscriptions (created once, with the app's access token) and Twitch
spreads their events over its *shards*, each a WebSocket session that any process may
hold. In a pool with this transport:

* :class:`ConduitNode` is the one node that holds the pool's topics. Its supervisor makes
  sure of the app token and the conduit, and creates and deletes the topics'
  subscriptions on the conduit (the topics' user tokens only prove, by validation, that
  the user authorized the app with the scopes). It counts as connected while the conduit
  is there; when the conduit is lost it starts over (``reconnect_hook`` runs) and
  creates every subscription on the new one.
* :class:`ConduitShard` is one shard this process serves: one session, assigned to its
  shard id with a PATCH right after its welcome, re-assigned after every new session,
  followed through ``session_reconnect`` without a PATCH unless the session id changed.
  Every event that lands on a shard is dispatched here, whoever subscribed it.
* :class:`Conduit` (``pool.conduit``) is for operators: the conduit's id, this
  process's shards and their status, ``start()`` and ``resize()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

import aiohttp

from ..auth import AuthError, app_token
from ..errors import ConnectionFailure, PoolFull, PubSubError
from ..models.base import PubSubErrorEvent
from ..node_base import LinkLost, until_signal
from ..settings import Settings, _number
from ..topics import Topic
from ..transport import wait_finished, within
from . import protocol as esp
from .bridge import EventSubTransport
from .helix import HelixError, MalformedAnswer, TokenInfo
from .mapping import Part, topic_for
from .node import CLOSE_TIMEOUT, EventSubWebsocket, _Link, _Seen
from .types import SHARD_DISABLED

if TYPE_CHECKING:
    from twitchio import Client

    from ..dispatch import Dispatcher
    from ..transport import Node, NodeOwner

__all__ = (
    "AppTokenError",
    "Conduit",
    "ConduitNode",
    "ConduitShard",
    "ConduitTransport",
    "ShardInfo",
)

log = logging.getLogger(__name__)

#: How many subscriptions the conduit node holds at most (Twitch: total cost 10,000,
#: and a subscription whose user authorized the app costs 0; the bound keeps one pool's
#: work finite, not Twitch's).
MAX_CONDUIT_SUBSCRIPTIONS = 100_000
#: Seconds before its expiry an app token is fetched again.
APP_TOKEN_MARGIN = 300.0
_ids = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One shard this process serves, as it sees it.

    Attributes
    ----------
    id: :class:`str`
        The shard id (``"0"`` ...).
    status: :class:`str`
        ``enabled`` (assigned to a live session), ``connecting``, or why not (the last
        failure, e.g. Twitch's answer to the PATCH).
    session_id: Optional[:class:`str`]
        The session assigned to it, while there is one.
    """

    id: str
    status: str
    session_id: Optional[str]


class AppTokenError(HelixError):
    """The app access token could not be had (a wrong secret, the token server down)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class _AppToken:
    """The app access token (client credentials), fetched when needed and never shown."""

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        client_id: str,
        client_secret: str,
        id_url: str,
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self._id_url = id_url
        self._session = session
        self._token: Optional[str] = None
        self._expires = 0.0
        self._pending: Optional[asyncio.Future[str]] = None
        self.fetched = 0

    def __repr__(self) -> str:
        return f"<AppToken client_id={self.client_id!r}>"

    @property
    def info(self) -> TokenInfo:
        return TokenInfo("", "", self.client_id, frozenset(), 0)

    async def get(self) -> str:
        """The token, fetched (once, however many ask) when there is none or it expires.

        Raises
        ------
        HelixError
            The token server refused the client's id or secret (401) or failed (0/5xx).
        """
        if self._token is not None and time.monotonic() < self._expires:
            return self._token
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fetch())
            self._pending.add_done_callback(self._settled)
        return await asyncio.shield(self._pending)

    def _settled(self, done: asyncio.Future[str]) -> None:
        self._pending = None
        if not done.cancelled():
            done.exception()

    async def _fetch(self) -> str:
        try:
            answer = await app_token(
                self.client_id, self._secret, id_url=self._id_url, session=self._session()
            )
        except AuthError as exc:
            raise AppTokenError(f"no app access token: {exc}") from None
        self.fetched += 1
        self._token = answer.access_token
        self._expires = time.monotonic() + max(answer.expires_in - APP_TOKEN_MARGIN, 1.0)
        return answer.access_token

    def refused(self, token: str) -> None:
        """Helix answered 401 to ``token``: fetch a new one next time."""
        if self._token == token:
            self._token = None

    async def close(self) -> None:
        pending = self._pending
        if pending is not None:
            pending.cancel()
            await asyncio.wait((pending,))


class Conduit:
    """The conduit a pool with ``transport="conduit"`` serves (``pool.conduit``).

    Attributes
    ----------
    client_id: :class:`str`
        The app's client id.
    """

    def __init__(self, transport: ConduitTransport) -> None:
        self._transport = transport
        self.client_id = transport.app.client_id

    def __repr__(self) -> str:
        return f"<Conduit id={self.id!r} shards={[s.id for s in self.shards]}>"

    @property
    def id(self) -> Optional[str]:
        """The conduit's id, once it was found or created (``None`` before)."""
        return self._transport.conduit_id

    @property
    def shard_count(self) -> Optional[int]:
        """The conduit's shard count as last seen (``None`` before it was found)."""
        return self._transport.shard_count

    @property
    def shards(self) -> list[ShardInfo]:
        """This process's shards, by id, with their status."""
        return [node.info for node in self._transport.shard_nodes()]

    async def start(self) -> None:
        """|coro|

        Find or create the conduit and open this process's shards; returns once every
        shard is assigned to a live session. A process that only serves shards (the
        topics are subscribed elsewhere) calls this; ``subscribe_topics`` starts them too.

        Raises
        ------
        ConnectionFailure
            The conduit could not be found or created, or a shard was not assigned within
            ``connect_timeout``; the message names the cause.
        """
        await self._transport.start()

    async def resize(self, shard_count: int) -> None:
        """|coro|

        Set the conduit's shard count (1 to 20,000). Shards above it are removed by
        Twitch; a pool serving all shards (``shards=None``) opens or closes sessions to
        match, one serving a fixed list closes those no longer in the conduit.

        Raises
        ------
        TypeError, ValueError
            ``shard_count`` is not an int from 1 to 20,000.
        ConnectionFailure
            Helix refused or could not be reached.
        """
        _count("shard_count", shard_count)
        await self._transport.resize(shard_count)

    async def fetch_shards(self) -> list[ShardInfo]:
        """|coro|

        Every shard of the conduit as Twitch reports it (all processes'), for operators.

        Raises
        ------
        ConnectionFailure
            Helix refused or could not be reached.
        """
        shards = await self._transport.fetch_shards()
        return [
            ShardInfo(
                str(s.get("id")),
                str(s.get("status")),
                (s.get("transport") or {}).get("session_id") or None,
            )
            for s in shards
        ]


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= 20_000:
        raise ValueError(f"{name} must be from 1 to 20000, got {value}")
    return value


def _shard_ids(shards: Any) -> Optional[tuple[str, ...]]:
    if shards is None:
        return None
    if isinstance(shards, (str, bytes)) or not isinstance(shards, Iterable):
        raise TypeError("shards must be an iterable of shard ids (ints), e.g. range(0, 4)")
    ids: list[str] = []
    for shard in shards:
        if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < 20_000:
            raise ValueError(f"shard ids must be ints from 0 to 19999, got {shard!r}")
        ids.append(str(shard))
    if not ids:
        raise ValueError("shards is empty; give at least one shard id, or None for all")
    return tuple(dict.fromkeys(ids))


class _ShardOwner:
    """What a shard node needs of its owner: it holds no topics and runs no hook."""

    def __init__(self, owner: NodeOwner) -> None:
        self._owner = owner
        self._none: Mapping[str, Topic] = {}

    def session(self) -> aiohttp.ClientSession:
        return self._owner.session()

    def wanted(self, node: Node) -> Mapping[str, Topic]:
        return self._none

    def handover_slot(self) -> asyncio.Semaphore:
        return self._owner.handover_slot()

    def subscribed(self, node: Node, topics: Sequence[Topic], token: Optional[str]) -> None:
        """Never called: a shard subscribes nothing."""

    def refused(
        self, node: Node, topics: Sequence[Topic], token: Optional[str], error: str
    ) -> bool:
        return False

    def revoked(self, node: Node, keys: Sequence[str], reason: Optional[str] = None) -> None:
        """Never called: revocations go to the conduit node."""

    def reconnected(self, node: Node) -> asyncio.Task[None]:
        raise AssertionError("a shard runs no reconnect_hook")

    async def subscribe(self, node: Node, topics: list[Topic]) -> None:
        raise ValueError("a conduit shard holds no topics; subscribe through the pool")

    async def unsubscribe(self, topics: list[Topic]) -> None:
        raise ValueError("a conduit shard holds no topics; unsubscribe through the pool")

    async def disconnect(self, node: Node) -> None:
        raise ValueError("a conduit shard is closed with the pool (or pool.conduit.resize)")


class ConduitTransport(EventSubTransport):
    """The conduit transport of a pool (internal; the pool builds it by name).

    Tokens are validated as for ``transport="eventsub"`` (and must be the app's); every
    topic is in one group, on one :class:`ConduitNode`.
    """

    name = "conduit"
    title = "EventSub (conduit)"

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        settings: Settings,
        *,
        host: Any,
        client_id: Any,
        client_secret: Any,
        conduit_id: Any = None,
        shards: Any = None,
        shard_count: Any = None,
        audit_interval: Any = 120.0,
        **eventsub: Any,
    ) -> None:
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"transport='conduit' needs {name} (a non-empty str)")
        if conduit_id is not None and (not isinstance(conduit_id, str) or not conduit_id):
            raise TypeError("conduit_id must be a non-empty str or None")
        super().__init__(session, settings, **eventsub)
        self.shard_ids = _shard_ids(shards)
        self.wanted_count = None if shard_count is None else _count("shard_count", shard_count)
        self.audit_interval = _number("audit_interval", audit_interval)
        self._host = host
        self.app = _AppToken(session, client_id.strip(), client_secret, self.id_url)
        self.conduit = Conduit(self)
        self.given_conduit: Optional[str] = conduit_id
        self.conduit_id: Optional[str] = None
        self.shard_count: Optional[int] = None
        #: Bumped whenever the conduit is found or created anew.
        self.generation = 0
        self._resolving: Optional[asyncio.Future[str]] = None
        self._shards: dict[str, ConduitShard] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._recount: Optional[asyncio.Task[None]] = None
        self._topic_nodes: weakref.WeakSet[ConduitNode] = weakref.WeakSet()
        self._closing = False
        #: The pool is closing (a node that closes now leaves its subscriptions).
        self.pool_closing = False
        self.delete_on_close = False
        #: This pool created the conduit (``close(delete=True)`` deletes it then).
        self.created_conduit = False
        #: Events seen on any shard of this process, by message id.
        self.seen = _Seen()
        #: Subscriptions this process deleted (their late events are not dispatched).
        self.deleted = _Seen()
        self.shard_disabled_subscribed: Optional[str] = None

    # ------------------------------------------------------------------ the Transport

    def token_problem(self, key: str, info: TokenInfo) -> Optional[str]:
        """Why a user token does not authorize this app for topic ``key``, if it does not."""
        if info.client_id != self.app.client_id:
            return (
                f"the token was issued to client id {info.client_id}, not to this pool's "
                f"client_id {self.app.client_id}: the user must authorize this app"
            )
        return super().token_problem(key, info)

    def _group(self, info: TokenInfo) -> Optional[str]:
        """One group: the conduit holds every user's subscriptions."""
        return None

    def group_of(self, node: Node) -> Optional[str]:
        """One group: the conduit."""
        return None

    def capacity(self, nodes: Sequence[Node]) -> int:
        """Subscriptions one pool holds on the conduit."""
        return MAX_CONDUIT_SUBSCRIPTIONS

    def more_nodes(self, group: Optional[str], in_group: int, in_pool: int) -> int:
        """One node holds every topic."""
        return 1 - in_pool

    def full(
        self,
        group: Optional[str],
        topics: list[Topic],
        weights: Sequence[int],
        free: Sequence[int],
        allowed: int,
        capacity: int,
        target: Optional[Node],
    ) -> PubSubError | ValueError:
        """:class:`PoolFull`: the pool's bound on subscriptions."""
        return PoolFull(
            f"{len(topics)} topic(s) ({sum(weights)} subscriptions) do not fit: one pool "
            f"holds at most {capacity} conduit subscriptions",
            topics=topics,
        )

    def new_node(
        self,
        group: Optional[str],
        client: Client,
        pool: Any,
        dispatcher: Dispatcher,
        owner: NodeOwner,
    ) -> ConduitNode:
        """The node that holds the pool's topics on the conduit."""
        node = ConduitNode(
            client,
            pool,
            transport=self,
            settings=self.settings,
            dispatcher=dispatcher,
            owner=owner,
        )
        self._topic_nodes.add(node)
        return node

    def in_use(self) -> bool:
        """While this process serves shards: their sessions use the pool's HTTP session."""
        return bool(self._shards) and not self._closing

    def closing(self, delete: bool) -> None:
        """The pool closes: with ``delete``, what it created goes too."""
        self.pool_closing = True
        self.delete_on_close = delete

    async def close(self) -> None:
        """Close this process's shards. The conduit and its subscriptions stay, unless
        the pool closes with ``delete=True``: then what this pool created goes too (the
        conduit, or else its ``conduit.shard.disabled`` subscription), within
        :data:`~twitchio_pubsub.eventsub.node.CLOSE_TIMEOUT`."""
        self._closing = True
        resolving, recount = self._resolving, self._recount
        for task in (resolving, recount):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait((task,))
        await asyncio.gather(*(node.close() for node in list(self._shards.values())))
        self._shards.clear()
        for task in list(self._retired):
            await wait_finished(task)
        try:
            if self.delete_on_close:
                await within(self._delete_own(), CLOSE_TIMEOUT)
        except (HelixError, asyncio.TimeoutError) as exc:
            log.warning(
                "deleting what this pool created on conduit %s failed (%s); left to Twitch",
                self.conduit_id,
                exc or "timed out",
            )
        finally:
            await self.tokens.close()
            await self.app.close()

    async def _delete_own(self) -> None:
        conduit_id = self.conduit_id
        if conduit_id is None:
            return
        if self.created_conduit:
            await self._app_call(
                lambda token, info: self.helix.delete_conduit(token, info, conduit_id)
            )
            log.info("deleted conduit %s (this pool created it)", conduit_id)
        elif self.shard_disabled_subscribed is not None:
            sub_id = self.shard_disabled_subscribed
            await self._app_call(lambda token, info: self.helix.delete(token, info, sub_id))

    # ------------------------------------------------------------------ the conduit

    async def _app_call(self, call: Callable[[str, TokenInfo], Any]) -> Any:
        """Make a Helix call with the app token, fetching a new one once after a 401."""
        for attempt in (0, 1):
            token = await self.app.get()
            try:
                return await call(token, self.app.info)
            except HelixError as exc:
                if exc.status != 401 or attempt or isinstance(exc, MalformedAnswer):
                    raise
                self.app.refused(token)
        raise AssertionError("unreachable")

    async def ensure(self) -> str:
        """The conduit's id: found or created (once, whoever asks), then the shards open.

        Raises
        ------
        HelixError
            The app token or the conduit could not be had.
        ConnectionFailure
            The client has several conduits and none was named.
        """
        if self._closing:
            raise LinkLost("the pool is closing")
        if self.conduit_id is not None:
            self._open_shards()
            return self.conduit_id
        if self._resolving is None:
            self._resolving = asyncio.ensure_future(self._resolve())
            self._resolving.add_done_callback(self._resolved)
        conduit_id = await asyncio.shield(self._resolving)
        self._open_shards()
        return conduit_id

    def _resolved(self, done: asyncio.Future[str]) -> None:
        self._resolving = None
        if not done.cancelled():
            done.exception()

    async def _resolve(self) -> str:
        conduits = await self._app_call(self.helix.conduits)
        need = max((int(s) + 1 for s in self.shard_ids or ()), default=1)
        if self.given_conduit is not None:
            found = [c for c in conduits if c["id"] == self.given_conduit]
            if not found:
                raise ConnectionFailure(
                    f"conduit {self.given_conduit} does not exist (or belongs to another "
                    f"client id than {self.app.client_id})"
                )
            conduit = found[0]
        elif len(conduits) > 1:
            raise ConnectionFailure(
                f"client {self.app.client_id} has {len(conduits)} conduits; pass "
                "conduit_id to say which one this pool serves"
            )
        elif conduits:
            conduit = conduits[0]
        else:
            count = self.wanted_count or need
            conduit = await self._app_call(
                lambda token, info: self.helix.create_conduit(token, info, count)
            )
            self.created_conduit = True
            log.info("created conduit %s with %d shard(s)", conduit["id"], count)
        count = int(conduit["shard_count"])
        wanted = max(self.wanted_count or count, need)
        if wanted != count:
            conduit = await self._app_call(
                lambda token, info: self.helix.update_conduit(token, info, conduit["id"], wanted)
            )
            log.info("conduit %s resized from %d to %d shards", conduit["id"], count, wanted)
        self.conduit_id = str(conduit["id"])
        self.shard_count = int(conduit["shard_count"])
        self.generation += 1
        await self._watch_shards()
        return self.conduit_id

    async def _watch_shards(self) -> None:
        """Subscribe ``conduit.shard.disabled`` for this conduit (409: someone did)."""
        part = Part(
            SHARD_DISABLED.type,
            SHARD_DISABLED.version,
            (("client_id", self.app.client_id), ("conduit_id", self.conduit_id or "")),
        )
        try:
            sub_id = await self._app_call(
                lambda token, info: self.helix.create(
                    token, info, part, "", conduit_id=self.conduit_id
                )
            )
            self.shard_disabled_subscribed = sub_id
        except HelixError as exc:
            if exc.status != 409:
                log.warning("subscribing conduit.shard.disabled failed: %s", exc)

    def lost(self, conduit_id: str) -> None:
        """Helix says conduit ``conduit_id`` is gone: find or create one again."""
        if self.conduit_id != conduit_id:
            return
        log.warning("conduit %s is gone; finding or creating one again", conduit_id)
        self.conduit_id = None
        self.shard_count = None
        # A named conduit that is gone is not looked for again: one is found or created.
        self.given_conduit = None if self.given_conduit == conduit_id else self.given_conduit
        for node in list(self._topic_nodes):
            node.conduit_lost()
        for shard in self._shards.values():
            shard.wake()

    def recount(self) -> None:
        """Read the conduit's shard count again (soon) and serve only the shards it has."""
        if self._recount is None or self._recount.done():
            self._recount = asyncio.get_running_loop().create_task(
                self._read_count(), name="conduit-recount"
            )
            self._retired.add(self._recount)
            self._recount.add_done_callback(self._retired.discard)

    async def _read_count(self) -> None:
        conduit_id = self.conduit_id
        try:
            conduits = await self._app_call(self.helix.conduits)
        except HelixError as exc:
            log.info("reading the conduit's shard count failed: %s", exc)
            return
        found = [c for c in conduits if c["id"] == conduit_id]
        if not found:
            if conduit_id is not None:
                self.lost(conduit_id)
            return
        if self.conduit_id == conduit_id:
            self.shard_count = int(found[0]["shard_count"])
            log.warning("conduit %s has %d shard(s) now", conduit_id, self.shard_count)
            self._open_shards()

    def _open_shards(self) -> None:
        """Open a shard node for each shard id this process serves that has none."""
        if self._closing or self.shard_count is None:
            return
        ids = self.shard_ids or tuple(str(i) for i in range(self.shard_count))
        for shard_id in ids:
            if int(shard_id) >= self.shard_count:
                continue
            if shard_id not in self._shards:
                host = self._host
                node = ConduitShard(
                    host.client,
                    host.pool,
                    shard_id=shard_id,
                    transport=self,
                    settings=self.settings,
                    dispatcher=host.dispatcher,
                    owner=cast("NodeOwner", _ShardOwner(host.owner)),
                )
                self._shards[shard_id] = node
                node.start()
        for shard_id in [s for s in self._shards if int(s) >= self.shard_count]:
            self._retire_shard(shard_id)

    def _retire_shard(self, shard_id: str) -> None:
        node = self._shards.pop(shard_id)
        task = asyncio.get_running_loop().create_task(
            node.close(), name=f"conduit-shard-{shard_id}-close"
        )
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def shard_nodes(self) -> list[ConduitShard]:
        """This process's shard nodes, by shard id."""
        return [self._shards[k] for k in sorted(self._shards, key=int)]

    async def start(self) -> None:
        """See :meth:`Conduit.start`."""
        limit = self.settings.connect_timeout
        try:
            await within(self.ensure(), limit)
        except HelixError as exc:
            raise ConnectionFailure(f"cannot reach the conduit: {exc}") from None
        except asyncio.TimeoutError:
            raise ConnectionFailure(f"no conduit within {limit:g} s") from None
        nodes = self.shard_nodes()
        ready = await asyncio.gather(*(n.wait_assigned(limit) for n in nodes))
        missing = [n for n, ok in zip(nodes, ready) if not ok]
        if missing:
            raise ConnectionFailure(
                "shard(s) not assigned within connect_timeout: "
                + "; ".join(f"{n.shard_id}: {n.info.status}" for n in missing)
            )

    async def resize(self, shard_count: int) -> None:
        """See :meth:`Conduit.resize`."""
        try:
            conduit_id = await self.ensure()
            answer = await self._app_call(
                lambda token, info: self.helix.update_conduit(token, info, conduit_id, shard_count)
            )
        except HelixError as exc:
            raise ConnectionFailure(f"resizing the conduit failed: {exc}") from None
        self.shard_count = int(answer["shard_count"])
        self._open_shards()

    async def fetch_shards(self) -> list[dict[str, Any]]:
        """See :meth:`Conduit.fetch_shards` (Helix's shard objects)."""
        try:
            conduit_id = await self.ensure()
            shards: list[dict[str, Any]] = await self._app_call(
                lambda token, info: self.helix.shards(token, info, conduit_id)
            )
        except HelixError as exc:
            raise ConnectionFailure(f"reading the conduit's shards failed: {exc}") from None
        return shards

    async def audit(self) -> None:
        """Ask Twitch how this process's shards are; repair those it has disabled."""
        conduit_id = self.conduit_id
        if conduit_id is None:
            return
        try:
            shards = await self._app_call(
                lambda token, info: self.helix.shards(token, info, conduit_id)
            )
        except HelixError as exc:
            if exc.status == 404:
                self.lost(conduit_id)
            else:
                log.info("auditing conduit %s failed: %s", conduit_id, exc)
            return
        by_id = {str(s.get("id")): s for s in shards}
        for shard_id, node in list(self._shards.items()):
            seen = by_id.get(shard_id)
            if seen is not None and seen.get("status") != "enabled" and node.connected:
                log.warning(
                    "conduit %s: Twitch reports shard %s as %s; reassigning it",
                    conduit_id,
                    shard_id,
                    seen.get("status"),
                )
                node.reassign()

    # ------------------------------------------------------------------ delivery

    def deliver(self, message: esp.Notification) -> None:
        """An event landed on one of this process's shards: dispatch it here, once."""
        if not self.seen.first_time(message.message_id):
            return
        part = message.part
        if part is not None and part.type == SHARD_DISABLED.type:
            self._shard_disabled(message.frame)
            return
        for node in self._topic_nodes:
            keys = node.keys_for(message)
            if keys:
                node._dispatch_keys(keys, message.frame)
                return
        if self.deleted.seen(message.subscription_id):
            return  # this process unsubscribed it: nothing of it is dispatched any more
        key = topic_for(part) if part is not None else None
        if key is None:
            log.info("an event of %s had no topic to go to", part.type if part else "?")
            return
        # Another process subscribed it: dispatched under the topic it stands for.
        target: Optional[EventSubWebsocket] = next(iter(self._topic_nodes), None)
        if target is None:
            target = next(iter(self._shards.values()), None)
        if target is not None:
            target._dispatch_keys([key], message.frame)

    def revoke(self, message: esp.Revocation) -> None:
        """A revocation landed on a shard: the conduit node owns the subscription."""
        for node in self._topic_nodes:
            node._revocation(message)

    def _shard_disabled(self, frame: dict[str, Any]) -> None:
        event = (frame.get("payload") or {}).get("event") or {}
        conduit_id = event.get("conduit_id")
        shard_id = str(event.get("shard_id"))
        status = event.get("status")
        ours = conduit_id == self.conduit_id and shard_id in self._shards
        # Another process's shard is its own business (and its own log's); ours is ours.
        log.log(
            logging.WARNING if ours else logging.INFO,
            "conduit %s: shard %s disabled (%s)%s",
            conduit_id,
            shard_id,
            status,
            ", one of this process's" if ours else "",
        )
        self._host.dispatcher.error(
            PubSubErrorEvent(
                f"conduit {conduit_id}: shard {shard_id} was disabled ({status})",
                error=str(status),
                type="SHARD_DISABLED",
            )
        )
        if ours:
            session = (event.get("transport") or {}).get("session_id")
            node = self._shards[shard_id]
            if session and session == node.session_id:
                node.reassign()


def _node_options(
    transport: ConduitTransport, settings: Settings, dispatcher: Dispatcher, owner: NodeOwner
) -> dict[str, Any]:
    """What both kinds of conduit node pass on to :class:`EventSubWebsocket`."""
    return {
        "user_id": "",
        "settings": settings,
        "dispatcher": dispatcher,
        "owner": owner,
        "helix": transport.helix,
        "tokens": transport.tokens,
        "keepalive": transport.keepalive_timeout,
        "keepalive_margin": transport.keepalive_margin,
    }


#: What a conduit node's connect may raise besides a socket's failures.
_CONNECT_ERRORS = (*EventSubWebsocket._connect_errors, HelixError, ConnectionFailure)


class _ConduitLink(_Link):
    """The conduit node's "connection": the conduit it works on (no socket)."""

    __slots__ = ("conduit_id", "generation", "lost")

    def __init__(self, id: int, conduit_id: str, generation: int, now: float) -> None:
        super().__init__(cast(aiohttp.ClientWebSocketResponse, None), id, now)
        self.conduit_id = conduit_id
        self.session_id = conduit_id
        self.generation = generation
        self.lost = False

    @property
    def alive(self) -> bool:
        return not self.lost

    async def finish(self, grace: float = 2.0) -> None:
        self.lost = True

    async def close(self) -> None:
        self.lost = True


class ConduitNode(EventSubWebsocket):
    """The node of a ``transport="conduit"`` pool: it holds the pool's topics and their
    subscriptions on the conduit (events arrive on the shards, see :class:`Conduit`).

    You meet it in :meth:`~twitchio_pubsub.PubSubPool.reconnect_hook`, which runs when
    the conduit had to be found or created again (its subscriptions are then created
    anew).
    """

    _task_prefix = "conduit-node"
    _retry = "finding the conduit again"

    def __init__(
        self,
        client: Client,
        pool: Any,
        *,
        transport: ConduitTransport,
        settings: Settings,
        dispatcher: Dispatcher,
        owner: NodeOwner,
    ) -> None:
        super().__init__(
            client,
            pool,
            max_topics=MAX_CONDUIT_SUBSCRIPTIONS,
            endpoint=transport.helix_url,
            released=transport.tokens_changed,
            **_node_options(transport, settings, dispatcher, owner),
        )
        self._transport = transport
        self._generation = 0

    def _named(self) -> str:
        return f"conduit_id={self.conduit_id}"

    @property
    def conduit_id(self) -> Optional[str]:
        """The conduit this node works on, while it has one (its link's "session")."""
        return self.session_id

    def describe_failure(self) -> str:
        cause = self._last_error or "timed out"
        return f"could not reach the conduit at {self.endpoint}: {cause}"

    async def reconnect(self) -> None:
        """|coro|

        Nothing to do: the conduit node has no socket (shards reconnect on their own).
        """

    def keys_for(self, message: esp.Notification) -> list[str]:
        """The wanted topics a notification of the conduit is for."""
        keys = self._subs.keys_for(message.subscription_id, message.part)
        return [k for k in keys if k in self._wanted]

    def conduit_lost(self) -> None:
        """The conduit is gone: end the serve loop, so the supervisor finds a new one."""
        link = self._link
        if link is not None and isinstance(link, _ConduitLink):
            link.lost = True
            link.signal.set()

    # ------------------------------------------------------------------ supervisor steps

    _connect_errors = _CONNECT_ERRORS

    async def _connect(self) -> _Link:
        conduit_id = await self._transport.ensure()
        loop = asyncio.get_running_loop()
        return _ConduitLink(
            next(self._link_ids), conduit_id, self._transport.generation, loop.time()
        )

    def _fresh(self, link: _Link) -> None:
        generation = cast(_ConduitLink, link).generation
        if generation != self._generation:
            if self._generation:
                # A new conduit holds nothing: what the old one held is deleted (it is
                # gone with it) and every subscription created again.
                self._subs.forget_session(self._wanted_tokens())
            self._generation = generation

    async def _discard(self, link: _Link) -> None:
        await link.close()

    def _up(self, link: _Link) -> None:
        log.info(
            "conduit node %d: conduit %s, %d subscription(s)",
            self.id,
            link.session_id,
            len(self._subs),
        )

    async def _release(self, link: _Link, why: str) -> bool:
        return False

    async def _serve(self, link: _Link) -> str:
        audit = self._transport.audit_interval
        loop = asyncio.get_running_loop()
        next_audit = loop.time() + audit
        while True:
            link = self._link or link
            if not link.alive or link.session_id != self._transport.conduit_id:
                return "the conduit is gone"
            if self._wake_pending or self._settle_waiters:
                try:
                    await self._reconcile(link)
                except LinkLost as exc:
                    return f"subscribing failed ({exc})"
                continue
            if loop.time() >= next_audit:
                await self._transport.audit()
                next_audit = loop.time() + audit
                continue
            await until_signal(link, timeout=max(next_audit - loop.time(), 0.01))

    async def _shutdown(self, leftovers: list[_Link]) -> None:
        creating = list(self._subs.creating.values())
        for pending in creating:
            pending.cancel()
        if creating:
            await asyncio.wait(creating)
        transport = self._transport
        if transport.delete_on_close or not transport.pool_closing:
            # Left empty (its last topics unsubscribed) or closing with delete=True: the
            # subscriptions go. A pool that just closes leaves them to the other processes.
            await self._delete_all()

    # ------------------------------------------------------------------ Helix, app token

    def _token_problem(self, key: str, info: TokenInfo) -> Optional[str]:
        return self._transport.token_problem(key, info)

    async def _create(self, link: _Link, token: str, info: Any, part: Part) -> str:
        conduit_id = link.session_id
        try:
            return await self._create_on(conduit_id, part)
        except HelixError as exc:
            if isinstance(exc, AppTokenError) or exc.status == 401:
                # The app's token, not the topic's user: served again once it is had.
                raise LinkLost(f"the app access token failed ({exc})") from None
            if exc.status == 400 and "conduit does not exist" in exc.message:
                self._transport.lost(conduit_id)
                raise LinkLost(exc.message) from None
            raise

    async def _create_on(self, conduit_id: str, part: Part) -> str:
        """Create ``part`` on the conduit with the app token, or adopt the one there."""
        transport = self._transport

        def create(app: str, app_info: TokenInfo) -> Any:
            return self._helix.create(app, app_info, part, "", conduit_id=conduit_id)

        try:
            sub_id: str = await transport._app_call(create)
            return sub_id
        except HelixError as exc:
            if exc.status != 409 and not isinstance(exc, MalformedAnswer):
                raise
        # Another process (or a lost answer) created it: adopt it, conduit-wide.
        existing = await transport._app_call(
            lambda app, app_info: self._helix.find(app, app_info, part, conduit_id=conduit_id)
        )
        if existing is not None:
            return str(existing["id"])
        adopted: str = await transport._app_call(create)
        return adopted

    async def _delete(self, token: Optional[str], sub_id: str) -> None:
        self._transport.deleted.first_time(sub_id)
        await self._transport._app_call(
            lambda app, app_info: self._helix.delete(app, app_info, sub_id)
        )

    def _helix_refusal(self, topic: Topic, part: Part, exc: HelixError) -> bool:
        if exc.status == 403:
            # The app token is fine; the topic's user has not authorized this app.
            exc = HelixError(403, f"{exc.message} (the user must authorize this app's client id)")
        return super()._helix_refusal(topic, part, exc)


class ConduitShard(EventSubWebsocket):
    """One shard of the conduit, served by this process: one WebSocket session.

    Attributes
    ----------
    shard_id: :class:`str`
        The shard id it is assigned to.
    """

    _task_prefix = "conduit-shard"

    def __init__(
        self,
        client: Client,
        pool: Any,
        *,
        shard_id: str,
        transport: ConduitTransport,
        settings: Settings,
        dispatcher: Dispatcher,
        owner: NodeOwner,
    ) -> None:
        super().__init__(
            client,
            pool,
            max_topics=0,
            endpoint=transport.eventsub_url,
            **_node_options(transport, settings, dispatcher, owner),
        )
        self.shard_id = shard_id
        self._transport = transport
        self._seen = transport.seen
        #: (conduit id, session id) Twitch last accepted for this shard.
        self._assigned: Optional[tuple[str, str]] = None
        self._refusal: Optional[str] = None

    def __repr__(self) -> str:
        return (
            f"<ConduitShard shard_id={self.shard_id} session_id={self.session_id} "
            f"{self.info.status}>"
        )

    @property
    def info(self) -> ShardInfo:
        """This shard as this process sees it."""
        link = self._link
        if (
            self.connected
            and link is not None
            and self._assigned
            == (
                self._transport.conduit_id,
                link.session_id,
            )
        ):
            return ShardInfo(self.shard_id, "enabled", link.session_id)
        status = self._refusal or self._last_error or "connecting"
        return ShardInfo(self.shard_id, status, None)

    async def wait_assigned(self, timeout: float) -> bool:
        """Wait until the shard is assigned to a live session; whether it was in time."""
        return await self._wait_state(lambda: self.info.status == "enabled", timeout)

    def reassign(self) -> None:
        """Twitch disabled this shard: open a new session and assign it."""
        link = self._link
        if link is not None:
            link.reconnect_url = ""
            link.signal.set()

    async def _run_reconnect_hook(self, link: _Link) -> None:
        """A shard holds no topics: there is nothing for the hook to do."""

    _connect_errors = _CONNECT_ERRORS

    async def _connect(self) -> _Link:
        conduit_id = await self._transport.ensure()
        link = await self._open(self._url())
        try:
            await self._assign(link, conduit_id)
        except BaseException:
            await link.close()
            raise
        return link

    async def _assign(self, link: _Link, conduit_id: str) -> None:
        """PATCH this shard to ``link``'s session (within Twitch's 10 s window)."""
        session_id = link.session_id
        try:
            errors = await self._transport._app_call(
                lambda app, info: self._helix.assign(
                    app, info, conduit_id, {self.shard_id: session_id}
                )
            )
        except HelixError as exc:
            if exc.status == 404:
                self._transport.lost(conduit_id)
            raise LinkLost(f"assigning shard {self.shard_id} failed: {exc}") from None
        problem = errors.get(self.shard_id)
        if problem is not None:
            self._refusal = f"refused: {problem}"
            log.warning("shard %s: Twitch refused the assignment: %s", self.shard_id, problem)
            self._dispatch.error(
                PubSubErrorEvent(
                    f"conduit {conduit_id}: shard {self.shard_id} was not assigned: {problem}",
                    error="shard_refused",
                    type="SHARD",
                )
            )
            if "outside" in problem:
                self._transport.recount()  # the conduit shrank under this process
            raise LinkLost(f"shard {self.shard_id} refused: {problem}")
        self._refusal = None
        self._assigned = (conduit_id, session_id)
        log.info("shard %s: assigned session %s", self.shard_id, session_id)

    def _fresh(self, link: _Link) -> None:
        """Nothing to forget: the subscriptions are the conduit's."""

    async def _reconcile(
        self, link: _Link, skip: frozenset[str] = frozenset(), *, ready: bool = False
    ) -> None:
        self._wake_pending = False
        conduit_id = self._transport.conduit_id
        if conduit_id is None:
            try:
                conduit_id = await self._transport.ensure()
            except (HelixError, ConnectionFailure) as exc:
                raise LinkLost(f"no conduit: {exc}") from None
        if self._assigned != (conduit_id, link.session_id):
            await self._assign(link, conduit_id)
        if ready:
            self._set_ready(True)
        self._release_settle_waiters([])

    async def _hand_over(self, old: _Link, url: str) -> bool:
        moved = await super()._hand_over(old, url)
        link = self._link
        if (
            moved
            and link is not None
            and self._assigned != (self._transport.conduit_id, link.session_id)
        ):
            self.wake()  # a new session id: the next pass PATCHes it
        self._set_ready(self._ready)  # wake state waiters (operators' views)
        return moved

    async def _shutdown(self, leftovers: list[_Link]) -> None:
        for task in list(self._finishing):
            task.cancel()
            await wait_finished(task)
        for leftover in leftovers:
            await leftover.close()

    def _notification(self, message: esp.Notification) -> None:
        self._transport.deliver(message)

    def _revocation(self, message: esp.Revocation) -> None:
        self._transport.revoke(message)
