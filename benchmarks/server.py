"""The benchmark server: the emulator plus a ``/control/blast`` endpoint, in its own process.

``python benchmarks/server.py`` prints ``READY <port>`` and serves until stdin closes.

``POST /control/blast {"topics": [...], "count": N, "rate": R?}`` sends ``N`` MESSAGE
frames round-robin over ``topics`` to every connection holding them. Without ``rate``
the frames are pre-encoded and sent as fast as the socket takes them; with ``rate`` they
are paced at ``R`` per second and each carries its send time (``time.monotonic_ns()``)
in ``message_id``, for latency measurements. The answer comes when all are sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Optional

from twitchio_pubsub import protocol
from twitchio_pubsub.emulator import PubSubEmulator
from twitchio_pubsub.emulator._base import Control, Param


def bits_frame(topic: str, message_id: str, bits_used: int = 100) -> str:
    channel = topic.rsplit(".", 1)[-1]
    inner = {
        "data": {
            "user_name": "benchuser",
            "channel_name": "benchchannel",
            "user_id": "424242",
            "channel_id": channel,
            "time": "2024-01-01T00:00:00.123456789Z",
            "chat_message": "Cheer100 benchmark",
            "bits_used": bits_used,
            "total_bits_used": 1000,
            "is_anonymous": False,
            "context": "cheer",
            "badge_entitlement": None,
        },
        "version": "1.0",
        "message_type": "bits_event",
        "message_id": message_id,
    }
    return protocol.build_message(topic, json.dumps(inner, separators=(",", ":")))


class BenchServer(PubSubEmulator):
    """The emulator with a blasting endpoint."""

    CONTROLS: ClassVar[Mapping[str, Control]] = {
        **PubSubEmulator.CONTROLS,
        "blast": Control(
            "blast",
            (Param("topics", list), Param("count", int), Param("rate", (int, float), None)),
        ),
    }

    async def blast(
        self, topics: list[str], count: int, rate: Optional[float] = None
    ) -> dict[str, Any]:
        """Send ``count`` bits frames over ``topics``, as fast as possible or at ``rate``/s."""
        conns = {t: [c for c in self.connections if t in c.topics] for t in topics}
        started = time.perf_counter()
        if rate is None:
            frames = [bits_frame(t, "00000000-0000-0000-0000-000000000000") for t in topics]
            n = len(topics)
            for i in range(count):
                frame = frames[i % n]
                for conn in conns[topics[i % n]]:
                    await conn.ws.send_str(frame)
        else:
            loop = asyncio.get_running_loop()
            interval = 1.0 / float(rate)
            start = loop.time()
            for i in range(count):
                due = start + i * interval
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                topic = topics[i % len(topics)]
                frame = bits_frame(topic, str(time.monotonic_ns()))
                for conn in conns[topic]:
                    await conn.ws.send_str(frame)
        return {"sent": count, "seconds": time.perf_counter() - started}


async def main() -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})  # the workers take core 1
    async with BenchServer(max_topics=50) as server:
        print(f"READY {server.url.rsplit(':', 1)[1]}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


if __name__ == "__main__":
    asyncio.run(main())
