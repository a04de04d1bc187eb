"""What every part of the EventSub emulator shares: its state and a few views of it.

The emulator is put together from parts (:mod:`.sessions`, :mod:`.helix`, the control API
in :mod:`.server`); this base declares the state they all read and write, which
:class:`~twitchio_pubsub.emulator.EventSubEmulator` creates.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from .._base import EmulatorServer
from .records import EventSubSession, EventSubToken, _Fault

__all__ = ("State",)


class State(EmulatorServer[EventSubSession]):
    """The EventSub emulator's shared state (see :class:`EventSubEmulator` for its meaning)."""

    reconnect_grace: float
    ping_interval: Optional[float]
    min_keepalive: int
    max_subscriptions: int
    max_sessions: int
    max_total_cost: int
    rate_limit: int
    rate_window: float
    subscribe_window: Optional[float]
    shard_reconnect_keeps_id: bool
    #: Every subscription ever created, by id (disabled ones stay visible, as on Twitch).
    subscriptions: dict[str, dict[str, Any]]
    helix_requests: int
    notifications_sent: int
    _tokens: dict[str, EventSubToken]
    _sessions: dict[str, EventSubSession]
    _reconnect_ids: dict[str, EventSubSession]
    _helix_faults: list[_Fault]
    _welcome_overrides: list[tuple[dict[str, Any], tuple[str, ...]]]
    _stopping: Optional[asyncio.Future[None]]
    _duplicates: int
    _rate: dict[str, tuple[float, int]]

    def enabled(self, session_id: Optional[str] = None) -> list[dict[str, Any]]:
        """The enabled subscriptions, of one session or all."""
        return [
            sub
            for sub in self.subscriptions.values()
            if sub["status"] == "enabled"
            and (session_id is None or sub["transport"].get("session_id") == session_id)
        ]

    # Conduits (see :mod:`.conduits`) hook into delivery and the end of sessions.

    def _conduit_targets(self, sub: dict[str, Any]) -> list[EventSubSession]:
        """The session a conduit subscription's notification goes to (none here)."""
        return []

    def _shard_lost(self, session: EventSubSession) -> None:
        """``session`` ended: disable the shards it served (none here)."""

    def _is_shard(self, session_id: str) -> bool:
        """Whether a conduit shard points at ``session_id`` (none here)."""
        return False

    def _ungranted(self, token: EventSubToken) -> None:
        """The user of ``token`` disconnected its app (no grants here)."""

    # ... and conduits use the sessions' side (see :mod:`.sessions`).

    async def _close(self, session: EventSubSession, code: int) -> None:
        raise NotImplementedError

    def _notify(self, sub: dict[str, Any], event: dict[str, Any]) -> int:
        raise NotImplementedError

    async def close_session(self, session: Optional[str] = None, code: int = 4000) -> int:
        """Close one session or all with ``code`` (see :mod:`.sessions`)."""
        raise NotImplementedError

    @staticmethod
    def _public(sub: dict[str, Any], wire: bool = False) -> dict[str, Any]:
        shown = {k: v for k, v in sub.items() if not k.startswith("_")}
        shown["condition"] = dict(sub["condition"])
        transport = dict(sub["transport"])
        if wire:
            transport.pop("connected_at", None)
            transport.pop("disconnected_at", None)
        shown["transport"] = transport
        return shown

    def _pick(self, session: Optional[str]) -> list[EventSubSession]:
        if session is None:
            return [s for s in self._connections.values() if s.status == "connected"]
        found = self._sessions.get(session)
        return [found] if found is not None else []

    @property
    def url(self) -> str:
        """The WebSocket URL, e.g. ``ws://127.0.0.1:8080/ws``."""
        return f"ws://{self._url_host}:{self._port()}/ws"

    @property
    def sessions(self) -> list[EventSubSession]:
        """The open sockets, oldest first."""
        return list(self._connections.values())
