from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from twitchio_pubsub.emulator import PubSubEmulator

#: Real PubSub payloads (copied from the protocol notes), shipped with the tests so that
#: a clone of the repository needs nothing beside it.
SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "samples"


@pytest.fixture
async def emulator() -> AsyncIterator[PubSubEmulator]:
    async with PubSubEmulator() as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class RawClient:
    """A bare websocket client for talking to the emulator frame by frame."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, obj: Any) -> None:
        await self.ws.send_str(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, timeout: float = 2.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def listen(self, topics: list[str], token: str | None = "tok", nonce: str = "n1") -> str:
        data: dict[str, Any] = {"topics": topics}
        if token is not None:
            data["auth_token"] = token
        await self.send({"type": "LISTEN", "nonce": nonce, "data": data})
        resp = await self.recv()
        assert resp["type"] == "RESPONSE"
        assert resp["nonce"] == nonce
        return str(resp["error"])


@pytest.fixture
async def raw(emulator: PubSubEmulator, session: aiohttp.ClientSession) -> AsyncIterator[RawClient]:
    async with session.ws_connect(emulator.url) as ws:
        yield RawClient(ws)


def load_samples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        if path.name.startswith("_"):
            continue
        out.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
    return out


class Recorder:
    """Collects events a twitchio Client dispatches, and waits for them."""

    def __init__(self, client: Any, *names: str) -> None:
        import asyncio
        from collections import defaultdict

        self.events: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._changed = asyncio.Event()
        for name in names:
            client.add_event(self._make(name), f"event_{name}")

    def _make(self, name: str) -> Any:
        async def handler(*args: Any) -> None:
            self.events[name].append(args)
            self._changed.set()

        return handler

    def first(self, name: str) -> Any:
        return self.events[name][0][0]

    def values(self, name: str) -> list[Any]:
        return [args[0] for args in self.events[name]]

    async def wait(self, name: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        import asyncio
        import contextlib

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.events[name]) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"waited {timeout}s for {count} {name} event(s), got {len(self.events[name])}"
                )
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.values(name)


FAST = {
    "ping_interval": 30.0,
    "pong_timeout": 1.0,
    "listen_timeout": 2.0,
    "connect_timeout": 3.0,
    "backoff_base": 0.05,
    "backoff_cap": 0.5,
    "dedup_window": 1.0,
}


class LoopWatch:
    """Measures the longest time the event loop went without running this ticker.

    ``tick=0`` runs the ticker on every loop turn: ``most_tasks`` then sees the tasks one
    turn created before any of them ran (a reader that never yields creates thousands).
    """

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.longest = 0.0
        self.most_tasks = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick)
            now = loop.time()
            self.longest = max(self.longest, now - last)
            self.most_tasks = max(self.most_tasks, len(asyncio.all_tasks()))
            last = now

    def __enter__(self) -> LoopWatch:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def refused_url(path: str = "") -> str:
    """A loopback websocket address where nothing listens: connects are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}{path}"


async def close_while_subscribing(pool: Any, subscribing: asyncio.Future[None]) -> None:
    """Close ``pool`` while ``subscribing`` waits; fail if close() hangs (a lost cancel)."""
    import twitchio_pubsub as tp

    closing = asyncio.ensure_future(pool.close())
    done, _ = await asyncio.wait([closing], timeout=5.0)
    assert done, "close() never finished: a node's cancellation was lost"
    with pytest.raises(tp.PoolClosed):
        await subscribing
    assert pool.nodes == []


def make_pool(client: Any, emulator: PubSubEmulator, cls: Any = None, **kw: Any) -> Any:
    """A pool aimed at ``emulator`` with the fast test timings and a seeded ``rng``."""
    import random

    import twitchio_pubsub as tp

    settings = {**FAST, "rng": random.Random(7), **kw}
    return (cls or tp.PubSubPool)(client, endpoint=emulator.url, **settings)


async def wait_replaced(
    emulator: PubSubEmulator,
    old: int | set[int],
    topics: int,
    *,
    connections: int | None = None,
    timeout: float = 8.0,
) -> None:
    """Wait until none of the ``old`` connections is left and new ones hold ``topics``.

    With ``connections``, also until exactly that many connections are open.
    """
    gone = {old} if isinstance(old, int) else old

    def replaced() -> bool:
        conns = emulator.connections
        return (
            bool(conns)
            and not gone & {c.id for c in conns}
            and sum(len(c.topics) for c in conns) == topics
            and (connections is None or len(conns) == connections)
        )

    await emulator.wait_until(replaced, timeout=timeout)


@pytest.fixture
async def client() -> Any:
    import twitchio

    return twitchio.Client(token="bot-token-never-used")


async def settle() -> None:
    """Let tasks spawned by run_event finish."""
    import asyncio

    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def subscription_tables_stay_consistent() -> Any:
    """Every EventSub node checks its SubscriptionTable's invariants after each reconcile
    pass and revocation; a test fails if one did not hold (the node itself would only
    log it and start over)."""
    from twitchio_pubsub.eventsub import node

    broken: list[str] = []

    def check(table: Any) -> None:
        try:
            table.check()
        except AssertionError as exc:
            broken.append(str(exc))

    node.check_table = check
    yield
    node.check_table = None
    assert broken == [], broken
