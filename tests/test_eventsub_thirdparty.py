"""Two independent EventSub clients, unmodified, against the EventSub emulator.

pyTwitchAPI's ``EventSubWebsocket`` and TwitchIO 2.10's ``twitchio.ext.eventsub`` are
pointed at the emulator through their URL settings only. Each subscribes, receives a
triggered event, survives a ``session_reconnect`` and sees a revocation: if the emulator
strayed from Twitch's protocol where these clients depend on it, these tests would fail.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

from twitchio_pubsub.emulator import EventSubEmulator


@pytest.fixture
async def emu() -> AsyncIterator[EventSubEmulator]:
    async with EventSubEmulator(reconnect_grace=5.0) as e:
        yield e


async def moved(emu: EventSubEmulator, count: int = 1) -> None:
    """Wait until the client followed ``session_reconnect`` and closed its old socket."""
    await emu.wait_until(
        lambda: (
            len(emu.sessions) == 1
            and emu.sessions[0].status == "connected"
            and len(emu.enabled(emu.sessions[0].session_id)) == count
            and emu.sessions[0].moved_to is None
        ),
        timeout=10,
    )


async def test_pytwitchapi_eventsub_websocket(emu: EventSubEmulator) -> None:
    from twitchAPI.eventsub.websocket import EventSubWebsocket
    from twitchAPI.twitch import Twitch
    from twitchAPI.type import AuthScope

    emu.add_token("pta-token", "1337", scopes=["bits:read"], client_id="pta-app")
    urls = emu.urls
    twitch = await Twitch(
        "pta-app",
        authenticate_app=False,
        base_url=urls["helix_url"] + "/",
        auth_base_url=urls["id_url"] + "/",
    )
    twitch.auto_refresh_auth = False
    await twitch.set_user_authentication("pta-token", [AuthScope.BITS_READ])

    loop = asyncio.get_running_loop()
    cheers: asyncio.Queue[Any] = asyncio.Queue()
    revoked: asyncio.Queue[Any] = asyncio.Queue()

    # pyTwitchAPI runs its socket on a thread of its own; hand results back to this loop.
    async def on_cheer(event: Any) -> None:
        loop.call_soon_threadsafe(cheers.put_nowait, event)

    async def on_revoke(payload: Any) -> None:
        loop.call_soon_threadsafe(revoked.put_nowait, payload)

    eventsub = EventSubWebsocket(
        twitch,
        connection_url=urls["eventsub_url"],
        subscription_url=urls["helix_url"] + "/",
        revocation_handler=on_revoke,
    )
    await asyncio.to_thread(eventsub.start)  # start() blocks until the welcome
    try:
        sub_id = await eventsub.listen_channel_cheer("1337", on_cheer)
        assert emu.subscriptions[sub_id]["type"] == "channel.cheer"

        assert await emu.trigger("channel.cheer", broadcaster_user_id="1337", bits=42) == 1
        event = await asyncio.wait_for(cheers.get(), 5)
        assert (event.event.bits, event.event.user_login) == (42, "cheery_viewer")

        await emu.send_reconnect()
        await moved(emu)
        assert await emu.trigger("channel.cheer", broadcaster_user_id="1337", bits=43) == 1
        assert (await asyncio.wait_for(cheers.get(), 5)).event.bits == 43

        assert await emu.revoke("authorization_revoked") == [sub_id]
        payload = await asyncio.wait_for(revoked.get(), 5)
        assert payload["subscription"]["status"] == "authorization_revoked"
        assert cheers.empty()
    finally:
        await _stop_pytwitchapi(eventsub)
        await twitch.close()


async def _stop_pytwitchapi(eventsub: Any) -> None:
    # stop() waits on its socket thread's loop with a blocking result(); keep this loop free.
    await asyncio.to_thread(asyncio.run, eventsub.stop())
    if eventsub._socket_thread is not None:
        await asyncio.to_thread(eventsub._socket_thread.join, 10)
    if eventsub._socket_loop is not None:
        eventsub._socket_loop.close()  # its thread leaves the loop it made open


async def test_twitchio_ext_eventsub_websocket(
    emu: EventSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import twitchio
    from twitchio.http import Route

    with warnings.catch_warnings():
        # Its webhook server subclasses web.Application, which aiohttp now discourages.
        warnings.filterwarnings("ignore", "Inheritance class EventSubClient", DeprecationWarning)
        from twitchio.ext import eventsub

    emu.add_token("tio-token", "1337", scopes=["bits:read"], client_id="tio-app")
    # The documented URL settings: the websocket's URL and the Helix base of routes.
    monkeypatch.setattr(eventsub.websocket.Websocket, "URL", emu.urls["eventsub_url"])
    monkeypatch.setattr(Route, "BASE_URL", emu.urls["helix_url"])

    client = twitchio.Client(token="tio-token")
    # TwitchIO would validate at id.twitch.tv to learn these; give them as a bot's config does.
    client._http.client_id = "tio-app"
    client._http.nick = "cool_broadcaster"

    cheers: asyncio.Queue[Any] = asyncio.Queue()
    revoked: asyncio.Queue[Any] = asyncio.Queue()

    async def event_eventsub_notification_cheer(event: Any) -> None:
        await cheers.put(event)

    async def event_eventsub_revokation(event: Any) -> None:
        await revoked.put(event)

    client.add_event(event_eventsub_notification_cheer, "event_eventsub_notification_cheer")
    client.add_event(event_eventsub_revokation, "event_eventsub_revokation")

    ws_client = eventsub.EventSubWSClient(client)
    try:
        await ws_client.subscribe_channel_cheers(broadcaster=1337, token="tio-token")
        await emu.wait_for_subscriptions(1)

        assert await emu.trigger("channel.cheer", broadcaster_user_id="1337", bits=42) == 1
        event = await asyncio.wait_for(cheers.get(), 5)
        assert event.data.bits == 42

        await emu.send_reconnect()
        await moved(emu)
        assert await emu.trigger("channel.cheer", broadcaster_user_id="1337", bits=43) == 1
        assert (await asyncio.wait_for(cheers.get(), 5)).data.bits == 43

        [sub_id] = await emu.revoke("version_removed")
        notice = await asyncio.wait_for(revoked.get(), 5)
        assert notice.subscription.id == sub_id
        assert notice.subscription.status == "version_removed"
    finally:
        for sock in ws_client._sockets:
            if sock._pump_task is not None:
                sock._pump_task.cancel()
            if sock._sock is not None:
                await sock._sock.close()
        if client._http.session is not None:  # the bot never logged in to chat: no close()
            await client._http.session.close()
