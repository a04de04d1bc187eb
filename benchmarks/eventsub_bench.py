"""EventSub throughput: ``python benchmarks/eventsub_bench.py [--quick] [--runs N] [--json F]``.

One EventSub emulator in a process of its own (pinned to core 0) blasts ``channel.cheer``
notifications, each with its own ``message_id``, at one subscription. Each client runs in
a fresh worker process (pinned to core 1), subscribes, and counts the events its handler
receives; a handler reads the cheerer's name and the amount, as a bot would:

* ``bridge``: ``twitchio_pubsub.PubSubPool(transport="eventsub")`` with a ``bits`` topic,
  an ``event_pubsub_bits`` handler (the PubSub model, translated from EventSub);
* ``pytwitchapi``: pyTwitchAPI's ``EventSubWebsocket.listen_channel_cheer`` callback;
* ``twitchio_ext``: TwitchIO 2.10's ``twitchio.ext.eventsub`` websocket client with an
  ``event_eventsub_notification_cheer`` handler.

Throughput is events/s from the blast request to the last handler call, median of the
rounds; each round runs the three back to back, so the report also gives the median of
per-round ratios.
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
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twitchio_pubsub.emulator import EventSubEmulator
from twitchio_pubsub.emulator._base import Control, Param

HERE = Path(__file__).resolve()
BROADCASTER = "1337"
CLIENT_ID = "bench-app"
TOKEN = "bench-token"
IMPLS = ("bridge", "pytwitchapi", "twitchio_ext")


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


# ----------------------------------------------------------------------------- server


class BlastEmulator(EventSubEmulator):
    """The emulator with ``/control/blast {"count": N}``: N cheers, as fast as sockets take."""

    CONTROLS: ClassVar[Mapping[str, Control]] = {
        **EventSubEmulator.CONTROLS,
        "blast": Control("blast", (Param("count", int),)),
    }

    async def blast(self, count: int) -> dict[str, Any]:
        """Send ``count`` cheers to every cheer subscription, as fast as sockets take."""
        targets = [
            (self._sessions[sub["transport"]["session_id"]], sub)
            for sub in self.enabled()
            if sub["type"] == "channel.cheer" and sub["transport"]["session_id"] in self._sessions
        ]
        event = {
            "is_anonymous": False,
            "user_id": "9001",
            "user_login": "cheery_viewer",
            "user_name": "Cheery_Viewer",
            "broadcaster_user_id": BROADCASTER,
            "broadcaster_user_login": "cool_broadcaster",
            "broadcaster_user_name": "Cool_Broadcaster",
            "message": "Cheer100 benchmark",
            "bits": 100,
        }
        started = time.perf_counter()
        for session, sub in targets:
            payload = json.dumps(
                {"subscription": self._public(sub, wire=True), "event": event},
                separators=(",", ":"),
            )
            head = '{"metadata":{"message_id":"'
            tail = (
                '","message_type":"notification","message_timestamp":'
                '"2025-03-02T18:04:05.123456789Z","subscription_type":"channel.cheer",'
                '"subscription_version":"1"},"payload":' + payload + "}"
            )
            send = session.ws.send_str
            for i in range(count):
                await send(f"{head}bench-{i}{tail}")
        return {"sent": count, "seconds": time.perf_counter() - started}


async def serve() -> None:
    pin(0)
    async with BlastEmulator(ping_interval=None, rate_limit=1_000_000) as emu:
        emu.add_token(TOKEN, BROADCASTER, scopes=["bits:read"], client_id=CLIENT_ID)
        print(f"READY {emu.http_url}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# ----------------------------------------------------------------------------- workers


class _Counter:
    def __init__(self, target: int, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.count = 0
        self.loop = loop
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count == self.target:
            self.loop.call_soon_threadsafe(self.done.set)


async def _post(base: str, path: str, body: dict[str, Any]) -> Any:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.post(base + path, json=body) as resp:
        return await resp.json()


async def _wait_subscribed(base: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        for _ in range(500):
            async with s.get(base + "/control/state") as resp:
                state = await resp.json()
            if any(sub["status"] == "enabled" for sub in state["subscriptions"]):
                return
            await asyncio.sleep(0.01)
    raise RuntimeError("the client never subscribed")


async def _bridge(base: str, counter: _Counter) -> Any:
    import twitchio

    import twitchio_pubsub as tp

    client = twitchio.Client(token="bench-bot")

    async def event_pubsub_bits(event: Any) -> None:
        event.user.name  # noqa: B018
        event.bits_used  # noqa: B018
        counter.hit()

    client.add_event(event_pubsub_bits, "event_pubsub_bits")
    urls = {
        "eventsub_url": base.replace("http://", "ws://") + "/ws",
        "helix_url": base + "/helix",
        "id_url": base + "/oauth2",
    }
    pool = tp.PubSubPool(client, transport="eventsub", **urls)
    await pool.subscribe_topics([tp.bits(TOKEN)[int(BROADCASTER)]])
    return pool.close


async def _pytwitchapi(base: str, counter: _Counter) -> Any:
    from twitchAPI.eventsub.websocket import EventSubWebsocket
    from twitchAPI.twitch import Twitch
    from twitchAPI.type import AuthScope

    twitch = await Twitch(
        CLIENT_ID,
        authenticate_app=False,
        base_url=base + "/helix/",
        auth_base_url=base + "/oauth2/",
    )
    twitch.auto_refresh_auth = False
    await twitch.set_user_authentication(TOKEN, [AuthScope.BITS_READ])

    async def on_cheer(event: Any) -> None:
        event.event.user_name  # noqa: B018
        event.event.bits  # noqa: B018
        counter.hit()

    eventsub = EventSubWebsocket(
        twitch,
        connection_url=base.replace("http://", "ws://") + "/ws",
        subscription_url=base + "/helix/",
    )
    await asyncio.to_thread(eventsub.start)
    await eventsub.listen_channel_cheer(BROADCASTER, on_cheer)

    async def close() -> None:
        await asyncio.to_thread(asyncio.run, eventsub.stop())
        await twitch.close()

    return close


async def _twitchio_ext(base: str, counter: _Counter) -> Any:
    import twitchio
    from twitchio.http import Route

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from twitchio.ext import eventsub

    eventsub.websocket.Websocket.URL = base.replace("http://", "ws://") + "/ws"
    Route.BASE_URL = base + "/helix"
    client = twitchio.Client(token=TOKEN)
    client._http.client_id = CLIENT_ID
    client._http.nick = "cool_broadcaster"

    async def event_eventsub_notification_cheer(event: Any) -> None:
        event.data.user.name  # noqa: B018
        event.data.bits  # noqa: B018
        counter.hit()

    client.add_event(event_eventsub_notification_cheer, "event_eventsub_notification_cheer")
    ws_client = eventsub.EventSubWSClient(client)
    await ws_client.subscribe_channel_cheers(broadcaster=int(BROADCASTER), token=TOKEN)

    async def close() -> None:
        for sock in ws_client._sockets:
            if sock._pump_task is not None:
                sock._pump_task.cancel()
            if sock._sock is not None:
                await sock._sock.close()
        if client._http.session is not None:
            await client._http.session.close()

    return close


async def throughput(impl: str, base: str, events: int) -> dict[str, Any]:
    counter = _Counter(events, asyncio.get_running_loop())
    start = {"bridge": _bridge, "pytwitchapi": _pytwitchapi, "twitchio_ext": _twitchio_ext}
    close = await start[impl](base, counter)
    await _wait_subscribed(base)
    cpu = time.process_time()
    started = time.perf_counter()
    await _post(base, "/control/blast", {"count": events})
    await asyncio.wait_for(counter.done.wait(), 600)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await close()
    return {
        "events": counter.count,
        "events_per_s": events / elapsed,
        "cpu_us_per_event": cpu / events * 1e6,
    }


def worker(impl: str, base: str, events: int) -> None:
    pin(1)
    print(json.dumps(asyncio.run(throughput(impl, base, events))), flush=True)


# ----------------------------------------------------------------------------- driver


def run(events: int, runs: int) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, str(HERE), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = server.stdout.readline().split()[1]
        rounds: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLS}
        for _ in range(runs):
            for impl in IMPLS:
                out = subprocess.run(
                    [sys.executable, str(HERE), "worker", impl, base, str(events)],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                rounds[impl].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    results: dict[str, Any] = {"events": events, "runs": runs, "throughput": {}}
    for impl in IMPLS:
        results["throughput"][impl] = {
            "median_events_per_s": statistics.median(r["events_per_s"] for r in rounds[impl]),
            "median_cpu_us_per_event": statistics.median(
                r["cpu_us_per_event"] for r in rounds[impl]
            ),
            "runs": [round(r["events_per_s"]) for r in rounds[impl]],
        }
    medians = {impl: results["throughput"][impl]["median_events_per_s"] for impl in IMPLS}
    faster = max(("pytwitchapi", "twitchio_ext"), key=lambda impl: medians[impl])
    results["faster_other"] = faster
    results["ratio_over_faster"] = medians["bridge"] / medians[faster]
    results["paired_ratio_over_faster"] = statistics.median(
        b["events_per_s"] / o["events_per_s"] for b, o in zip(rounds["bridge"], rounds[faster])
    )
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        f"EventSub throughput, {results['events']} channel.cheer notifications on one "
        f"subscription (median of {results['runs']}):"
    ]
    names = {
        "bridge": "twitchio_pubsub bridge",
        "pytwitchapi": "pyTwitchAPI",
        "twitchio_ext": "twitchio.ext.eventsub",
    }
    for impl, name in names.items():
        row = results["throughput"][impl]
        runs = ", ".join(f"{r:,}" for r in row["runs"])
        lines.append(
            f"  {name:<24}{row['median_events_per_s']:>10,.0f} events/s "
            f"({row['median_cpu_us_per_event']:.1f} us CPU/event)   [{runs}]"
        )
    lines.append(
        f"  bridge / {names[results['faster_other']]} (the faster of the two) = "
        f"{results['ratio_over_faster']:.2f} (per-round {results['paired_ratio_over_faster']:.2f})"
    )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(serve())
        return
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = run(200 if args.quick else args.events, 1 if args.quick else args.runs)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
