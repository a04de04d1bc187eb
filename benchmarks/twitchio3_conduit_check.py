"""TwitchIO 3's conduit client (``AutoClient``) against the EventSub emulator's conduits.

``python benchmarks/twitchio3_conduit_check.py [--venv DIR]``

A cross-check of the emulator by a client this project did not write. TwitchIO 3 cannot
be installed beside TwitchIO 2 (this project's dependency), so the script makes a
virtual environment of its own (``--venv``, default ``.venv-twitchio3``) with
``twitchio>=3,<4`` from PyPI, and runs the bot there. It is not part of the test suite:
it needs the network once, for that install.

TwitchIO 3 takes no URL options; its Helix and OAuth bases are ``twitchio.http.Route``'s
``BASE`` and ``ID_BASE`` and its EventSub URL is ``twitchio.eventsub.websockets.WSS``, so
the bot sets those three before it starts: the only way to point it anywhere.

The bot creates a conduit of two shards (``conduit_id=True``), associates both, and
subscribes ``channel.cheer`` for two channels; the script then triggers one cheer per
channel and checks that each arrived once, each on the shard its channel routes to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twitchio_pubsub.emulator import EventSubEmulator

APP, SECRET = "tio3-app", "tio3-secret"
CHANNELS = ("1337", "4242")

BOT = """
import asyncio, os, sys
import twitchio, twitchio.http, twitchio.eventsub.websockets as websockets
from twitchio import eventsub

base = sys.argv[1]
twitchio.http.Route.BASE = base + "/helix/"
twitchio.http.Route.ID_BASE = base + "/"
websockets.WSS = base.replace("http://", "ws://") + "/ws"


class Bot(twitchio.AutoClient):
    async def event_ready(self):
        print("READY", self.conduit_info.id, flush=True)

    async def event_cheer(self, payload):
        print("CHEER", payload.broadcaster.id, payload.bits, flush=True)


async def main():
    subs = [eventsub.ChannelCheerSubscription(broadcaster_user_id=c) for c in sys.argv[3:]]
    bot = Bot(client_id=sys.argv[2], client_secret=os.environ["TIO3_SECRET"],
              conduit_id=True, shard_ids=[0, 1], subscriptions=subs)
    async with bot:
        task = asyncio.create_task(
            bot.start(with_adapter=False, load_tokens=False, save_tokens=False))
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await bot.close()
        await asyncio.wait([task], timeout=10)


asyncio.run(main())
"""


def interpreter(directory: Path) -> Path:
    python = directory / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not python.exists():
        venv.create(directory, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "twitchio>=3,<4"], check=True)
    return python


async def check(python: Path) -> int:
    async with EventSubEmulator(ping_interval=None) as emu:
        emu.add_app(APP, SECRET)
        for channel in CHANNELS:
            emu.add_token(f"tok-{channel}", channel, scopes=["bits:read"], client_id=APP)
        proc = await asyncio.create_subprocess_exec(
            str(python),
            "-c",
            BOT,
            emu.http_url,
            APP,
            *CHANNELS,
            env={**os.environ, "TIO3_SECRET": SECRET},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdin is not None
        try:
            ready = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
            if not ready or ready[0] != "READY":
                print("the TwitchIO 3 bot did not get ready:", ready)
                return 1
            conduit = emu.conduits[ready[1]]
            print(
                f"conduit {conduit.id}: {len(conduit.shards)} shards, "
                f"{[s.status for s in conduit.shards]}, "
                f"{len(emu.conduit_subscriptions(conduit.id))} subscription(s)"
            )
            for channel in CHANNELS:
                await emu.trigger("channel.cheer", broadcaster_user_id=channel, bits=100)
            got = []
            for _ in CHANNELS:
                line = await asyncio.wait_for(proc.stdout.readline(), 10)
                got.append(line.decode().split()[1])
            print(f"cheers received: {sorted(got)} (sent {sorted(CHANNELS)})")
            ok = sorted(got) == sorted(CHANNELS)
        finally:
            proc.stdin.write(b"\n")
            await proc.stdin.drain()
            await asyncio.wait_for(proc.wait(), 30)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(".venv-twitchio3"))
    args = parser.parse_args()
    sys.exit(asyncio.run(check(interpreter(args.venv))))


if __name__ == "__main__":
    main()
