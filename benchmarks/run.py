"""The benchmark harness: ``python benchmarks/run.py [--quick] [--json FILE]``.

A server process (``benchmarks/server.py``) blasts pre-encoded MESSAGE frames over
loopback; each measurement runs in a fresh worker process of its own. Measured, side by
side in one run:

* throughput (events/s, median of ``--runs``) of three clients on the same bits events:
  ``floor`` (bare aiohttp: decode envelope and payload, build a ``twitchio.PartialUser``,
  ``client.run_event("pubsub_bits", ...)``), ``twitchio.ext.pubsub`` (TwitchIO 2.10's own
  ext) and ``twitchio_pubsub`` (full path to an ``@client.event()`` handler);
* time to subscribe 500 topics (10 connections x 50);
* time from a server RECONNECT on all 10 connections to all 500 topics confirmed again;
* resident memory with 500 topics;
* p50/p99 latency from server send to handler at a steady 5,000 events/s;
* CPU used by an idle pool holding 500 topics.

On Linux with two or more cores the server is pinned to core 0 and each worker to core
1, so that the two do not compete for a core; throughput is also reported as client CPU
time per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- helpers


def _rss_kib() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _topics(n: int) -> list[str]:
    return [f"channel-bits-events-v2.{1000 + i}" for i in range(n)]


async def _post(port: int, path: str, body: dict[str, Any]) -> Any:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/control/{path}", json=body) as resp,
    ):
        return await resp.json()


async def _wait_for_topics(port: int, count: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(2000):
            async with session.get(f"http://127.0.0.1:{port}/control/state") as resp:
                state = await resp.json()
            if sum(len(c["topics"]) for c in state["connections"]) >= count:
                return
            await asyncio.sleep(0.005)
    raise RuntimeError("server never saw the topics")


class _Counter:
    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


# ----------------------------------------------------------------------------- workers


async def _throughput(impl: str, port: int, events: int, ntopics: int) -> dict[str, Any]:
    import twitchio

    url = f"ws://127.0.0.1:{port}"
    topics = _topics(ntopics)
    counter = _Counter(events)
    client = twitchio.Client(token="bench-bot")

    # Every client delivers the cheerer as a twitchio.PartialUser; the handler reads it
    # (and the amount where there is one), as a bot would.
    async def event_pubsub_bits(event: Any) -> None:
        if impl != "floor":
            event.user.name  # noqa: B018
            event.bits_used  # noqa: B018
        counter.hit()

    client.add_event(event_pubsub_bits, "event_pubsub_bits")
    cleanup: list[Any] = []

    if impl == "floor":
        import aiohttp
        from twitchio import PartialUser

        session = aiohttp.ClientSession()
        ws = await session.ws_connect(url, autoping=True)
        await ws.send_str(
            json.dumps(
                {"type": "LISTEN", "nonce": "n", "data": {"topics": topics, "auth_token": "t"}}
            )
        )
        await ws.receive()
        http = client._http
        run_event = client.run_event
        loads = json.loads

        async def reader() -> None:
            async for msg in ws:
                frame = loads(msg.data)
                if frame["type"] == "MESSAGE":
                    data = loads(frame["data"]["message"])["data"]
                    run_event("pubsub_bits", PartialUser(http, data["user_id"], data["user_name"]))

        task = asyncio.get_running_loop().create_task(reader())

        async def close_floor() -> None:
            task.cancel()
            await ws.close()
            await session.close()

        cleanup.append(close_floor)
    elif impl == "ext":
        from twitchio.ext import pubsub as ext

        ext.PubSubWebsocket.ENDPOINT = url
        pool = ext.PubSubPool(client)
        await pool.subscribe_topics([ext.bits("t")[1000 + i] for i in range(ntopics)])
        await _wait_for_topics(port, ntopics)

        async def close_ext() -> None:
            for node in pool._pool:
                node._closing = True
                await node.disconnect()
                await node.session.close()

        cleanup.append(close_ext)
    else:
        import twitchio_pubsub as tp

        ours = tp.PubSubPool(client, endpoint=url)
        await ours.subscribe_topics([tp.bits("t")[1000 + i] for i in range(ntopics)])
        cleanup.append(ours.close)

    cpu = time.process_time()
    started = time.perf_counter()
    await _post(port, "blast", {"topics": topics, "count": events})
    await asyncio.wait_for(counter.done.wait(), 600)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    for close in cleanup:
        await close()
    return {
        "events": counter.count,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "cpu_us_per_event": cpu / events * 1e6,
    }


async def _pool_metrics(port: int, ntopics: int, idle_seconds: float) -> dict[str, Any]:
    import twitchio

    import twitchio_pubsub as tp

    url = f"ws://127.0.0.1:{port}"
    client = twitchio.Client(token="bench-bot")
    ready = _Counter(ntopics // 50 or 1)

    async def event_pubsub_ready(node: Any) -> None:
        ready.hit()

    client.add_event(event_pubsub_ready, "event_pubsub_ready")
    rss_before = _rss_kib()
    pool = tp.PubSubPool(client, endpoint=url)
    topics = [tp.whispers("t")[i] for i in range(ntopics)]
    started = time.perf_counter()
    await pool.subscribe_topics(topics)
    subscribe_s = time.perf_counter() - started
    nodes = len(pool.nodes)
    await asyncio.sleep(0.1)
    rss_after = _rss_kib()

    await asyncio.sleep(1.0)  # let the initial pubsub_ready events pass
    ready.count = 0
    ready.done.clear()
    ready.target = nodes
    started = time.perf_counter()
    await _post(port, "reconnect", {})
    await asyncio.wait_for(ready.done.wait(), 60)
    reconnect_s = time.perf_counter() - started
    confirmed = sum(len(n.topics) for n in pool.nodes)
    await asyncio.sleep(1.0)  # hand-over done, old sockets closed

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(idle_seconds)
    idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    await pool.close()
    return {
        "topics": ntopics,
        "nodes": nodes,
        "subscribe_s": subscribe_s,
        "reconnect_s": reconnect_s,
        "reconfirmed_topics": confirmed,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "idle_cpu_fraction": idle_cpu,
        "idle_seconds": idle_seconds,
    }


async def _latency(port: int, rate: int, events: int) -> dict[str, Any]:
    import twitchio

    import twitchio_pubsub as tp

    url = f"ws://127.0.0.1:{port}"
    client = twitchio.Client(token="bench-bot")
    samples: list[float] = []
    counter = _Counter(events)

    async def event_pubsub_bits(event: Any) -> None:
        samples.append((time.monotonic_ns() - int(event.message.id)) / 1000.0)
        counter.hit()

    client.add_event(event_pubsub_bits, "event_pubsub_bits")
    async with tp.PubSubPool(client, endpoint=url) as pool:
        await pool.subscribe_topics([tp.bits("t")[1000 + i] for i in range(10)])
        await _post(port, "blast", {"topics": _topics(10), "count": events, "rate": rate})
        await asyncio.wait_for(counter.done.wait(), 120)
    samples.sort()
    return {
        "rate": rate,
        "events": len(samples),
        "p50_us": samples[len(samples) // 2],
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "max_us": samples[-1],
    }


def pin(core: int) -> None:
    """Pin this process to one core (Linux, 2+ cores): server and client stop competing."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


def worker(argv: list[str]) -> None:
    pin(1)
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--impl", default="ours")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=5000)
    args = parser.parse_args(argv)
    if args.kind == "throughput":
        coro = _throughput(args.impl, args.port, args.events, args.topics)
    elif args.kind == "pool":
        coro = _pool_metrics(args.port, args.topics, args.idle)
    else:
        coro = _latency(args.port, args.rate, args.events)
    result = asyncio.run(coro)
    print(json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- driver


def _spawn_worker(port: int, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), "worker", *args, "--port", str(port)],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _machine() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiohttp": version("aiohttp"),
        "twitchio": version("twitchio"),
        "twitchio_pubsub": version("twitchio-pubsub"),
    }


def run(quick: bool, runs: int) -> dict[str, Any]:
    sizes = (
        {"events": 300, "pool_topics": 20, "idle": 0.2, "latency_events": 200}
        if quick
        else {"events": 50_000, "pool_topics": 500, "idle": 10.0, "latency_events": 25_000}
    )
    server = subprocess.Popen(
        [sys.executable, str(HERE / "server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        results: dict[str, Any] = {"machine": _machine(), "sizes": sizes, "throughput": {}}
        impls = ("floor", "ext", "ours")
        per_impl: dict[str, list[dict[str, Any]]] = {impl: [] for impl in impls}
        for _ in range(runs):
            for impl in impls:
                per_impl[impl].append(
                    _spawn_worker(
                        port, "throughput", "--impl", impl, "--events", str(sizes["events"])
                    )
                )
        for impl in impls:
            results["throughput"][impl] = {
                "median_events_per_s": statistics.median(r["events_per_s"] for r in per_impl[impl]),
                "median_cpu_us_per_event": statistics.median(
                    r["cpu_us_per_event"] for r in per_impl[impl]
                ),
                "runs": [r["events_per_s"] for r in per_impl[impl]],
            }
        floor = results["throughput"]["floor"]["median_events_per_s"]
        ext = results["throughput"]["ext"]["median_events_per_s"]
        ours = results["throughput"]["ours"]["median_events_per_s"]

        def paired(other: str) -> float:
            # Each round runs the three clients back to back, so a round's ratio is
            # taken under the same machine conditions; report the median of those too.
            return statistics.median(
                o["events_per_s"] / x["events_per_s"]
                for o, x in zip(per_impl["ours"], per_impl[other])
            )

        results["ratios"] = {
            "ours_over_floor": ours / floor,
            "ours_over_ext": ours / ext,
            "paired_ours_over_floor": paired("floor"),
            "paired_ours_over_ext": paired("ext"),
            "best_ours_over_best_floor": max(r["events_per_s"] for r in per_impl["ours"])
            / max(r["events_per_s"] for r in per_impl["floor"]),
        }
        results["pool"] = _spawn_worker(
            port, "pool", "--topics", str(sizes["pool_topics"]), "--idle", str(sizes["idle"])
        )
        results["latency"] = _spawn_worker(
            port, "latency", "--rate", "5000", "--events", str(sizes["latency_events"])
        )
        return results
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)


def _report(results: dict[str, Any]) -> str:
    m, t, p, lat = results["machine"], results["throughput"], results["pool"], results["latency"]
    lines = [
        f"machine: {m['cores']} cores, Python {m['python']}, aiohttp {m['aiohttp']}, "
        f"twitchio {m['twitchio']}, twitchio-pubsub {m['twitchio_pubsub']} ({m['platform']})",
        f"throughput, {results['sizes']['events']} bits events over 10 topics "
        f"(median of {len(t['floor']['runs'])}):",
    ]
    names = {
        "floor": "floor (bare aiohttp)",
        "ext": "twitchio.ext.pubsub",
        "ours": "twitchio_pubsub",
    }
    for impl, name in names.items():
        runs = ", ".join(f"{r:,.0f}" for r in t[impl]["runs"])
        lines.append(
            f"  {name:<22} {t[impl]['median_events_per_s']:>10,.0f} events/s "
            f"({t[impl]['median_cpu_us_per_event']:.1f} us CPU/event)   [{runs}]"
        )
    r = results["ratios"]
    lines += [
        f"  ratio twitchio_pubsub/floor = {r['ours_over_floor']:.2f} "
        f"(median of per-round ratios {r['paired_ours_over_floor']:.2f}, "
        f"best/best {r['best_ours_over_best_floor']:.2f}); "
        f"twitchio_pubsub/twitchio.ext.pubsub = {r['ours_over_ext']:.2f} "
        f"(per-round {r['paired_ours_over_ext']:.2f})",
        f"subscribe {p['topics']} topics: {p['subscribe_s'] * 1000:.0f} ms "
        f"on {p['nodes']} connections",
        f"server RECONNECT -> all {p['reconfirmed_topics']} topics confirmed again: "
        f"{p['reconnect_s'] * 1000:.0f} ms",
        f"resident memory: {p['rss_before_kib'] / 1024:.1f} MiB before the pool, "
        f"{p['rss_after_kib'] / 1024:.1f} MiB with {p['topics']} topics",
        f"latency at {lat['rate']}/s ({lat['events']} events): p50 {lat['p50_us']:.0f} us, "
        f"p99 {lat['p99_us']:.0f} us, max {lat['max_us']:.0f} us",
        f"idle pool CPU over {p['idle_seconds']:.1f} s: "
        f"{p['idle_cpu_fraction'] * 100:.3f} % of a core",
    ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--runs", type=int, default=5, help="throughput runs per client")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    results = run(args.quick, args.runs)
    print(_report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
