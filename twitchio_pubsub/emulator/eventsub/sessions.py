"""The EventSub emulator's WebSocket side: welcomes, keepalives, pings, close codes,
``session_reconnect``, notifications, revocations and the faults on sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from aiohttp import WSMsgType, web

from ...eventsub.types import SUBSCRIPTION_TYPES, SubscriptionType
from .. import eventsub_payloads as payloads
from .._base import MAX_FAULTS
from .records import _DISABLED_STATUS, CLOSE_REASONS, EventSubSession, _now_ns
from .state import State

__all__ = ("SessionsMixin",)

log = logging.getLogger("twitchio_pubsub.emulator.eventsub")


class SessionsMixin(State):
    """The WebSocket transport of :class:`~twitchio_pubsub.emulator.EventSubEmulator`."""

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusing(request)
        if refusal is not None:
            return refusal
        keepalive = self._keepalive_param(request.query.get("keepalive_timeout_seconds"))
        if keepalive is None:
            return web.Response(status=400, text="keepalive_timeout_seconds must be a number")
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="this is an EventSub websocket endpoint")
        await ws.prepare(request)
        session = EventSubSession(next(self._ids), ws, request)
        self._opened(session)
        reconnect_id = request.query.get("reconnect_id")
        try:
            if reconnect_id is not None:
                old = self._reconnect_ids.pop(reconnect_id, None)
                if old is None or old.status != "reconnecting":
                    log.info("socket %d used an invalid reconnect URL", session.id)
                    await self._close(session, 4007)
                    return ws
                keepalive = old.keepalive
            self._welcome(session, keepalive, moved_from=old if reconnect_id else None)
            await self._read(session)
        finally:
            await self._ended(session)
        return ws

    def _keepalive_param(self, raw: Optional[str]) -> Optional[int]:
        if raw is None:
            return 10 if self.min_keepalive <= 10 else self.min_keepalive
        try:
            value = float(raw)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        # Twitch clamps a number outside 10-600 to the range rather than refusing it.
        return int(min(600, max(self.min_keepalive, value)))

    def _welcome(
        self, session: EventSubSession, keepalive: int, moved_from: Optional[EventSubSession]
    ) -> None:
        if (
            moved_from is not None
            and self.shard_reconnect_keeps_id
            and self._is_shard(moved_from.session_id)
        ):
            # A conduit shard's session keeps its id across session_reconnect (as
            # twitch4j observed on Twitch), so the shard follows it without a PATCH.
            session.session_id = moved_from.session_id
        else:
            session.session_id = f"{secrets.token_hex(4)}_{secrets.token_hex(4)}"
        session.keepalive = keepalive
        session.connected_at = payloads.rfc3339(_now_ns())
        self._sessions[session.session_id] = session
        if moved_from is not None:
            # The new socket takes the session's subscriptions; nothing is re-created.
            session.owner, session.used = moved_from.owner, True
            moved_from.moved_to = session
            for sub in self.enabled(moved_from.session_id):
                sub["transport"]["session_id"] = session.session_id
                sub["transport"]["connected_at"] = session.connected_at
        session_object = self._session_object(session, "connected", keepalive, None)
        if self._welcome_overrides:
            changes, removals = self._welcome_overrides.pop(0)
            session_object.update(changes)
            for name in removals:
                session_object.pop(name, None)
        self._send_frame(session, "session_welcome", {"session": session_object})
        loop = asyncio.get_running_loop()
        session._tasks.append(loop.create_task(self._keepalives(session)))
        if self.ping_interval is not None:
            session._tasks.append(loop.create_task(self._pings(session, self.ping_interval)))
        if moved_from is None:
            session._tasks.append(loop.create_task(self._unused_after(session)))
        self._changed.set()
        log.info("socket %d is session %s", session.id, session.session_id)

    @staticmethod
    def _session_object(
        session: EventSubSession, status: str, keepalive: Optional[int], url: Optional[str]
    ) -> dict[str, Any]:
        return {
            "id": session.session_id,
            "status": status,
            "connected_at": session.connected_at,
            "keepalive_timeout_seconds": keepalive,
            "reconnect_url": url,
        }

    def _send_frame(
        self,
        session: EventSubSession,
        message_type: str,
        payload: dict[str, Any],
        subscription: Optional[dict[str, Any]] = None,
        message_id: Optional[str] = None,
    ) -> bool:
        metadata = {
            "message_id": message_id or str(uuid.uuid4()),
            "message_type": message_type,
            "message_timestamp": payloads.rfc3339(_now_ns()),
        }
        if subscription is not None:
            metadata["subscription_type"] = subscription["type"]
            metadata["subscription_version"] = subscription["version"]
        text = json.dumps({"metadata": metadata, "payload": payload}, separators=(",", ":"))
        if session.ws.closed:
            return False
        if session.send(text):
            return True
        log.info("session %s left too many messages unread; dropping it", session.session_id)
        self.slow_clients_dropped += 1
        self._drop_now(session.id)
        return False

    async def _read(self, session: EventSubSession) -> None:
        async for msg in session.ws:
            if msg.type == WSMsgType.PING:
                await session.ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                session.ponged = True
            elif msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                # The protocol is server to client only: anything else ends the session.
                log.info("session %s sent a data frame; closing 4001", session.session_id)
                await self._close(session, 4001)  # reading on takes in the client's close

    async def _pings(self, session: EventSubSession, interval: float) -> None:
        while not session.ws.closed:
            session.ponged = False
            await session.ws.ping()
            await asyncio.sleep(interval)
            if not session.ponged:
                log.info("session %s did not answer a ping; closing 4002", session.session_id)
                await self._close(session, 4002)
                return

    async def _keepalives(self, session: EventSubSession) -> None:
        # Twitch sends a keepalive only when nothing else went out for the whole window.
        while not session.ws.closed:
            due = session.last_sent + session.keepalive - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            if session.keepalives:
                self._send_frame(session, "session_keepalive", {})
            else:
                session.last_sent = time.monotonic()

    async def _unused_after(self, session: EventSubSession) -> None:
        window = self.subscribe_window
        await asyncio.sleep(session.keepalive if window is None else window)
        if not session.used and not session.ws.closed:
            log.info("session %s made no subscription in time; closing 4003", session.session_id)
            await self._close(session, 4003)

    async def _close(self, session: EventSubSession, code: int) -> None:
        """Send the close frame now; the handshake finishes in the background.

        A fault must not wait for a client that is not reading at that moment.
        """
        if session.closing is not None:
            return
        session.close_code = code
        reason = CLOSE_REASONS.get(code, "").encode()
        session.closing = asyncio.get_running_loop().create_task(
            session.ws.close(code=code, message=reason), name=f"eventsub-close-{session.id}"
        )
        await asyncio.sleep(0)  # the frame is written before the caller goes on

    def _lost(self, session: EventSubSession) -> None:
        """The session is over: its subscriptions are disabled (unless they moved on)."""
        if session.status == "closed":
            return
        if self._sessions.get(session.session_id) is session:
            self._sessions.pop(session.session_id)
            self._shard_lost(session)
        session.status = "closed"
        if session.moved_to is None and session.session_id:
            status = _DISABLED_STATUS.get(session.close_code or 0, "websocket_disconnected")
            stamp = payloads.rfc3339(_now_ns())
            for sub in self.enabled(session.session_id):
                sub["status"] = status
                sub["transport"]["disconnected_at"] = stamp
        self._changed.set()

    def _drop_now(self, connection: Optional[int] = None) -> int:
        # At once, not when the handler notices: nothing is counted as delivered on a
        # socket that is already gone.
        for session in self._select(connection):
            self._lost(session)
        return super()._drop_now(connection)

    async def _ended(self, session: EventSubSession) -> None:
        current = asyncio.current_task()
        others: list[asyncio.Future[Any]] = [t for t in session._tasks if t is not current]
        for task in others:
            task.cancel()
        if session.closing is not None:
            others.append(session.closing)  # it ends with the socket; not cancelled
        await asyncio.gather(*others, return_exceptions=True)
        if session.reconnect_id is not None:
            self._reconnect_ids.pop(session.reconnect_id, None)
        self._lost(session)
        await self._closed(session)
        log.info("session %s closed", session.session_id or f"(socket {session.id})")

    async def trigger(self, type: str, *, version: Optional[str] = None, **fields: Any) -> int:
        """Send a realistic ``type`` event to every subscription it matches.

        Parameters
        ----------
        type: :class:`str`
            A subscription type, e.g. ``channel.cheer``.
        version: Optional[:class:`str`]
            Only subscriptions of this version; ``None``: every version subscribed.
        **fields:
            Event fields to override (dotted keys reach nested ones, e.g.
            ``**{"message.text": "hi"}``) and condition ids such as
            ``broadcaster_user_id``; ``channel.chat.notification`` takes ``notice_type``
            and ``channel.moderate`` ``action`` to pick the event's form.

        Returns
        -------
        :class:`int`
            How many sessions received it.

        Raises
        ------
        ValueError
            Unknown type or version, or a field the event does not have.
        """
        delivered, _ = await self._trigger(type, version, fields)
        return delivered

    async def _trigger(
        self, type: str, version: Optional[str], fields: Mapping[str, Any]
    ) -> tuple[int, Optional[dict[str, Any]]]:
        versions = [version] if version is not None else None
        if versions is None:
            subscribed = {sub["version"] for sub in self.enabled() if sub["type"] == type}
            versions = sorted(subscribed, key=int) or [payloads.latest_version(type)]
        delivered = 0
        first: Optional[dict[str, Any]] = None
        for v in versions:
            spec = SUBSCRIPTION_TYPES.get((type, str(v)))
            if spec is None:
                payloads.latest_version(type)  # names the known types when type is unknown
                raise ValueError(f"{type} has no version {v!r}")
            overrides, filters = payloads.split_fields(spec, fields)
            event = payloads.build_event(spec, overrides, _now_ns())
            first = first or event
            for sub in self.enabled():
                if (sub["type"], sub["version"]) != (type, spec.version):
                    continue
                if self._matches(spec, sub["condition"], event, filters):
                    delivered += self._notify(sub, event)
        await asyncio.sleep(0)  # let the writers run before the next event is queued
        log.info("triggered %s: %d session(s)", type, delivered)
        return delivered, first

    @staticmethod
    def _matches(
        spec: SubscriptionType,
        condition: Mapping[str, str],
        event: Mapping[str, Any],
        filters: Mapping[str, str],
    ) -> bool:
        for key, wanted in condition.items():
            if key in filters:
                if filters[key] != wanted:
                    return False
                continue
            path = spec.event_path(key)
            if path is None:
                continue
            value: Any = event
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is None or str(value) != wanted:
                return False
        return True

    def _notify(self, sub: dict[str, Any], event: dict[str, Any]) -> int:
        if sub["transport"].get("method") == "conduit":
            targets = self._conduit_targets(sub)
            session = targets[0] if targets else None
        else:
            session = self._sessions.get(sub["transport"]["session_id"])
        if session is None:
            return 0
        payload = {"subscription": self._public(sub, wire=True), "event": event}
        message_id = str(uuid.uuid4())
        sent = self._send_frame(session, "notification", payload, sub, message_id)
        if sent and self._duplicates:
            # At-least-once delivery: the same notification, the same message_id, again.
            self._duplicates -= 1
            self._send_frame(session, "notification", payload, sub, message_id)
        self.notifications_sent += sent
        return int(sent)

    async def send_reconnect(
        self, session: Optional[str] = None, *, url: Optional[str] = None
    ) -> int:
        """Send ``session_reconnect`` to one session (by id) or all; returns how many.

        The ``reconnect_url`` points at this server, or is ``url`` when given (a hostile
        server's move to another host; a client should not follow it). The new socket's
        welcome carries the session's subscriptions under a new session id. The old socket
        is closed with 4004 ``reconnect_grace`` seconds later if the client has not closed
        it by then, and if the client never moved, its subscriptions are disabled.
        """
        sessions = self._pick(session)
        loop = asyncio.get_running_loop()
        for s in sessions:
            s.status = "reconnecting"
            s.reconnect_id = secrets.token_urlsafe(12)
            self._reconnect_ids[s.reconnect_id] = s
            target = url or f"{self.url}?reconnect_id={s.reconnect_id}"
            session_object = self._session_object(s, "reconnecting", None, target)
            self._send_frame(s, "session_reconnect", {"session": session_object})
            s._tasks.append(loop.create_task(self._grace(s)))
        self._changed.set()
        log.info("session_reconnect -> %d session(s)", len(sessions))
        await asyncio.sleep(0)
        return len(sessions)

    async def _grace(self, session: EventSubSession) -> None:
        await asyncio.sleep(self.reconnect_grace)
        if not session.ws.closed:
            log.info("session %s did not close after reconnecting; 4004", session.session_id)
            await self._close(session, 4004)

    async def drop(self, session: Optional[str] = None) -> int:
        """Abort one session's socket (by session id) or all, with no close frame."""
        sessions = self._pick(session) if session is not None else self.sessions
        for s in sessions:
            self._drop_now(s.id)
        return len(sessions)

    async def close_session(self, session: Optional[str] = None, code: int = 4000) -> int:
        """Close one session or all with close ``code`` (4000-4007, or 1000-1011)."""
        if not (4000 <= code <= 4007 or 1000 <= code <= 1011):
            raise ValueError("code must be an EventSub close code (4000-4007) or 1000-1011")
        sessions = self._pick(session) if session is not None else self.sessions
        for s in sessions:
            await self._close(s, code)
        log.info("closed %d session(s) with %d", len(sessions), code)
        return len(sessions)

    async def stop_keepalives(self, session: Optional[str] = None, stopped: bool = True) -> int:
        """Stop (or, with ``stopped=False``, resume) keepalives, to test watchdogs."""
        sessions = self._pick(session)
        for s in sessions:
            s.keepalives = not stopped
        self._changed.set()
        return len(sessions)

    async def revoke(
        self,
        reason: str = "authorization_revoked",
        *,
        subscription: Optional[str] = None,
        type: Optional[str] = None,
        user_id: Optional[str | int] = None,
        token: Optional[str] = None,
    ) -> list[str]:
        """Revoke enabled subscriptions, sending each session a ``revocation`` message.

        Filters combine: one subscription id, a type, the user who created them or the
        token they were created with. With ``token`` and ``authorization_revoked`` the
        token itself becomes invalid too, as when a user disconnects the app. A conduit
        subscription (made with the app's token) counts as its condition user's: that
        user's id or token revokes it, and disconnecting also withdraws the user's
        grant to the app. Its ``revocation`` goes to the shard its channel routes to.

        Returns
        -------
        List[:class:`str`]
            The ids of the revoked subscriptions.
        """
        if not isinstance(reason, str) or not reason:
            raise ValueError("reason must be a non-empty string, e.g. authorization_revoked")
        uid = None if user_id is None else str(user_id)
        known = self._tokens.get(token) if token is not None else None
        revoked: list[str] = []
        for sub in self.enabled():
            if subscription is not None and sub["id"] != subscription:
                continue
            if type is not None and sub["type"] != type:
                continue
            if uid is not None and self._sub_user(sub) != uid:
                continue
            if token is not None and sub["_token"] != token:
                # A conduit subscription was made with the app token; a user's token
                # stands for the user's grant to that app.
                if known is None or sub["_user_id"] is not None:
                    continue
                if known.client_id != sub["_client_id"] or self._sub_user(sub) != known.user_id:
                    continue
            sub["status"] = reason
            revoked.append(sub["id"])
            if sub["transport"].get("method") == "conduit":
                targets = self._conduit_targets(sub)
                session = targets[0] if targets else None
            else:
                session = self._sessions.get(sub["transport"]["session_id"])
            if session is not None:
                payload = {"subscription": self._public(sub, wire=True)}
                self._send_frame(session, "revocation", payload, sub)
        if token is not None and reason == "authorization_revoked" and known is not None:
            known.valid = False
            self._ungranted(known)
        self._changed.set()
        await asyncio.sleep(0)
        log.info("revoked %d subscription(s): %s", len(revoked), reason)
        return revoked

    def _sub_user(self, sub: dict[str, Any]) -> Optional[str]:
        """Whose subscription it is: its creator's, or (made with an app token) the
        user its condition names."""
        if sub["_user_id"] is not None:
            return str(sub["_user_id"])
        spec = SUBSCRIPTION_TYPES.get((sub["type"], sub["version"]))
        if spec is None or spec.token_user is None:
            return None
        user = sub["condition"].get(spec.token_user)
        return None if user is None else str(user)

    async def next_welcome(
        self, count: int = 1, *, remove: Iterable[str] = (), **fields: Any
    ) -> None:
        """Change the session object of the next ``count`` welcomes, as a hostile server.

        ``fields`` replace the session's fields as given (``id=None``,
        ``keepalive_timeout_seconds=float("nan")``: NaN and Infinity are written as
        JavaScript's literals); the names in ``remove`` are left out.
        """
        if not 0 <= count <= MAX_FAULTS:
            raise ValueError(f"count must be from 0 to {MAX_FAULTS}")
        removals = tuple(remove)
        self._welcome_overrides.extend((dict(fields), removals) for _ in range(count))

    async def send_raw(self, text: str, session: Optional[str] = None) -> int:
        """Send ``text`` as it is, as one frame, to one session (by id) or all.

        For testing how a client takes malformed frames; returns how many got it.
        """
        if not isinstance(text, str):
            raise TypeError("text must be a str")
        sessions = self._pick(session)
        sent = sum(1 for s in sessions if not s.ws.closed and s.send(text))
        await asyncio.sleep(0)
        return sent

    async def duplicate_next(self, count: int = 1) -> None:
        """Deliver each of the next ``count`` notifications twice, with one ``message_id``."""
        if not 0 <= count <= MAX_FAULTS:
            raise ValueError(f"count must be from 0 to {MAX_FAULTS}")
        self._duplicates += count
