"""Every example runs against the emulator, so the examples cannot rot."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from twitchio_pubsub.emulator import PubSubEmulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


async def _run(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=str(EXAMPLES.parent),
    )


async def test_quick_example_help_is_plain_text() -> None:
    proc = await _run(str(EXAMPLES / "quick_example.py"), "--help")
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert proc.returncode == 0 and "::" not in text and "``" not in text
    assert "\n    PUBSUB_ENDPOINT=ws://127.0.0.1:8765 python examples/quick_example.py\n" in text


async def test_quick_example(emulator: PubSubEmulator) -> None:
    proc = await _run(str(EXAMPLES / "quick_example.py"), env={"PUBSUB_ENDPOINT": emulator.url})
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.decode().startswith("subscribed to 2 topics")
        assert await emulator.trigger("bits", 12345, bits_used=77) == 1
        assert await emulator.trigger("channel_points", 12345, **{"reward.title": "Hydrate"}) == 1
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert "bits: cheerfan cheered 77" in lines
    assert "channel points: PointsFan redeemed Hydrate" in lines


async def test_token_refresh_pool_example() -> None:
    proc = await _run(str(EXAMPLES / "token_refresh_pool.py"))
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "auth failed for ['channel-bits-events-v2.12345']" in text
    assert "received 42 bits" in text and "received 7 bits" in text
    assert "listened with fresh-token-2" in text


def _user_folder(tmp_path: Path) -> Path:
    """A folder of a user's own, holding nothing but the example test file."""
    shutil.copy(EXAMPLES / "test_my_bot.py", tmp_path / "test_my_bot.py")
    shutil.copy(EXAMPLES / "test_my_eventsub_bot.py", tmp_path / "test_my_eventsub_bot.py")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "test_my_bot.py",
        "test_my_eventsub_bot.py",
    ]
    return tmp_path


async def test_pytest_examples_pass_in_a_folder_with_the_one_documented_line(
    tmp_path: Path,
) -> None:
    # No conftest, pytest-asyncio in its default strict mode: the fixtures come from the
    # plugin installed with the package. The one line docs/testing.rst gives silences
    # pytest-asyncio's warning (run here as an error).
    folder = _user_folder(tmp_path)
    (folder / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n", encoding="utf-8"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-W",
        "error::pytest.PytestDeprecationWarning",
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode() + err.decode()
    assert proc.returncode == 0, text
    assert "5 passed" in text and "PytestDeprecationWarning" not in text


async def test_plugin_fixtures_close_what_they_open(
    pubsub_emulator: Any, pubsub_pool: Any, pubsub_client: Any
) -> None:
    import twitchio_pubsub as tp

    assert pubsub_pool.client is pubsub_client
    await pubsub_pool.subscribe_topics([tp.bits("t")[1]])
    assert pubsub_emulator.connections and pubsub_pool.nodes[0].endpoint == pubsub_emulator.url


async def test_demo_runs_and_summarises() -> None:
    proc = await _run("-m", "twitchio_pubsub", "demo")
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    # bits on v2 and on v1 look alike; each line names its topic.
    assert "[channel-bits-events-v2]" in text and "[channel-bits-events-v1]" in text
    for model in (
        "PubSubBitsMessage",
        "PubSubChannelPointsMessage",
        "PubSubWhisperMessage",
        "PubSubAutoModQueueMessage",
        "PubSubLowTrustUserMessage",
        "PubSubModerationAction",
    ):
        assert model in text
    last = text.strip().splitlines()[-1]
    assert last.startswith(
        "demo OK: 12 PubSub + 13 EventSub + 7 conduit events received, 2 + 2 + 1 "
        "reconnects survived"
    )
    assert "subscribed to 10 topics: 15 EventSub subscriptions on 2 session(s)" in text
    assert "pool closed: 0 subscriptions left on the server" in text


async def test_eventsub_bot_against_eventsub_serve_and_trigger() -> None:
    """examples/eventsub_bot.py as a newcomer runs it: three processes, real sockets."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"http://127.0.0.1:{port}"
    token = "broadcaster-token=1337:bits:read,channel:read:redemptions"
    server = await _run(
        "-m", "twitchio_pubsub", "eventsub", "serve", "--port", str(port), "--token", token
    )
    bot = None
    try:
        assert server.stdout is not None
        banner = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        assert f"eventsub_url=ws://127.0.0.1:{port}/ws" in banner
        bot = await _run(str(EXAMPLES / "eventsub_bot.py"), "--emulator", address)
        assert bot.stdout is not None
        ready = (await asyncio.wait_for(bot.stdout.readline(), 30)).decode()
        assert ready.startswith("listening to channel 1337 on EventSub")

        async def trigger(*args: str) -> tuple[int, str, str]:
            proc = await _run(
                "-m", "twitchio_pubsub", "eventsub", "trigger", *args, "--server", address
            )
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            return proc.returncode or 0, out.decode(), err.decode()

        # No --broadcaster: the only broadcaster subscribed to channel.cheer is used.
        code, out, err = await trigger("cheer", "--set", "bits=250")
        assert code == 0 and "channel.cheer: delivered to 1 session(s)" in out, err
        assert "broadcaster 1337: the only one subscribed" in err
        line = (await asyncio.wait_for(bot.stdout.readline(), 15)).decode()
        # docs/quickstart.rst shows these lines as the bot's output.
        assert line == "cheery_viewer cheered 250 bits: Cheer100 great play!\n"
        code, out, err = await trigger("add-redemption", "--set", "user_input=")
        assert code == 0 and "delivered to 1 session(s)" in out, err
        line = (await asyncio.wait_for(bot.stdout.readline(), 15)).decode()
        assert line == "Cheery_Viewer redeemed 'Hydrate!'\n"  # no input: no "None"
        # Nothing matches another broadcaster: the command lists what is subscribed.
        code, out, err = await trigger("cheer", "--broadcaster", "42")
        assert code == 0 and "delivered to 0 session(s)" in out
        assert "channel.cheer v1 (broadcaster_user_id=1337)" in err
    finally:
        for proc in (bot, server):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 15)
