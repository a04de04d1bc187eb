"""The boundary between the pool and its nodes, whatever transport a node speaks.

The pool owns which topic is where; a node owns one live connection (a PubSub socket, or
an EventSub session with its subscriptions) and what the server confirmed on it. They talk only
through the two small protocols below, so the node modules never import the pool and a
second transport can stand behind the same pool, planner, dispatch and models.

A topic is named here by its *key*: the wire string that identifies it
(:attr:`Topic.present` for PubSub).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol, TypeVar

if TYPE_CHECKING:
    import aiohttp
    from twitchio import Client

    from .dispatch import Dispatcher
    from .errors import PubSubError
    from .topics import Topic

__all__ = (
    "CLOSED",
    "NOT_CONNECTED",
    "OK",
    "TIMEOUT",
    "TRANSIENT",
    "WITHDRAWN",
    "Node",
    "NodeOwner",
    "Transport",
    "wait_finished",
    "within",
)

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Outcomes of a subscription besides the server's own error codes.
OK = ""
TIMEOUT = "timeout"
NOT_CONNECTED = "not connected"
WITHDRAWN = "withdrawn"
CLOSED = "closed"
#: Errors after which a topic the server held before is kept and the connection reset.
TRANSIENT = frozenset({TIMEOUT, "ERR_SERVER"})


class Node(Protocol):
    """What the pool needs from a node."""

    id: int
    max_topics: int

    @property
    def connected(self) -> bool:
        """Whether the node has a live connection on which its topics were subscribed."""

    @property
    def down_since(self) -> Optional[float]:
        """Loop time since when the node has had no live connection; ``None`` when up."""

    def describe_failure(self) -> str:
        """Why the node could not connect, in words fit for an exception message."""

    def start(self) -> None:
        """Start the node's supervisor (once)."""

    def wake(self) -> None:
        """The wanted topics changed: reconcile them with the server."""

    def settled(self) -> asyncio.Future[list[tuple[list[str], str]]]:
        """Resolved after a reconcile pass that begins after this call: its UNLISTEN errors."""

    async def close(self) -> None:
        """Stop the supervisor and close every connection; idempotent."""


class NodeOwner(Protocol):
    """What a node needs from the pool that owns its topics."""

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session connections are opened with."""

    def wanted(self, node: Node) -> Mapping[str, Topic]:
        """The topics assigned to ``node``, by key: a live view the node only reads."""

    def handover_slot(self) -> asyncio.Semaphore:
        """Held while a node keeps a second connection open during a hand-over."""

    def subscribed(self, node: Node, topics: Sequence[Topic], token: Optional[str]) -> None:
        """The server confirmed ``topics`` for ``token`` on ``node``."""

    def refused(
        self, node: Node, topics: Sequence[Topic], token: Optional[str], error: str
    ) -> bool:
        """The server refused ``topics``; returns whether the pool keeps them (retry)."""

    def revoked(self, node: Node, keys: Sequence[str], reason: Optional[str] = None) -> None:
        """The server revoked the authorization of these topics (``reason`` if it said)."""

    def reconnected(self, node: Node) -> asyncio.Task[None]:
        """``node`` has a new connection: run the reconnect hook (in the owner's task)."""

    async def subscribe(self, node: Node, topics: list[Topic]) -> None:
        """Subscribe ``topics`` on ``node`` (a node method called by user code)."""

    async def unsubscribe(self, topics: list[Topic]) -> None:
        """Unsubscribe ``topics`` (a node method called by user code)."""

    async def disconnect(self, node: Node) -> None:
        """Drop every topic of ``node`` and close it (a node method called by user code)."""


class Transport(Protocol):
    """What a pool asks of the transport its nodes speak (PubSub, EventSub, ...).

    The pool owns which topic is where, the hooks and closing; everything that depends
    on the transport is answered here, so the pool names no transport. Nodes are put in
    *groups* (EventSub: the token's user, whose sessions are limited; PubSub: one group,
    ``None``), and a node only holds topics of its group.
    """

    #: The name a pool is given (``transport="..."``).
    name: str
    #: How messages name it (``"EventSub"``).
    title: str
    #: Seconds between re-validations of every token in use; ``None``: never.
    validate_interval: Optional[float]

    def check(self, topics: Sequence[Topic]) -> None:
        """Refuse (:class:`ValueError`) topics this transport cannot serve at all."""

    def serves(self, topic: Topic) -> bool:
        """Whether this transport can serve ``topic`` (no exception)."""

    async def authorize(
        self, topics: Sequence[Topic]
    ) -> tuple[list[tuple[Topic, Optional[str]]], list[tuple[Topic, str]]]:
        """Check the topics' tokens before anything is placed.

        Returns ``(topic, group)`` for the topics that may go on and ``(topic, reason)``
        for those refused. Raises :class:`~twitchio_pubsub.ConnectionFailure` when the
        check itself could not be made.
        """

    def weight(self, topic: Topic) -> int:
        """The room ``topic`` takes on a node."""

    def group_of(self, node: Node) -> Optional[str]:
        """The group ``node`` serves."""

    def capacity(self, nodes: Sequence[Node]) -> int:
        """The room of one node of a group that has ``nodes``."""

    def more_nodes(self, group: Optional[str], in_group: int, in_pool: int) -> int:
        """How many more nodes ``group`` may open."""

    def plan(
        self, free: Sequence[int], allowed: int, capacity: int, weights: Sequence[int]
    ) -> Optional[list[int]]:
        """Where new topics go: per topic the index of an existing node of the group, or
        ``-1``, ``-2``, ... for new ones; ``None`` when they do not fit."""

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
        """The error for topics that do not fit (on ``target``, when given)."""

    def new_node(
        self,
        group: Optional[str],
        client: Client,
        pool: Any,
        dispatcher: Dispatcher,
        owner: NodeOwner,
    ) -> Node:
        """A new node for ``group``."""

    async def revalidate(self, tokens: Iterable[str]) -> list[str]:
        """Validate ``tokens`` again; the ones that are no longer valid."""

    def tokens_changed(self) -> None:
        """The pool's topics changed tokens or left (to forget tokens nothing uses)."""

    def in_use(self) -> bool:
        """Whether the transport itself holds connections of the pool's HTTP session
        (beyond the pool's nodes), so the pool keeps the session open."""

    def closing(self, delete: bool) -> None:
        """The pool starts closing; with ``delete``, it also removes what it created
        (only a transport whose subscriptions outlive the pool makes a difference)."""

    async def close(self) -> None:
        """End whatever the transport itself has under way (validations...)."""


async def wait_finished(task: asyncio.Future[None]) -> None:
    """Wait for ``task`` to finish without taking on its cancellation or its error.

    Unlike ``await task``, the task being cancelled is not an exception here, while a
    cancellation of the *caller* still propagates. A task that failed is logged.
    """
    if not task.done():
        await asyncio.wait((task,))
    if not task.cancelled() and task.exception() is not None:
        log.error("task %r failed", task, exc_info=task.exception())


async def within(
    work: Awaitable[T],
    timeout: float,
    *,
    discard: Optional[Callable[[T], Awaitable[object]]] = None,
) -> T:
    """Await ``work`` for at most ``timeout`` seconds; :class:`asyncio.TimeoutError` after.

    What :func:`asyncio.wait_for` should be: before Python 3.12 it could lose the
    caller's cancellation when ``work`` finished in the same loop turn (it returned the
    result or raised the work's error instead), which left a closing node reconnecting
    for ever. Here a cancelled caller always ends cancelled. ``work`` is cancelled and
    waited for on a timeout or a cancel; a result it produced anyway goes to
    ``discard`` (to close a socket nobody will use).
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait((task,), timeout=timeout)
    except asyncio.CancelledError:
        await _abandon(task, discard)
        raise
    if not done:
        await _abandon(task, discard)
        raise asyncio.TimeoutError
    return task.result()


async def _abandon(
    task: asyncio.Future[T], discard: Optional[Callable[[T], Awaitable[object]]]
) -> None:
    """Cancel ``task``, wait for it, and hand a result it still produced to ``discard``."""
    task.cancel()
    try:
        await asyncio.wait((task,))
    finally:
        if task.done() and not task.cancelled():
            error = task.exception()  # retrieved: asyncio would log it as never retrieved
            if error is None and discard is not None:
                await discard(task.result())
