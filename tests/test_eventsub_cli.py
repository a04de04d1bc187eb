"""``twitchio-pubsub eventsub serve`` and ``eventsub trigger`` as real processes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys

import aiohttp
import pytest

from twitchio_pubsub.emulator import EventSubEmulator

from .eventsub_helpers import Client, add_user


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "twitchio_pubsub", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_serve_registers_tokens_prints_urls_and_stops_on_ctrl_c() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "twitchio_pubsub", "eventsub", "serve", "--port", "0",
        "--token", "cli-token=1337:bits:read,user:read:chat",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        urls = dict(re.findall(r"(eventsub_url|helix_url|id_url)=(\S+)", line))
        assert urls["eventsub_url"].startswith("ws://127.0.0.1:") and urls["eventsub_url"].endswith(
            "/ws"
        )
        async with aiohttp.ClientSession() as http:
            async with http.get(
                urls["id_url"] + "/validate", headers={"Authorization": "OAuth cli-token"}
            ) as resp:
                validated = await resp.json()
            assert validated["user_id"] == "1337"
            assert validated["scopes"] == ["bits:read", "user:read:chat"]
            async with http.ws_connect(urls["eventsub_url"]) as ws:
                welcome = await ws.receive_json(timeout=5)
                session_id = welcome["payload"]["session"]["id"]
                async with http.post(
                    urls["helix_url"] + "/eventsub/subscriptions",
                    headers=Client.headers("cli-token", "emulator-client-id"),
                    json={
                        "type": "channel.cheer", "version": "1",
                        "condition": {"broadcaster_user_id": "1337"},
                        "transport": {"method": "websocket", "session_id": session_id},
                    },
                ) as resp:  # fmt: skip
                    assert resp.status == 202
                base = urls["helix_url"].rsplit("/", 1)[0]
                code, out, err = await _run(
                    "eventsub", "trigger", "channel.cheer", "--broadcaster", "1337",
                    "--set", "bits=77", "--server", base,
                )  # fmt: skip
                assert code == 0, err
                assert "delivered to 1 session(s)" in out
                assert json.loads(out[: out.rindex("}") + 1])["bits"] == 77
                frame = await ws.receive_json(timeout=5)
                assert frame["payload"]["event"]["bits"] == 77
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_trigger_explains_errors() -> None:
    async with EventSubEmulator() as emu:
        code, _, err = await _run(
            "eventsub", "trigger", "channel.cheer", "--set", "colour=red", "--server", emu.http_url
        )
        assert code == 2  # a usage error, as with the PubSub trigger
        assert "has no field 'colour'" in err
        code, _, err = await _run("eventsub", "trigger", "channel.cheer", "--server", emu.http_url)
        assert code == 0
        assert "no subscription to channel.cheer matches" in err
        assert "nothing is subscribed at all" in err


async def test_trigger_without_a_server() -> None:
    code, _, err = await _run(
        "eventsub", "trigger", "channel.cheer", "--server", "http://127.0.0.1:9"
    )
    assert code == 1
    assert "start one with: twitchio-pubsub eventsub serve" in err


async def test_bad_token_option_is_a_usage_error() -> None:
    code, _, err = await _run("eventsub", "serve", "--token", "no-user-id")
    assert code == 2
    assert "expected TOKEN=USER_ID[:scope,scope...]" in err


async def test_trigger_user_option_reaches_whispers() -> None:
    async with (
        EventSubEmulator() as emu,
        aiohttp.ClientSession() as http,
        Client(emu, http) as client,
    ):
        token = add_user(emu, "4242", "user:read:whispers")
        sock = await client.connect()
        await client.create(token, sock.session_id, "user.whisper.message", {"user_id": "4242"})
        code, _, err = await _run(
            "eventsub", "trigger", "user.whisper.message", "--user", "4242",
            "--set", "whisper.text=psst", "--server", emu.http_url,
        )  # fmt: skip
        assert code == 0, err
        assert (await sock.recv())["payload"]["event"]["whisper"]["text"] == "psst"


def test_usage_errors_name_each_field_once_and_never_the_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from twitchio_pubsub.__main__ import main

    with pytest.raises(SystemExit):
        main(["eventsub", "serve", "--token", "secret-value=abc"])
    assert "secret-value" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eventsub", "trigger", "cheer", "--set", "nope=1"])
    err = capsys.readouterr().err
    fields = err.split("its fields: ", 1)[1].split(" (see")[0].split(", ")
    assert "broadcaster_user_id" in fields and len(fields) == len(set(fields))
