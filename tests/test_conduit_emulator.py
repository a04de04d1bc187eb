"""The EventSub emulator's conduits, over real sockets: Helix's conduit and shard API,
app/user token rules, limits, routing over shards with one retry, shard statuses and
``conduit.shard.disabled``, the assignment window, and the control API."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Optional

import aiohttp
import pytest

from twitchio_pubsub.emulator import EventSubEmulator
from twitchio_pubsub.emulator.eventsub.conduits import route_hash

from .eventsub_helpers import CLIENT_ID, Client, add_user

pytestmark = pytest.mark.asyncio

SECRET = "s3cret-value"


@pytest.fixture
async def emu() -> AsyncIterator[EventSubEmulator]:
    async with EventSubEmulator(subscribe_window=1.0, ping_interval=None) as e:
        e.add_app(CLIENT_ID, SECRET)
        yield e


@pytest.fixture
async def es(emu: EventSubEmulator) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http, Client(emu, http) as c:
        yield c


async def app_token(es: Client) -> str:
    async with es.http.post(
        f"{es.emu.http_url}/oauth2/token",
        data={"client_id": CLIENT_ID, "client_secret": SECRET, "grant_type": "client_credentials"},
    ) as resp:
        assert resp.status == 200
        token: str = (await resp.json())["access_token"]
        return token


async def call(
    es: Client,
    method: str,
    path: str,
    token: str,
    *,
    json: Any = None,
    params: Optional[dict[str, str]] = None,
) -> tuple[int, Any]:
    url = f"{es.emu.urls['helix_url']}{path}"
    async with es.http.request(
        method, url, json=json, params=params, headers=es.headers(token)
    ) as resp:
        body = None if resp.status == 204 else await resp.json()
        return resp.status, body


async def conduit_sub(
    es: Client, token: str, conduit_id: str, type: str, condition: dict[str, str]
) -> tuple[int, Any]:
    body = {
        "type": type,
        "version": "1",
        "condition": condition,
        "transport": {"method": "conduit", "conduit_id": conduit_id},
    }
    return await call(es, "POST", "/eventsub/subscriptions", token, json=body)


async def assign(es: Client, token: str, conduit_id: str, *pairs: tuple[str, str]) -> Any:
    shards = [
        {"id": shard, "transport": {"method": "websocket", "session_id": session}}
        for shard, session in pairs
    ]
    status, body = await call(
        es,
        "PATCH",
        "/eventsub/conduits/shards",
        token,
        json={"conduit_id": conduit_id, "shards": shards},
    )
    assert status == 202, body
    return body


async def test_conduit_crud_with_body_or_query_and_limits(es: Client) -> None:
    app = await app_token(es)
    status, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 3})
    assert status == 200 and body["data"][0]["shard_count"] == 3
    first = body["data"][0]["id"]
    # TwitchIO and twurple send these as query parameters: accepted too.
    status, body = await call(es, "POST", "/eventsub/conduits", app, params={"shard_count": "2"})
    assert status == 200
    status, body = await call(
        es, "PATCH", "/eventsub/conduits", app, params={"id": first, "shard_count": "5"}
    )
    assert status == 200 and body["data"] == [{"id": first, "shard_count": 5}]
    status, body = await call(es, "GET", "/eventsub/conduits", app)
    assert sorted(c["shard_count"] for c in body["data"]) == [2, 5]
    for bad in (0, 20_001, "x", True):
        status, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": bad})
        assert (status, body["message"]) == (400, "Invalid shard count")
    for _ in range(3):
        assert (await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 1}))[
            0
        ] == 200
    status, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 1})
    assert (status, body["message"]) == (429, "Conduit limit reached")
    assert (await call(es, "DELETE", "/eventsub/conduits", app, params={"id": first}))[0] == 204
    assert (await call(es, "DELETE", "/eventsub/conduits", app, params={"id": first}))[0] == 404
    assert (await call(es, "DELETE", "/eventsub/conduits", app))[0] == 400


async def test_conduits_need_an_app_token_and_conduit_subs_too(es: Client) -> None:
    user = add_user(es.emu, "1337", "bits:read")
    app = await app_token(es)
    status, body = await call(es, "GET", "/eventsub/conduits", user)
    assert status == 401 and "app access token" in body["message"]
    _, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 1})
    conduit = body["data"][0]["id"]
    status, body = await conduit_sub(
        es, user, conduit, "channel.cheer", {"broadcaster_user_id": "1337"}
    )
    assert status == 400 and "app access token" in body["message"]
    # The app token may not create websocket subscriptions (the reverse).
    sock = await es.connect()
    status, _, body = await es.create(
        app, sock.session_id, "channel.cheer", {"broadcaster_user_id": "1"}
    )
    assert status == 401
    # A user who never authorized the client with the scope: 403, naming it.
    status, body = await conduit_sub(
        es, app, conduit, "channel.cheer", {"broadcaster_user_id": "9"}
    )
    assert status == 403 and "bits:read" in body["message"]
    status, body = await conduit_sub(
        es, app, conduit, "channel.cheer", {"broadcaster_user_id": "1337"}
    )
    assert status == 202 and body["data"][0]["transport"] == {
        "method": "conduit",
        "conduit_id": conduit,
    }
    assert body["data"][0]["cost"] == 0
    status, body = await conduit_sub(
        es, app, conduit, "channel.cheer", {"broadcaster_user_id": "1337"}
    )
    assert status == 409
    status, body = await call(
        es, "GET", "/eventsub/subscriptions", app, params={"conduit_id": conduit}
    )
    assert [s["type"] for s in body["data"]] == ["channel.cheer"]
    status, body = await call(es, "GET", "/eventsub/subscriptions", user)
    assert body["data"] == []  # the user's own list does not show the app's


async def test_shards_assigned_in_the_window_routed_by_channel_with_one_retry(
    es: Client,
) -> None:
    emu = es.emu
    app = await app_token(es)
    _, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 3})
    conduit = body["data"][0]["id"]
    for uid in ("1", "2", "3", "4", "5", "6"):
        add_user(emu, uid, "bits:read")
        status, _ = await conduit_sub(
            es, app, conduit, "channel.cheer", {"broadcaster_user_id": uid}
        )
        assert status == 202
    socks = [await es.connect() for _ in range(3)]
    body = await assign(es, app, conduit, *((str(i), s.session_id) for i, s in enumerate(socks)))
    assert body["errors"] == [] and [s["status"] for s in body["data"]] == ["enabled"] * 3
    # Per-shard errors, with the shard id, and still 202.
    body = await assign(es, app, conduit, ("7", socks[0].session_id), ("1", "no-such-session"))
    assert {e["id"]: e["message"] for e in body["errors"]} == {
        "7": "The shard id is outside of the conduit's range.",
        "1": "The websocket session is not connected.",
    }
    # Every cheer goes to the shard its channel hashes to, and nowhere else.
    got: collections.Counter[tuple[int, str]] = collections.Counter()
    for uid in ("1", "2", "3", "4", "5", "6"):
        await emu.trigger("channel.cheer", broadcaster_user_id=uid)
        expected = route_hash(uid) % 3
        frame = await socks[expected].recv()
        got[(expected, frame["payload"]["event"]["broadcaster_user_id"])] += 1
    assert sum(got.values()) == 6
    # A dead shard: its channels go to the next shard once; both dead: dropped.
    uid = "1"
    home = route_hash(uid) % 3
    status = await emu.fault_shard(conduit, home)
    assert status == "websocket_disconnected"
    await emu.trigger("channel.cheer", broadcaster_user_id=uid)
    retry = socks[(home + 1) % 3]
    frame = await retry.recv()
    assert frame["payload"]["event"]["broadcaster_user_id"] == uid
    assert emu.conduit_retried == 1
    await emu.fault_shard(conduit, (home + 1) % 3, code=4000)
    assert emu.shard(conduit, (home + 1) % 3).status == "websocket_internal_error"
    await emu.trigger("channel.cheer", broadcaster_user_id=uid)
    assert emu.conduit_dropped == 1
    status, body = await call(
        es,
        "GET",
        "/eventsub/conduits/shards",
        app,
        params={"conduit_id": conduit, "status": "enabled"},
    )
    assert [s["id"] for s in body["data"]] == [str(3 - home - (home + 1) % 3)]
    assert "disconnected_at" in emu.shard(conduit, home).public()["transport"]


async def test_unassigned_session_closed_4003_and_assigned_kept(es: Client) -> None:
    app = await app_token(es)
    _, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 1})
    conduit = body["data"][0]["id"]
    idle, kept = await es.connect(), await es.connect()
    await assign(es, app, conduit, ("0", kept.session_id))
    assert await idle.closed_with(timeout=3) == 4003
    assert not kept.ws.closed
    assert emu_shard_status(es.emu, conduit, "0") == "enabled"


def emu_shard_status(emu: EventSubEmulator, conduit: str, shard: str) -> str:
    return emu.shard(conduit, shard).status


async def test_shard_disabled_event_and_reconnect_keeps_the_session_id(es: Client) -> None:
    emu = es.emu
    app = await app_token(es)
    _, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 2})
    conduit = body["data"][0]["id"]
    a, b = await es.connect(), await es.connect()
    await assign(es, app, conduit, ("0", a.session_id), ("1", b.session_id))
    status, body = await call(
        es,
        "POST",
        "/eventsub/subscriptions",
        app,
        json={
            "type": "conduit.shard.disabled",
            "version": "1",
            "condition": {"client_id": CLIENT_ID, "conduit_id": conduit},
            "transport": {"method": "conduit", "conduit_id": conduit},
        },
    )
    assert status == 202, body
    # session_reconnect on shard 0: the new socket's welcome has the same session id.
    await emu.send_reconnect(a.session_id)
    frame = await a.recv()
    url = frame["payload"]["session"]["reconnect_url"]
    moved = await es.connect(url)
    assert moved.session_id == a.session_id
    await a.ws.close()
    await emu.wait_until(lambda: len(emu.sessions) == 2)
    assert emu.shard(conduit, "0").status == "enabled"
    # Shard 1 goes away: shard.disabled reaches a live shard.
    await emu.fault_shard(conduit, "1", code=4002)
    seen = []
    for sock in (moved, b):
        if not sock.ws.closed:
            with contextlib.suppress(AssertionError, TimeoutError):
                seen.append(await sock.recv(timeout=1))
    disabled = [
        f for f in seen if f["metadata"].get("subscription_type") == "conduit.shard.disabled"
    ]
    assert disabled and disabled[0]["payload"]["event"]["shard_id"] == "1"
    assert disabled[0]["payload"]["event"]["status"] == "websocket_failed_ping_pong"


async def test_resize_and_delete_conduit_over_the_control_api(es: Client) -> None:
    emu = es.emu
    add_user(emu, "5", "bits:read")
    app = await app_token(es)
    _, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 4})
    conduit = body["data"][0]["id"]
    await conduit_sub(es, app, conduit, "channel.cheer", {"broadcaster_user_id": "5"})
    sock = await es.connect()
    await assign(es, app, conduit, ("3", sock.session_id))
    await call(es, "PATCH", "/eventsub/conduits", app, json={"id": conduit, "shard_count": 2})
    assert len(emu.conduits[conduit].shards) == 2
    status, answer = await es.control("delete-conduit", {"conduit_id": conduit})
    assert status == 200 and answer == {"ok": True}
    assert [s["status"] for s in emu.subscriptions.values()] == ["conduit_deleted"]
    status, answer = await es.control("delete-conduit", {"conduit_id": conduit})
    assert status == 400
    assert emu.state()["conduits"] == []


async def test_shards_are_paged_and_shard_ids_checked(es: Client) -> None:
    app = await app_token(es)
    _, body = await call(es, "POST", "/eventsub/conduits", app, json={"shard_count": 150})
    conduit = body["data"][0]["id"]
    status, first = await call(
        es, "GET", "/eventsub/conduits/shards", app, params={"conduit_id": conduit}
    )
    assert status == 200 and len(first["data"]) == 100 and first["pagination"]["cursor"]
    status, rest = await call(
        es,
        "GET",
        "/eventsub/conduits/shards",
        app,
        params={"conduit_id": conduit, "after": first["pagination"]["cursor"]},
    )
    assert len(rest["data"]) == 50 and rest["pagination"] == {}
    assert [s["id"] for s in first["data"] + rest["data"]] == [str(i) for i in range(150)]
    status, body = await call(es, "GET", "/eventsub/conduits/shards", app)
    assert status == 400 and "required" in body["message"]
    status, body = await call(
        es, "GET", "/eventsub/conduits/shards", app, params={"conduit_id": "nope"}
    )
    assert status == 404
    # PATCH with conduit_id in the query (TwitchIO sends it there) and a shard without id.
    sock = await es.connect()
    status, body = await call(
        es,
        "PATCH",
        "/eventsub/conduits/shards",
        app,
        params={"conduit_id": conduit},
        json={
            "shards": [
                {"id": "149", "transport": {"method": "websocket", "session_id": sock.session_id}}
            ]
        },
    )
    assert status == 202 and body["errors"] == [] and body["data"][0]["status"] == "enabled"
    status, body = await call(
        es,
        "PATCH",
        "/eventsub/conduits/shards",
        app,
        json={"conduit_id": conduit, "shards": [{"transport": {"method": "websocket"}}]},
    )
    assert status == 400
