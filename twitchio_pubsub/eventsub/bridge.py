"""What a pool needs for ``transport="eventsub"``: tokens, limits, nodes, re-validation.

The pool stays the one owner of which topic is where; this object holds the EventSub
side's own state (the Helix client and the validated tokens) and answers the questions
the pool asks before it places topics: whose token is this, may it serve that topic,
how much room does a topic take.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional

import aiohttp

from ..errors import ConnectionFailure
from ..settings import Settings, _number
from ..topics import Topic
from .helix import Helix, HelixError, Tokens
from .mapping import FAMILIES, token_problem
from .node import EventSubWebsocket

if TYPE_CHECKING:
    from twitchio import Client

    from ..dispatch import Dispatcher
    from ..transport import NodeOwner

__all__ = (
    "DEFAULT_EVENTSUB_URL",
    "DEFAULT_HELIX_URL",
    "DEFAULT_ID_URL",
    "SESSIONS_PER_USER",
    "SUBSCRIPTIONS_PER_SESSION",
    "EventSubBridge",
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


class EventSubBridge:
    """The EventSub half of a pool (internal; the pool creates it)."""

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
        self.validate_interval = _number("validate_interval", validate_interval)
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

    @staticmethod
    def weight(topic: Topic) -> int:
        """How many subscriptions ``topic`` takes."""
        return len(FAMILIES[topic.family])

    @staticmethod
    def check_families(topics: Iterable[Topic]) -> None:
        """Refuse topics EventSub has nothing for, before anything is sent.

        Raises
        ------
        ValueError
            A topic's family has no EventSub counterpart.
        """
        for topic in topics:
            if topic.family not in FAMILIES:
                raise ValueError(
                    f"{topic!r} has no EventSub counterpart; the bridge serves: "
                    + ", ".join(FAMILIES)
                )

    async def authorize(
        self, topics: list[Topic]
    ) -> tuple[list[tuple[Topic, str]], list[tuple[Topic, str]]]:
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
        ok: list[tuple[Topic, str]] = []
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
            problem = token_problem(topic.present or "", info.user_id, sorted(info.scopes))
            if problem is None:
                ok.append((topic, info.user_id))
            else:
                failed.append((topic, problem))
        return ok, failed

    def new_node(
        self,
        client: Client,
        pool: Any,
        user_id: str,
        dispatcher: Dispatcher,
        owner: NodeOwner,
    ) -> EventSubWebsocket:
        """A node (one session) for ``user_id``'s topics."""
        return EventSubWebsocket(
            client,
            pool,
            user_id=user_id,
            max_topics=SUBSCRIPTIONS_PER_SESSION,
            settings=self.settings,
            dispatcher=dispatcher,
            owner=owner,
            helix=self.helix,
            tokens=self.tokens,
            keepalive=self.keepalive_timeout,
            keepalive_margin=self.keepalive_margin,
            endpoint=self.eventsub_url,
        )

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
