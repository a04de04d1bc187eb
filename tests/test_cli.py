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


async def _serve() -> tuple[asyncio.subprocess.Process, str]:
    """Start ``serve`` on a free port; returns the process and its websocket URL."""
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
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    return proc, line.split()[3]


async def test_serve_then_trigger_then_ctrl_c(session: aiohttp.ClientSession) -> None:
    proc, url = await _serve()
    try:
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
            *payload, summary = out.strip().splitlines()
            assert summary == (
                "channel_points: 1 event(s) on channel-points-channel-v1.12345: delivered 1 time(s)"
            )
            sent = json.loads("\n".join(payload))  # the payload it sent, as Twitch CLI prints
            assert sent["data"]["redemption"]["user_input"] == "hello there"
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
        (["eventsub", "serve", "--token", "tok=abc"], "numeric Twitch user id"),
        (["eventsub", "trigger", "cheer", "--set", "nope=1"], "has no field 'nope'"),
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
    assert err.startswith("twitchio-pubsub: error: no emulator answers at http://127.0.0.1:9")
    assert "twitchio-pubsub serve" in err
    assert len(err.strip().splitlines()) == 1


async def test_trigger_server_side_error_is_reported(emulator: PubSubEmulator) -> None:
    code, _, err = await _run("trigger", "bits", "--channel", "abc", "--server", emulator.http_url)
    assert code == 2  # refused by the emulator (400): a usage error, as argparse's are
    assert "numeric" in err


def test_console_script_installed() -> None:
    bindir = os.path.dirname(sys.executable)
    assert os.path.exists(os.path.join(bindir, "twitchio-pubsub"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["trigger", "bits", "--channel", "1", "--set", "nope=1"], "bits_used, channel_id"),
        (["trigger", "bits", "--channel", "1", "--server", "127.0.0.1:8765"], "http://"),
        (["trigger", "bits", "--channel", "1", "--count", "0"], "1 to 1000"),
        (["serve", "--extra-topic", "("], "regular expression"),
    ],
)
def test_more_bad_arguments_get_one_clear_line(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_version_and_plain_help(capsys: pytest.CaptureFixture[str]) -> None:
    import twitchio_pubsub

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"twitchio-pubsub {twitchio_pubsub.__version__}"
    for args in (["--help"], ["trigger", "--help"], ["serve", "--help"]):
        with pytest.raises(SystemExit):
            main(args)
        text = capsys.readouterr().out
        assert "``" not in text and ":class:" not in text and ":func:" not in text
    with pytest.raises(SystemExit):
        main(["trigger", "--help"])
    assert "cheer = bits" in capsys.readouterr().out


async def test_trigger_alias_count_and_nobody_listening(
    emulator: PubSubEmulator, raw: RawClient
) -> None:
    assert await raw.listen(["channel-bits-events-v2.5"]) == ""
    code, out, err = await _run(
        "trigger", "cheer", "--channel", "5", "--count", "3", "--server", emulator.http_url
    )
    assert code == 0, err
    assert out.strip().splitlines()[-1].endswith("delivered 3 time(s)")
    ids = {json.loads((await raw.recv())["data"]["message"])["message_id"] for _ in range(3)}
    assert len(ids) == 3
    code, out, err = await _run("trigger", "bits", "--channel", "6", "--server", emulator.http_url)
    assert code == 0
    assert "delivered 0 time(s)" in out
    assert "nobody listens to channel-bits-events-v2.6" in err
    assert "listened: channel-bits-events-v2.5" in err


async def test_serve_logs_triggers_and_faults() -> None:
    proc, url = await _serve()
    try:
        http = url.replace("ws://", "http://")
        code, _, err = await _run("trigger", "bits", "--channel", "1", "--server", http)
        assert code == 0, err
        async with (
            aiohttp.ClientSession() as session,
            session.post(http + "/control/refuse", json={"seconds": 1}) as resp,
        ):
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, err_b = await asyncio.wait_for(proc.communicate(), 30)
    log = err_b.decode()
    assert "triggered bits on channel-bits-events-v2.1: 0 connection(s)" in log
    assert "refusing new connections" in log


def test_docs_list_every_field_of_every_kind() -> None:
    from pathlib import Path

    from twitchio_pubsub.emulator import payloads

    text = (Path(__file__).resolve().parents[1] / "docs" / "testing.rst").read_text("utf-8")
    for kind in payloads.KINDS:
        row = (
            "   * - ``"
            + kind
            + "``\n     - "
            + ", ".join(f"``{name}``" for name in payloads.fields(kind))
        )
        assert row in text, kind
