"""The few Helix calls the EventSub bridge makes: validate a token, create, find and delete
subscriptions. Rate limits are shared per client id; tokens never reach a log line."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

import aiohttp

from .mapping import Part

__all__ = ("Helix", "HelixError", "MalformedAnswer", "TokenInfo", "Tokens")

log = logging.getLogger(__name__)

#: How often a 429 answer is retried (each after its ``Ratelimit-Reset``).
RATE_LIMIT_RETRIES = 4
#: The longest wait for a ``Ratelimit-Reset`` in the future.
MAX_RESET_WAIT = 60.0
#: When a window ended and no answer told the next one's end yet: look again after this.
NEXT_WINDOW_GUESS = 1.0
#: Requests one Helix client has in flight at once (the pool's connector has no limit of
#: its own: its sockets would hold every connection).
MAX_IN_FLIGHT = 50


class HelixError(Exception):
    """A Helix call failed.

    Attributes
    ----------
    status: :class:`int`
        The HTTP status (``0`` when the server could not be reached).
    message: :class:`str`
        The server's ``message`` or a description of the failure.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


class MalformedAnswer(HelixError):
    """A Helix or OAuth call succeeded (2xx) but its answer is not what the API returns.

    A server fault (status ``502``), never a verdict on the token: a create may have
    been carried out all the same.
    """

    def __init__(self, url: str) -> None:
        super().__init__(502, f"malformed answer from {url}")


#: What a parser of an answer raises when the answer does not have the API's shape.
_SHAPE_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError)


@dataclass(frozen=True)
class TokenInfo:
    """What ``/oauth2/validate`` said about a token.

    Attributes
    ----------
    user_id: :class:`str`
    login: :class:`str`
    client_id: :class:`str`
    scopes: FrozenSet[:class:`str`]
    expires_in: :class:`int`
        Seconds left when it was validated (``0``: does not expire).
    """

    user_id: str
    login: str
    client_id: str
    scopes: frozenset[str]
    expires_in: int


def _header_number(value: Optional[str]) -> Optional[float]:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


class _RateBucket:
    """One client id's Helix rate limit as this process knows it: the requests left in
    the window and when the window ends, from the answers' ``Ratelimit-*`` headers.

    Requests take a slot before they are sent and wait for the window's end when none
    is left, so a burst (10,000 creates) goes out at the pace Twitch allows instead of
    as a herd that is told 429 at every reset. Other processes of the same app use the
    same bucket on Twitch's side: the server's count, when lower, wins.
    """

    __slots__ = ("_guessed", "_probe", "known", "limit", "remaining", "reset")

    def __init__(self) -> None:
        self.limit: Optional[int] = None
        self.remaining: Optional[int] = None
        self.reset = 0.0
        #: An answer came back (with or without rate-limit headers).
        self.known = False
        #: The window was refilled before any answer said when the new one ends.
        self._guessed = False
        #: The first request, whose answer tells the limit; the others wait for it.
        self._probe: Optional[asyncio.Future[None]] = None

    async def acquire(self) -> bool:
        """Wait until a request may be sent, and take its slot; whether it is the first
        request, whose answer the others wait for (then :meth:`answered` must follow)."""
        while not self.known:
            if self._probe is None:
                self._probe = asyncio.get_running_loop().create_future()
                return True  # this request finds out the limit for the others
            await asyncio.wait((self._probe,))
        while True:
            wait = self.wait(time.time())
            if wait <= 0:
                return False
            await asyncio.sleep(min(wait, MAX_RESET_WAIT))

    def answered(self) -> None:
        """A request ended (answered or not): a waiting first answer is not awaited longer."""
        probe, self._probe = self._probe, None
        if probe is not None and not probe.done():
            probe.set_result(None)

    def wait(self, now: float) -> float:
        """Seconds to wait before a request may be sent; ``0`` and the slot is taken."""
        if self.remaining is not None and self.remaining <= 0:
            if now < self.reset:
                return self.reset - now
            # The window is over: a new one, of which only its size is known so far.
            self.remaining, self.reset, self._guessed = self.limit, now + NEXT_WINDOW_GUESS, True
        if self.remaining is not None:
            self.remaining -= 1
        return 0.0

    def update(self, limit: Optional[str], remaining: Optional[str], reset: Optional[str]) -> None:
        """An answer's headers."""
        self.known = True
        size, left, ends = _header_number(limit), _header_number(remaining), _header_number(reset)
        if size is not None and size > 0:
            self.limit = int(size)
        if left is None or ends is None:
            return
        if self.limit is not None:
            left = min(left, self.limit)  # a count above the window's size is not believed
        left = max(left, 0)
        ends = min(ends, time.time() + MAX_RESET_WAIT)
        if ends < self.reset - 0.5:
            return  # a late answer from a window that is already over
        newer = ends > self.reset + 0.5
        if newer:
            self.reset = ends
        if self.remaining is None or (newer and not self._guessed):
            self.remaining = int(left)
        else:
            self.remaining = min(self.remaining, int(left))
        if newer:
            self._guessed = False

    def exhausted(self, reset: Optional[str]) -> None:
        """A 429: nothing is left until the window's end (a second from now if unsaid)."""
        ends = _header_number(reset)
        now = time.time()
        until = ends if ends is not None else now + 1.0
        self.remaining = 0
        self.reset = max(self.reset, min(until, now + MAX_RESET_WAIT))


class Helix:
    """Helix and OAuth calls over the pool's HTTP session.

    Parameters
    ----------
    session: Callable[[], :class:`aiohttp.ClientSession`]
        Gives the session to use (the pool's).
    helix_url, id_url: :class:`str`
        Base URLs, e.g. ``https://api.twitch.tv/helix`` and ``https://id.twitch.tv/oauth2``.
    timeout: :class:`float`
        Seconds one request may take.
    rng: Optional[:class:`random.Random`]
        Jitter for retries after 5xx answers.
    retries: :class:`int`
        How often a 5xx answer or a failed request is retried.
    backoff_base, backoff_cap: :class:`float`
        The first retry delay's ceiling (doubling each time) and the longest delay.
    """

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        helix_url: str,
        id_url: str,
        timeout: float,
        rng: Optional[random.Random] = None,
        *,
        retries: int = 2,
        backoff_base: float = 0.25,
        backoff_cap: float = 8.0,
    ) -> None:
        self._session = session
        self._helix = helix_url.rstrip("/")
        self._id = id_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._rng = rng or random.Random()
        self._retries = retries
        self._backoff = (backoff_base, backoff_cap)
        #: Per client id: its rate limit as the answers told it.
        self._buckets: dict[str, _RateBucket] = {}
        #: Calls made, for tests and benchmarks.
        self.calls = 0
        #: Per rate bucket (``None``: calls without one): requests in flight at once.
        self._in_flight: dict[Optional[str], asyncio.Semaphore] = {}

    async def validate(self, token: str) -> TokenInfo:
        """Validate ``token`` at ``{id_url}/validate``.

        Raises
        ------
        HelixError
            401 for an invalid or expired token (or an app token, which has no user);
            another status or 0 when the server failed.
        """
        info: TokenInfo = await self._call(
            "GET",
            f"{self._id}/validate",
            {"Authorization": f"OAuth {token}"},
            None,
            None,
            parse=_token_info,
        )
        return info

    def _headers(self, token: str, info: TokenInfo) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Client-Id": info.client_id}

    async def create(
        self,
        token: str,
        info: TokenInfo,
        part: Part,
        session_id: str,
        *,
        conduit_id: Optional[str] = None,
    ) -> str:
        """Create ``part`` on ``session_id`` (or conduit ``conduit_id``); returns its id.

        Raises
        ------
        HelixError
            The server refused it (400, 401, 403, 409, 429 after retries, 5xx).
        """
        sub_id: str = await self._call(
            "POST",
            f"{self._helix}/eventsub/subscriptions",
            self._headers(token, info),
            part.body(session_id, conduit_id=conduit_id),
            info.client_id,
            parse=_created_id,
            idempotent=False,
        )
        return sub_id

    async def find(
        self, token: str, info: TokenInfo, part: Part, *, conduit_id: Optional[str] = None
    ) -> Optional[dict[str, Any]]:
        """The enabled subscription of ``part``'s type and condition (on conduit
        ``conduit_id``, when given), if one exists."""
        cursor: Optional[str] = None
        condition = dict(part.condition)
        for _ in range(100):  # at most 10,000 subscriptions: far beyond Twitch's limits
            query = {"type": part.type}
            if cursor:
                query["after"] = cursor
            data, cursor = await self._call(
                "GET",
                f"{self._helix}/eventsub/subscriptions",
                self._headers(token, info),
                None,
                info.client_id,
                query,
                parse=_page,
            )
            for item in data:
                if item.get("condition") != condition or item.get("status") != "enabled":
                    continue
                transport = item.get("transport")
                if conduit_id is not None and (
                    not isinstance(transport, dict) or transport.get("conduit_id") != conduit_id
                ):
                    continue
                return dict(item)
            if not cursor:
                return None
        return None

    async def delete(self, token: str, info: TokenInfo, subscription_id: str) -> None:
        """Delete a subscription; one already gone (404) counts as deleted."""
        try:
            await self._call(
                "DELETE",
                f"{self._helix}/eventsub/subscriptions",
                self._headers(token, info),
                None,
                info.client_id,
                {"id": subscription_id},
            )
        except HelixError as exc:
            if exc.status != 404:
                raise

    # ------------------------------------------------------------------ conduits (app token)

    async def conduits(self, token: str, info: TokenInfo) -> list[dict[str, Any]]:
        """*Get Conduits*: the client's conduits, ``{"id", "shard_count"}`` each."""
        data: list[dict[str, Any]] = await self._call(
            "GET",
            f"{self._helix}/eventsub/conduits",
            self._headers(token, info),
            None,
            info.client_id,
            parse=_conduits,
        )
        return data

    async def create_conduit(self, token: str, info: TokenInfo, shard_count: int) -> dict[str, Any]:
        """*Create Conduit* with ``shard_count`` shards (not retried: it is not idempotent)."""
        created: list[dict[str, Any]] = await self._call(
            "POST",
            f"{self._helix}/eventsub/conduits",
            self._headers(token, info),
            {"shard_count": shard_count},
            info.client_id,
            parse=_conduits,
            idempotent=False,
        )
        return created[0]

    async def update_conduit(
        self, token: str, info: TokenInfo, conduit_id: str, shard_count: int
    ) -> dict[str, Any]:
        """*Update Conduit*: set its shard count."""
        updated: list[dict[str, Any]] = await self._call(
            "PATCH",
            f"{self._helix}/eventsub/conduits",
            self._headers(token, info),
            {"id": conduit_id, "shard_count": shard_count},
            info.client_id,
            parse=_conduits,
        )
        return updated[0]

    async def delete_conduit(self, token: str, info: TokenInfo, conduit_id: str) -> None:
        """*Delete Conduit*; one already gone (404) counts as deleted."""
        try:
            await self._call(
                "DELETE",
                f"{self._helix}/eventsub/conduits",
                self._headers(token, info),
                None,
                info.client_id,
                {"id": conduit_id},
            )
        except HelixError as exc:
            if exc.status != 404:
                raise

    async def shards(
        self, token: str, info: TokenInfo, conduit_id: str, status: Optional[str] = None
    ) -> list[dict[str, Any]]:
        """*Get Conduit Shards*, every page."""
        found: list[dict[str, Any]] = []
        cursor: Optional[str] = None
        for _ in range(1000):  # 20,000 shards at 100 a page, with room to spare
            query = {"conduit_id": conduit_id}
            if status:
                query["status"] = status
            if cursor:
                query["after"] = cursor
            data, cursor = await self._call(
                "GET",
                f"{self._helix}/eventsub/conduits/shards",
                self._headers(token, info),
                None,
                info.client_id,
                query,
                parse=_page,
            )
            found.extend(data)
            if not cursor:
                break
        return found

    async def assign(
        self, token: str, info: TokenInfo, conduit_id: str, sessions: Mapping[str, str]
    ) -> dict[str, str]:
        """*Update Conduit Shards*: point each shard id at its WebSocket session.

        Returns the shards Twitch refused, ``{shard id: message}`` (the answer is 202
        even then).
        """
        body = {
            "conduit_id": conduit_id,
            "shards": [
                {"id": shard, "transport": {"method": "websocket", "session_id": session}}
                for shard, session in sessions.items()
            ],
        }
        errors: dict[str, str] = await self._call(
            "PATCH",
            f"{self._helix}/eventsub/conduits/shards",
            self._headers(token, info),
            body,
            info.client_id,
            parse=_shard_errors,
        )
        return errors

    async def _call(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json_body: Optional[dict[str, Any]],
        bucket: Optional[str],
        query: Optional[Mapping[str, str]] = None,
        *,
        parse: Optional[Callable[[Any], Any]] = None,
        idempotent: bool = True,
    ) -> Any:
        """Make one call, retrying 429 (after its reset), 5xx and network failures.

        ``parse`` turns a 2xx answer's body into the result; an answer it cannot read is
        :class:`MalformedAnswer`, retried like a 5xx unless the call is not
        ``idempotent``: a create that was carried out is not sent again (the caller looks
        for what it created). A 5xx create is retried: Twitch answers a repeat with 409.
        """
        attempt = 0
        rate = None if bucket is None else self._buckets.setdefault(bucket, _RateBucket())
        while True:
            slots = self._in_flight.get(bucket)
            if slots is None:
                slots = self._in_flight[bucket] = asyncio.Semaphore(MAX_IN_FLIGHT)
            probe = False
            try:
                # The rate slot is taken by a request that goes out at once: one taken
                # while waiting for a connection could be sent in the next window.
                async with slots:
                    if rate is not None:
                        probe = await rate.acquire()
                    self.calls += 1
                    async with self._session().request(
                        method,
                        url,
                        headers=headers,
                        json=json_body,
                        params=query,
                        timeout=self._timeout,
                    ) as resp:
                        status = resp.status
                        try:
                            body = await resp.json(content_type=None) if status != 204 else None
                        except ValueError:
                            body = None
                        reset = resp.headers.get("Ratelimit-Reset")
                        if rate is not None:
                            rate.update(
                                resp.headers.get("Ratelimit-Limit"),
                                resp.headers.get("Ratelimit-Remaining"),
                                reset,
                            )
            except asyncio.TimeoutError:
                status, body, reset = 0, None, None
                message = "the request timed out"
            except aiohttp.ClientError as exc:
                status, body, reset = 0, None, None
                message = f"cannot reach {url.split('?')[0]}: {type(exc).__name__}"
            else:
                message = ""
            finally:
                if probe and rate is not None:
                    rate.answered()
            if 200 <= status < 300:
                if parse is None:
                    return body
                try:
                    return parse(body)
                except _SHAPE_ERRORS:
                    if not idempotent or attempt >= self._retries:
                        raise MalformedAnswer(url.split("?")[0]) from None
                    status, message = 502, "malformed answer"
            if isinstance(body, dict):
                message = str(body.get("message") or body.get("error") or message)
            limit = RATE_LIMIT_RETRIES if status == 429 else self._retries
            retry = status == 429 or status == 0 or status >= 500
            if not retry or attempt >= limit:
                raise HelixError(status, message or f"{method} failed")
            attempt += 1
            if status == 429 and rate is not None:
                rate.exhausted(reset)
                log.info("Helix rate limit reached; waiting for its reset")
            else:
                base, cap = self._backoff
                delay = min(base * 2 ** (attempt - 1), cap) * self._rng.uniform(0.5, 1.0)
                log.info("Helix %s answered %s; retrying in %.2f s", method, status, delay)
                await asyncio.sleep(delay)


def _token_info(body: Any) -> TokenInfo:
    """``/validate``'s answer. An app token (no user) is refused, as 401; an answer without
    a client id or scopes is malformed."""
    client_id, scopes = body["client_id"], body["scopes"]
    if not isinstance(client_id, str) or not isinstance(scopes, list):
        raise ValueError("not a validate answer")
    if not all(isinstance(scope, str) for scope in scopes):
        raise ValueError("scopes must be strings")
    user_id = body.get("user_id")
    if user_id is None:
        raise HelixError(401, "not a user access token")
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
    expires_in = body.get("expires_in") or 0
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise ValueError("expires_in must be an integer")
    return TokenInfo(
        user_id=user_id,
        login=str(body.get("login") or ""),
        client_id=client_id,
        scopes=frozenset(scopes),
        expires_in=expires_in,
    )


def _created_id(body: Any) -> str:
    sub_id = body["data"][0]["id"]
    if not isinstance(sub_id, str) or not sub_id:
        raise ValueError("no subscription id")
    return sub_id


def _conduits(body: Any) -> list[dict[str, Any]]:
    data = body["data"]
    if not isinstance(data, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("id"), str)
        and isinstance(c.get("shard_count"), int)
        for c in data
    ):
        raise ValueError("data must be a list of conduits")
    return [dict(c) for c in data]


def _shard_errors(body: Any) -> dict[str, str]:
    errors = body.get("errors") or []
    if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
        raise ValueError("errors must be a list of objects")
    return {str(e.get("id")): str(e.get("message") or e.get("code") or "refused") for e in errors}


def _page(body: Any) -> tuple[list[dict[str, Any]], Optional[str]]:
    """One page of *Get EventSub Subscriptions*: its items and the next cursor."""
    data, pagination = body["data"], body.get("pagination") or {}
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError("data must be a list of objects")
    cursor = pagination.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise ValueError("the cursor must be a string")
    return data, cursor or None


class Tokens:
    """Validated tokens, each validated once however many callers ask at the same time."""

    def __init__(self, helix: Helix) -> None:
        self._helix = helix
        self._known: dict[str, TokenInfo] = {}
        self._pending: dict[str, asyncio.Future[TokenInfo]] = {}

    def known(self, token: Optional[str]) -> Optional[TokenInfo]:
        """The cached answer for ``token``, if it was validated."""
        return self._known.get(token or "")

    def of_user(self, user_id: str) -> list[str]:
        """The validated tokens of ``user_id``, newest first."""
        return [t for t, info in reversed(self._known.items()) if info.user_id == user_id]

    def forget(self, token: str) -> None:
        """Drop ``token`` from the cache (it failed, or nothing uses it any more)."""
        self._known.pop(token, None)

    def retain(self, keep: Collection[str]) -> None:
        """Forget every validated token not in ``keep`` (a replaced token, say)."""
        for token in [t for t in self._known if t not in keep]:
            del self._known[token]

    def __len__(self) -> int:
        return len(self._known)

    async def close(self) -> None:
        """Cancel the validations under way and wait for them."""
        pending = list(self._pending.values())
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.wait(pending)

    def _settled(self, token: str, done: asyncio.Future[TokenInfo]) -> None:
        self._pending.pop(token, None)
        if not done.cancelled():
            done.exception()  # retrieved here, so a caller that left does not warn

    async def info(self, token: str, *, fresh: bool = False) -> TokenInfo:
        """Validate ``token`` (or return the cached answer unless ``fresh``).

        Raises
        ------
        HelixError
            It is invalid (401) or the server could not say.
        """
        if not fresh and token in self._known:
            return self._known[token]
        pending = self._pending.get(token)
        if pending is None:
            pending = asyncio.ensure_future(self._helix.validate(token))
            self._pending[token] = pending
            pending.add_done_callback(lambda done: self._settled(token, done))
        info = await asyncio.shield(pending)
        self._known[token] = info
        return info
