"""The transports a pool can speak, by name, and the PubSub one.

A :class:`~twitchio_pubsub.PubSubPool` is given a transport by name
(``transport="pubsub"``, ``"eventsub"`` or ``"conduit"``) and asks it everything that depends on the
wire (see :class:`~twitchio_pubsub.transport.Transport`): this module is the one place
that maps the names to the classes. A new transport is one class here and one line in
:data:`TRANSPORTS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

import aiohttp

from .errors import PoolFull, PubSubError
from .eventsub.bridge import EventSubTransport
from .eventsub.conduit import ConduitTransport
from .planner import plan
from .settings import Settings
from .topics import Topic
from .transport import Node, NodeOwner, Transport
from .websocket import PubSubWebsocket

if TYPE_CHECKING:
    from twitchio import Client

    from .dispatch import Dispatcher

__all__ = ("TRANSPORTS", "PubSubTransport", "build_transport")


class PubSubTransport:
    """PubSub: up to ``max_pool_size`` sockets of ``max_connection_topics`` topics each.

    Tokens are checked by the server on LISTEN, so nothing is authorized beforehand and
    every node is in one group.
    """

    name = "pubsub"
    title = "PubSub"
    validate_interval: Optional[float] = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def build(
        cls,
        session: Callable[[], aiohttp.ClientSession],
        settings: Settings,
        options: dict[str, Any],
    ) -> PubSubTransport:
        """The transport for a pool's ``settings``; EventSub's options do not apply."""
        return cls(settings)

    def check(self, topics: Sequence[Topic]) -> None:
        """Every topic can be LISTENed."""

    def serves(self, topic: Topic) -> bool:
        """Every topic: the server decides on LISTEN."""
        return True

    async def authorize(
        self, topics: Sequence[Topic]
    ) -> tuple[list[tuple[Topic, Optional[str]]], list[tuple[Topic, str]]]:
        """All topics go on, in the one group: the server checks tokens on LISTEN."""
        return [(topic, None) for topic in topics], []

    def weight(self, topic: Topic) -> int:
        """One topic, one slot of ``max_connection_topics``."""
        return 1

    def group_of(self, node: Node) -> Optional[str]:
        """Every node is in the one group, ``None``."""
        return None

    def capacity(self, nodes: Sequence[Node]) -> int:
        """``max_connection_topics``."""
        return self.settings.max_connection_topics

    def more_nodes(self, group: Optional[str], in_group: int, in_pool: int) -> int:
        """What ``max_pool_size`` leaves."""
        return self.settings.max_pool_size - in_pool

    def plan(
        self, free: Sequence[int], allowed: int, capacity: int, weights: Sequence[int]
    ) -> Optional[list[int]]:
        """:func:`~twitchio_pubsub.planner.plan`: a call that fits goes to one socket."""
        placements = plan(free, allowed, capacity, len(weights))
        if placements is None:
            return None
        spots: list[int] = []
        fresh = 0
        for index, count in placements:
            if index is None:
                fresh += 1
                spots.extend([-fresh] * count)
            else:
                spots.extend([index] * count)
        return spots

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
        """``ValueError`` for a node's own call; otherwise :class:`PoolFull`."""
        if target is not None:
            return ValueError(
                f"{len(topics)} topic(s) do not fit on node {target.id}: it holds "
                f"{capacity - free[0]} of at most {capacity}"
            )
        return PoolFull(
            f"{len(topics)} topic(s) do not fit: {sum(max(room, 0) for room in free)} free "
            f"slot(s) on {len(free)} connection(s) and room for {max(allowed, 0)} more "
            f"connection(s) of {capacity}",
            topics=topics,
        )

    def new_node(
        self,
        group: Optional[str],
        client: Client,
        pool: Any,
        dispatcher: Dispatcher,
        owner: NodeOwner,
    ) -> Node:
        """A :class:`~twitchio_pubsub.PubSubWebsocket`."""
        return PubSubWebsocket(
            client,
            pool,
            max_topics=self.settings.max_connection_topics,
            settings=self.settings,
            dispatcher=dispatcher,
            owner=owner,
        )

    async def revalidate(self, tokens: Iterable[str]) -> list[str]:
        """Nothing to do: the server refuses a dead token on the next LISTEN."""
        return []

    def tokens_changed(self) -> None:
        """Nothing to forget: PubSub keeps no tokens of its own."""

    def in_use(self) -> bool:
        """Never: every socket is a node's."""
        return False

    def closing(self, delete: bool) -> None:
        """Nothing to keep: the server drops a closed socket's topics."""

    async def close(self) -> None:
        """Nothing of its own is under way."""


#: The transports by the name a pool is given.
TRANSPORTS: dict[str, Any] = {
    PubSubTransport.name: PubSubTransport,
    EventSubTransport.name: EventSubTransport,
    ConduitTransport.name: ConduitTransport,
}

#: The options only the conduit transport takes, with their defaults.
CONDUIT_ONLY = {
    "client_id": None,
    "client_secret": None,
    "conduit_id": None,
    "shards": None,
    "shard_count": None,
    "audit_interval": 120.0,
}


def build_transport(
    name: str,
    session: Callable[[], aiohttp.ClientSession],
    settings: Settings,
    options: dict[str, Any],
) -> Transport:
    """The transport called ``name``, built with the pool's ``settings`` and ``options``.

    Raises
    ------
    ValueError
        No transport has that name, or an option does not apply to it.
    """
    cls = TRANSPORTS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown transport {name!r}; expected one of {', '.join(TRANSPORTS)}")
    if cls is not ConduitTransport:
        options = dict(options)
        for option, default in CONDUIT_ONLY.items():
            value = options.pop(option, default)
            if value is not default and value != default:
                raise ValueError(f"{option} applies only to transport='conduit'")
        options.pop("host", None)
    transport: Transport = cls.build(session, settings, options)
    return transport
