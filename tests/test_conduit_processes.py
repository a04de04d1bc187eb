"""Three real processes share one conduit: every event handled exactly once across them,
one process killed with SIGKILL mid-run, and its shards taken back when it restarts.

The processes are ``examples/conduit_bot.py``; the emulator runs in the test. Process 0
subscribes 60 channels and serves shards 0-1, process 1 serves 2-3 and process 2 serves
4-5. 3,000 cheers go out in three rounds of 1,000: all up, process 1 killed, process 1
restarted. The emulator routes each cheer to its channel's shard, or once to the next
shard when that one is down, so the cheers lost while process 1 is dead are exactly
those whose channel's shard is 2 (its retry, shard 3, is process 1's too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from twitchio_pubsub.emulator import EventSubEmulator
from twitchio_pubsub.emulator.eventsub.conduits import route_hash

pytestmark = pytest.mark.asyncio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
APP, SECRET = "fleet-app", "fleet-secret-value"
CHANNELS = [str(1000 + i) for i in range(60)]
SHARDS = {0: "0-1", 1: "2-3", 2: "4-5"}
ROUND = 1000


class Fleet:
    """The three bot processes and every line they print."""

    def __init__(self, emu: EventSubEmulator, tokens: Path) -> None:
        self.emu = emu
        self.tokens = tokens
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.readers: list[asyncio.Task[None]] = []
        #: (process, parsed line) in arrival order.
        self.lines: list[tuple[int, dict[str, Any]]] = []
        self.ready: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.conduit: Optional[str] = None
        self.changed = asyncio.Event()

    async def start(self, index: int) -> dict[str, Any]:
        args = [
            str(EXAMPLES / "conduit_bot.py"),
            "--emulator",
            self.emu.http_url,
            "--client-id",
            APP,
            "--shards",
            SHARDS[index],
        ]
        if index == 0 and self.conduit is None:
            args += ["--shard-count", "6", "--tokens", str(self.tokens)]
        else:
            args += ["--conduit", self.conduit or ""]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "TWITCH_CLIENT_SECRET": SECRET},
        )
        self.procs[index] = proc
        self.ready[index] = asyncio.get_running_loop().create_future()
        self.readers.append(asyncio.ensure_future(self._read(index, proc)))
        ready = await asyncio.wait_for(self.ready[index], 60)
        self.conduit = self.conduit or ready["conduit"]
        return ready

    async def _read(self, index: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = json.loads(raw)
            if "ready" in line and not self.ready[index].done():
                self.ready[index].set_result(line)
            self.lines.append((index, line))
            self.changed.set()

    def cheers(self) -> list[tuple[int, str]]:
        return [(i, line["text"]) for i, line in self.lines if "text" in line]

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*self.readers, return_exceptions=True)


def home(channel: str) -> int:
    return route_hash(channel) % 6


async def send_round(emu: EventSubEmulator, first: int) -> dict[str, str]:
    sent = {}
    for n in range(first, first + ROUND):
        channel = CHANNELS[n % len(CHANNELS)]
        text = f"cheer-{n}"
        await emu.trigger("channel.cheer", broadcaster_user_id=channel, bits=1, message=text)
        sent[text] = channel
    return sent


async def settle(fleet: Fleet, count: int, timeout: float = 30.0) -> None:
    """Wait until ``count`` cheers were printed, then a little for any extra copy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(fleet.cheers()) < count and loop.time() < deadline:
        fleet.changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(fleet.changed.wait(), deadline - loop.time())
    await asyncio.sleep(0.3)


async def test_three_processes_one_conduit_sigkill_and_restart(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("".join(f"{c}=tok-{c}\n" for c in CHANNELS))
    async with EventSubEmulator(rate_limit=100_000, ping_interval=None) as emu:
        emu.add_app(APP, SECRET)
        for channel in CHANNELS:
            emu.add_token(f"tok-{channel}", channel, scopes=["bits:read"], client_id=APP)
        fleet = Fleet(emu, tokens)
        try:
            first = await fleet.start(0)
            assert first["topics"] == 60 and first["ready"] == ["0", "1"]
            assert (await fleet.start(1))["ready"] == ["2", "3"]
            assert (await fleet.start(2))["ready"] == ["4", "5"]
            conduit = emu.conduits[fleet.conduit or ""]
            assert [s.status for s in conduit.shards] == ["enabled"] * 6

            # Round 1: all up. Each cheer once, by the process holding its shard.
            sent1 = await send_round(emu, 0)
            await settle(fleet, ROUND)
            got = fleet.cheers()
            assert sorted(t for _, t in got) == sorted(sent1)
            owner = {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2}
            assert all(owner[home(sent1[t])] == i for i, t in got)

            # Round 2: process 1 is killed (no goodbye, sockets reset by the kernel).
            fleet.procs[1].kill()
            await fleet.procs[1].wait()
            await emu.wait_until(
                lambda: (
                    conduit.shards[2].status != "enabled" and conduit.shards[3].status != "enabled"
                ),
                timeout=10,
            )
            sent2 = await send_round(emu, ROUND)
            expected_lost = {t for t, c in sent2.items() if home(c) == 2}
            await settle(fleet, 2 * ROUND - len(expected_lost))
            got2 = [(i, t) for i, t in fleet.cheers() if t in sent2]
            lost = set(sent2) - {t for _, t in got2}
            assert lost == expected_lost
            assert emu.conduit_dropped == len(expected_lost)
            assert {i for i, _ in got2} <= {0, 2}

            # Round 3: process 1 restarts and takes its shards back.
            assert (await fleet.start(1))["ready"] == ["2", "3"]
            await emu.wait_until(
                lambda: [s.status for s in conduit.shards] == ["enabled"] * 6, timeout=10
            )
            sent3 = await send_round(emu, 2 * ROUND)
            await settle(fleet, 3 * ROUND - len(expected_lost))
            got3 = [(i, t) for i, t in fleet.cheers() if t in sent3]
            assert sorted(t for _, t in got3) == sorted(sent3)
            assert all(owner[home(sent3[t])] == i for i, t in got3)

            texts = [t for _, t in fleet.cheers()]
            assert len(texts) == len(set(texts))  # nothing handled twice, in any round
            logging.getLogger(__name__).info(
                "conduit fleet: %d cheers sent, %d handled once, %d twice, %d lost (all homed "
                "on shard 2 while process 1 was dead; %d delivered on the retry shard)",
                3 * ROUND,
                len(set(texts)),
                len(texts) - len(set(texts)),
                len(lost),
                emu.conduit_retried,
            )
        finally:
            await fleet.stop()
        # SIGTERM closed the pools: shards detached, conduit and subscriptions kept.
        assert fleet.conduit in emu.conduits
        assert (
            len(
                [
                    s
                    for s in emu.conduit_subscriptions(fleet.conduit)
                    if s["type"] == "channel.cheer"
                ]
            )
            == 60
        )
