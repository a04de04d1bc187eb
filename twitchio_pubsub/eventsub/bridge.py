"""``transport="eventsub"``: tokens, limits, sessions and re-validation for a pool.

The pool stays the one owner of which topic is where; this object holds the EventSub
side's own state (the Helix client and the validated tokens) and answers what the pool
asks of every :class:`~twitchio_pubsub.transport.Transport`: whose token is this (its
user is the topic's *group*: a session serves one user), may it serve that topic, how
much room does a topic take (its subscriptions), how many sessions may a user open.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

import aiohttp

from ..errors import ConnectionFailure, PoolFull, PubSubError
from ..planner import plan_weighted
from ..settings import Settings, _number
from ..topics import Topic
from .helix import Helix, HelixError, TokenInfo, Tokens
from .mapping import FAMILIES, token_problem
from .node import EventSubWebsocket

if TYPE_CHECKING:
    from twitchio import Client

    from ..dispatch import Dispatcher
    from ..transport import Node, NodeOwner

__all__ = (
    "DEFAULT_EVENTSUB_URL",
    "DEFAULT_HELIX_URL",
    "DEFAULT_ID_URL",
    "SESSIONS_PER_USER",
    "SUBSCRIPTIONS_PER_SESSION",
    "EventSubTransport",
)

log = logging.getLogger(__name__)

DEFAULT_EVENTSUB_URL = "wss://eventsub.wss.twitch.tv/ws"
DEFAULT_HELIX_URL = "https://api.twitch.tv/helix"
DEFAULT_ID_URL = "https://id.twitch.tv/oauth2"
#: Twitch's limits per user token: sessions with subscriptions, subscriptions per session.
SESSIONS_PER_USER = 3
SUBSCRIPTIONS_PER_SESSION = 300


def _url(name: str, value: Optional[str], default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name} must be a non-empty URL string")
    return value.strip()


class EventSubTransport:
    """The EventSub transport of a pool (internal; the pool builds it by name)."""

    name = "eventsub"
    title = "EventSub"

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        settings: Settings,
        *,
        eventsub_url: Optional[str],
        helix_url: Optional[str],
        id_url: Optional[str],
        keepalive_timeout: Any,
        keepalive_margin: Any,
        validate_interval: Any,
        tokens_in_use: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.eventsub_url = _url("eventsub_url", eventsub_url, DEFAULT_EVENTSUB_URL)
        self.helix_url = _url("helix_url", helix_url, DEFAULT_HELIX_URL)
        self.id_url = _url("id_url", id_url, DEFAULT_ID_URL)
        if isinstance(keepalive_timeout, bool) or not isinstance(keepalive_timeout, int):
            raise TypeError(
                f"keepalive_timeout must be an int, not {type(keepalive_timeout).__name__}"
            )
        if not 10 <= keepalive_timeout <= 600:
            raise ValueError(f"keepalive_timeout must be from 10 to 600 s, got {keepalive_timeout}")
        self.keepalive_timeout = keepalive_timeout
        self.keepalive_margin = _number("keepalive_margin", keepalive_margin)
        self.validate_interval: Optional[float] = _number("validate_interval", validate_interval)
        self.settings = settings
        self.helix = Helix(
            session,
            self.helix_url,
            self.id_url,
            settings.listen_timeout,
            settings.rng,
            retries=settings.listen_retries,
            backoff_base=settings.backoff_base,
            backoff_cap=settings.backoff_cap,
        )
        self.tokens = Tokens(self.helix)
        #: The pool's topics' tokens (and those a refused refresh falls back to).
        self._tokens_in_use = tokens_in_use
        self._nodes: weakref.WeakSet[EventSubWebsocket] = weakref.WeakSet()
        self._prune_scheduled = False

    @classmethod
    def build(
        cls,
        session: Callable[[], aiohttp.ClientSession],
        settings: Settings,
        options: dict[str, Any],
    ) -> EventSubTransport:
        """The transport for a pool's ``settings`` and EventSub ``options``.

        Raises
        ------
        ValueError
            ``endpoint`` (PubSub's URL) was given.
        """
        if settings.endpoint is not None:
            raise ValueError(
                f"endpoint is the PubSub server's URL; with transport={cls.name!r} give "
                "eventsub_url, helix_url and id_url instead"
            )
        return cls(session, settings, **options)

    def weight(self, topic: Topic) -> int:
        """How many subscriptions ``topic`` takes (0 for a family EventSub lacks)."""
        return len(FAMILIES.get(topic.family, ()))

    def serves(self, topic: Topic) -> bool:
        """Whether EventSub has a counterpart for ``topic``'s family."""
        return topic.family in FAMILIES

    def group_of(self, node: Node) -> Optional[str]:
        """The user whose session ``node`` is."""
        user: Optional[str] = getattr(node, "user_id", None)
        return user

    def capacity(self, nodes: Sequence[Node]) -> int:
        """Subscriptions per session (Twitch: 300)."""
        return nodes[0].max_topics if nodes else SUBSCRIPTIONS_PER_SESSION

    def more_nodes(self, group: Optional[str], in_group: int, in_pool: int) -> int:
        """Twitch allows 3 sessions per user, whatever the other users have."""
        return SESSIONS_PER_USER - in_group

    def plan(
        self, free: Sequence[int], allowed: int, capacity: int, weights: Sequence[int]
    ) -> Optional[list[int]]:
        """:func:`~twitchio_pubsub.planner.plan_weighted`: topics weigh their subscriptions."""
        return plan_weighted(free, allowed, capacity, weights)

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
        """:class:`PoolFull` naming the user, their sessions and Twitch's limit."""
        return PoolFull(
            f"{len(topics)} topic(s) ({sum(weights)} EventSub subscriptions) do not "
            f"fit in user {group}'s sessions: {sum(max(f, 0) for f in free)} free "
            f"on {len(free)} session(s) and room for {max(allowed, 0)} more of "
            f"{capacity} (Twitch allows {SESSIONS_PER_USER} sessions per user)",
            topics=topics,
        )

    def check(self, topics: Iterable[Topic]) -> None:
        """Refuse topics EventSub has nothing for, before anything is sent.

        Raises
        ------
        ValueError
            A topic's family has no EventSub counterpart.
        """
        for topic in topics:
            if not self.serves(topic):
                raise ValueError(
                    f"{topic!r} has no EventSub counterpart; the bridge serves: "
                    + ", ".join(FAMILIES)
                )

    async def authorize(
        self, topics: Sequence[Topic]
    ) -> tuple[list[tuple[Topic, Optional[str]]], list[tuple[Topic, str]]]:
        """Validate the topics' tokens: ``(topic, user id)`` that may go on, and
        ``(topic, reason)`` that may not (invalid token, wrong user, missing scope).

        Raises
        ------
        ConnectionFailure
            The token server could not be asked.
        """
        tokens = list(dict.fromkeys(t.token or "" for t in topics))
        answers = await asyncio.gather(
            *(self.tokens.info(token) for token in tokens), return_exceptions=True
        )
        by_token = dict(zip(tokens, answers))
        ok: list[tuple[Topic, Optional[str]]] = []
        failed: list[tuple[Topic, str]] = []
        for topic in topics:
            info = by_token[topic.token or ""]
            if isinstance(info, HelixError):
                if info.status in (400, 401, 403):
                    failed.append((topic, "the token is invalid or expired"))
                    continue
                raise ConnectionFailure(
                    f"cannot validate the token at {self.id_url}: {info}", topics=[topic]
                )
            if isinstance(info, BaseException):
                raise info
            problem = self.token_problem(topic.present or "", info)
            if problem is None:
                ok.append((topic, self._group(info)))
            else:
                failed.append((topic, problem))
        return ok, failed

    def token_problem(self, key: str, info: TokenInfo) -> Optional[str]:
        """Why a token cannot serve topic ``key`` (missing scope, wrong user), if it cannot."""
        return token_problem(key, info.user_id, sorted(info.scopes))

    def _group(self, info: TokenInfo) -> Optional[str]:
        """The group of a topic whose token is ``info``'s: a session serves one user."""
        return info.user_id

    def new_node(
        self,
        group: Optional[str],
        client: Client,
        pool: Any,
        dispatcher: Dispatcher,
        owner: NodeOwner,
    ) -> EventSubWebsocket:
        """A node (one session) for the topics of user ``group``."""
        if group is None:
            raise ValueError("an EventSub session needs the user it serves")
        node = EventSubWebsocket(
            client,
            pool,
            user_id=group,
            max_topics=SUBSCRIPTIONS_PER_SESSION,
            settings=self.settings,
            dispatcher=dispatcher,
            owner=owner,
            helix=self.helix,
            tokens=self.tokens,
            keepalive=self.keepalive_timeout,
            keepalive_margin=self.keepalive_margin,
            endpoint=self.eventsub_url,
            released=self.tokens_changed,
        )
        self._nodes.add(node)
        return node

    def tokens_changed(self) -> None:
        """Topics changed tokens or left: forget, soon, the tokens nothing needs any more.

        A token is kept while a topic of the pool uses it or a session still needs it to
        delete what it created; a replaced token is then never tried again.
        """
        if not self._prune_scheduled:
            self._prune_scheduled = True
            asyncio.get_running_loop().call_soon(self._prune)

    def _prune(self) -> None:
        self._prune_scheduled = False
        keep = set(self._tokens_in_use())
        for node in list(self._nodes):
            keep.update(node.tokens_needed())
        self.tokens.retain(keep)

    def in_use(self) -> bool:
        """Never: every session is a node's."""
        return False

    def closing(self, delete: bool) -> None:
        """Nothing to keep: a session's subscriptions are deleted when it closes."""

    async def close(self) -> None:
        """End validations still under way (their callers are gone)."""
        await self.tokens.close()

    async def revalidate(self, tokens: Iterable[str]) -> list[str]:
        """Validate ``tokens`` again; the ones that are no longer valid.

        A token the server could not be asked about is kept (asked again next time).
        """
        tokens = list(tokens)
        answers = await asyncio.gather(
            *(self.tokens.info(token, fresh=True) for token in tokens), return_exceptions=True
        )
        lost = []
        for token, answer in zip(tokens, answers):
            if isinstance(answer, HelixError) and answer.status in (400, 401, 403):
                self.tokens.forget(token)
                lost.append(token)
            elif isinstance(answer, BaseException):
                log.warning("re-validating a token failed: %s; trying again later", answer)
        return lost
