"""The command line: ``serve`` and ``trigger`` as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import aiohttp
import pytest

from twitchio_pubsub.__main__ import main
from twitchio_pubsub.emulator import PubSubEmulator

from .conftest import RawClient


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twitchio_pubsub",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_serve_then_trigger_then_ctrl_c(session: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twitchio_pubsub",
        "serve",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        url = line.split()[3]
        assert url.startswith("ws://127.0.0.1:")
        http = url.replace("ws://", "http://")
        async with session.ws_connect(url) as ws:
            client = RawClient(ws)
            assert (
                await client.listen(["channel-points-channel-v1.12345"], token="s3cr3t-cli") == ""
            )
            code, out, err = await _run(
                "trigger",
                "channel_points",
                "--channel",
                "12345",
                "--server",
                http,
                "--set",
                "user_input=hello there",
                "--set",
                "reward.cost=42",
            )
            assert code == 0, err
            assert out.strip() == "channel_points: delivered to 1 connection(s)"
            frame = await client.recv()
            redemption = json.loads(frame["data"]["message"])["data"]["redemption"]
            assert redemption["user_input"] == "hello there"
            assert redemption["reward"]["cost"] == 42
    finally:
        proc.send_signal(signal.SIGINT)
        _, err_b = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    log = err_b.decode()
    assert "LISTEN channel-points-channel-v1.12345" in log
    assert "connection 1 opened" in log
    assert "s3cr3t-cli" not in log


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["trigger", "nope", "--channel", "1"], "invalid choice"),
        (["trigger", "bits"], "--channel"),
        (["trigger", "bits", "--channel", "1", "--set", "novalue"], "key=value"),
        ([], "COMMAND"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1


async def test_trigger_unreachable_server_fails_cleanly() -> None:
    code, _out, err = await _run(
        "trigger", "bits", "--channel", "1", "--server", "http://127.0.0.1:9"
    )
    assert code == 1
    assert err.startswith("twitchio-pubsub: error: cannot reach the emulator")
    assert len(err.strip().splitlines()) == 1


async def test_trigger_server_side_error_is_reported(emulator: PubSubEmulator) -> None:
    code, _, err = await _run("trigger", "bits", "--channel", "abc", "--server", emulator.http_url)
    assert code == 1
    assert "numeric" in err


def test_console_script_installed() -> None:
    bindir = os.path.dirname(sys.executable)
    assert os.path.exists(os.path.join(bindir, "twitchio-pubsub"))
