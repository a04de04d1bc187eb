"""A bare EventSub client for driving the EventSub emulator frame by frame in tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Optional

import aiohttp

from twitchio_pubsub.emulator import EventSubEmulator

#: EventSub samples (one per type, plus envelopes and Helix shapes), copied from the
#: project's protocol notes so a clone needs nothing beside it.
EVENTSUB_SAMPLES = Path(__file__).resolve().parent / "data" / "eventsub"

CLIENT_ID = "test-client"
_ENDED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


def add_user(emu: EventSubEmulator, user_id: str, *scopes: str, token: str = "") -> str:
    """Register a token of ``user_id`` with ``scopes``; returns the token."""
    token = token or f"token-{user_id}"
    emu.add_token(token, user_id, scopes=scopes, client_id=CLIENT_ID)
    return token


class Socket:
    """One EventSub socket: reads frames, remembers its session id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.session_id: str = welcome["payload"]["session"]["id"]

    async def recv(self, timeout: float = 3.0, keepalives: bool = False) -> dict[str, Any]:
        """The next frame (keepalives skipped unless asked for).

        The timeout covers the whole wait: aiohttp restarts its own per-receive timeout
        whenever it answers a server Ping.
        """
        return await asyncio.wait_for(self._next(keepalives), timeout)

    async def _next(self, keepalives: bool) -> dict[str, Any]:
        while True:
            msg = await self.ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
            frame: dict[str, Any] = json.loads(msg.data)
            if keepalives or frame["metadata"]["message_type"] != "session_keepalive":
                return frame

    async def closed_with(self, timeout: float = 3.0) -> Optional[int]:
        """Read until the socket closes; the close code (frames before it are dropped)."""
        return await asyncio.wait_for(self._until_closed(), timeout)

    async def _until_closed(self) -> Optional[int]:
        while True:
            try:
                msg = await self.ws.receive()
            except ConnectionError:  # the server went away while aiohttp answered its close
                return self.ws.close_code
            if msg.type in _ENDED:
                return self.ws.close_code


class Client:
    """Helix and WebSocket calls against one emulator.

    Use it as an async context manager (or call :meth:`close`): it closes every socket it
    opened, so no connection is left for the garbage collector to warn about.
    """

    def __init__(
        self,
        emu: EventSubEmulator,
        http: aiohttp.ClientSession,
        sockets: Optional[list[Socket]] = None,
    ) -> None:
        self.emu = emu
        self.http = http
        self.sockets: list[Socket] = [] if sockets is None else sockets

    def on(self, emu: EventSubEmulator) -> Client:
        """A client of another emulator that shares this one's sockets (closed together)."""
        return Client(emu, self.http, self.sockets)

    async def close(self) -> None:
        for sock in self.sockets:
            await sock.ws.close()
        self.sockets.clear()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def subscriptions_url(self) -> str:
        return self.emu.urls["helix_url"] + "/eventsub/subscriptions"

    async def connect(self, url: Optional[str] = None, **ws_kwargs: Any) -> Socket:
        ws = await self.http.ws_connect(url or self.emu.urls["eventsub_url"], **ws_kwargs)
        msg = await ws.receive(timeout=3)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        welcome = json.loads(msg.data)
        assert welcome["metadata"]["message_type"] == "session_welcome"
        sock = Socket(ws, welcome)
        self.sockets.append(sock)
        return sock

    @staticmethod
    def headers(token: Optional[str], client_id: Optional[str] = CLIENT_ID) -> dict[str, str]:
        out = {}
        if token is not None:
            out["Authorization"] = f"Bearer {token}"
        if client_id is not None:
            out["Client-Id"] = client_id
        return out

    async def create(
        self,
        token: Optional[str],
        session_id: str,
        type: str,
        condition: dict[str, str],
        version: str = "1",
        client_id: Optional[str] = CLIENT_ID,
    ) -> tuple[int, dict[str, Any], Any]:
        body = {
            "type": type,
            "version": version,
            "condition": condition,
            "transport": {"method": "websocket", "session_id": session_id},
        }
        async with self.http.post(
            self.subscriptions_url, json=body, headers=self.headers(token, client_id)
        ) as resp:
            return resp.status, dict(resp.headers), await resp.json()

    async def list(self, token: str, **query: str) -> tuple[int, Any]:
        async with self.http.get(
            self.subscriptions_url, params=query, headers=self.headers(token)
        ) as resp:
            return resp.status, await resp.json()

    async def delete(self, token: str, sub_id: Optional[str]) -> int:
        params = {} if sub_id is None else {"id": sub_id}
        async with self.http.delete(
            self.subscriptions_url, params=params, headers=self.headers(token)
        ) as resp:
            return resp.status

    async def control(self, name: str, body: Optional[dict[str, Any]] = None) -> tuple[int, Any]:
        async with self.http.post(f"{self.emu.http_url}/control/{name}", json=body or {}) as resp:
            return resp.status, await resp.json()


def shape(value: Any) -> Any:
    """The field names and JSON types of ``value``, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__
