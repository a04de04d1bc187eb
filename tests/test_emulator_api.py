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
            answer = await resp.json()
            assert answer["delivered"] == 1 and answer["topics"] == ["whispers.42"]
            assert answer["message"]["data_object"]["user_id"] == "5"


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


# --------------------------------------------------------------------------- control API


async def _raw_post(
    emulator: PubSubEmulator, path: str, data: str, headers: dict[str, str]
) -> tuple[int, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.http_url}/control/{path}", data=data, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


JSON = {"Content-Type": "application/json"}


async def test_control_requires_json_content_type(emulator: PubSubEmulator) -> None:
    # A web page can POST text/plain or a form cross-origin without a preflight.
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        status, body = await _raw_post(emulator, "drop", "{}", {"Content-Type": content_type})
        assert status == 415 and "application/json" in body["error"]
    status, body = await _raw_post(emulator, "drop", "{}", JSON)
    assert status == 200 and body == {"connections": 0}


async def test_control_refuses_foreign_host_headers(emulator: PubSubEmulator) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
    status, body = await _raw_post(emulator, "drop", "{}", {**JSON, "Host": "evil.example"})
    assert status == 403 and "Host" in body["error"]
    for host in ("localhost", "127.0.0.1:8765", "[::1]:80"):
        status, _ = await _raw_post(emulator, "drop", "{}", {**JSON, "Host": host})
        assert status == 200, host


@pytest.mark.parametrize(
    ("path", "body", "text"),
    [
        ("refuse", '{"seconds": Infinity}', "finite"),
        ("refuse", '{"seconds": NaN}', "finite"),
        ("refuse", '{"seconds": 1e9}', "at most"),
        ("fail-listen", '{"count": 100000000}', "at most"),
        (
            "trigger",
            json.dumps({"kind": "bits", "channel": 1, "set": {"a." * 5000 + "b": 1}}),
            "deep",
        ),
    ],
)
async def test_control_rejects_unbounded_input(
    emulator: PubSubEmulator, path: str, body: str, text: str
) -> None:
    status, answer = await _raw_post(emulator, path, body, JSON)
    assert status == 400 and text in answer["error"], answer
    assert await emulator.fail_next_listens(None, 0) is None
    assert len(emulator._listen_faults) == 0


async def test_emulator_warns_when_bound_beyond_loopback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.WARNING, logger="twitchio_pubsub")
    async with PubSubEmulator(host="0.0.0.0") as emu:
        assert emu.connections == []
    assert "not only this machine" in caplog.text


async def test_a_client_that_stops_reading_is_dropped_not_waited_for(
    emulator: PubSubEmulator, raw: RawClient
) -> None:
    import asyncio

    import aiohttp

    assert await raw.listen(["whispers.7"]) == ""
    listen = {"type": "LISTEN", "nonce": "s", "data": {"topics": ["whispers.1"], "auth_token": "t"}}
    async with aiohttp.ClientSession() as http, http.ws_connect(emulator.url) as stuck:
        await stuck.send_str(json.dumps(listen))
        await emulator.wait_until(lambda: sum(len(c.topics) for c in emulator.connections) == 2)
        # ``stuck`` never reads again. Publishing large events must not block on it.
        payload = json.dumps({"type": "whisper_received", "pad": "x" * 200_000})
        for _ in range(150):
            await asyncio.wait_for(emulator.publish("whispers.1", payload), 2)
            if emulator.slow_clients_dropped:
                break
        await emulator.wait_until(lambda: len(emulator.connections) == 1)
        assert emulator.slow_clients_dropped == 1
    # The client that reads is served as before.
    assert await emulator.publish("whispers.7", {"type": "whisper_received"}) == 1
    frame = await raw.recv()
    assert frame["type"] == "MESSAGE" and frame["data"]["topic"] == "whispers.7"
