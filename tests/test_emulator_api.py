"""The emulator's public API: overrides of any field, a uniform async fault API."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from twitchio_pubsub.emulator import PubSubEmulator

from .conftest import RawClient


async def test_trigger_overrides_ids_and_kind(emulator: PubSubEmulator, raw: RawClient) -> None:
    assert await raw.listen(["channel-bits-events-v2.5"]) == ""
    delivered = await emulator.trigger("bits", 5, channel_id="7", user_id="99", kind="custom")
    assert delivered == 1
    frame = await raw.recv()
    message = json.loads(frame["data"]["message"])
    assert message["data"]["channel_id"] == "7" and message["data"]["user_id"] == "99"
    assert message["data"]["kind"] == "custom"


async def test_control_api_overrides_ids(emulator: PubSubEmulator, raw: RawClient) -> None:
    import aiohttp

    assert await raw.listen(["whispers.42"]) == ""
    async with aiohttp.ClientSession() as http:
        body = {"kind": "whisper", "channel": 42, "set": {"user_id": "5", "channel_id": "6"}}
        async with http.post(f"{emulator.http_url}/control/trigger", json=body) as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.json() == {"delivered": 1}


async def test_deep_dotted_override_is_refused(emulator: PubSubEmulator) -> None:
    with pytest.raises(ValueError, match="deep"):
        await emulator.trigger("bits", 5, **{".".join(["a"] * 5000): 1})


FAULTS = (
    "send_reconnect",
    "send_raw",
    "close_connection",
    "drop",
    "silence",
    "refuse_connections",
    "invalidate_token",
    "validate_token",
    "revoke_token",
    "fail_next_listens",
    "fail_next_unlistens",
)


@pytest.mark.parametrize("name", FAULTS)
def test_every_fault_is_a_coroutine_function(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(PubSubEmulator, name)), name


async def test_faults_are_awaited_alike(emulator: PubSubEmulator, raw: RawClient) -> None:
    results: list[Any] = [
        await emulator.silence(),
        await emulator.fail_next_listens("ERR_SERVER", 1),
        await emulator.invalidate_token("tok-x"),
        await emulator.validate_token("tok-x"),
        await emulator.refuse_connections(0),
        await emulator.drop(),
    ]
    assert results == [1, None, None, None, None, 1]
