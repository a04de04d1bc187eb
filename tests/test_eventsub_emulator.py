"""The EventSub emulator over real sockets: protocol rules, Helix limits, errors, faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from twitchio_pubsub.emulator import EventSubEmulator
from twitchio_pubsub.eventsub import SUBSCRIPTION_TYPES

from .eventsub_helpers import EVENTSUB_SAMPLES, Client, Socket, add_user, shape

CHEER = {"broadcaster_user_id": "1337"}


@pytest.fixture
async def emu() -> AsyncIterator[EventSubEmulator]:
    async with EventSubEmulator(min_keepalive=1, reconnect_grace=0.5) as e:
        yield e


@pytest.fixture
async def client(emu: EventSubEmulator) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http, Client(emu, http) as c:
        yield c


async def cheer_socket(client: Client, url: str | None = None) -> tuple[Socket, str, str]:
    """A socket holding one channel.cheer subscription of user 1337."""
    token = add_user(client.emu, "1337", "bits:read")
    sock = await client.connect(url)
    status, _, body = await client.create(token, sock.session_id, "channel.cheer", CHEER)
    assert status == 202, body
    return sock, token, body["data"][0]["id"]


# ---------------------------------------------------------------- the WebSocket


async def test_welcome_has_the_documented_shape(client: Client) -> None:
    sock = await client.connect()
    envelope = json.loads((EVENTSUB_SAMPLES / "_envelopes.json").read_text())["welcome"]
    expected = shape(envelope)
    expected["payload"]["session"]["reconnect_url"] = "NoneType"
    assert shape(sock.welcome) == expected
    session = sock.welcome["payload"]["session"]
    assert session["status"] == "connected"
    assert session["keepalive_timeout_seconds"] == 10
    assert session["connected_at"].endswith("Z") and len(session["connected_at"]) == 30


@pytest.mark.parametrize(("asked", "given"), [("1", 1), ("45", 45), ("0", 1), ("9999", 600)])
async def test_keepalive_timeout_is_clamped_not_refused(
    client: Client, asked: str, given: int
) -> None:
    sock = await client.connect(client.emu.url + f"?keepalive_timeout_seconds={asked}")
    assert sock.welcome["payload"]["session"]["keepalive_timeout_seconds"] == given


async def test_default_keepalive_floor_is_twitchs_ten_seconds(client: Client) -> None:
    async with EventSubEmulator() as strict:
        sock = await client.connect(strict.url + "?keepalive_timeout_seconds=2")
        assert sock.welcome["payload"]["session"]["keepalive_timeout_seconds"] == 10
        await sock.ws.close()


async def test_non_numeric_keepalive_fails_the_handshake(client: Client) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.http.ws_connect(client.emu.url + "?keepalive_timeout_seconds=soon")
    assert info.value.status == 400


async def test_keepalive_only_when_nothing_else_was_sent(client: Client) -> None:
    sock, _, _ = await cheer_socket(client, client.emu.url + "?keepalive_timeout_seconds=1")
    seen = []
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:  # events every 0.3 s keep the window busy
        await client.emu.trigger("channel.cheer", broadcaster_user_id="1337")
        seen.append((await sock.recv(keepalives=True))["metadata"]["message_type"])
        await asyncio.sleep(0.3)
    assert set(seen) == {"notification"}
    idle = await sock.recv(timeout=2.5, keepalives=True)
    assert idle["metadata"]["message_type"] == "session_keepalive"
    assert idle["payload"] == {}


async def test_unused_session_is_closed_with_4003(client: Client) -> None:
    sock = await client.connect(client.emu.url + "?keepalive_timeout_seconds=1")
    assert await sock.closed_with(timeout=3) == 4003


async def test_a_subscription_in_the_window_keeps_the_session(client: Client) -> None:
    sock, _, _ = await cheer_socket(client, client.emu.url + "?keepalive_timeout_seconds=1")
    frame = await sock.recv(timeout=3, keepalives=True)
    assert frame["metadata"]["message_type"] == "session_keepalive"
    assert not sock.ws.closed


@pytest.mark.parametrize("send", ["text", "binary"])
async def test_any_client_data_frame_closes_4001(client: Client, send: str) -> None:
    sock, _, sub_id = await cheer_socket(client)
    if send == "text":
        await sock.ws.send_str('{"type":"PING"}')
    else:
        await sock.ws.send_bytes(b"\x00")
    assert await sock.closed_with() == 4001
    await client.emu.wait_until(lambda: client.emu.subscriptions[sub_id]["status"] != "enabled")
    assert client.emu.subscriptions[sub_id]["status"] == "websocket_received_inbound_traffic"


async def test_client_pings_are_answered(client: Client) -> None:
    sock = await client.connect(autoping=False)
    await sock.ws.ping(b"are you there")
    while True:
        msg = await sock.ws.receive(timeout=2)
        if msg.type == aiohttp.WSMsgType.PONG:
            break
    assert msg.data == b"are you there"


async def test_unanswered_server_pings_close_4002(client: Client) -> None:
    async with EventSubEmulator(ping_interval=0.2, min_keepalive=5) as emu:
        token = add_user(emu, "1337", "bits:read")
        c = client.on(emu)
        sock = await c.connect(autoping=False)
        await c.create(token, sock.session_id, "channel.cheer", CHEER)
        assert await sock.closed_with() == 4002
        await emu.wait_until(lambda: not emu.enabled())
        assert [s["status"] for s in emu.subscriptions.values()] == ["websocket_failed_ping_pong"]


async def test_answered_server_pings_keep_the_session(client: Client) -> None:
    async with EventSubEmulator(ping_interval=0.1, min_keepalive=5) as emu:
        token = add_user(emu, "1337", "bits:read")
        c = client.on(emu)
        sock = await c.connect()  # aiohttp answers Pings by itself
        await c.create(token, sock.session_id, "channel.cheer", CHEER)
        with pytest.raises(asyncio.TimeoutError):
            await sock.recv(timeout=0.6)
        assert not sock.ws.closed


async def test_notification_envelope_matches_the_sample(client: Client) -> None:
    sock, _, sub_id = await cheer_socket(client)
    assert await client.emu.trigger("channel.cheer", broadcaster_user_id=1337, bits=250) == 1
    frame = await sock.recv()
    sample = json.loads((EVENTSUB_SAMPLES / "_envelopes.json").read_text())["notification"]
    assert shape(frame) == shape(sample)
    assert frame["metadata"]["subscription_type"] == "channel.cheer"
    assert frame["metadata"]["subscription_version"] == "1"
    assert frame["payload"]["subscription"]["id"] == sub_id
    assert frame["payload"]["subscription"]["transport"]["session_id"] == sock.session_id
    assert frame["payload"]["event"]["bits"] == 250


async def test_message_ids_are_unique(client: Client) -> None:
    sock, _, _ = await cheer_socket(client)
    for _ in range(20):
        await client.emu.trigger("channel.cheer", broadcaster_user_id="1337")
    ids = {(await sock.recv())["metadata"]["message_id"] for _ in range(20)}
    assert len(ids) == 20


async def test_lost_socket_disables_subscriptions_and_replays_nothing(client: Client) -> None:
    sock, token, sub_id = await cheer_socket(client)
    await sock.ws.close()
    await client.emu.wait_until(lambda: not client.emu.enabled())
    status, body = await client.list(token)
    assert status == 200
    [sub] = body["data"]
    assert sub["status"] == "websocket_disconnected"
    assert "disconnected_at" in sub["transport"]
    assert await client.emu.trigger("channel.cheer", broadcaster_user_id="1337") == 0
    again = await client.connect()
    _, _, created = await client.create(token, again.session_id, "channel.cheer", CHEER)
    assert created["data"][0]["id"] != sub_id
    with pytest.raises(asyncio.TimeoutError):
        await again.recv(timeout=0.3)


# ---------------------------------------------------------------- session_reconnect


async def test_reconnect_moves_subscriptions_to_the_new_socket(client: Client) -> None:
    old, token, sub_id = await cheer_socket(client)
    assert await client.emu.send_reconnect() == 1
    frame = await old.recv()
    assert frame["metadata"]["message_type"] == "session_reconnect"
    session = frame["payload"]["session"]
    assert session["status"] == "reconnecting"
    assert session["keepalive_timeout_seconds"] is None
    # Events keep flowing on the old socket until the new welcome.
    await client.emu.trigger("channel.cheer", broadcaster_user_id="1337", bits=1)
    assert (await old.recv())["payload"]["event"]["bits"] == 1
    new = await client.connect(session["reconnect_url"])
    assert new.session_id != old.session_id
    await client.emu.trigger("channel.cheer", broadcaster_user_id="1337", bits=2)
    notification = await new.recv()
    assert notification["payload"]["event"]["bits"] == 2
    assert notification["payload"]["subscription"]["id"] == sub_id
    assert notification["payload"]["subscription"]["transport"]["session_id"] == new.session_id
    status, _, body = await client.create(token, new.session_id, "channel.cheer", CHEER)
    assert (status, body["message"]) == (409, "subscription already exists")
    status, _, body = await client.create(token, old.session_id, "channel.bits.use", CHEER)
    assert status == 400
    await old.ws.close()
    await asyncio.sleep(0.1)
    assert [s["id"] for s in client.emu.enabled(new.session_id)] == [sub_id]


async def test_old_socket_left_open_after_moving_gets_4004(client: Client) -> None:
    old, _, sub_id = await cheer_socket(client)
    await client.emu.send_reconnect()
    url = (await old.recv())["payload"]["session"]["reconnect_url"]
    new = await client.connect(url)
    assert await old.closed_with(timeout=2) == 4004
    assert client.emu.subscriptions[sub_id]["status"] == "enabled"
    assert client.emu.subscriptions[sub_id]["transport"]["session_id"] == new.session_id


async def test_never_moving_gets_4004_and_loses_the_subscriptions(client: Client) -> None:
    old, _, sub_id = await cheer_socket(client)
    await client.emu.send_reconnect()
    url = (await old.recv())["payload"]["session"]["reconnect_url"]
    assert await old.closed_with(timeout=2) == 4004
    await client.emu.wait_until(lambda: not client.emu.enabled())
    assert client.emu.subscriptions[sub_id]["status"] == "websocket_failed_to_reconnect"
    async with client.http.ws_connect(url) as late:
        assert await Socket(late, {"payload": {"session": {"id": ""}}}).closed_with() == 4007


async def test_closing_the_old_socket_first_gives_4007(client: Client) -> None:
    old, _, _ = await cheer_socket(client)
    await client.emu.send_reconnect()
    url = (await old.recv())["payload"]["session"]["reconnect_url"]
    await old.ws.close()
    await client.emu.wait_until(lambda: not client.emu.sessions)
    async with client.http.ws_connect(url) as ws:
        msg = await ws.receive(timeout=2)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4007


async def test_a_reconnect_url_works_once(client: Client) -> None:
    old, _, _ = await cheer_socket(client)
    await client.emu.send_reconnect()
    url = (await old.recv())["payload"]["session"]["reconnect_url"]
    await client.connect(url)
    async with client.http.ws_connect(url) as ws:
        msg = await ws.receive(timeout=2)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4007


# ---------------------------------------------------------------- Helix


async def test_create_answers_202_with_the_documented_body(client: Client) -> None:
    token = add_user(client.emu, "1337", "bits:read")
    sock = await client.connect()
    status, headers, body = await client.create(token, sock.session_id, "channel.cheer", CHEER)
    sample = json.loads((EVENTSUB_SAMPLES / "_helix.json").read_text())["create_response_202"]
    assert status == 202
    assert shape(body) == shape(sample["body"])
    assert body["data"][0]["condition"] == CHEER
    assert body["max_total_cost"] == 10
    assert int(headers["Ratelimit-Limit"]) == 800
    assert int(headers["Ratelimit-Remaining"]) < 800
    assert int(headers["Ratelimit-Reset"]) >= int(time.time())


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no token", "Invalid OAuth token"),
        ("unknown token", "Invalid OAuth token"),
        ("no client id", "Client-Id header required"),
        ("other client id", "Client ID and OAuth token do not match"),
        ("expired", "Invalid OAuth token"),
        ("invalidated", "Invalid OAuth token"),
        ("app token", "an app access token cannot create websocket subscriptions"),
    ],
)
async def test_401(client: Client, case: str, message: str) -> None:
    emu = client.emu
    token = add_user(emu, "1337", "bits:read")
    sock = await client.connect()
    client_id = "test-client"
    if case == "no token":
        token = None  # type: ignore[assignment]
    elif case == "unknown token":
        token = "nobody-knows-me"
    elif case == "no client id":
        client_id = None  # type: ignore[assignment]
    elif case == "other client id":
        client_id = "someone-else"
    elif case == "expired":
        await emu.expire_token(token)
    elif case == "invalidated":
        await emu.invalidate_token(token)
    else:
        emu.add_token("app", None, client_id="test-client")
        token = "app"
    status, _, body = await client.create(
        token, sock.session_id, "channel.cheer", CHEER, client_id=client_id
    )
    assert (status, body) == (401, {"error": "Unauthorized", "status": 401, "message": message})


async def test_expires_in_lets_a_token_lapse(client: Client) -> None:
    client.emu.add_token("short", "1337", scopes=["bits:read"], expires_in=0.2)
    client.emu.add_token("long", "1337", scopes=["bits:read"], expires_in=3600)
    async with client.http.get(
        client.emu.urls["id_url"] + "/validate", headers={"Authorization": "OAuth long"}
    ) as resp:
        assert 3590 <= (await resp.json())["expires_in"] <= 3600
    await asyncio.sleep(0.3)
    async with client.http.get(
        client.emu.urls["id_url"] + "/validate", headers={"Authorization": "OAuth short"}
    ) as resp:
        assert resp.status == 401


@pytest.mark.parametrize(
    ("body_change", "message"),
    [
        ({"type": "channel.nope"}, "The combination of values in the type and version"),
        ({"version": "9"}, "The combination of values in the type and version"),
        ({"version": 1}, "The combination of values in the type and version"),
        ({"condition": {}}, "condition must have the string fields broadcaster_user_id"),
        ({"condition": {"broadcaster_user_id": 1337}}, "condition must have the string"),
        ({"condition": {**CHEER, "colour": "red"}}, "condition has unknown fields: colour"),
        ({"transport": {"method": "webhook"}}, "transport.method must be websocket"),
        ({"transport": {"method": "websocket", "session_id": "x"}}, "session does not exist"),
    ],
)
async def test_400_bad_requests(client: Client, body_change: dict, message: str) -> None:
    token = add_user(client.emu, "1337", "bits:read")
    sock = await client.connect()
    body = {
        "type": "channel.cheer",
        "version": "1",
        "condition": CHEER,
        "transport": {"method": "websocket", "session_id": sock.session_id},
        **body_change,
    }
    async with client.http.post(
        client.subscriptions_url, json=body, headers=client.headers(token)
    ) as resp:
        answer = await resp.json()
    assert resp.status == 400
    assert answer["error"] == "Bad Request" and message in answer["message"]


async def test_400_for_a_closed_session(client: Client) -> None:
    token = add_user(client.emu, "1337", "bits:read")
    sock = await client.connect()
    await sock.ws.close()
    await client.emu.wait_until(lambda: not client.emu.sessions)
    status, _, body = await client.create(token, sock.session_id, "channel.cheer", CHEER)
    assert status == 400
    assert body["message"] == (
        "websocket transport session does not exist or has already disconnected"
    )


async def test_400_for_a_second_user_on_a_session(client: Client) -> None:
    sock, _, _ = await cheer_socket(client)
    other = add_user(client.emu, "4242", "bits:read")
    status, _, body = await client.create(
        other, sock.session_id, "channel.cheer", {"broadcaster_user_id": "4242"}
    )
    assert status == 400
    assert body["message"] == (
        "websocket transport cannot have subscriptions created by different users"
    )


async def test_403_names_the_missing_scope(client: Client) -> None:
    token = add_user(client.emu, "1338", "moderator:read:vips", "moderator:read:moderators")
    sock = await client.connect()
    status, _, body = await client.create(
        token,
        sock.session_id,
        "channel.moderate",
        {"broadcaster_user_id": "1337", "moderator_user_id": "1338"},
        version="2",
    )
    assert status == 403
    assert body["message"] == (
        "subscription missing proper authorization: missing scope "
        "moderator:manage:blocked_terms or moderator:read:blocked_terms"
    )


async def test_403_when_the_condition_user_is_not_the_token_user(client: Client) -> None:
    token = add_user(client.emu, "1337", "bits:read")
    sock = await client.connect()
    status, _, body = await client.create(
        token, sock.session_id, "channel.cheer", {"broadcaster_user_id": "999"}
    )
    assert status == 403
    assert "broadcaster_user_id must be the token's user" in body["message"]


async def test_every_scope_group_is_checked(client: Client) -> None:
    sock = await client.connect()
    sockets = []
    for n, ((type_, version), spec) in enumerate(SUBSCRIPTION_TYPES.items()):
        user = str(5000 + n)  # one type and condition per user: versions share a key
        sockets.append(sock := await client.connect())  # and one user per session
        condition = {key: user for key in spec.condition}
        none = add_user(client.emu, user, token="no-scopes")
        status, _, _ = await client.create(none, sock.session_id, type_, condition, version)
        assert status == 403, type_
        scopes = [sorted(group)[0] for group in spec.scopes]
        full = add_user(client.emu, user, *scopes, token=f"{type_}-{version}")
        status, _, body = await client.create(full, sock.session_id, type_, condition, version)
        assert status == 202, (type_, version, body)


async def test_409_for_the_same_type_and_condition(client: Client) -> None:
    sock, token, _ = await cheer_socket(client)
    status, _, body = await client.create(token, sock.session_id, "channel.cheer", CHEER)
    assert (status, body["error"]) == (409, "Conflict")


async def test_429_beyond_three_sessions_per_user(client: Client) -> None:
    token = add_user(client.emu, "1337", "bits:read", "channel:read:subscriptions")
    sockets = []  # kept: aiohttp closes a websocket that is garbage-collected
    for type_ in ("channel.cheer", "channel.subscription.gift", "channel.subscription.message"):
        sockets.append(await client.connect())
        status, _, _ = await client.create(token, sockets[-1].session_id, type_, CHEER)
        assert status == 202
    fourth = await client.connect()
    status, _, body = await client.create(token, fourth.session_id, "channel.subscribe", CHEER)
    assert (status, body["message"]) == (429, "number of websocket transports limit exceeded")
    # Another user is not counted against this one.
    other = add_user(client.emu, "4242", "bits:read")
    status, _, _ = await client.create(
        other, fourth.session_id, "channel.cheer", {"broadcaster_user_id": "4242"}
    )
    assert status == 202


async def test_429_beyond_300_subscriptions_per_session(client: Client) -> None:
    token = add_user(client.emu, "1337", "channel:read:redemptions")
    sock = await client.connect()
    for n in range(300):
        status, _, body = await client.create(
            token,
            sock.session_id,
            "channel.channel_points_custom_reward_redemption.add",
            {"broadcaster_user_id": "1337", "reward_id": f"reward-{n}"},
        )
        assert status == 202, (n, body)
    status, _, body = await client.create(
        token,
        sock.session_id,
        "channel.channel_points_custom_reward_redemption.add",
        {"broadcaster_user_id": "1337", "reward_id": "one-too-many"},
    )
    assert (status, body["error"]) == (429, "Too Many Requests")
    assert len(client.emu.enabled(sock.session_id)) == 300


async def test_429_when_the_total_cost_would_pass_the_cap(client: Client) -> None:
    async with EventSubEmulator(max_total_cost=0, min_keepalive=5) as emu:
        token = add_user(emu, "1337", "user:read:chat")
        c = client.on(emu)
        sock = await c.connect()
        # The bot reads someone else's chat: still its own user in the condition, cost 0.
        status, _, body = await c.create(
            token,
            sock.session_id,
            "channel.chat.notification",
            {"broadcaster_user_id": "9999", "user_id": "1337"},
        )
        assert (status, body["data"][0]["cost"]) == (202, 0)


async def test_get_lists_filters_and_pages(client: Client) -> None:
    token = add_user(client.emu, "1337", "channel:read:redemptions", "bits:read")
    sock = await client.connect()
    for n in range(150):
        await client.create(
            token,
            sock.session_id,
            "channel.channel_points_custom_reward.update",
            {"broadcaster_user_id": "1337", "reward_id": f"r{n}"},
        )
    await client.create(token, sock.session_id, "channel.cheer", CHEER)
    status, first = await client.list(token)
    assert status == 200 and len(first["data"]) == 100 and first["total"] == 151
    _, second = await client.list(token, after=first["pagination"]["cursor"])
    assert len(second["data"]) == 51 and second["pagination"] == {}
    _, cheers = await client.list(token, type="channel.cheer")
    assert [s["type"] for s in cheers["data"]] == ["channel.cheer"]
    _, by_user = await client.list(token, user_id="1337")
    assert by_user["total"] == 151
    _, none = await client.list(token, status="websocket_disconnected")
    assert none["data"] == []
    status, _ = await client.list(token, status="enabled", type="channel.cheer")
    assert status == 400
    stranger = add_user(client.emu, "77")
    _, theirs = await client.list(stranger)
    assert theirs["data"] == []


async def test_delete(client: Client) -> None:
    _, token, sub_id = await cheer_socket(client)
    assert await client.delete(token, None) == 400
    assert await client.delete(add_user(client.emu, "77"), sub_id) == 404
    assert await client.delete(token, sub_id) == 204
    assert await client.delete(token, sub_id) == 404
    assert await client.emu.trigger("channel.cheer", broadcaster_user_id="1337") == 0


async def test_validate(client: Client) -> None:
    scopes = ["bits:read", "chat:read"]
    client.emu.add_token("tok", 1337, scopes=scopes, login="cool", client_id="c")
    url = client.emu.urls["id_url"] + "/validate"
    async with client.http.get(url, headers={"Authorization": "OAuth tok"}) as resp:
        assert resp.status == 200
        assert await resp.json() == {
            "client_id": "c",
            "login": "cool",
            "scopes": ["bits:read", "chat:read"],
            "user_id": "1337",
            "expires_in": 0,
        }
    for header in ({}, {"Authorization": "OAuth nope"}, {"Authorization": "Basic tok"}):
        async with client.http.get(url, headers=header) as resp:
            assert resp.status == 401
            assert await resp.json() == {"status": 401, "message": "invalid access token"}


# ---------------------------------------------------------------- events


async def test_trigger_goes_only_to_matching_conditions(client: Client) -> None:
    emu = client.emu
    a = add_user(emu, "1", "moderator:manage:automod")
    b = add_user(emu, "2", "moderator:manage:automod")
    sock_a, sock_b = await client.connect(), await client.connect()
    hold = "automod.message.hold"
    await client.create(
        a, sock_a.session_id, hold, {"broadcaster_user_id": "9", "moderator_user_id": "1"}, "2"
    )
    await client.create(
        b, sock_b.session_id, hold, {"broadcaster_user_id": "9", "moderator_user_id": "2"}, "1"
    )
    # Every moderator of channel 9 sees a held message, whatever the version.
    assert await emu.trigger(hold, broadcaster_user_id="9") == 2
    assert "automod" in (await sock_a.recv())["payload"]["event"]
    assert "category" in (await sock_b.recv())["payload"]["event"]
    assert await emu.trigger(hold, version="2", broadcaster_user_id="9") == 1
    assert await emu.trigger(hold, broadcaster_user_id="9", moderator_user_id="2") == 1
    assert (await sock_b.recv())["payload"]["subscription"]["condition"]["moderator_user_id"] == "2"
    assert await emu.trigger(hold, broadcaster_user_id="10") == 0


async def test_trigger_overrides_nested_fields_and_condition_aliases(client: Client) -> None:
    emu = client.emu
    token = add_user(emu, "4242", "user:read:whispers")
    sock = await client.connect()
    await client.create(token, sock.session_id, "user.whisper.message", {"user_id": "4242"})
    assert await emu.trigger("user.whisper.message", user_id=4242, **{"whisper.text": "hi"}) == 1
    event = (await sock.recv())["payload"]["event"]
    assert (event["to_user_id"], event["whisper"]["text"]) == ("4242", "hi")
    assert await emu.trigger("user.whisper.message", user_id=1) == 0


async def test_trigger_picks_the_form_by_action_and_notice_type(client: Client) -> None:
    emu = client.emu
    scopes = [sorted(g)[0] for g in SUBSCRIPTION_TYPES[("channel.moderate", "2")].scopes]
    mod = add_user(emu, "1338", *scopes)
    sock = await client.connect()
    await client.create(
        mod,
        sock.session_id,
        "channel.moderate",
        {"broadcaster_user_id": "1337", "moderator_user_id": "1338"},
        "2",
    )
    await emu.trigger("channel.moderate", broadcaster_user_id="1337", action="warn")
    event = (await sock.recv())["payload"]["event"]
    assert event["action"] == "warn" and event["warn"]["chat_rules_cited"] == ["No spam"]
    assert event["delete"] is None
    await emu.trigger("channel.moderate", broadcaster_user_id="1337", action="slowoff")
    event = (await sock.recv())["payload"]["event"]
    assert event["action"] == "slowoff"
    assert all(event[k] is None for k in ("warn", "slow", "delete", "timeout"))
    with pytest.raises(ValueError, match=r"unknown channel\.moderate action"):
        await emu.trigger("channel.moderate", action="smite")


async def test_trigger_rejects_unknown_types_versions_and_fields(emu: EventSubEmulator) -> None:
    with pytest.raises(ValueError, match=r"unknown EventSub type 'channel\.nope'"):
        await emu.trigger("channel.nope")
    with pytest.raises(ValueError, match="has no version '7'"):
        await emu.trigger("channel.cheer", version="7")
    with pytest.raises(ValueError, match="has no field 'colour'"):
        await emu.trigger("channel.cheer", colour="red")
    with pytest.raises(ValueError, match="notice_type 'raid' has no template"):
        await emu.trigger("channel.chat.notification", notice_type="raid")


def _sample_files() -> list[str]:
    return sorted(p.name for p in EVENTSUB_SAMPLES.glob("*.json") if not p.name.startswith("_"))


def test_every_shared_sample_is_in_the_repository() -> None:
    names = _sample_files()
    assert len(names) == 33
    types = {json.loads((EVENTSUB_SAMPLES / n).read_text())["subscription_type"] for n in names}
    assert {t for t, _ in SUBSCRIPTION_TYPES} == types


@pytest.mark.parametrize("name", _sample_files())
async def test_sample_round_trips(client: Client, name: str) -> None:
    """trigger() of the sample's type makes an event with the sample's fields and types."""
    sample = json.loads((EVENTSUB_SAMPLES / name).read_text())
    type_, version, condition = sample["subscription_type"], sample["version"], sample["condition"]
    spec = SUBSCRIPTION_TYPES[(type_, version)]
    user = condition[spec.token_user] if spec.token_user else "1"
    token = add_user(client.emu, user, *(sorted(g)[0] for g in spec.scopes))
    sock = await client.connect()
    status, _, body = await client.create(token, sock.session_id, type_, condition, version)
    assert status == 202, body
    event = sample["event"]
    picks = {k: event[k] for k in ("notice_type", "action", "is_anonymous") if k in event}
    fields = {**picks, **condition_fields(spec, condition)}
    assert await client.emu.trigger(type_, version=version, **fields) == 1
    frame = await sock.recv()
    assert frame["metadata"]["subscription_type"] == type_
    assert shape(frame["payload"]["event"]) == shape(event)
    assert frame["payload"]["subscription"]["condition"] == condition


def condition_fields(spec, condition: dict[str, str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The condition ids that are also event fields (the rest would only filter)."""
    return {k: v for k, v in condition.items() if spec.event_path(k) is not None}


# ---------------------------------------------------------------- faults


async def test_drop_is_a_lost_connection(client: Client) -> None:
    sock, _, sub_id = await cheer_socket(client)
    assert await client.emu.drop() == 1
    msg = await sock.ws.receive(timeout=2)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    assert sock.ws.close_code != 4000
    await client.emu.wait_until(lambda: not client.emu.enabled())
    assert client.emu.subscriptions[sub_id]["status"] == "websocket_disconnected"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (4000, "websocket_internal_error"),
        (4001, "websocket_received_inbound_traffic"),
        (4002, "websocket_failed_ping_pong"),
        (4003, "websocket_connection_unused"),
        (4004, "websocket_failed_to_reconnect"),
        (4005, "websocket_network_timeout"),
        (4006, "websocket_network_error"),
        (4007, "websocket_disconnected"),
    ],
)
async def test_close_with_each_code(client: Client, code: int, status: str) -> None:
    sock, _, sub_id = await cheer_socket(client)
    assert await client.emu.close_session(sock.session_id, code) == 1
    msg = await sock.ws.receive(timeout=2)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, code)
    assert msg.extra  # a reason text goes with every code
    await client.emu.wait_until(lambda: not client.emu.enabled())
    assert client.emu.subscriptions[sub_id]["status"] == status


async def test_close_code_is_checked(emu: EventSubEmulator) -> None:
    with pytest.raises(ValueError, match="close code"):
        await emu.close_session(None, 4999)


async def test_stopped_keepalives(client: Client) -> None:
    sock, _, _ = await cheer_socket(client, client.emu.url + "?keepalive_timeout_seconds=1")
    assert await client.emu.stop_keepalives() == 1
    with pytest.raises(asyncio.TimeoutError):
        await sock.recv(timeout=1.8, keepalives=True)
    await client.emu.stop_keepalives(stopped=False)
    frame = await sock.recv(timeout=2.5, keepalives=True)
    assert frame["metadata"]["message_type"] == "session_keepalive"


@pytest.mark.parametrize("reason", ["authorization_revoked", "user_removed", "version_removed"])
async def test_revoke(client: Client, reason: str) -> None:
    sock, token, sub_id = await cheer_socket(client)
    assert await client.emu.revoke(reason, subscription=sub_id) == [sub_id]
    frame = await sock.recv()
    sample = json.loads((EVENTSUB_SAMPLES / "_envelopes.json").read_text())["revocation"]
    del sample["_comment"]
    assert shape(frame) == shape(sample)
    assert frame["metadata"]["message_type"] == "revocation"
    assert frame["payload"]["subscription"]["status"] == reason
    assert await client.emu.trigger("channel.cheer", broadcaster_user_id="1337") == 0
    _, listed = await client.list(token)
    assert listed["data"][0]["status"] == reason


async def test_revoking_a_token_invalidates_it(client: Client) -> None:
    sock, token, sub_id = await cheer_socket(client)
    other = add_user(client.emu, "4242", "bits:read")
    other_sock = await client.connect()
    await client.create(
        other, other_sock.session_id, "channel.cheer", {"broadcaster_user_id": "4242"}
    )
    assert await client.emu.revoke(token=token) == [sub_id]
    assert (await sock.recv())["metadata"]["message_type"] == "revocation"
    status, _ = await client.list(token)
    assert status == 401
    assert len(client.emu.enabled()) == 1


async def test_refuse_handshakes(client: Client) -> None:
    await client.emu.refuse_connections(0.3, 503)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.connect()
    assert info.value.status == 503
    await asyncio.sleep(0.35)
    assert (await client.connect()).session_id


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_next_helix_calls_fail(client: Client, status: int) -> None:
    token = add_user(client.emu, "1337", "bits:read")
    sock = await client.connect()
    await client.emu.fail_next_helix(status, 2, reset_after=5)
    for _ in range(2):
        got, headers, body = await client.create(token, sock.session_id, "channel.cheer", CHEER)
        assert (got, body["status"]) == (status, status)
    if status == 429:
        assert headers["Ratelimit-Remaining"] == "0"
        assert int(headers["Ratelimit-Reset"]) >= int(time.time()) + 4
    got, _, _ = await client.create(token, sock.session_id, "channel.cheer", CHEER)
    assert got == 202


async def test_duplicate_delivery_reuses_the_message_id(client: Client) -> None:
    sock, _, _ = await cheer_socket(client)
    await client.emu.duplicate_next(1)
    await client.emu.trigger("channel.cheer", broadcaster_user_id="1337")
    await client.emu.trigger("channel.cheer", broadcaster_user_id="1337")
    ids = [(await sock.recv())["metadata"]["message_id"] for _ in range(3)]
    assert ids[0] == ids[1] != ids[2]


# ---------------------------------------------------------------- control API


async def test_control_api_drives_everything(client: Client) -> None:
    c = client
    token = {"token": "t", "user_id": "1337", "scopes": ["bits:read"], "client_id": "test-client"}
    assert await c.control("token", token) == (200, {"ok": True})
    sock = await c.connect()
    status, _, _ = await c.create("t", sock.session_id, "channel.cheer", CHEER)
    assert status == 202
    fields = {"broadcaster_user_id": "1337", "bits": 7}
    status, answer = await c.control("trigger", {"type": "channel.cheer", "fields": fields})
    assert (status, answer["delivered"], answer["event"]["bits"]) == (200, 1, 7)
    assert (await sock.recv())["payload"]["event"]["bits"] == 7
    assert await c.control("duplicate", {"count": 1}) == (200, {"pending": 1})
    assert (await c.control("keepalive", {"enabled": False}))[1] == {"sessions": 1}
    assert (await c.control("fail-helix", {"status": 503, "count": 1}))[1] == {"pending_faults": 1}
    async with c.http.get(f"{c.emu.http_url}/control/state") as resp:
        state = await resp.json()
    assert state["sessions"][0]["id"] == sock.session_id
    assert state["sessions"][0]["keepalives"] is False
    assert state["subscriptions"][0]["type"] == "channel.cheer"
    assert (await c.control("revoke", {"reason": "user_removed"}))[0] == 200
    assert (await sock.recv())["metadata"]["message_type"] == "revocation"
    assert (await c.control("reconnect", {"session": sock.session_id}))[1] == {"sessions": 1}
    assert (await sock.recv())["metadata"]["message_type"] == "session_reconnect"
    assert (await c.control("close", {"code": 4006}))[1] == {"sessions": 1}
    assert await sock.closed_with() == 4006
    assert (await c.control("refuse", {"seconds": 0}))[0] == 200
    assert (await c.control("expire", {"token": "t"}))[1] == {"ok": True}
    assert (await c.control("invalidate", {"token": "t", "valid": True}))[1] == {"ok": True}
    assert (await c.control("drop", {}))[1] == {"sessions": 0}


@pytest.mark.parametrize(
    ("name", "body", "error"),
    [
        ("trigger", {"type": "channel.nope"}, "unknown EventSub type"),
        ("trigger", {}, "missing field 'type'"),
        ("trigger", {"type": "channel.cheer", "fields": []}, "field 'fields' has the wrong type"),
        ("token", {"token": "t", "scopes": "bits:read"}, "field 'scopes' has the wrong type"),
        ("fail-helix", {"status": 404}, "status must be 429, 500"),
        ("close", {"code": 1}, "close code"),
        ("expire", {"token": "unknown"}, "no such token"),
        ("duplicate", {"count": -1}, "non-negative integer"),
        ("token", {"token": "t", "scopes": ["ok", 5]}, "field 'scopes' must be a list of str"),
        ("slow-helix", {"seconds": -1}, "seconds must be from 0"),
        ("garbage-helix", {"call": "nope"}, "call must be one of"),
        ("welcome", {"remove": [1]}, "field 'remove' must be a list of str"),
    ],
)
async def test_control_api_errors(client: Client, name: str, body: dict, error: str) -> None:
    status, answer = await client.control(name, body)
    assert status == 400
    assert error in answer["error"]


async def test_control_api_refuses_other_hosts_and_non_json(client: Client) -> None:
    url = f"{client.emu.http_url}/control/trigger"
    async with client.http.post(url, data="{}", headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
    async with client.http.post(url, json={}, headers={"Host": "evil.example"}) as resp:
        assert resp.status == 403


async def test_close_leaves_no_tasks(client: Client) -> None:
    emu = EventSubEmulator(min_keepalive=1)
    await emu.start()
    c = client.on(emu)
    add_user(emu, "1337", "bits:read")
    sock = await c.connect()
    await c.create("token-1337", sock.session_id, "channel.cheer", CHEER)
    await emu.send_reconnect()
    before = len(asyncio.all_tasks())
    await emu.close()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) < before
    names = [t.get_name() for t in asyncio.all_tasks()]
    assert not [n for n in names if "emulator" in n]
    assert await sock.closed_with() in (1001, None)  # ends, whether or not it saw the frame


async def test_pytest_plugin_fixture(eventsub_emulator: EventSubEmulator) -> None:
    async with aiohttp.ClientSession() as http, Client(eventsub_emulator, http) as c:
        sock = await c.connect()
    assert eventsub_emulator.sessions[0].session_id == sock.session_id


async def test_the_rate_limit_bucket_answers_429_when_empty() -> None:
    async with EventSubEmulator(rate_limit=2) as emu, aiohttp.ClientSession() as http:
        client = Client(emu, http)  # no socket opened
        token = add_user(emu, "1337", "bits:read")
        answers = [await client.list(token) for _ in range(3)]
        assert [status for status, _ in answers] == [200, 200, 429]
        async with http.get(client.subscriptions_url, headers=client.headers(token)) as resp:
            assert resp.headers["Ratelimit-Remaining"] == "0"
            assert int(resp.headers["Ratelimit-Reset"]) > time.time()


async def test_helix_keeps_no_rate_bucket_for_unauthenticated_client_ids() -> None:
    # 3,000 made-up Client-Ids used to leave 3,000 buckets behind (760 kB).
    async with EventSubEmulator() as emu, aiohttp.ClientSession() as http:
        url = emu.urls["helix_url"] + "/eventsub/subscriptions"
        for n in range(300):
            headers = {"Client-Id": f"bogus-{n}", "Authorization": "Bearer nope"}
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 401
        assert len(emu._rate) == 0


async def test_helix_and_validate_refuse_a_foreign_host_header() -> None:
    async with EventSubEmulator() as emu, aiohttp.ClientSession() as http:
        emu.add_token("tok", 1, client_id="c")
        headers = {"Host": "evil.example", "Authorization": "OAuth tok"}
        async with http.get(emu.urls["id_url"] + "/validate", headers=headers) as resp:
            assert resp.status == 403
        headers = {"Host": "evil.example", "Authorization": "Bearer tok", "Client-Id": "c"}
        url = emu.urls["helix_url"] + "/eventsub/subscriptions"
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 403
        async with http.get(url, headers={**headers, "Host": "127.0.0.1"}) as resp:
            assert resp.status == 200


async def test_control_api_reaches_the_hostile_server_faults(
    emu: EventSubEmulator, client: Client
) -> None:
    assert (await client.control("slow-helix", {"seconds": 0.1, "call": "list"}))[1] == {
        "pending_faults": 1
    }
    assert (await client.control("garbage-helix", {"count": 2}))[1] == {"pending_faults": 3}
    assert (await client.control("welcome", {"fields": {"keepalive_timeout_seconds": 1}}))[1] == {
        "ok": True
    }
    sock = await client.connect()
    assert sock.welcome["payload"]["session"]["keepalive_timeout_seconds"] == 1
    assert (await client.control("raw", {"text": "hello"}))[1] == {"sessions": 1}
    msg = await sock.ws.receive(timeout=2)
    assert msg.data == "hello"
    answer = await client.control("reconnect", {"url": "wss://elsewhere.example/ws"})
    assert answer[1] == {"sessions": 1}
    frame = await sock.recv()
    assert frame["payload"]["session"]["reconnect_url"] == "wss://elsewhere.example/ws"
