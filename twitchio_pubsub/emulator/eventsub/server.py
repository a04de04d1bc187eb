"""The EventSub emulator put together: one port, its lifecycle, views and control API."""

from __future__ import annotations

import asyncio
import logging
import math
import operator
from typing import Any, Optional

from aiohttp import web

from .._base import BASE_CONTROLS, Control, Param, count
from .conduits import ConduitsMixin
from .records import EventSubSession, EventSubToken, EventSubURLs, _Fault, eventsub_urls
from .sessions import SessionsMixin

__all__ = ("EventSubEmulator",)

log = logging.getLogger("twitchio_pubsub.emulator.eventsub")


class EventSubEmulator(SessionsMixin, ConduitsMixin):
    """A real server that speaks Twitch's EventSub WebSocket protocol and its Helix API.

    One port serves the WebSocket (``/ws``), the Helix subscription API
    (``/helix/eventsub/subscriptions``, also at ``/eventsub/subscriptions`` as in Twitch
    CLI), conduits (``/helix/eventsub/conduits`` and ``.../conduits/shards``), the OAuth
    endpoints (``/oauth2/validate``, ``/oauth2/device``, ``/oauth2/token``) and the
    control API (``/control/``)::

        async with EventSubEmulator() as emu:
            emu.add_token("tok", "1337", scopes=["bits:read"], client_id="my-app")
            pool = PubSubPool(client, transport="eventsub", **emu.urls)
            ...
            await emu.trigger("channel.cheer", broadcaster_user_id="1337", bits=100)

    Parameters
    ----------
    host: :class:`str`
        The address to bind, ``127.0.0.1`` by default.
    port: :class:`int`
        The port to bind; ``0`` (the default) picks a free one.
    reconnect_grace: :class:`float`
        Seconds after ``session_reconnect`` before the old socket is closed with 4004.
    ping_interval: Optional[:class:`float`]
        Seconds between the server's WebSocket Pings; a Ping unanswered by the next one
        closes the socket with 4002. ``None`` sends none.
    min_keepalive: :class:`int`
        The lowest ``keepalive_timeout_seconds`` accepted (Twitch: 10); tests lower it to
        exercise watchdogs and the subscribe window quickly.
    max_subscriptions: :class:`int`
        Enabled subscriptions per session (Twitch: 300).
    max_sessions: :class:`int`
        Sessions with enabled subscriptions per user and client id (Twitch: 3).
    max_total_cost: :class:`int`
        Total cost of a user's enabled subscriptions (Twitch: 10).
    rate_limit: :class:`int`
        Helix requests per minute and client id (Twitch: 800); one more gets 429 until
        the ``Ratelimit-Reset`` time.
    rate_window: :class:`float`
        The rate limit's window in seconds (Twitch: 60); tests shorten it to exercise
        many windows quickly.
    device_interval: :class:`float`
        The polling interval the device code flow asks for (Twitch: 5 s).
    device_expires: :class:`float`
        How long a device code lives (Twitch: 1800 s).
    subscribe_window: Optional[:class:`float`]
        Seconds a new session may go without a subscription before it is closed with
        4003 (Twitch: 10); ``None`` uses the session's keepalive timeout, as before.
        Tests lower it to exercise slow clients quickly.
    shard_reconnect_keeps_id: :class:`bool`
        Whether a ``session_reconnect`` of a conduit shard's session keeps its session
        id (as twitch4j observed on Twitch; the shard then follows it) or gives a new one
        (the shard stays on the old session until the client PATCHes the new one).
    """

    _kind = "EventSub emulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reconnect_grace: float = 30.0,
        ping_interval: Optional[float] = 5.0,
        min_keepalive: int = 10,
        max_subscriptions: int = 300,
        max_sessions: int = 3,
        max_total_cost: int = 10,
        rate_limit: int = 800,
        subscribe_window: Optional[float] = None,
        device_interval: float = 5.0,
        device_expires: float = 1800.0,
        shard_reconnect_keeps_id: bool = True,
        rate_window: float = 60.0,
    ) -> None:
        super().__init__(host, port)
        self.shard_reconnect_keeps_id = shard_reconnect_keeps_id
        if subscribe_window is not None and not (
            math.isfinite(subscribe_window) and 0 < subscribe_window <= 600
        ):
            raise ValueError("subscribe_window must be from 0 to 600 seconds")
        self.subscribe_window = subscribe_window
        if not (math.isfinite(device_interval) and 0 < device_interval <= 60):
            raise ValueError("device_interval must be from 0 to 60 seconds")
        if not (math.isfinite(device_expires) and 0 < device_expires <= 86_400):
            raise ValueError("device_expires must be from 0 to 86400 seconds")
        self.device_interval = device_interval
        self.device_expires = device_expires
        self._apps = {}
        self._device_codes = {}
        self._refresh_tokens = {}
        self.conduits = {}
        self._grants = {}
        self.conduit_dropped = 0
        self.conduit_retried = 0
        if not 1 <= min_keepalive <= 600:
            raise ValueError("min_keepalive must be from 1 to 600")
        self.reconnect_grace = reconnect_grace
        self.ping_interval = ping_interval
        self.min_keepalive = min_keepalive
        self.max_subscriptions = max_subscriptions
        self.max_sessions = max_sessions
        self.max_total_cost = max_total_cost
        self.rate_limit = rate_limit
        if not (math.isfinite(rate_window) and 0 < rate_window <= 3600):
            raise ValueError("rate_window must be from 0 to 3600 seconds")
        self.rate_window = rate_window
        self._tokens: dict[str, EventSubToken] = {}
        self._sessions: dict[str, EventSubSession] = {}
        self._reconnect_ids: dict[str, EventSubSession] = {}
        #: Every subscription ever created, by id (disabled ones stay visible, as on Twitch).
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._helix_faults: list[_Fault] = []
        #: Overrides for the next welcomes: (fields to set, fields to remove).
        self._welcome_overrides: list[tuple[dict[str, Any], tuple[str, ...]]] = []
        self._stopping: Optional[asyncio.Future[None]] = None
        self._duplicates = 0
        self._rate: dict[str, tuple[float, int]] = {}
        #: Helix requests received and notifications sent (for tests).
        self.helix_requests = 0
        self.notifications_sent = 0

    @property
    def urls(self) -> EventSubURLs:
        """``eventsub_url``, ``helix_url`` and ``id_url``: the pool's keywords, ready to pass."""
        return eventsub_urls(self.http_url)

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._ws_handler)
        for prefix in ("/helix", ""):
            path = f"{prefix}/eventsub/subscriptions"
            app.router.add_post(path, self._helix("create", self._h_create))
            app.router.add_get(path, self._helix("list", self._h_list))
            app.router.add_delete(path, self._helix("delete", self._h_delete))
            conduits = self._helix("conduits", self._h_conduits)
            for method in ("GET", "POST", "PATCH", "DELETE"):
                app.router.add_route(method, f"{prefix}/eventsub/conduits", conduits)
            shards = self._helix("shards", self._h_shards)
            for method in ("GET", "PATCH"):
                app.router.add_route(method, f"{prefix}/eventsub/conduits/shards", shards)
        app.router.add_get("/oauth2/validate", self._h_validate)
        app.router.add_post("/oauth2/device", self._h_device)
        app.router.add_post("/oauth2/token", self._h_token)

    async def _before_close(self) -> None:
        stopping = self._stop_signal()
        if not stopping.done():
            stopping.set_result(None)  # Helix answers held back by a fault end now
        for session in self._connections.values():
            for task in session._tasks:
                task.cancel()

    async def __aenter__(self) -> EventSubEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def state(self) -> dict[str, Any]:
        """A JSON-ready view of the sessions and of every subscription."""
        return {
            "sessions": [
                {
                    "id": s.session_id,
                    "status": s.status,
                    "keepalive_timeout_seconds": s.keepalive,
                    "keepalives": s.keepalives,
                    "user_id": s.owner[0] if s.owner else None,
                    "subscriptions": [sub["id"] for sub in self.enabled(s.session_id)],
                }
                for s in self._connections.values()
            ],
            "subscriptions": [self._public(sub) for sub in self.subscriptions.values()],
            "conduits": self.conduit_state(),
        }

    async def wait_for_subscriptions(self, count: int, timeout: float = 5.0) -> None:
        """Wait until exactly ``count`` subscriptions are enabled."""
        await self.wait_until(lambda: len(self.enabled()) == count, timeout)

    # The control API (see _base.Control): one entry per endpoint.

    async def _control_trigger(
        self, type: str, version: Optional[str], fields: dict[str, Any]
    ) -> dict[str, Any]:
        delivered, event = await self._trigger(type, version, fields)
        return {"delivered": delivered, "event": event}

    async def _control_welcome(self, count: int, remove: list[str], fields: dict[str, Any]) -> None:
        await self.next_welcome(count, remove=remove, **fields)


def _strings(value: list[Any]) -> list[str]:
    if not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings")
    return value


def _ok(emu: Any, result: Any, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


def _pending_faults(emu: Any, result: Any, args: dict[str, Any]) -> dict[str, Any]:
    return {"pending_faults": len(emu._helix_faults)}


_SESSION = Param("session", str, None)
_SESSIONS = "sessions"
_COUNT = Param("count", int, 1, check=count)
_CALL = Param("call", str, None)

#: The EventSub emulator's control API: ``POST /control/<name>`` with a JSON body.
EventSubEmulator.CONTROLS = {
    **BASE_CONTROLS,
    "token": Control(
        "add_token",
        (
            Param("token", str),
            Param("user_id", (str, int), None),
            Param("scopes", list, [], check=_strings),
            Param("client_id", str, "emulator-client-id"),
            Param("login", str, None),
            Param("expires_in", (int, float), None),
        ),
        answer=_ok,
    ),
    "trigger": Control(
        "_control_trigger",
        (
            Param("type", str),
            Param("version", (str, int), None, check=str),
            Param("fields", dict, {}),
        ),
    ),
    "reconnect": Control("send_reconnect", (_SESSION, Param("url", str, None)), answer=_SESSIONS),
    "drop": Control("drop", (_SESSION,), answer=_SESSIONS),
    "close": Control("close_session", (_SESSION, Param("code", int, 4000)), answer=_SESSIONS),
    "keepalive": Control(
        "stop_keepalives",
        (_SESSION, Param("enabled", bool, False, arg="stopped", check=operator.not_)),
        answer=_SESSIONS,
    ),
    "revoke": Control(
        "revoke",
        (
            Param("reason", str, "authorization_revoked"),
            Param("subscription", str, None),
            Param("type", str, None),
            Param("user_id", (str, int), None),
            Param("token", str, None),
        ),
        answer="subscriptions",
    ),
    "fail-helix": Control(
        "fail_next_helix",
        (Param("status", int), _COUNT, Param("reset_after", (int, float), 1.0, check=float)),
        answer=_pending_faults,
    ),
    "slow-helix": Control(
        "slow_next_helix",
        (Param("seconds", (int, float), check=float), _COUNT, _CALL),
        answer=_pending_faults,
    ),
    "garbage-helix": Control("garbage_next_helix", (_COUNT, _CALL), answer=_pending_faults),
    "welcome": Control(
        "_control_welcome",
        (_COUNT, Param("remove", list, [], check=_strings), Param("fields", dict, {})),
        answer=_ok,
    ),
    "raw": Control("send_raw", (Param("text", str), _SESSION), answer=_SESSIONS),
    "duplicate": Control(
        "duplicate_next", (_COUNT,), answer=lambda emu, _, args: {"pending": emu._duplicates}
    ),
    "expire": Control("expire_token", (Param("token", str),), answer=_ok),
    "app": Control(
        "add_app", (Param("client_id", str), Param("client_secret", str, None)), answer=_ok
    ),
    "approve": Control(
        "approve_device",
        (Param("user_code", str), Param("user_id", (str, int)), Param("login", str, None)),
        answer="client_id",
    ),
    "delete-conduit": Control("delete_conduit", (Param("conduit_id", str),), answer=_ok),
    "shard-fault": Control(
        "fault_shard",
        (Param("conduit_id", str), Param("shard_id", (str, int)), Param("code", int, None)),
        answer="status",
    ),
    "invalidate": Control(
        "invalidate_token", (Param("token", str), Param("valid", bool, False)), answer=_ok
    ),
}
