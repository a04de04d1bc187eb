"""Tokens people can get: the device code flow, refreshing and app tokens, against the
EventSub emulator's OAuth endpoints over real sockets (and as real processes)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from twitchio_pubsub import auth
from twitchio_pubsub.emulator import EventSubEmulator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def emu() -> AsyncIterator[EventSubEmulator]:
    async with EventSubEmulator(device_interval=0.05, device_expires=60) as e:
        e.add_app("public-app")
        e.add_app("private-app", "s3cret")
        yield e


async def validate(emu: EventSubEmulator, token: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            emu.urls["id_url"] + "/validate", headers={"Authorization": f"OAuth {token}"}
        ) as resp,
    ):
        assert resp.status == 200
        body: dict[str, object] = await resp.json()
        return body


async def test_device_flow_gives_a_token_with_the_scopes_the_topics_need(
    emu: EventSubEmulator,
) -> None:
    scopes = auth.scopes_for_topics("bits", "channel_points")
    assert scopes == ["bits:read", "channel:read:redemptions"]
    id_url = emu.urls["id_url"]
    code = await auth.start_device_flow("public-app", scopes, id_url=id_url)
    assert re.fullmatch(r"[A-Z]{8}", code.user_code) and code.interval == 0.05
    assert code.device_code not in repr(code)

    async def approve_later() -> None:
        await asyncio.sleep(0.2)  # a few polls answered authorization_pending first
        emu.approve_device(code.user_code, 1337)

    approving = asyncio.ensure_future(approve_later())
    token = await auth.finish_device_flow("public-app", code, id_url=id_url)
    await approving
    assert token.scopes == ("bits:read", "channel:read:redemptions")
    assert token.access_token not in repr(token) and token.refresh_token not in repr(token)
    info = await validate(emu, token.access_token)
    assert info["user_id"] == "1337" and info["client_id"] == "public-app"
    assert sorted(info["scopes"]) == sorted(scopes)  # type: ignore[arg-type]
    # A code is good for one token.
    with pytest.raises(auth.AuthError) as again:
        await auth.finish_device_flow("public-app", code, id_url=id_url)
    assert again.value.reason == "invalid device code"


async def test_slow_down_lengthens_the_interval(emu: EventSubEmulator) -> None:
    id_url = emu.urls["id_url"]
    code = await auth.start_device_flow("public-app", [], id_url=id_url)
    await emu.slow_down_next_poll(1)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            emu.approve_device(code.user_code, 42)

    await auth.finish_device_flow("public-app", code, id_url=id_url, sleep=sleep)
    assert waits == [5.05, 5.05]  # 0.05 s, plus 5 s after slow_down, kept


async def test_a_code_nobody_approves_expires(emu: EventSubEmulator) -> None:
    async with EventSubEmulator(device_interval=0.05, device_expires=1) as quick:
        quick.add_app("public-app")
        id_url = quick.urls["id_url"]
        code = await auth.start_device_flow("public-app", ["bits:read"], id_url=id_url)
        with pytest.raises(auth.AuthError, match="expired before it was approved"):
            await auth.finish_device_flow("public-app", code, id_url=id_url)


async def test_refresh_tokens_are_single_use(emu: EventSubEmulator) -> None:
    id_url = emu.urls["id_url"]
    code = await auth.start_device_flow("public-app", ["bits:read"], id_url=id_url)
    emu.approve_device(code.user_code, 1337)
    first = await auth.finish_device_flow("public-app", code, id_url=id_url)
    second = await auth.refresh("public-app", first.refresh_token, id_url=id_url)
    assert second.access_token != first.access_token
    assert (await validate(emu, second.access_token))["user_id"] == "1337"
    with pytest.raises(auth.AuthError) as reused:
        await auth.refresh("public-app", first.refresh_token, id_url=id_url)
    assert reused.value.reason == "Invalid refresh token"
    assert first.refresh_token not in str(reused.value)


async def test_a_confidential_client_refreshes_with_its_secret(emu: EventSubEmulator) -> None:
    id_url = emu.urls["id_url"]
    code = await auth.start_device_flow("private-app", [], id_url=id_url)
    emu.approve_device(code.user_code, 7)
    token = await auth.finish_device_flow("private-app", code, id_url=id_url)
    with pytest.raises(auth.AuthError, match="missing client secret"):
        await auth.refresh("private-app", token.refresh_token, id_url=id_url)
    again = await auth.refresh(
        "private-app", token.refresh_token, client_secret="s3cret", id_url=id_url
    )
    assert again.expires_in > 0


async def test_app_tokens_by_client_credentials(emu: EventSubEmulator) -> None:
    id_url = emu.urls["id_url"]
    token = await auth.app_token("private-app", "s3cret", id_url=id_url)
    info = await validate(emu, token.access_token)
    assert info["client_id"] == "private-app" and "user_id" not in info
    for client_id, secret in (("private-app", "wrong"), ("public-app", "any")):
        with pytest.raises(auth.AuthError) as refused:
            await auth.app_token(client_id, secret, id_url=id_url)
        assert refused.value.status == 403 and secret not in str(refused.value)
    with pytest.raises(auth.AuthError, match="invalid client"):
        await auth.start_device_flow("nobody", [], id_url=id_url)


async def test_an_unreachable_server_is_an_auth_error_naming_the_url() -> None:
    with pytest.raises(auth.AuthError, match=r"cannot reach http://127\.0\.0\.1:9/device"):
        await auth.start_device_flow("x", [], id_url="http://127.0.0.1:9")


async def run(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twitchio_pubsub",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )


async def test_the_token_command_end_to_end_as_processes(emu: EventSubEmulator) -> None:
    # twitchio-pubsub token prints the code; another process approves it as the user
    # would; the first then prints a token that validates with the topics' scopes.
    proc = await run(
        "token",
        "--client-id",
        "public-app",
        "--topics",
        "bits,whispers",
        "--id-url",
        emu.urls["id_url"],
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"open (\S+) and enter the code ([A-Z]{8})", first)
        assert match, first
        approve = await run("eventsub", "approve", match.group(2), "--user", "9001",
                            "--server", emu.http_url)  # fmt: skip
        out, err = await asyncio.wait_for(approve.communicate(), 30)
        assert approve.returncode == 0, err.decode()
        assert f"approved {match.group(2)} as user 9001 for client public-app" in out.decode()
        rest, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    text = rest.decode()
    access = re.search(r"access token:\s+(\S+)", text)
    assert access and re.search(r"refresh token:\s+\S+", text)
    assert "scopes: bits:read user:read:whispers" in text
    info = await validate(emu, access.group(1))
    assert info["user_id"] == "9001"
    assert sorted(info["scopes"]) == ["bits:read", "user:read:whispers"]  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["nope", "Topic", "scopes_for"])
def test_an_unknown_topic_name_is_a_value_error_naming_the_factories(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown topic '{name}'; one of: automod_queue, bits"):
        auth.scopes_for_topics(name)
