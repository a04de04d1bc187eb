"""Conduits: events/s with 1, 2 and 3 processes, and the cost of subscribing many channels.

``python benchmarks/conduit_bench.py throughput [--processes 1 2 3] [--events N]``
    One EventSub emulator in a process of its own (pinned to core 0) blasts
    ``channel.cheer`` notifications over 60 channels of one conduit; each bot process
    (``transport="conduit"``, two shards each; pinned to core 1 on a machine with two
    cores) counts what its ``event_pubsub_bits`` handler receives. Events/s is the events
    over the time from the blast request to the last handler call in any process, median
    of ``--runs`` rounds.

``python benchmarks/conduit_bench.py subscribe --channels 10000 [--transport conduit eventsub]``
    One ``subscribe_topics`` call for N channels' bits topics (each channel its own
    broadcaster token, as Twitch requires) under the emulator's Helix rate limit
    (``--rate-limit``, Twitch: 800/min): the wall time, the Helix requests the emulator
    served, and the sockets the bot holds, for the conduit and for the plain EventSub
    transport (one session per broadcaster: Twitch's per-user session limits).

``--quick`` runs tiny sizes (the smoke test the suite runs); no timing is asserted there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twitchio_pubsub.emulator import EventSubEmulator, eventsub_urls
from twitchio_pubsub.emulator._base import Control, Param

HERE = Path(__file__).resolve()
APP, SECRET = "bench-conduit-app", "bench-conduit-secret"
CHANNELS = 60
SHARDS_PER_PROCESS = 2


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


def channel_ids(count: int) -> list[str]:
    return [str(100_000 + i) for i in range(count)]


# ----------------------------------------------------------------------------- server


class ConduitBlastEmulator(EventSubEmulator):
    """The emulator with ``/control/blast {"count": N}``: N cheers spread over every
    conduit cheer subscription, each sent to the shard the emulator routes it to."""

    CONTROLS: ClassVar[Mapping[str, Control]] = {
        **EventSubEmulator.CONTROLS,
        "blast": Control("blast", (Param("count", int),)),
        "stats": Control("stats", ()),
    }

    async def stats(self) -> dict[str, Any]:
        """Helix requests served, open sessions and enabled cheer subscriptions."""
        return {
            "helix_requests": self.helix_requests,
            "sockets": len([s for s in self.sessions if s.status == "connected"]),
            "subscriptions": len([s for s in self.enabled() if s["type"] == "channel.cheer"]),
        }

    async def blast(self, count: int) -> dict[str, Any]:
        subs = [s for s in self.conduit_subscriptions() if s["type"] == "channel.cheer"]
        frames = []
        for sub in subs:
            event = {
                "is_anonymous": False,
                "user_id": "9001",
                "user_login": "cheery_viewer",
                "user_name": "Cheery_Viewer",
                "broadcaster_user_id": sub["condition"]["broadcaster_user_id"],
                "broadcaster_user_login": "b",
                "broadcaster_user_name": "B",
                "message": "Cheer100 benchmark",
                "bits": 100,
            }
            payload = json.dumps(
                {"subscription": self._public(sub, wire=True), "event": event},
                separators=(",", ":"),
            )
            tail = (
                '","message_type":"notification","message_timestamp":'
                '"2025-03-02T18:04:05.123456789Z","subscription_type":"channel.cheer",'
                '"subscription_version":"1"},"payload":' + payload + "}"
            )
            frames.append((sub, tail))
        head = '{"metadata":{"message_id":"'
        started = time.perf_counter()
        sent = 0
        for i in range(count):
            sub, tail = frames[i % len(frames)]
            targets = self._conduit_targets(sub)
            if targets:
                await targets[0].ws.send_str(f"{head}bench-{i}{tail}")
                sent += 1
        return {"sent": sent, "seconds": time.perf_counter() - started}


async def serve(rate_limit: int, channels: int) -> None:
    pin(0)
    async with ConduitBlastEmulator(ping_interval=None, rate_limit=rate_limit) as emu:
        emu.add_app(APP, SECRET)
        for channel in channel_ids(channels):
            emu.add_token(f"tok-{channel}", channel, scopes=["bits:read"], client_id=APP)
        print(f"READY {emu.http_url}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def start_server(rate_limit: int, channels: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE), "_serve", str(rate_limit), str(channels)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc, line.split()[1]


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- bot workers


async def bot(base: str, index: int, conduit: Optional[str], shard_count: int) -> None:
    """One bot process: serves two shards; process 0 subscribes the channels."""
    import twitchio

    import twitchio_pubsub as tp

    pin(1)
    client = twitchio.Client(token="bench")
    first = index * SHARDS_PER_PROCESS
    pool = tp.PubSubPool(
        client,
        transport="conduit",
        client_id=APP,
        client_secret=SECRET,
        conduit_id=conduit,
        shards=range(first, first + SHARDS_PER_PROCESS),
        shard_count=shard_count,
        **eventsub_urls(base),
    )
    count = 0
    last = 0.0

    @client.event()
    async def event_pubsub_bits(event: Any) -> None:
        nonlocal count, last
        if event.user.name and event.bits_used:
            count += 1
            last = time.time()

    loop = asyncio.get_running_loop()
    try:
        if index == 0:
            await pool.subscribe_topics(
                [tp.bits(f"tok-{c}")[int(c)] for c in channel_ids(CHANNELS)]
            )
        await pool.conduit.start()
        print(json.dumps({"ready": pool.conduit.id}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            print(json.dumps({"count": count, "last": last}), flush=True)
    finally:
        await pool.close()


class Bot:
    def __init__(self, base: str, index: int, conduit: Optional[str], shard_count: int) -> None:
        args = [sys.executable, str(HERE), "_bot", base, str(index), conduit or "-"]
        self.proc = subprocess.Popen(
            [*args, str(shard_count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a bot process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return self.read()


def throughput_round(processes: int, events: int) -> dict[str, Any]:
    import urllib.request

    server, base = start_server(1_000_000, CHANNELS)
    bots: list[Bot] = []
    try:
        shard_count = processes * SHARDS_PER_PROCESS
        bots.append(Bot(base, 0, None, shard_count))
        conduit = bots[0].read()["ready"]
        for index in range(1, processes):
            bots.append(Bot(base, index, conduit, shard_count))
            bots[-1].read()
        request = urllib.request.Request(
            f"{base}/control/blast",
            data=json.dumps({"count": events}).encode(),
            headers={"Content-Type": "application/json"},
        )
        started = time.time()
        with urllib.request.urlopen(request, timeout=600) as resp:
            blast = json.loads(resp.read())
        deadline = time.time() + 600
        while True:
            answers = [b.ask() for b in bots]
            total = sum(a["count"] for a in answers)
            if total >= blast["sent"] or time.time() > deadline:
                break
            time.sleep(0.05)
        last = max(a["last"] for a in answers)
        seconds = last - started
        return {
            "processes": processes,
            "events": total,
            "sent": blast["sent"],
            "seconds": seconds,
            "events_per_s": total / seconds if seconds > 0 else 0.0,
            "emulator_send_s": blast["seconds"],
            "per_process": [a["count"] for a in answers],
        }
    finally:
        for b in bots:
            if b.proc.stdin is not None:
                b.proc.stdin.close()
        for b in bots:
            b.proc.wait(timeout=30)
        stop(server)


# ----------------------------------------------------------------------------- subscribing


async def subscribe_many(transport: str, channels: int, rate_limit: int) -> dict[str, Any]:
    """One subscribe_topics call for ``channels`` bits topics; the emulator in a process
    of its own (10,000 sessions are 10,000 file descriptors on each side)."""
    import resource

    import aiohttp
    import twitchio

    import twitchio_pubsub as tp

    server, base = start_server(rate_limit, channels)
    try:
        async with aiohttp.ClientSession() as http:

            async def stats() -> dict[str, Any]:
                async with http.post(f"{base}/control/stats", json={}) as resp:
                    answer: dict[str, Any] = await resp.json()
                    return answer

            client = twitchio.Client(token="bench")
            options: dict[str, Any] = {"listen_timeout": 30.0, "connect_timeout": 120.0}
            if transport == "conduit":
                options.update(client_id=APP, client_secret=SECRET, shards=[0])
            pool = tp.PubSubPool(client, transport=transport, **eventsub_urls(base), **options)
            topics = [tp.bits(f"tok-{c}")[int(c)] for c in channel_ids(channels)]
            before = (await stats())["helix_requests"]
            started = time.perf_counter()
            try:
                await pool.subscribe_topics(topics)
                seconds = time.perf_counter() - started
                after = await stats()
            finally:
                await pool.close()
    finally:
        stop(server)
    return {
        "transport": transport,
        "channels": channels,
        "rate_limit_per_min": rate_limit,
        "seconds": seconds,
        "helix_requests": after["helix_requests"] - before,
        "validate_requests": channels,
        "sockets": after["sockets"],
        "subscriptions": after["subscriptions"],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ----------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        asyncio.run(serve(int(sys.argv[2]), int(sys.argv[3])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_bot":
        base, index, conduit, count = sys.argv[2:6]
        asyncio.run(bot(base, int(index), None if conduit == "-" else conduit, int(count)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tput = sub.add_parser("throughput", help="events/s with 1, 2, 3 processes")
    tput.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    tput.add_argument("--events", type=int, default=30_000)
    tput.add_argument("--runs", type=int, default=3)
    tput.add_argument("--quick", action="store_true")
    tput.add_argument("--json", metavar="FILE")
    subs = sub.add_parser("subscribe", help="time and Helix calls for many channels")
    subs.add_argument("--channels", type=int, default=10_000)
    subs.add_argument("--rate-limit", type=int, default=800)
    subs.add_argument("--transport", nargs="+", default=["conduit", "eventsub"])
    subs.add_argument("--quick", action="store_true")
    subs.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    if args.command == "throughput":
        events = 600 if args.quick else args.events
        runs = 1 if args.quick else args.runs
        for processes in args.processes:
            rounds = [throughput_round(processes, events) for _ in range(runs)]
            median = statistics.median(r["events_per_s"] for r in rounds)
            best = min(rounds, key=lambda r: abs(r["events_per_s"] - median))
            results.append({**best, "median_events_per_s": median, "rounds": runs})
            print(
                f"{processes} process(es): {median:,.0f} events/s (median of {runs}; "
                f"{best['events']}/{best['sent']} handled, per process {best['per_process']}, "
                f"emulator sending took {best['emulator_send_s']:.2f} s)",
                flush=True,
            )
    else:
        channels = 120 if args.quick else args.channels
        for transport in args.transport:
            result = asyncio.run(subscribe_many(transport, channels, args.rate_limit))
            results.append(result)
            print(
                f"{transport}: {result['channels']:,} channels in {result['seconds']:.1f} s, "
                f"{result['helix_requests']:,} Helix requests (+{result['validate_requests']:,} "
                f"token validations), {result['sockets']:,} socket(s), "
                f"{result['subscriptions']:,} subscriptions, max RSS {result['max_rss_mb']:.0f} MB "
                f"(rate limit {result['rate_limit_per_min']}/min)",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
