from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from twitchio_pubsub.emulator import PubSubEmulator

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES_DIR = SHARED / "protocol" / "samples"


@pytest.fixture
async def emulator() -> AsyncIterator[PubSubEmulator]:
    async with PubSubEmulator() as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class RawClient:
    """A bare websocket client for talking to the emulator frame by frame."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, obj: Any) -> None:
        await self.ws.send_str(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, timeout: float = 2.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def listen(self, topics: list[str], token: str | None = "tok", nonce: str = "n1") -> str:
        data: dict[str, Any] = {"topics": topics}
        if token is not None:
            data["auth_token"] = token
        await self.send({"type": "LISTEN", "nonce": nonce, "data": data})
        resp = await self.recv()
        assert resp["type"] == "RESPONSE"
        assert resp["nonce"] == nonce
        return str(resp["error"])


@pytest.fixture
async def raw(emulator: PubSubEmulator, session: aiohttp.ClientSession) -> AsyncIterator[RawClient]:
    async with session.ws_connect(emulator.url) as ws:
        yield RawClient(ws)


def load_samples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        if path.name.startswith("_"):
            continue
        out.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
    return out
