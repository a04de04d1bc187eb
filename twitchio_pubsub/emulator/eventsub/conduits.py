"""The EventSub emulator's conduits: Helix's conduit and shard API, conduit subscriptions,
delivery over shards, shard statuses and ``conduit.shard.disabled``.

A conduit belongs to a client id and is managed with that client's app access token. Its
shards are WebSocket sessions assigned with ``PATCH /eventsub/conduits/shards``; a session
not assigned (and with no subscription of its own) within the subscribe window is closed
with 4003. A notification of a conduit subscription goes to one shard, picked by a stable
hash of the condition's broadcaster (or user) over the conduit's shard count; when that
shard is not enabled it is tried on the next shard id once, and dropped when that one is
not enabled either (counted in :attr:`ConduitsMixin.conduit_dropped`).

Choices where Twitch's behaviour is unverified (see ``docs/eventsub.rst``): a shard never
assigned reads ``websocket_disconnected``; the "other" shard of the retry is the next id;
a ``session_reconnect`` of a shard's session keeps its session id (as twitch4j observed),
so the shard follows it without a PATCH; deleting a conduit closes its shards' sessions
with 4003 and disables its subscriptions as ``conduit_deleted``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any, Optional

from aiohttp import web

from ...eventsub.types import SHARD_DISABLED, SubscriptionType, missing_scopes
from .. import eventsub_payloads as payloads
from .oauth import OAuthMixin
from .records import _DISABLED_STATUS, _PAGE, EventSubSession, EventSubToken, _now_ns

__all__ = ("MAX_CONDUITS", "MAX_SHARDS", "Conduit", "ConduitsMixin", "Shard", "route_hash")

log = logging.getLogger("twitchio_pubsub.emulator.eventsub")

#: Twitch's limits: enabled conduits per client id, shards per conduit.
MAX_CONDUITS = 5
MAX_SHARDS = 20_000
#: The most conduit/webhook subscription cost per client id (Twitch: 10,000).
MAX_APP_COST = 10_000
_APP_ONLY = "Authorization header required with an app access token"
#: What a shard becomes when its session ends with a close code (default: disconnected).
_SHARD_STATUS = {code: s for code, s in _DISABLED_STATUS.items() if code != 4003}


@dataclasses.dataclass
class Shard:
    """One shard of a conduit.

    Attributes
    ----------
    id: :class:`str`
        ``"0"`` to ``shard_count - 1``.
    status: :class:`str`
        ``enabled`` or why not (``websocket_disconnected``, ...).
    session_id: Optional[:class:`str`]
        The WebSocket session it delivers to, if one was assigned.
    """

    id: str
    status: str = "websocket_disconnected"
    session_id: Optional[str] = None
    connected_at: Optional[str] = None
    disconnected_at: Optional[str] = None

    def public(self) -> dict[str, Any]:
        """The shard as Helix shows it."""
        transport: dict[str, Any] = {"method": "websocket", "session_id": self.session_id or ""}
        if self.connected_at:
            transport["connected_at"] = self.connected_at
        if self.disconnected_at:
            transport["disconnected_at"] = self.disconnected_at
        return {"id": self.id, "status": self.status, "transport": transport}


@dataclasses.dataclass
class Conduit:
    """A conduit: its owner client id and its shards."""

    id: str
    client_id: str
    shards: list[Shard]

    def public(self) -> dict[str, Any]:
        """The conduit as Helix shows it."""
        return {"id": self.id, "shard_count": len(self.shards)}


def route_hash(value: str) -> int:
    """The stable hash that picks a shard for a channel (BLAKE2b of its id, 64 bits)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


class ConduitsMixin(OAuthMixin):
    """Conduits, shards and conduit delivery of
    :class:`~twitchio_pubsub.emulator.EventSubEmulator`."""

    #: Conduits by id.
    conduits: dict[str, Conduit]
    #: (client id, user id) -> scopes the user granted that client (any token, any flow).
    _grants: dict[tuple[str, str], set[str]]
    #: Notifications dropped because their shard and the retry shard were not enabled.
    conduit_dropped: int
    #: Notifications delivered on the retry shard.
    conduit_retried: int

    # ------------------------------------------------------------------ records

    def _granted(self, token: EventSubToken) -> None:
        if token.user_id is not None:
            key = (token.client_id, token.user_id)
            self._grants.setdefault(key, set()).update(token.scopes)

    def _ungranted(self, token: EventSubToken) -> None:
        if token.user_id is not None:
            self._grants.pop((token.client_id, token.user_id), None)

    def shard(self, conduit_id: str, shard_id: str | int) -> Shard:
        """Shard ``shard_id`` of conduit ``conduit_id``.

        Raises
        ------
        ValueError
            No such conduit or shard.
        """
        conduit = self.conduits.get(conduit_id)
        index = int(shard_id)
        if conduit is None or not 0 <= index < len(conduit.shards):
            raise ValueError(f"no shard {shard_id} on conduit {conduit_id!r}")
        return conduit.shards[index]

    def _shard_of_session(self, session_id: str) -> list[tuple[Conduit, Shard]]:
        return [
            (conduit, shard)
            for conduit in self.conduits.values()
            for shard in conduit.shards
            if shard.session_id == session_id
        ]

    def _is_shard(self, session_id: str) -> bool:
        return bool(session_id) and bool(self._shard_of_session(session_id))

    # ------------------------------------------------------------------ Helix: conduits

    @staticmethod
    def _param(request: web.Request, body: Any, name: str) -> Any:
        """A field from the JSON body or, as real clients also send it, the query."""
        if isinstance(body, dict) and name in body:
            return body[name]
        return request.query.get(name)

    async def _app_request(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> tuple[Optional[web.Response], Any]:
        """A conduit call's refusal (not an app token, a body that is not JSON), or its
        JSON body (``None`` when it has none)."""
        if token.user_id is not None:
            return self._helix_error(401, _APP_ONLY, headers), None
        if not request.can_read_body:
            return None, None
        try:
            return None, json.loads(await request.text())
        except ValueError:
            return self._helix_error(400, "the body must be JSON", headers), None

    @staticmethod
    def _count(value: Any) -> Optional[int]:
        if isinstance(value, bool):
            return None
        try:
            count = int(value)
        except (TypeError, ValueError):
            return None
        return count if 1 <= count <= MAX_SHARDS and str(value).strip() == str(count) else None

    async def _h_conduits(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> web.Response:
        refusal, body = await self._app_request(request, token, headers)
        if refusal is not None:
            return refusal
        mine = [c for c in self.conduits.values() if c.client_id == token.client_id]
        if request.method == "GET":
            return web.json_response({"data": [c.public() for c in mine]}, headers=headers)
        if request.method == "DELETE":
            conduit_id = request.query.get("id")
            if not conduit_id:
                return self._helix_error(400, "Missing required parameter id", headers)
            conduit = self.conduits.get(conduit_id)
            if conduit is None or conduit.client_id != token.client_id:
                return self._helix_error(404, "conduit not found", headers)
            await self.delete_conduit(conduit_id)
            return web.Response(status=204, headers=headers)
        count = self._count(self._param(request, body, "shard_count"))
        if count is None:
            return self._helix_error(400, "Invalid shard count", headers)
        if request.method == "POST":
            if len(mine) >= MAX_CONDUITS:
                return self._helix_error(429, "Conduit limit reached", headers)
            conduit = Conduit(str(uuid.uuid4()), token.client_id, [])
            self._resize(conduit, count)
            self.conduits[conduit.id] = conduit
            log.info("created conduit %s with %d shard(s)", conduit.id, count)
        else:  # PATCH
            conduit_id = self._param(request, body, "id")
            if not conduit_id:
                return self._helix_error(400, "Missing required parameter id", headers)
            found = self.conduits.get(str(conduit_id))
            if found is None or found.client_id != token.client_id:
                return self._helix_error(404, "conduit not found", headers)
            conduit = found
            self._resize(conduit, count)
            log.info("conduit %s now has %d shard(s)", conduit.id, count)
        self._changed.set()
        return web.json_response({"data": [conduit.public()]}, headers=headers)

    def _resize(self, conduit: Conduit, count: int) -> None:
        shards = conduit.shards
        del shards[count:]  # their sessions stay open; nothing is routed to them any more
        shards.extend(Shard(str(i)) for i in range(len(shards), count))

    async def _h_shards(
        self, request: web.Request, token: EventSubToken, headers: dict[str, str]
    ) -> web.Response:
        refusal, body = await self._app_request(request, token, headers)
        if refusal is not None:
            return refusal
        conduit_id = self._param(request, body, "conduit_id")
        if not conduit_id:
            return self._helix_error(400, "The id query parameter is required", headers)
        conduit = self.conduits.get(str(conduit_id))
        if conduit is None or conduit.client_id != token.client_id:
            return self._helix_error(404, "not found", headers)
        if request.method == "GET":
            shards = conduit.shards
            status = request.query.get("status")
            if status:
                shards = [s for s in shards if s.status == status]
            try:
                start = int(request.query.get("after", "0"))
            except ValueError:
                return self._helix_error(400, "invalid cursor", headers)
            page = shards[start : start + _PAGE]
            more = start + _PAGE < len(shards)
            answer = {
                "data": [s.public() for s in page],
                "pagination": {"cursor": str(start + _PAGE)} if more else {},
            }
            return web.json_response(answer, headers=headers)
        entries = body.get("shards") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not entries:
            return self._helix_error(400, "Missing required parameter shards", headers)
        if any(not isinstance(e, dict) or not e.get("id") for e in entries):
            return self._helix_error(400, 'Missing required parameter ""', headers)
        done: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for entry in entries:
            error = self._assign(conduit, entry)
            shard_id = str(entry["id"])
            if error is None:
                done.append(conduit.shards[int(shard_id)].public())
            else:
                errors.append({"id": shard_id, "message": error, "code": "invalid_parameter"})
        self._changed.set()
        return web.json_response({"data": done, "errors": errors}, status=202, headers=headers)

    def _assign(self, conduit: Conduit, entry: dict[str, Any]) -> Optional[str]:
        """Point one shard at a session; the error message, if it cannot be."""
        shard_id = str(entry["id"])
        if not shard_id.isdigit() or int(shard_id) >= len(conduit.shards):
            return "The shard id is outside of the conduit's range."
        transport = entry.get("transport")
        if not isinstance(transport, dict) or transport.get("method") not in (
            "websocket",
            "webhook",
        ):
            return "The transport method is invalid."
        if transport["method"] == "webhook":
            return "The callback URL is invalid (webhooks are not emulated)."
        session_id = transport.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            return "The session_id is required for websocket."
        session = self._sessions.get(session_id)
        if session is None or session.status == "closed" or session.ws.closed:
            return "The websocket session is not connected."
        shard = conduit.shards[int(shard_id)]
        shard.session_id = session_id
        shard.status = "enabled"
        shard.connected_at = session.connected_at
        shard.disconnected_at = None
        session.used = True
        log.info("conduit %s: shard %s -> session %s", conduit.id, shard.id, session_id)
        return None

    async def delete_conduit(self, conduit_id: str) -> None:
        """Delete a conduit: its subscriptions become ``conduit_deleted`` and its shards'
        sessions are closed with 4003 (they serve nothing any more)."""
        conduit = self.conduits.pop(conduit_id, None)
        if conduit is None:
            raise ValueError(f"no conduit {conduit_id!r}")
        for sub in self.subscriptions.values():
            if sub["transport"].get("conduit_id") == conduit_id and sub["status"] == "enabled":
                sub["status"] = "conduit_deleted"
        sessions = {s.session_id for s in conduit.shards if s.session_id}
        for session_id in sessions:
            session = self._sessions.get(session_id)
            if session is not None and not self._shard_of_session(session_id):
                await self._close(session, 4003)
        self._changed.set()
        log.info("deleted conduit %s", conduit_id)

    # ------------------------------------------------------------------ subscriptions

    def _create_on_conduit(
        self,
        token: EventSubToken,
        spec: SubscriptionType,
        condition: dict[str, str],
        transport: dict[str, Any],
    ) -> tuple[int, str, dict[str, Any]]:
        """Create Subscription with ``transport.method`` ``conduit`` (an app token only)."""
        if token.user_id is not None:
            return 400, "the conduit transport requires an app access token", {}
        conduit_id = transport.get("conduit_id")
        if not isinstance(conduit_id, str) or not conduit_id:
            return 400, "transport.conduit_id is required for the conduit method", {}
        conduit = self.conduits.get(conduit_id)
        if conduit is None or conduit.client_id != token.client_id:
            return 400, "the conduit does not exist or belongs to another client", {}
        if spec is SHARD_DISABLED:
            if condition.get("client_id") != token.client_id:
                return 403, "condition.client_id must be the app token's client id", {}
            cost = 0
        else:
            user = condition.get(spec.token_user or "", "")
            granted = self._grants.get((token.client_id, user), set())
            missing = missing_scopes(spec, granted)
            if missing:
                return (
                    403,
                    f"subscription missing proper authorization: user {user} has not "
                    f"granted this client {missing[0]}",
                    {},
                )
            cost = 0  # the condition's user authorized the client
        mine = [
            s
            for s in self.enabled()
            if s["_client_id"] == token.client_id and s["_user_id"] is None
        ]
        key = (spec.type, spec.version, tuple(sorted(condition.items())), conduit_id)
        for s in mine:
            existing = (
                s["type"],
                s["version"],
                tuple(sorted(s["condition"].items())),
                s["transport"].get("conduit_id"),
            )
            if existing == key:
                return 409, "subscription already exists", {}
        total = sum(s["cost"] for s in mine)
        if total + cost > MAX_APP_COST:
            return 429, "total cost exceeded", {}
        transport_record = {"method": "conduit", "conduit_id": conduit_id}
        sub = self._record(spec, condition, transport_record, cost, token)
        data = {
            "data": [self._public(sub)],
            "total": len(mine) + 1,
            "total_cost": total + cost,
            "max_total_cost": MAX_APP_COST,
        }
        return 202, "", data

    # ------------------------------------------------------------------ delivery

    def _conduit_targets(self, sub: dict[str, Any]) -> list[EventSubSession]:
        """The session a conduit notification goes to: its shard's, or the retry's."""
        conduit = self.conduits.get(sub["transport"].get("conduit_id", ""))
        if conduit is None or not conduit.shards:
            return []
        condition = sub["condition"]
        channel = condition.get("broadcaster_user_id") or next(iter(condition.values()), "")
        count = len(conduit.shards)
        first = route_hash(str(channel)) % count
        tries = [first] if count == 1 else [first, (first + 1) % count]
        for attempt, index in enumerate(tries):
            shard = conduit.shards[index]
            session = self._sessions.get(shard.session_id or "")
            if shard.status == "enabled" and session is not None and not session.ws.closed:
                if attempt:
                    self.conduit_retried += 1
                return [session]
        self.conduit_dropped += 1
        return []

    def _shard_lost(self, session: EventSubSession) -> None:
        """``session`` ended: the shards it served are disabled and the client told."""
        stamp = payloads.rfc3339(_now_ns())
        status = _SHARD_STATUS.get(session.close_code or 0, "websocket_disconnected")
        for conduit, shard in self._shard_of_session(session.session_id):
            if shard.status != "enabled":
                continue
            shard.status = status
            shard.disconnected_at = stamp
            log.info("conduit %s: shard %s disabled (%s)", conduit.id, shard.id, status)
            self._shard_disabled(conduit, shard)

    def _shard_disabled(self, conduit: Conduit, shard: Shard) -> None:
        event = {
            "conduit_id": conduit.id,
            "shard_id": shard.id,
            "status": shard.status,
            "transport": shard.public()["transport"],
        }
        for sub in self.enabled():
            if sub["type"] != SHARD_DISABLED.type or sub["_client_id"] != conduit.client_id:
                continue
            wanted = sub["condition"].get("conduit_id")
            if wanted is None or wanted == conduit.id:
                self._notify(sub, dict(event))

    def conduit_state(self) -> list[dict[str, Any]]:
        """Every conduit with its shards, JSON-ready."""
        return [
            {**c.public(), "client_id": c.client_id, "shards": [s.public() for s in c.shards]}
            for c in self.conduits.values()
        ]

    async def fault_shard(
        self, conduit_id: str, shard_id: str | int, *, code: Optional[int] = None
    ) -> str:
        """End the session of one shard: dropped with no close frame, or closed with
        ``code``; returns the shard's status afterwards.

        Raises
        ------
        ValueError
            No such shard, or no session is assigned to it.
        """
        shard = self.shard(conduit_id, shard_id)
        session = self._sessions.get(shard.session_id or "")
        if session is None:
            raise ValueError(f"shard {shard_id} has no session")
        if code is None:
            self._drop_now(session.id)
        else:
            await self.close_session(session.session_id, code)
            await self.wait_until(lambda: session.status == "closed", 5.0)
        return shard.status

    def conduit_subscriptions(self, conduit_id: Optional[str] = None) -> list[dict[str, Any]]:
        """The enabled conduit subscriptions (of one conduit, or all)."""
        return [
            s
            for s in self.enabled()
            if s["transport"].get("method") == "conduit"
            and (conduit_id is None or s["transport"].get("conduit_id") == conduit_id)
        ]

    def app_subscriptions(self, client_id: str) -> Iterable[dict[str, Any]]:
        """Every subscription created with an app token of ``client_id``."""
        return (
            s
            for s in self.subscriptions.values()
            if s["_client_id"] == client_id and s["_user_id"] is None
        )
