"""The emulator, driven over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from twitchio_pubsub import protocol
from twitchio_pubsub.emulator import PubSubEmulator, payloads

from .conftest import RawClient

BITS = "channel-bits-events-v2.12345"


async def test_ping_pong(raw: RawClient) -> None:
    await raw.send({"type": "PING"})
    assert await raw.recv() == {"type": "PONG"}


async def test_listen_echoes_nonce_and_records_topics(
    emulator: PubSubEmulator, raw: RawClient
) -> None:
    assert await raw.listen([BITS, "whispers.1"], nonce="abc") == ""
    assert emulator.state()["connections"][0]["topics"] == [BITS, "whispers.1"]
    assert emulator.connections[0].topics[BITS] == "tok"


async def test_v1_path(emulator: PubSubEmulator, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(emulator.url + "/v1") as ws:
        client = RawClient(ws)
        assert await client.listen([BITS]) == ""


async def test_plain_http_get_is_refused_politely(
    emulator: PubSubEmulator, session: aiohttp.ClientSession
) -> None:
    async with session.get(emulator.http_url + "/") as resp:
        assert resp.status == 426


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", protocol.ERR_BADMESSAGE),
        ({"type": "LISTEN", "nonce": "n"}, protocol.ERR_BADMESSAGE),
        ({"type": "DANCE"}, protocol.ERR_BADMESSAGE),
    ],
)
async def test_bad_frames_get_badmessage(raw: RawClient, frame: Any, error: str) -> None:
    await raw.send(frame)
    resp = await raw.recv()
    assert resp["type"] == "RESPONSE"
    assert resp["error"] == error


@pytest.mark.parametrize(
    "topics",
    [
        ["channel-bits-events-v2.abc"],
        ["video-playback.lirik"],
        [BITS, "whispers"],
        ["whispers.1.2"],
    ],
)
async def test_bad_topic_fails_whole_listen(
    emulator: PubSubEmulator, raw: RawClient, topics: list[str]
) -> None:
    assert await raw.listen(topics) == protocol.ERR_BADTOPIC
    assert emulator.connections[0].topics == {}


@pytest.mark.parametrize("token", [None, "", "oauth:abc", "revoked"])
async def test_bad_auth_fails_whole_listen(
    emulator: PubSubEmulator, raw: RawClient, token: str | None
) -> None:
    await emulator.invalidate_token("revoked")
    assert await raw.listen([BITS, "whispers.1"], token=token) == protocol.ERR_BADAUTH
    assert emulator.connections[0].topics == {}


async def test_validate_token_undoes_invalidate(emulator: PubSubEmulator, raw: RawClient) -> None:
    await emulator.invalidate_token("t")
    assert await raw.listen([BITS], token="t") == protocol.ERR_BADAUTH
    await emulator.validate_token("t")
    assert await raw.listen([BITS], token="t") == ""


async def test_fifty_topic_limit(emulator: PubSubEmulator, raw: RawClient) -> None:
    topics = [f"whispers.{i}" for i in range(50)]
    assert await raw.listen(topics[:30], nonce="a") == ""
    assert await raw.listen(topics[30:], nonce="b") == ""
    assert await raw.listen(["whispers.999"], nonce="c") == protocol.ERR_TOO_MANY_TOPICS
    assert len(emulator.connections[0].topics) == 50
    # re-listening a topic already held does not count twice
    assert await raw.listen(["whispers.0"], nonce="d") == ""


async def test_unlisten(emulator: PubSubEmulator, raw: RawClient) -> None:
    await raw.listen([BITS, "whispers.1"])
    await raw.send({"type": "UNLISTEN", "nonce": "u", "data": {"topics": [BITS]}})
    assert await raw.recv() == {"type": "RESPONSE", "error": "", "nonce": "u"}
    assert list(emulator.connections[0].topics) == ["whispers.1"]


async def test_publish_reaches_only_listeners(
    emulator: PubSubEmulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(emulator.url) as a, session.ws_connect(emulator.url) as b:
        ca, cb = RawClient(a), RawClient(b)
        await ca.listen([BITS])
        await cb.listen(["whispers.1"])
        assert await emulator.publish(BITS, {"hello": "world"}) == 1
        frame = await ca.recv()
        assert frame["type"] == "MESSAGE"
        assert frame["data"]["topic"] == BITS
        assert isinstance(frame["data"]["message"], str)
        assert json.loads(frame["data"]["message"]) == {"hello": "world"}
        assert await emulator.publish("whispers.2", "{}") == 0
        with pytest.raises(asyncio.TimeoutError):
            await b.receive(timeout=0.1)


async def test_publish_rejects_bad_arguments(emulator: PubSubEmulator) -> None:
    with pytest.raises(TypeError):
        await emulator.publish(BITS, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await emulator.publish("", {})


async def test_reconnect_and_raw(emulator: PubSubEmulator, raw: RawClient) -> None:
    assert await emulator.send_reconnect() == 1
    assert await raw.recv() == {"type": "RECONNECT"}
    assert await emulator.send_raw("}{ nonsense") == 1
    msg = await raw.ws.receive(timeout=1)
    assert msg.data == "}{ nonsense"
    assert await emulator.send_reconnect(connection=999) == 0


async def test_drop_aborts_without_close_frame(emulator: PubSubEmulator, raw: RawClient) -> None:
    await raw.listen([BITS])
    assert await emulator.drop() == 1
    msg = await raw.ws.receive(timeout=2)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert raw.ws.close_code != 1000
    await asyncio.sleep(0.05)
    assert emulator.connections == []


async def test_silence_stops_pongs(emulator: PubSubEmulator, raw: RawClient) -> None:
    assert await emulator.silence() == 1
    await raw.send({"type": "PING"})
    with pytest.raises(asyncio.TimeoutError):
        await raw.ws.receive(timeout=0.2)
    await emulator.silence(silent=False)
    await raw.send({"type": "PING"})
    assert await raw.recv() == {"type": "PONG"}


async def test_refuse_connections(emulator: PubSubEmulator, session: aiohttp.ClientSession) -> None:
    await emulator.refuse_connections(0.3)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(emulator.url)
    assert info.value.status == 503
    await asyncio.sleep(0.35)
    async with session.ws_connect(emulator.url) as ws:
        assert not ws.closed


async def test_revoke_token(emulator: PubSubEmulator, raw: RawClient) -> None:
    await raw.listen([BITS], token="t1", nonce="a")
    await raw.listen(["whispers.1"], token="t2", nonce="b")
    assert await emulator.revoke_token("t1") == [BITS]
    assert await raw.recv() == {"type": "AUTH_REVOKED", "data": {"topics": [BITS]}}
    assert list(emulator.connections[0].topics) == ["whispers.1"]
    assert await raw.listen([BITS], token="t1", nonce="c") == protocol.ERR_BADAUTH


async def test_fail_next_listens(emulator: PubSubEmulator, raw: RawClient) -> None:
    await emulator.fail_next_listens(protocol.ERR_SERVER)
    assert await raw.listen([BITS], nonce="a") == protocol.ERR_SERVER
    assert await raw.listen([BITS], nonce="b") == ""
    await emulator.fail_next_listens(None)
    await raw.send({"type": "LISTEN", "nonce": "c", "data": {"topics": [BITS], "auth_token": "x"}})
    with pytest.raises(asyncio.TimeoutError):
        await raw.ws.receive(timeout=0.2)


async def test_trigger_without_user_reaches_any_moderator(
    emulator: PubSubEmulator, raw: RawClient
) -> None:
    await raw.listen(["chat_moderator_actions.67890.12345"])
    assert await emulator.trigger("moderation", 12345) == 1
    frame = await raw.recv()
    assert frame["data"]["topic"] == "chat_moderator_actions.67890.12345"
    assert json.loads(frame["data"]["message"])["type"] == "moderation_action"
    assert await emulator.trigger("moderation", 12345, user=1) == 0


async def test_close_closes_clients(session: aiohttp.ClientSession) -> None:
    emu = PubSubEmulator()
    await emu.start()
    ws = await session.ws_connect(emu.url)
    await emu.close()
    msg = await ws.receive(timeout=2)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()
    await emu.close()  # idempotent
    with pytest.raises(RuntimeError):
        _ = emu.url


# ---------------------------------------------------------------- control API


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, str) else json.dumps(body)
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=data, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_control_state_publish_reconnect(
    emulator: PubSubEmulator, raw: RawClient, session: aiohttp.ClientSession
) -> None:
    await raw.listen([BITS])
    base = emulator.http_url + "/control"
    async with session.get(base + "/state") as resp:
        state = await resp.json()
    assert state["connections"][0]["topics"] == [BITS]
    assert isinstance(state["connections"][0]["id"], int)

    status, body = await _post(session, base + "/publish", {"topic": BITS, "message": {"a": 1}})
    assert (status, body) == (200, {"delivered": 1})
    assert json.loads((await raw.recv())["data"]["message"]) == {"a": 1}

    status, body = await _post(session, base + "/reconnect", {})
    assert (status, body) == (200, {"connections": 1})
    assert await raw.recv() == {"type": "RECONNECT"}


async def test_control_faults(
    emulator: PubSubEmulator, raw: RawClient, session: aiohttp.ClientSession
) -> None:
    await raw.listen([BITS], token="t1")
    base = emulator.http_url + "/control"
    conn_id = emulator.connections[0].id
    assert await _post(session, base + "/raw", {"text": "hi", "connection": conn_id}) == (
        200,
        {"connections": 1},
    )
    assert (await raw.ws.receive(timeout=1)).data == "hi"
    assert await _post(session, base + "/silence", {"silent": True}) == (200, {"connections": 1})
    assert emulator.connections[0].silent
    assert await _post(session, base + "/fail-listen", {"error": "ERR_SERVER", "count": 2}) == (
        200,
        {"pending_faults": 2},
    )
    assert await _post(session, base + "/invalidate", {"token": "t9"}) == (200, {"ok": True})
    assert await raw.listen(["whispers.1"], token="t9") == protocol.ERR_BADAUTH
    status, body = await _post(session, base + "/revoke", {"token": "t1"})
    assert (status, body) == (200, {"topics": [BITS]})
    assert (await raw.recv())["type"] == "AUTH_REVOKED"
    status, body = await _post(session, base + "/trigger", {"kind": "bits", "channel": "5"})
    assert status == 200 and body["delivered"] == 0 and body["listened"] == []
    assert body["topics"] == ["channel-bits-events-v2.5"] and body["message"]["data"]["bits_used"]
    assert await _post(session, base + "/drop", {}) == (200, {"connections": 1})
    assert await _post(session, base + "/refuse", {"seconds": 0.2}) == (200, {"refusing_for": 0.2})
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await session.ws_connect(emulator.url)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/publish", "not json"),
        ("/publish", [1, 2]),
        ("/publish", {"message": {}}),
        ("/publish", {"topic": 5, "message": {}}),
        ("/publish", {"topic": BITS, "message": 5}),
        ("/publish", {"topic": "", "message": {}}),
        ("/trigger", {"kind": "nope", "channel": 1}),
        ("/trigger", {"kind": "bits", "channel": "abc"}),
        ("/trigger", {"kind": "bits", "channel": 1, "set": []}),
        ("/reconnect", {"connection": "x"}),
        ("/refuse", {"seconds": -1}),
        ("/refuse", {"seconds": True}),
        ("/revoke", {}),
        ("/silence", {"silent": "yes"}),
        ("/fail-listen", {"count": -1}),
        ("/raw", {"text": 5}),
    ],
)
async def test_control_bad_requests_get_400_json(
    emulator: PubSubEmulator, session: aiohttp.ClientSession, path: str, body: Any
) -> None:
    status, answer = await _post(session, emulator.http_url + "/control" + path, body)
    assert status == 400
    assert isinstance(answer["error"], str) and answer["error"]
    assert "Traceback" not in answer["error"]


# ---------------------------------------------------------------- payload builders


@pytest.mark.parametrize("kind", sorted(payloads.KINDS))
async def test_every_kind_is_delivered_as_a_json_string(
    emulator: PubSubEmulator, raw: RawClient, kind: str
) -> None:
    topic = payloads.event_topic(kind, 12345, 67890)
    assert await raw.listen([topic]) == ""
    assert await emulator.trigger(kind, 12345, 67890) == 1
    frame = await raw.recv()
    assert frame["data"]["topic"] == topic
    inner = json.loads(frame["data"]["message"])
    assert isinstance(inner, dict)


def test_bits_shape_matches_live_capture() -> None:
    topic, msg = payloads.build_event("bits", 12345, bits_used=500)
    assert topic == "channel-bits-events-v2.12345"
    assert set(msg) == {"data", "version", "message_type", "message_id"}
    data = msg["data"]
    assert data["channel_id"] == "12345" and isinstance(data["user_id"], str)
    assert data["bits_used"] == 500 and data["is_anonymous"] is False
    assert data["badge_entitlement"] is None
    # nanosecond RFC 3339 timestamps
    assert len(data["time"].split(".")[1]) == len("123456789Z")


def test_bits_v1_has_no_is_anonymous() -> None:
    _, msg = payloads.build_event("bits_v1", 1)
    assert "is_anonymous" not in msg["data"]


def test_channel_points_omits_user_input_unless_given() -> None:
    _, msg = payloads.build_event("channel_points", 1)
    assert msg["type"] == "reward-redeemed"
    assert "user_input" not in msg["data"]["redemption"]
    _, msg = payloads.build_event("channel_points", 1, user_input="hello", **{"reward.cost": 5})
    assert msg["data"]["redemption"]["user_input"] == "hello"
    assert msg["data"]["redemption"]["reward"]["cost"] == 5


def test_subscription_override_removes_key() -> None:
    _, msg = payloads.build_event("subscription", 1, streak_months=None)
    assert "streak_months" not in msg
    assert msg["context"] == "resub"


def test_whisper_is_double_encoded_and_overrides_reach_both_copies() -> None:
    topic, msg = payloads.build_event("whisper", 42, body="secret plans")
    assert topic == "whispers.42"
    assert isinstance(msg["data"], str)
    assert json.loads(msg["data"]) == msg["data_object"]
    assert msg["data_object"]["body"] == "secret plans"
    assert msg["data_object"]["recipient"]["id"] == 42
    assert isinstance(msg["data_object"]["from_id"], int)


def test_two_id_topics_use_wire_order() -> None:
    assert payloads.event_topic("moderation", 12345, 67890) == "chat_moderator_actions.67890.12345"
    assert payloads.event_topic("low_trust_user", 12345) == "low-trust-users.12345.12345"
    assert payloads.event_topic("automod_queue", 1, 2) == "automod-queue.2.1"
    assert (
        payloads.event_topic("user_moderation_notification", 1, 2)
        == "user-moderation-notifications.2.1"
    )


def test_build_event_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        payloads.build_event("nope", 1)
    with pytest.raises(ValueError, match="numeric"):
        payloads.build_event("bits", "abc")


async def test_close_connection_sends_close_frame(
    emulator: PubSubEmulator, raw: RawClient, session: aiohttp.ClientSession
) -> None:
    status, body = await _post(session, emulator.http_url + "/control/close", {})
    assert (status, body) == (200, {"connections": 1})
    msg = await raw.ws.receive(timeout=2)
    assert msg.type == aiohttp.WSMsgType.CLOSE  # a close frame, not a dropped socket
    # 1001 as asked; aiohttp 3.9's server may send its own 1000 first.
    assert msg.data in (1000, 1001)


async def test_refuse_with_custom_status(
    emulator: PubSubEmulator, session: aiohttp.ClientSession
) -> None:
    status, _ = await _post(
        session, emulator.http_url + "/control/refuse", {"seconds": 1, "status": 429}
    )
    assert status == 200
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(emulator.url)
    assert info.value.status == 429
    status, answer = await _post(
        session, emulator.http_url + "/control/refuse", {"seconds": 1, "status": 200}
    )
    assert status == 400 and "status" in answer["error"]
    with pytest.raises(ValueError):
        await emulator.refuse_connections(1, status=302)


async def test_connection_ignoring_reconnect_is_dropped_after_grace(
    session: aiohttp.ClientSession,
) -> None:
    async with PubSubEmulator(reconnect_grace=0.2) as emu, session.ws_connect(emu.url) as ws:
        client = RawClient(ws)
        await client.listen([BITS])
        assert await emu.send_reconnect() == 1
        assert await client.recv() == {"type": "RECONNECT"}
        msg = await ws.receive(timeout=3)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert emu.connections == []


async def test_no_drop_without_grace(session: aiohttp.ClientSession) -> None:
    async with PubSubEmulator(reconnect_grace=None) as emu, session.ws_connect(emu.url) as ws:
        await emu.send_reconnect()
        assert (await ws.receive(timeout=1)).type == aiohttp.WSMsgType.TEXT
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=0.3)
        assert len(emu.connections) == 1
