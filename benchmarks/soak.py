"""A seeded fault soak: ``python benchmarks/soak.py --minutes 10 [--seed 1] [--json FILE]``.

``--transport eventsub`` runs the same soak on the EventSub bridge (see the end).

A pool holds ~100 topics (several tokens, several connections) on an embedded emulator
that publishes a steady, numbered stream of bits events. Faults fire at random, one at
a time, each followed by a wait until the pool holds every topic again:

* ``reconnect``  server RECONNECT on one connection or on all of them
* ``drop``       TCP abort of one connection (no close frame)
* ``close``      a close frame on one connection
* ``silence``    one connection stops answering PINGs
* ``refuse``     handshakes refused (HTTP 503) for a while, then one connection dropped
* ``revoke``     AUTH_REVOKED for one token; the pool's auth_fail_hook refreshes it
* ``err_server`` the next re-LISTENs answer ERR_SERVER, then one connection dropped

An event counts as *expected* when the emulator handed it to at least one socket (the
topic was listened). Per fault type the report gives the expected events that never
reached the handler, the duplicates, and the recovery time (fault to every topic
listened again, p50/p99). Over the run it samples RSS, open file descriptors, tasks and
sockets, and the peak of open sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import statistics
import sys
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import twitchio

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import EventSubEmulator, PubSubEmulator
from twitchio_pubsub.eventsub.mapping import scopes_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _rss_kib

TOPICS = 100
TOKENS = 10
FAULTS = ("reconnect", "drop", "close", "silence", "refuse", "revoke", "err_server")


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


class RefreshingPool(tp.PubSubPool):
    """Refreshes a revoked token (a new version of it) and subscribes again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refreshes = 0

    async def auth_fail_hook(self, topics: list[tp.Topic]) -> None:
        self.refreshes += 1
        group, version = (topics[0].token or "tok-0-v0").rsplit("-v", 1)
        fresh = f"{group}-v{int(version) + 1}"
        await self.subscribe_topics([topic.with_token(fresh) for topic in topics])


class Soak:
    def __init__(self, seconds: float, seed: int, rate: float) -> None:
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.rate = rate
        # Compact bookkeeping, so that the harness itself does not grow the RSS it
        # measures: index seq - 1 holds the publish time (-1: handed to no socket) and
        # how often the handler saw the event.
        self.published = array("d")
        self.received = bytearray()
        self.faults: list[tuple[float, str]] = []
        self.recovery: dict[str, list[float]] = defaultdict(list)
        self.unrecovered: Counter[str] = Counter()
        self.samples: list[dict[str, float]] = []
        self.peak_sockets = 0

    async def run(self) -> dict[str, Any]:
        client = twitchio.Client(token="soak-bot")

        @client.event()
        async def event_pubsub_bits(event: tp.PubSubBitsMessage) -> None:
            seq = event.bits_used
            if seq is not None and 0 < seq <= len(self.received):
                self.received[seq - 1] = min(self.received[seq - 1] + 1, 255)

        async with PubSubEmulator(reconnect_grace=10.0) as emu:
            pool = RefreshingPool(
                client,
                endpoint=emu.url,
                max_connection_topics=20,
                ping_interval=2.0,
                pong_timeout=1.0,
                listen_timeout=2.0,
                connect_timeout=5.0,
                backoff_base=0.2,
                backoff_cap=2.0,
                backoff_reset_after=5.0,
                handover_delay=0.3,
                rng=random.Random(self.rng.random()),
            )
            topics = [tp.bits(f"tok-{i % TOKENS}-v0")[i] for i in range(TOPICS)]
            await pool.subscribe_topics(topics)
            emu.peak_connections = 0
            stop = asyncio.Event()
            publisher = asyncio.ensure_future(self._publish(stop, self._publisher(emu)))
            sampler = asyncio.ensure_future(
                self._sample(stop, lambda: {"sockets": len(emu.connections)})
            )
            try:
                await self._pubsub_faults(emu, pool)
            finally:
                stop.set()
                await publisher
                await sampler
            await asyncio.sleep(1.0)  # events still in flight
            self.peak_sockets = emu.peak_connections
            refreshes = pool.refreshes
            await pool.close()
        return self._report(refreshes)

    async def _publish(self, stop: asyncio.Event, send: Callable[[int], Awaitable[int]]) -> None:
        """Send numbered events at ``self.rate``; ``send(seq)`` says how many sockets got one.

        An event counts as expected when a socket got it (its topic was held).
        """
        seq = 0
        interval = 1.0 / self.rate
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not stop.is_set():
            seq += 1
            self.published.append(-1.0)
            self.received.append(0)
            if await send(seq):
                self.published[seq - 1] = loop.time()
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    @staticmethod
    def _publisher(emu: PubSubEmulator) -> Callable[[int], Awaitable[int]]:
        async def send(seq: int) -> int:
            channel = seq % TOPICS
            payload = {
                "data": {
                    "channel_id": str(channel),
                    "bits_used": seq,
                    "user_id": "1",
                    "user_name": "soaker",
                },
                "message_id": f"soak-{seq}",
                "version": "1.0",
                "message_type": "bits_event",
            }
            return await emu.publish(f"channel-bits-events-v2.{channel}", payload)

        return send

    async def _sample(self, stop: asyncio.Event, counts: Callable[[], dict[str, int]]) -> None:
        """Every 5 s: RSS, fds, tasks, and the emulator's ``counts()`` (sockets, ...)."""
        start = time.monotonic()
        while not stop.is_set():
            self.samples.append(
                {
                    "t": round(time.monotonic() - start, 1),
                    "rss_kib": _rss_kib(),
                    "fds": _fds(),
                    "tasks": len(asyncio.all_tasks()),
                    **counts(),
                }
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)

    async def _recovery(
        self, emu: Any, kind: str, started: float, recovered: Callable[[], bool]
    ) -> None:
        """Wait (30 s at most) until ``recovered()``; record the time or a stuck fault."""
        try:
            await emu.wait_until(recovered, 30.0)
            self.recovery[kind].append(asyncio.get_running_loop().time() - started)
        except asyncio.TimeoutError:
            self.unrecovered[kind] += 1

    async def _faults(
        self,
        emu: Any,
        kinds: tuple[str, ...],
        targets: Callable[[], list[Any]],
        fire: Callable[[str, Any], Awaitable[set[Any]]],
        recovered: Callable[[set[Any]], bool],
        reset: Callable[[], Awaitable[object]],
    ) -> None:
        """Fire a random fault every 0.3-1.5 s and time the recovery from each.

        ``targets()`` gives the ids of the live sockets or sessions. The faults both
        emulators have (reconnect, drop, refuse) are fired here; ``fire`` fires the
        others and returns the ids that must be gone before ``recovered(gone)`` can hold.
        ``reset()`` disarms a fault left waiting for requests.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        while loop.time() < deadline:
            await asyncio.sleep(self.rng.uniform(0.3, 1.5))
            kind = self.rng.choice(kinds)
            live = targets()
            if not live:
                continue
            target = self.rng.choice(live)
            # The sockets that must have been replaced before the pool counts as recovered.
            gone = {target}
            started = loop.time()
            self.faults.append((started, kind))
            if kind == "reconnect":
                everyone = self.rng.random() < 0.3
                if everyone:
                    gone = set(live)
                await emu.send_reconnect(None if everyone else target)
            elif kind == "drop":
                await emu.drop(target)
            elif kind == "refuse":
                await emu.refuse_connections(self.rng.uniform(0.5, 3.0))
                await emu.drop(target)
            else:
                gone = await fire(kind, target)
            await self._recovery(emu, kind, started, lambda gone=gone: recovered(gone))
            await reset()

    def _pubsub_faults(self, emu: PubSubEmulator, pool: tp.PubSubPool) -> Awaitable[None]:
        async def fire(kind: str, target: int) -> set[int]:
            if kind == "close":
                await emu.close_connection(target)
            elif kind == "silence":
                await emu.silence(target)
            elif kind == "revoke":
                conns = emu.connections
                tokens = sorted({tok for c in conns for tok in c.topics.values() if tok})
                await emu.revoke_token(self.rng.choice(tokens))
                return set()
            else:
                await emu.fail_next_listens("ERR_SERVER", self.rng.randint(1, 3))
                await emu.drop(target)
            return {target}

        return self._faults(
            emu,
            FAULTS,
            lambda: [c.id for c in emu.connections],
            fire,
            lambda gone: self._recovered(emu, pool, gone),
            lambda: emu.fail_next_listens("ERR_SERVER", 0),
        )

    @staticmethod
    def _recovered(emu: PubSubEmulator, pool: tp.PubSubPool, gone: set[int]) -> bool:
        conns = emu.connections
        if gone & {c.id for c in conns}:
            return False
        listened = {t for c in conns for t in c.topics}
        return len(listened) == TOPICS and all(n.connected for n in pool.nodes)

    def _report(self, refreshes: int, faults: tuple[str, ...] = FAULTS) -> dict[str, Any]:
        times = [t for t, _ in self.faults]

        def cause(at: float) -> str:
            import bisect

            index = bisect.bisect_right(times, at) - 1
            return self.faults[index][1] if index >= 0 else "none"

        lost: Counter[str] = Counter()
        duplicates: Counter[str] = Counter()
        expected = 0
        for at, count in zip(self.published, self.received):
            if at >= 0:
                expected += 1
                if not count:
                    lost[cause(at)] += 1
            if count > 1:
                duplicates[cause(at)] += count - 1
        fired = Counter(kind for _, kind in self.faults)
        per_fault = {}
        for kind in ("none", *faults):
            rec = sorted(self.recovery.get(kind, []))
            per_fault[kind] = {
                "fired": fired.get(kind, 0),
                "lost": lost.get(kind, 0),
                "duplicates": duplicates.get(kind, 0),
                "recovery_p50_s": round(statistics.median(rec), 3) if rec else None,
                "recovery_p99_s": round(rec[min(len(rec) - 1, int(len(rec) * 0.99))], 3)
                if rec
                else None,
                "unrecovered": self.unrecovered.get(kind, 0),
            }
        return {
            "seconds": self.seconds,
            "expected_events": expected,
            "received_events": sum(self.received),
            "lost": sum(lost.values()),
            "duplicates": sum(duplicates.values()),
            "token_refreshes": refreshes,
            "peak_sockets": self.peak_sockets,
            "per_fault": per_fault,
            "samples": self.samples,
        }


# ---------------------------------------------------------------------------- EventSub

#: The EventSub soak: 10 moderators, each moderating 10 channels, so 100 moderation
#: topics in 10 sessions (one per token user), fed by channel.moderate events.
EVENTSUB_FAULTS = (
    "reconnect",
    "drop",
    "close",
    "keepalive",
    "refuse",
    "revoke",
    "helix_5xx",
    "duplicate",
)
_MOD_SCOPES = scopes_for("chat_moderator_actions")


class EventSubRefreshingPool(tp.PubSubPool):
    """Tokens as a bot refreshes them: in ``auth_fail_hook`` (revoked or refused), in
    ``reconnect_hook`` (now and then, awaiting its own ``subscribe_topics``), and from a
    background loop whose new token the server sometimes refuses (the topics must stay
    served under the previous token meanwhile)."""

    emulator: EventSubEmulator
    rng: random.Random

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refreshes = 0
        self.hook_refreshes = 0
        self.loop_refreshes = 0
        self.refused_refreshes = 0
        self.versions: dict[int, int] = {}

    def next_token(self, group: int, *, register: bool = True) -> str:
        """The next version of token group ``group`` (registered with the emulator)."""
        self.versions[group] = self.versions.get(group, 0) + 1
        token = f"mod-{group}-v{self.versions[group]}"
        if register:
            self.emulator.add_token(token, 1000 + group, scopes=_MOD_SCOPES)
        return token

    @staticmethod
    def group_of(topic: tp.Topic) -> int:
        return int((topic.token or "mod-0-v0").split("-")[1])

    async def refresh(self, topics: list[tp.Topic], *, register: bool = True) -> None:
        groups: dict[int, list[tp.Topic]] = {}
        for topic in topics:
            groups.setdefault(self.group_of(topic), []).append(topic)
        for group, members in groups.items():
            fresh = self.next_token(group, register=register)
            await self.subscribe_topics([topic.with_token(fresh) for topic in members])

    async def auth_fail_hook(self, topics: list[tp.Topic]) -> None:
        self.refreshes += 1
        await self.refresh(topics)

    async def reconnect_hook(self, node: Any, topics: list[tp.Topic]) -> list[tp.Topic]:
        if topics and self.rng.random() < 0.5:
            self.hook_refreshes += 1
            await self.refresh(topics)  # waits on the node that runs this hook
        return topics

    async def refresh_loop(self, stop: asyncio.Event) -> None:
        """Every few seconds, refresh one group's token; 30 % of new tokens are refused."""
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(1.0, 4.0))
            if stop.is_set():
                return
            group = self.rng.randrange(TOKENS)
            topics = [t for t in self.topics if self.group_of(t) == group]
            refused = self.rng.random() < 0.3
            self.loop_refreshes += 1
            self.refused_refreshes += refused
            with contextlib.suppress(tp.PubSubError):
                await self.refresh(topics, register=not refused)


class EventSubSoak(Soak):
    """The soak on ``transport="eventsub"`` against the EventSub emulator."""

    async def run(self) -> dict[str, Any]:
        client = twitchio.Client(token="soak-bot")

        @client.event()
        async def event_pubsub_moderation(event: Any) -> None:
            args = getattr(event, "args", None) or []
            seq = int(args[1]) if len(args) > 1 and str(args[1]).isdigit() else 0
            if 0 < seq <= len(self.received):
                self.received[seq - 1] = min(self.received[seq - 1] + 1, 255)

        async with EventSubEmulator(reconnect_grace=10.0, rate_limit=100_000) as emu:
            for i in range(TOKENS):
                emu.add_token(f"mod-{i}-v0", 1000 + i, scopes=_MOD_SCOPES)
            pool = EventSubRefreshingPool(
                client,
                transport="eventsub",
                **emu.urls,
                listen_timeout=2.0,
                connect_timeout=5.0,
                backoff_base=0.2,
                backoff_cap=2.0,
                backoff_reset_after=5.0,
                keepalive_margin=1.0,
                rng=random.Random(self.rng.random()),
            )
            pool.emulator = emu
            pool.rng = random.Random(self.rng.random())
            per = TOPICS // TOKENS
            topics = [
                tp.moderation_user_action(f"mod-{c // per}-v0")[c + 1][1000 + c // per]
                for c in range(TOPICS)
            ]
            await pool.subscribe_topics(topics)
            emu.peak_connections = 0
            stop = asyncio.Event()
            publisher = asyncio.ensure_future(self._publish(stop, self._triggerer(emu)))
            sampler = asyncio.ensure_future(
                self._sample(
                    stop,
                    lambda: {"sockets": len(emu.sessions), "subscriptions": len(emu.subscriptions)},
                )
            )
            refresher = asyncio.ensure_future(pool.refresh_loop(stop))
            try:
                await self._eventsub_faults(emu, pool)
            finally:
                stop.set()
                await publisher
                await sampler
                await refresher
            await asyncio.sleep(1.0)
            self.peak_sockets = emu.peak_connections
            refreshes = pool.refreshes
            self.hook_refreshes = pool.hook_refreshes
            self.loop_refreshes = pool.loop_refreshes
            self.refused_refreshes = pool.refused_refreshes
            await pool.close()
            # Revoked subscriptions need a valid token of their user to be deleted; the
            # enabled ones are what would hold Twitch's limits.
            self.left_subscriptions = len(emu.enabled())
            self.left_statuses = dict(Counter(s["status"] for s in emu.subscriptions.values()))
        report = self._report(refreshes, EVENTSUB_FAULTS)
        report["hook_refreshes"] = self.hook_refreshes
        report["loop_refreshes"] = self.loop_refreshes
        report["refused_refreshes"] = self.refused_refreshes
        report["subscriptions_left_after_close"] = self.left_subscriptions
        report["left_statuses"] = self.left_statuses  # disabled or revoked, by status
        return report

    @staticmethod
    def _triggerer(emu: EventSubEmulator) -> Callable[[int], Awaitable[int]]:
        async def send(seq: int) -> int:
            channel = seq % TOPICS + 1
            ban = {"ban.reason": str(seq)}
            return await emu.trigger(
                "channel.moderate", broadcaster_user_id=channel, action="ban", **ban
            )

        return send

    def _eventsub_faults(self, emu: EventSubEmulator, pool: tp.PubSubPool) -> Awaitable[None]:
        async def fire(kind: str, target: str) -> set[str]:
            if kind == "close":
                await emu.close_session(target, self.rng.choice(range(4000, 4008)))
            elif kind == "keepalive":
                # Events keep flowing on it, so the session is alive and must be kept:
                # keepalives only matter when a session is idle (the tests cover that).
                await emu.stop_keepalives(target)
                return set()
            elif kind == "revoke":
                tokens = sorted({sub["_token"] for sub in emu.enabled()})
                await emu.revoke(token=self.rng.choice(tokens))
                return set()
            elif kind == "helix_5xx":
                await emu.fail_next_helix(self.rng.choice((500, 503)), self.rng.randint(1, 2))
                await emu.drop(target)
            else:
                await emu.duplicate_next(self.rng.randint(1, 20))
                return set()
            return {target}

        return self._faults(
            emu,
            EVENTSUB_FAULTS,
            lambda: [s.session_id for s in emu.sessions if s.status == "connected"],
            fire,
            lambda gone: self._eventsub_recovered(emu, pool, gone),
            lambda: emu.fail_next_helix(500, 0),
        )

    @staticmethod
    def _eventsub_recovered(emu: EventSubEmulator, pool: tp.PubSubPool, gone: set[str]) -> bool:
        enabled = emu.enabled()
        if any(sub["transport"]["session_id"] in gone for sub in enabled):
            return False
        return len(enabled) == TOPICS and all(n.connected for n in pool.nodes)


def _print(report: dict[str, Any]) -> None:
    print(
        f"soak: {report['seconds'] / 60:.1f} min, {report['expected_events']} events expected, "
        f"{report['received_events']} received, {report['lost']} lost, "
        f"{report['duplicates']} duplicates, {report['token_refreshes']} token refreshes"
    )
    if "hook_refreshes" in report:
        print(
            f"token refreshes inside reconnect_hook: {report['hook_refreshes']}, from a "
            f"background loop: {report['loop_refreshes']} ({report['refused_refreshes']} "
            "of them refused by the server)"
        )
    print(f"{'fault':<12}{'fired':>7}{'lost':>7}{'dups':>7}{'p50 s':>9}{'p99 s':>9}{'stuck':>7}")
    for kind, row in report["per_fault"].items():
        p50 = "-" if row["recovery_p50_s"] is None else f"{row['recovery_p50_s']:.3f}"
        p99 = "-" if row["recovery_p99_s"] is None else f"{row['recovery_p99_s']:.3f}"
        print(
            f"{kind:<12}{row['fired']:>7}{row['lost']:>7}{row['duplicates']:>7}"
            f"{p50:>9}{p99:>9}{row['unrecovered']:>7}"
        )
    samples = report["samples"]
    if samples:
        print(f"peak sockets: {report['peak_sockets']}")
        for key in ("rss_kib", "fds", "tasks", "sockets", "subscriptions"):
            if key not in samples[0]:
                continue
            values = [s[key] for s in samples]
            print(
                f"{key:<8} first {values[0]:>8}  last {values[-1]:>8}  "
                f"min {min(values):>8}  max {max(values):>8}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--log", action="store_true", help="show the library's warnings")
    parser.add_argument(
        "--transport", choices=("pubsub", "eventsub"), default="pubsub", help="which transport"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.log else logging.CRITICAL)
    soak = (EventSubSoak if args.transport == "eventsub" else Soak)(
        args.minutes * 60, args.seed, args.rate
    )
    report = asyncio.run(soak.run())
    report["transport"] = args.transport
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
