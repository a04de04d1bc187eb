"""The library's own work per frame: ``python benchmarks/hotpath.py``.

Parses a bits MESSAGE frame and dispatches it through the pool's Dispatcher, with no
handler registered, 50,000 times; prints the best of 7 rounds in microseconds per frame.
No sockets and no second process, so it is far steadier than the throughput benchmark
on a noisy machine; compare two checkouts with ``PYTHONPATH=<checkout>``.
"""

from __future__ import annotations

import asyncio
import json
import time

import twitchio

from twitchio_pubsub import protocol
from twitchio_pubsub.dispatch import Dispatcher

FRAMES = 50_000


async def main() -> None:
    client = twitchio.Client(token="bench")
    dispatcher = Dispatcher(client)
    payload = {
        "data": {
            "user_name": "u",
            "channel_name": "c",
            "user_id": "1001",
            "channel_id": "5",
            "time": "2021-01-01T00:00:00.123Z",
            "chat_message": "hi",
            "bits_used": 100,
            "total_bits_used": 100,
            "is_anonymous": False,
            "context": "cheer",
            "badge_entitlement": None,
        },
        "version": "1.0",
        "message_type": "bits_event",
        "message_id": "x",
    }
    frame = protocol.build_message("channel-bits-events-v2.5", json.dumps(payload))
    parse = protocol.parse_server_frame
    dispatch = dispatcher.message
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(FRAMES):
            message = parse(frame)
            dispatch(message.topic, message.message)  # type: ignore[union-attr]
        best = min(best, time.perf_counter() - started)
    print(f"{best / FRAMES * 1e6:.2f} us per frame (parse + model + dispatch, no handler)")


if __name__ == "__main__":
    asyncio.run(main())
