"""The EventSub emulator's Helix side: tokens and ``/oauth2/validate``, the subscription
API with Twitch's rules and limits, per-client rate buckets, and Helix faults."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import Iterable
from typing import Any, Optional

from aiohttp import web

from ...eventsub.types import SHARD_DISABLED, SUBSCRIPTION_TYPES, SubscriptionType, missing_scopes
from .. import eventsub_payloads as payloads
from .._base import MAX_FAULTS, Handler
from .records import (
    _DIFFERENT_USERS,
    _ERRORS,
    _PAGE,
    GARBAGE_BODY,
    HELIX_CALLS,
    MAX_RATE_BUCKETS,
    EventSubToken,
    _Fault,
    _HelixCall,
    _HelixFault,
    _now_ns,
)
from .state import State

__all__ = ("HelixMixin",)

log = logging.getLogger("twitchio_pubsub.emulator.eventsub")


class HelixMixin(State):
    """Tokens and the Helix API of :class:`~twitchio_pubsub.emulator.EventSubEmulator`."""

    def add_token(
        self,
        token: str,
        user_id: Optional[str | int],
        *,
        scopes: Iterable[str] = (),
        client_id: str = "emulator-client-id",
        login: Optional[str] = None,
        expires_in: Optional[float] = None,
    ) -> None:
        """Register a user access token; Helix and ``/validate`` refuse unknown tokens (401).

        Parameters
        ----------
        token: :class:`str`
            The token, without ``oauth:``.
        user_id: Optional[Union[:class:`str`, :class:`int`]]
            Its user; ``None`` registers an app access token (refused for WebSockets).
        scopes: Iterable[:class:`str`]
            Its scopes.
        client_id: :class:`str`
            The client id that issued it; Helix requests must send it as ``Client-Id``.
        login: Optional[:class:`str`]
            Its user's login (``user<user_id>`` by default).
        expires_in: Optional[:class:`float`]
            Seconds until it expires; ``None`` never.
        """
        if not isinstance(token, str) or not token:
            raise TypeError("token must be a non-empty str")
        if isinstance(scopes, str):
            raise TypeError("scopes must be an iterable of scope names, not one str")
        if expires_in is not None and not (math.isfinite(expires_in) and expires_in >= 0):
            raise ValueError("expires_in must be finite and not negative")
        uid = None if user_id is None else str(user_id)
        self._tokens[token] = EventSubToken(
            token=token,
            user_id=uid,
            login=login or (f"user{uid}" if uid else ""),
            client_id=client_id,
            scopes=frozenset(scopes),
            expires_at=None if expires_in is None else time.monotonic() + expires_in,
        )
        self._granted(self._tokens[token])
        log.info("registered a token of user %s with %d scope(s)", uid, len(set(scopes)))

    def _granted(self, token: EventSubToken) -> None:
        """A user token was issued: its user authorized its client with its scopes."""

    def _create_on_conduit(
        self,
        token: EventSubToken,
        spec: SubscriptionType,
        condition: dict[str, str],
        transport: dict[str, Any],
    ) -> tuple[int, str, dict[str, Any]]:
        return 400, "transport.method must be websocket", {}

    async def expire_token(self, token: str) -> None:
        """Make ``token`` expired from now on (``/validate`` and Helix answer 401)."""
        self._token(token).expires_at = time.monotonic()

    async def invalidate_token(self, token: str, valid: bool = False) -> None:
        """Make ``token`` invalid (or, with ``valid=True``, valid again)."""
        self._token(token).valid = valid

    def _token(self, token: str) -> EventSubToken:
        try:
            return self._tokens[token]
        except KeyError:
            raise ValueError("no such token is registered") from None

    async def fail_next_helix(
        self, status: int, count: int = 1, *, reset_after: float = 1.0
    ) -> None:
        """Answer the next ``count`` Helix subscription requests with ``status``.

        ``429`` carries ``Ratelimit-Remaining: 0`` and a ``Ratelimit-Reset``
        ``reset_after`` seconds ahead; ``500`` and ``503`` are server errors.
        """
        if status not in (429, 500, 502, 503, 504):
            raise ValueError("status must be 429, 500, 502, 503 or 504")
        if not (math.isfinite(reset_after) and 0 <= reset_after <= 3600):
            raise ValueError("reset_after must be from 0 to 3600 seconds")
        self._queue_faults(count, _Fault(None, status=status, reset_after=reset_after))
        log.info("the next %d Helix call(s) will get %d", count, status)

    async def slow_next_helix(
        self, seconds: float, count: int = 1, *, call: Optional[str] = None
    ) -> None:
        """Hold back the answers to the next ``count`` Helix requests by ``seconds``.

        The request is carried out after the delay. ``call`` picks the route
        (``"create"``, ``"list"``, ``"delete"`` or ``"validate"``); ``None`` means any
        subscription call. A delay longer than the test is a server that never answers:
        it ends when the emulator closes.
        """
        if not (math.isfinite(seconds) and 0 <= seconds <= 86_400):
            raise ValueError("seconds must be from 0 to 86400")
        self._queue_faults(count, _Fault(self._call_name(call), delay=float(seconds)))

    async def garbage_next_helix(self, count: int = 1, *, call: Optional[str] = None) -> None:
        """Answer the next ``count`` Helix requests with ``200`` and a useless JSON body.

        The request is carried out first (a create creates, a delete deletes), as when a
        proxy or a broken server mangles the answer on its way back. ``call`` as in
        :meth:`slow_next_helix`.
        """
        self._queue_faults(count, _Fault(self._call_name(call), garbage=True))

    @staticmethod
    def _call_name(call: Optional[str]) -> Optional[str]:
        if call is not None and call not in HELIX_CALLS:
            raise ValueError(f"call must be one of {', '.join(HELIX_CALLS)} or None")
        return call

    def _queue_faults(self, count: int, fault: _Fault) -> None:
        if count < 0 or len(self._helix_faults) + count > MAX_FAULTS:
            raise ValueError(f"count must be from 0 to {MAX_FAULTS} faults in all")
        self._helix_faults.extend(dataclasses.replace(fault) for _ in range(count))

    def _take_fault(self, call: str) -> Optional[_Fault]:
        for index, fault in enumerate(self._helix_faults):
            if fault.applies(call):
                return self._helix_faults.pop(index)
        return None

    def _helix_error(
        self, status: int, message: str, headers: Optional[dict[str, str]] = None
    ) -> web.Response:
        body = {"error": _ERRORS.get(status, "Error"), "status": status, "message": message}
        return web.json_response(body, status=status, headers=headers)

    def _rate_headers(self, client_id: str) -> tuple[dict[str, str], bool]:
        """The rate-limit headers of a call, and whether the bucket was already empty.

        Only authenticated client ids get a bucket, and expired buckets are dropped once
        there are many: nothing a request makes up is kept.
        """
        now = time.time()
        if client_id not in self._rate and len(self._rate) >= MAX_RATE_BUCKETS:
            self._rate = {k: v for k, v in self._rate.items() if v[0] > now}
        window = self.rate_window
        reset, remaining = self._rate.get(client_id, (now + window, self.rate_limit))
        if now >= reset:
            reset, remaining = now + window, self.rate_limit
        empty = remaining <= 0
        remaining = max(0, remaining - 1)
        self._rate[client_id] = (reset, remaining)
        headers = {
            "Ratelimit-Limit": str(self.rate_limit),
            "Ratelimit-Remaining": str(remaining),
            "Ratelimit-Reset": str(math.ceil(reset)),
        }
        return headers, empty

    def _authorize(
        self, request: web.Request
    ) -> tuple[Optional[EventSubToken], Optional[str], dict[str, str]]:
        """The token, an error message (401) and the rate-limit headers of a Helix call.

        The token is checked before the rate limit: a request that is not authenticated
        touches no bucket.
        """
        client_id = request.headers.get("Client-Id", "")
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if not client_id:
            return None, "Client-Id header required", {}
        if token is None or not token.usable():
            return None, "Invalid OAuth token", {}
        if token.client_id != client_id:
            return None, "Client ID and OAuth token do not match", {}
        headers, empty = self._rate_headers(client_id)
        if empty:
            raise _HelixFault(429, headers, "too many requests: the rate limit is used up")
        return token, None, headers

    def _stop_signal(self) -> asyncio.Future[None]:
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_future()
        return self._stopping

    async def _fault_before(
        self, request: web.Request, call: str
    ) -> tuple[Optional[web.StreamResponse], Optional[_Fault]]:
        """Guard a Helix or OAuth route (loopback Host) and apply the next queued fault.

        Returns an answer to give instead of the call's, and the fault taken, if any.
        """
        refusal = self._refuse_host(request)
        if refusal is not None:
            return refusal, None
        fault = self._take_fault(call)
        if fault is None:
            return None, None
        if fault.delay:
            await asyncio.wait((self._stop_signal(),), timeout=fault.delay)
        if fault.status:
            headers: dict[str, str] = {}
            if fault.status == 429:
                headers["Ratelimit-Remaining"] = "0"
                headers["Ratelimit-Reset"] = str(math.ceil(time.time() + fault.reset_after))
            return _HelixFault(fault.status, headers).response(self), fault
        return None, fault

    @staticmethod
    def _garbage(answer: web.StreamResponse, fault: Optional[_Fault]) -> web.StreamResponse:
        if fault is None or not fault.garbage:
            return answer
        return web.Response(status=200, text=GARBAGE_BODY, content_type="application/json")

    def _helix(self, call_name: str, call: _HelixCall) -> Handler:
        """A route handler: guard, apply a fault, authorize, then ``call``."""

        async def handler(request: web.Request) -> web.StreamResponse:
            self.helix_requests += 1
            answer, fault = await self._fault_before(request, call_name)
            if answer is not None:
                return answer
            try:
                token, error, headers = self._authorize(request)
            except _HelixFault as limited:
                return limited.response(self)
            if token is None:
                return self._helix_error(401, error or "Invalid OAuth token", headers)
            return self._garbage(await call(request, token, headers), fault)

        return handler

    async def _h_create(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> web.Response:
        try:
            body = json.loads(await request.text()) if request.can_read_body else None
        except ValueError:
            body = None
        if request.content_type != "application/json" or not isinstance(body, dict):
            return self._helix_error(400, "the body must be a JSON object", headers)
        status, message, data = self._create(token, body)
        if status != 202:
            return self._helix_error(status, message, headers)
        return web.json_response(data, status=202, headers=headers)

    def _create(
        self, token: EventSubToken, body: dict[str, Any]
    ) -> tuple[int, str, dict[str, Any]]:
        pair = (str(body.get("type")), str(body.get("version")))
        spec = SUBSCRIPTION_TYPES.get(pair)
        if pair == (SHARD_DISABLED.type, SHARD_DISABLED.version):
            spec = SHARD_DISABLED
        if spec is None or not isinstance(body.get("version"), str):
            return 400, "The combination of values in the type and version fields is not valid", {}
        condition = body.get("condition")
        if not isinstance(condition, dict) or any(
            not isinstance(condition.get(k), str) or not condition[k] for k in spec.condition
        ):
            need = ", ".join(spec.condition)
            return 400, f"condition must have the string fields {need}", {}
        extra = set(condition) - set(spec.condition) - set(spec.optional)
        if extra:
            return 400, f"condition has unknown fields: {', '.join(sorted(extra))}", {}
        transport = body.get("transport")
        if isinstance(transport, dict) and transport.get("method") == "conduit":
            return self._create_on_conduit(token, spec, condition, transport)
        if spec is SHARD_DISABLED:
            return 400, "conduit.shard.disabled is not available for websocket", {}
        if not isinstance(transport, dict) or transport.get("method") != "websocket":
            return 400, "transport.method must be websocket", {}
        session = self._sessions.get(str(transport.get("session_id")))
        if session is None or session.status != "connected" or session.ws.closed:
            return 400, "websocket transport session does not exist or has already disconnected", {}
        if token.user_id is None:
            return 401, "an app access token cannot create websocket subscriptions", {}
        missing = missing_scopes(spec, token.scopes)
        if missing:
            return 403, f"subscription missing proper authorization: missing scope {missing[0]}", {}
        if spec.token_user is not None and condition[spec.token_user] != token.user_id:
            return (
                403,
                (
                    f"subscription missing proper authorization: {spec.token_user} "
                    "must be the token's user"
                ),
                {},
            )
        owner = (token.user_id, token.client_id)
        if (
            session.owner is not None
            and session.owner != owner
            and self.enabled(session.session_id)
        ):
            return 400, _DIFFERENT_USERS, {}
        mine = [s for s in self.enabled() if (s["_user_id"], s["_client_id"]) == owner]
        key = (spec.type, tuple(sorted(condition.items())))
        if any((s["type"], tuple(sorted(s["condition"].items()))) == key for s in mine):
            return 409, "subscription already exists", {}
        if len(self.enabled(session.session_id)) >= self.max_subscriptions:
            return 429, "websocket transport has the maximum number of subscriptions", {}
        sessions = {s["transport"]["session_id"] for s in mine}
        if session.session_id not in sessions and len(sessions) >= self.max_sessions:
            return 429, "number of websocket transports limit exceeded", {}
        cost = 0 if token.user_id in condition.values() else 1
        total = sum(s["cost"] for s in mine)
        if total + cost > self.max_total_cost:
            return 429, "total cost exceeded", {}
        transport_record = {
            "method": "websocket",
            "session_id": session.session_id,
            "connected_at": session.connected_at,
        }
        sub = self._record(spec, condition, transport_record, cost, token)
        session.owner, session.used = owner, True
        log.info("session %s: created %s v%s", session.session_id, spec.type, spec.version)
        data = {
            "data": [self._public(sub)],
            "total": len(mine) + 1,
            "total_cost": total + cost,
            "max_total_cost": self.max_total_cost,
        }
        return 202, "", data

    def _record(
        self,
        spec: SubscriptionType,
        condition: dict[str, str],
        transport: dict[str, Any],
        cost: int,
        token: EventSubToken,
    ) -> dict[str, Any]:
        """A new enabled subscription, stored (``_``-fields are the emulator's own)."""
        sub: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "status": "enabled",
            "type": spec.type,
            "version": spec.version,
            "condition": dict(condition),
            "created_at": payloads.rfc3339(_now_ns()),
            "transport": transport,
            "cost": cost,
            "_user_id": token.user_id,
            "_client_id": token.client_id,
            "_token": token.token,
        }
        self.subscriptions[sub["id"]] = sub
        self._changed.set()
        return sub

    async def _h_list(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> web.Response:
        query = request.query
        filters = [k for k in ("status", "type", "user_id", "subscription_id") if k in query]
        conduit_id = query.get("conduit_id")
        if len(filters) > 1:
            return self._helix_error(400, "use at most one of status, type and user_id", headers)
        subs = [
            s
            for s in self.subscriptions.values()
            if s["_client_id"] == token.client_id and s["_user_id"] == token.user_id
        ]
        if conduit_id is not None:
            subs = [s for s in subs if s["transport"].get("conduit_id") == conduit_id]
        if "status" in query:
            subs = [s for s in subs if s["status"] == query["status"]]
        elif "type" in query:
            subs = [s for s in subs if s["type"] == query["type"]]
        elif "user_id" in query:
            subs = [s for s in subs if query["user_id"] in s["condition"].values()]
        elif "subscription_id" in query:
            subs = [s for s in subs if s["id"] == query["subscription_id"]]
        try:
            start = int(query.get("after", "0"))
        except ValueError:
            return self._helix_error(400, "invalid cursor", headers)
        page = subs[start : start + _PAGE]
        enabled = [s for s in subs if s["status"] == "enabled"]
        body = {
            "data": [self._public(s) for s in page],
            "total": len(subs),
            "total_cost": sum(s["cost"] for s in enabled),
            "max_total_cost": self.max_total_cost,
            "pagination": {"cursor": str(start + _PAGE)} if start + _PAGE < len(subs) else {},
        }
        return web.json_response(body, headers=headers)

    async def _h_delete(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> web.Response:
        sub_id = request.query.get("id")
        if not sub_id:
            return self._helix_error(400, "missing required parameter id", headers)
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub["_client_id"] != token.client_id or sub["_user_id"] != token.user_id:
            return self._helix_error(404, "subscription not found", headers)
        del self.subscriptions[sub_id]
        self._changed.set()
        return web.Response(status=204, headers=headers)

    async def _h_validate(self, request: web.Request) -> web.StreamResponse:
        answer, fault = await self._fault_before(request, "validate")
        if answer is not None:
            return answer
        return self._garbage(self._validate(request), fault)

    def _validate(self, request: web.Request) -> web.Response:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self._tokens.get(value.strip()) if scheme.lower() in ("oauth", "bearer") else None
        if token is None or not token.usable():
            return web.json_response({"status": 401, "message": "invalid access token"}, status=401)
        body: dict[str, Any] = {
            "client_id": token.client_id,
            "scopes": sorted(token.scopes),
            "expires_in": (
                0
                if token.expires_at is None
                else max(0, math.floor(token.expires_at - time.monotonic()))
            ),
        }
        if token.user_id is not None:
            body.update(login=token.login, user_id=token.user_id)
        return web.json_response(body)
