"""``transport="conduit"`` end to end on the EventSub emulator, over real sockets.

Pools here stand for processes: two pools on one conduit are two processes sharing its
shards (they share nothing else but the emulator).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import EventSubEmulator
from twitchio_pubsub.emulator.eventsub.conduits import route_hash

from .conftest import Recorder

pytestmark = pytest.mark.asyncio

APP, SECRET = "conduit-app", "conduit-secret-value"
FAST = {
    "listen_timeout": 3.0,
    "connect_timeout": 4.0,
    "backoff_base": 0.05,
    "backoff_cap": 0.3,
    "keepalive_margin": 0.5,
    "audit_interval": 0.5,
}
CHANNELS = [str(100 + i) for i in range(8)]


def conduit_pool(client: Any, emu: EventSubEmulator, cls: Any = None, **kw: Any) -> Any:
    settings = {**FAST, "rng": random.Random(3), **kw}
    return (cls or tp.PubSubPool)(
        client,
        transport="conduit",
        client_id=APP,
        client_secret=SECRET,
        **emu.urls,
        **settings,
    )


@pytest.fixture
async def emu() -> AsyncIterator[EventSubEmulator]:
    async with EventSubEmulator(subscribe_window=2.0) as e:
        e.add_app(APP, SECRET)
        for channel in CHANNELS:
            e.add_token(f"tok-{channel}", channel, scopes=["bits:read"], client_id=APP)
        yield e


def bits(channel: str) -> Any:
    return tp.bits(f"tok-{channel}")[int(channel)]


def cheers(emu: EventSubEmulator, conduit_id: str) -> list[dict[str, Any]]:
    """The conduit's channel.cheer subscriptions (not its conduit.shard.disabled)."""
    return [s for s in emu.conduit_subscriptions(conduit_id) if s["type"] == "channel.cheer"]


async def cheer(emu: EventSubEmulator, channel: str, n: int = 1) -> None:
    await emu.trigger("channel.cheer", broadcaster_user_id=channel, bits=n)


async def test_subscribe_and_receive_over_shards(client: Any, emu: EventSubEmulator) -> None:
    seen = Recorder(client, "pubsub_bits", "pubsub_error")
    pool = conduit_pool(client, emu, shards=range(0, 2))
    try:
        await pool.subscribe_topics([bits(c) for c in CHANNELS[4:]])
        conduit_id = pool.conduit.id
        assert [c.id for c in emu.conduits.values()] == [conduit_id]
        assert len(emu.conduits[conduit_id].shards) == 2
        await pool.conduit.start()
        assert [(s.id, s.status) for s in pool.conduit.shards] == [
            ("0", "enabled"),
            ("1", "enabled"),
        ]
        subs = cheers(emu, conduit_id)
        assert sorted(s["condition"]["broadcaster_user_id"] for s in subs) == CHANNELS[4:]
        for n, channel in enumerate(CHANNELS[4:]):
            await cheer(emu, channel, n + 1)
        events = await seen.wait("pubsub_bits", 4)
        assert sorted((e.channel_id, e.bits_used) for e in events) == [
            (int(c), n + 1) for n, c in enumerate(CHANNELS[4:])
        ]
        # Every shard carried some: channels hash to both.
        homes = {route_hash(c) % 2 for c in CHANNELS[4:]}
        assert homes == {0, 1}
        assert seen.events["pubsub_error"] == []
        assert "conduit-secret-value" not in repr(pool) + repr(pool.conduit) + repr(pool.nodes)
    finally:
        await pool.close()
    # close() detaches the shards and leaves the conduit and its subscriptions.
    assert conduit_id in emu.conduits
    assert len(cheers(emu, conduit_id)) == 4
    await emu.wait_until(
        lambda: all(s.status != "enabled" for s in emu.conduits[conduit_id].shards)
    )


async def test_a_second_process_serves_shards_without_subscribing(
    client: Any, emu: EventSubEmulator
) -> None:
    """Process A subscribes and serves shard 0; process B serves shard 1 only. Every
    cheer is handled exactly once, by the process holding the shard Twitch picked."""
    import twitchio

    client_b = twitchio.Client(token="bot-token-b")
    seen_a = Recorder(client, "pubsub_bits")
    seen_b = Recorder(client_b, "pubsub_bits")
    a = conduit_pool(client, emu, shards=[0], shard_count=2)
    b = None
    try:
        await a.subscribe_topics([bits(c) for c in CHANNELS])
        b = conduit_pool(client_b, emu, shards=[1], conduit_id=a.conduit.id)
        await a.conduit.start()
        await b.conduit.start()
        for channel in CHANNELS:
            await cheer(emu, channel)
        home = {c: route_hash(c) % 2 for c in CHANNELS}
        want_a = sorted(int(c) for c in CHANNELS if home[c] == 0)
        want_b = sorted(int(c) for c in CHANNELS if home[c] == 1)
        assert want_a and want_b
        got_a = await seen_a.wait("pubsub_bits", len(want_a))
        got_b = await seen_b.wait("pubsub_bits", len(want_b))
        await asyncio.sleep(0.2)
        assert sorted(e.channel_id for e in seen_a.values("pubsub_bits")) == want_a
        assert sorted(e.channel_id for e in seen_b.values("pubsub_bits")) == want_b
        assert {type(e) for e in got_a + got_b} == {tp.PubSubBitsMessage}
    finally:
        await a.close()
        if b is not None:
            await b.close()


async def test_lost_shard_is_reassigned_and_its_events_go_to_the_other_meanwhile(
    client: Any, emu: EventSubEmulator
) -> None:
    seen = Recorder(client, "pubsub_bits", "pubsub_error")
    pool = conduit_pool(client, emu, shards=range(0, 2))
    try:
        await pool.subscribe_topics([bits(c) for c in CHANNELS])
        await pool.conduit.start()
        conduit_id = pool.conduit.id
        before = {s.id: s.session_id for s in pool.conduit.shards}
        await emu.fault_shard(conduit_id, "0")  # dropped, no close frame
        # The shard is re-assigned with a new session by the node's supervisor.
        await emu.wait_until(
            lambda: (
                emu.shard(conduit_id, "0").status == "enabled"
                and emu.shard(conduit_id, "0").session_id != before["0"]
            ),
            timeout=5,
        )
        await pool.conduit.start()
        assert pool.conduit.shards[0].session_id == emu.shard(conduit_id, "0").session_id
        for channel in CHANNELS:
            await cheer(emu, channel)
        await seen.wait("pubsub_bits", len(CHANNELS))
        # conduit.shard.disabled was surfaced as a pubsub_error naming the shard.
        errors = await seen.wait("pubsub_error", 1)
        assert any("shard 0 was disabled" in str(e.reason) for e in errors), errors
    finally:
        await pool.close()


async def test_session_reconnect_keeps_the_shard_without_a_patch(
    client: Any, emu: EventSubEmulator
) -> None:
    seen = Recorder(client, "pubsub_bits")
    pool = conduit_pool(client, emu, shards=[0])
    try:
        await pool.subscribe_topics([bits(CHANNELS[0])])
        await pool.conduit.start()
        session = pool.conduit.shards[0].session_id
        patches = emu.helix_requests
        await emu.send_reconnect(session)
        await emu.wait_until(lambda: len([s for s in emu.sessions if s.status == "connected"]) == 1)
        await asyncio.sleep(0.3)
        assert pool.conduit.shards[0].session_id == session
        assert emu.helix_requests - patches <= 1  # no PATCH (an audit GET may happen)
        await cheer(emu, CHANNELS[0])
        await seen.wait("pubsub_bits", 1)
    finally:
        await pool.close()


async def test_patch_errors_are_read_and_surfaced(client: Any, emu: EventSubEmulator) -> None:
    """Another process shrinks the conduit under this one: re-assigning shard 1 gets
    Twitch's per-shard error in a 202 answer. It becomes a pubsub_error naming the shard
    and reason, and the pool stops serving the shard the conduit no longer has."""
    seen = Recorder(client, "pubsub_error")
    pool = conduit_pool(client, emu, shards=[0, 1])
    try:
        await pool.conduit.start()
        conduit_id = pool.conduit.id
        lost = emu.shard(conduit_id, 1).session_id
        emu._resize(emu.conduits[conduit_id], 1)  # as a PATCH from another process
        await emu.drop(lost)
        errors = await seen.wait("pubsub_error", 1)
        refused = [e for e in errors if getattr(e, "type", None) == "SHARD"]
        assert refused and "shard 1" in str(refused[0].reason)
        assert "outside of the conduit's range" in str(refused[0].reason)
        await emu.wait_until(lambda: [s.id for s in pool.conduit.shards] == ["0"], timeout=5)
        assert pool.conduit.shard_count == 1
    finally:
        await pool.close()


async def test_unsubscribe_deletes_conduit_wide_and_close_delete_removes_the_conduit(
    client: Any, emu: EventSubEmulator
) -> None:
    pool = conduit_pool(client, emu, shards=[0])
    await pool.subscribe_topics([bits(c) for c in CHANNELS[:3]])
    conduit_id = pool.conduit.id
    await pool.unsubscribe_topics([bits(CHANNELS[0])])
    assert len(cheers(emu, conduit_id)) == 2
    await pool.close(delete=True)
    assert emu.conduit_subscriptions(conduit_id) == []  # shard.disabled's too
    assert conduit_id not in emu.conduits  # it created the conduit, so it went too


async def test_tokens_of_another_client_or_missing_scopes_go_to_auth_fail_hook(
    client: Any, emu: EventSubEmulator
) -> None:
    emu.add_token("other-client", "555", scopes=["bits:read"], client_id="someone-else")
    emu.add_token("no-scope", "556", scopes=[], client_id=APP)
    failed: list[Any] = []

    class Pool(tp.PubSubPool):
        async def auth_fail_hook(self, topics: list[Any]) -> None:
            failed.extend(topics)

    seen = Recorder(client, "pubsub_error")
    pool = conduit_pool(client, emu, cls=Pool, shards=[0])
    try:
        await pool.subscribe_topics(
            [tp.bits("other-client")[555], tp.bits("no-scope")[556], bits(CHANNELS[0])]
        )
        assert sorted(t.token for t in failed) == ["no-scope", "other-client"]
        messages = " ".join(str(e.reason) for e in seen.values("pubsub_error"))
        assert "client id someone-else" in messages and "bits:read" in messages
        assert len(cheers(emu, pool.conduit.id)) == 1
    finally:
        await pool.close()


async def test_app_token_refetched_after_401(
    client: Any, emu: EventSubEmulator, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    pool = conduit_pool(client, emu, shards=[0])
    try:
        await pool.subscribe_topics([bits(CHANNELS[0])])
        transport = pool._transport
        assert transport.app.fetched == 1
        for token in [t for t, rec in emu._tokens.items() if rec.user_id is None]:
            await emu.invalidate_token(token)
        await pool.subscribe_topics([bits(CHANNELS[1])])
        assert transport.app.fetched == 2
        assert len(cheers(emu, pool.conduit.id)) == 2
    finally:
        await pool.close()
    app_tokens = [t for t, rec in emu._tokens.items() if rec.user_id is None]
    assert app_tokens and not any(t in caplog.text for t in app_tokens)
    assert SECRET not in caplog.text


async def test_options_are_checked(client: Any, emu: EventSubEmulator) -> None:
    with pytest.raises(TypeError, match="client_secret"):
        tp.PubSubPool(client, transport="conduit", client_id=APP, **emu.urls)
    with pytest.raises(ValueError, match="shard ids"):
        conduit_pool(client, emu, shards=[-1])
    with pytest.raises(TypeError, match="shards must be"):
        conduit_pool(client, emu, shards="0-3")
    with pytest.raises(ValueError, match="shard_count"):
        conduit_pool(client, emu, shard_count=0)
    with pytest.raises(ValueError, match="only to transport='conduit'"):
        tp.PubSubPool(client, transport="eventsub", client_secret="x", **emu.urls)
    pool = conduit_pool(client, emu)
    assert pool.transport == "conduit" and pool.conduit.id is None
    with pytest.raises(ValueError, match="20000"):
        await pool.conduit.resize(20_001)
    await pool.close()
    assert tp.PubSubPool(client).conduit is None


async def test_reconnect_hook_runs_on_a_new_conduit_and_may_subscribe_and_be_slow(
    client: Any, emu: EventSubEmulator
) -> None:
    """The conduit is deleted under the pool: it creates a new one, the reconnect hook
    runs (slower than the grace, subscribing another topic from inside), and every
    topic is created on the new conduit and heard."""
    calls: list[list[Any]] = []

    class Pool(tp.PubSubPool):
        async def reconnect_hook(self, node: Any, topics: list[Any]) -> list[Any]:
            calls.append(list(topics))
            await self.subscribe_topics([bits(CHANNELS[1])])  # calls back into the pool
            await asyncio.sleep(0.6)  # slower than reconnect_hook_grace
            return topics

    seen = Recorder(client, "pubsub_bits")
    pool = conduit_pool(client, emu, cls=Pool, shards=[0, 1], reconnect_hook_grace=0.2)
    try:
        await pool.subscribe_topics([bits(CHANNELS[0])])
        await pool.conduit.start()
        old = pool.conduit.id
        await emu.delete_conduit(old)
        await emu.wait_until(
            lambda: len(emu.conduits) == 1 and len(cheers(emu, pool.conduit.id or "")) == 2,
            timeout=8,
        )
        assert pool.conduit.id != old
        assert [[t.present for t in c] for c in calls] == [[bits(CHANNELS[0]).present]]
        await pool.conduit.start()
        for channel in CHANNELS[:2]:
            await cheer(emu, channel)
        got = await seen.wait("pubsub_bits", 2)
        assert sorted(e.channel_id for e in got) == [int(c) for c in CHANNELS[:2]]
    finally:
        await pool.close()


async def test_revocation_goes_to_auth_fail_hook_which_refreshes(
    client: Any, emu: EventSubEmulator
) -> None:
    """The user disconnects the app: the revocation arrives on a shard, the hook hears of
    the topic once, re-authorizes with a new token and subscribes again."""
    refreshed: list[Any] = []
    channel = CHANNELS[2]

    class Pool(tp.PubSubPool):
        async def auth_fail_hook(self, topics: list[Any]) -> None:
            refreshed.append([t.present for t in topics])
            emu.add_token("fresh", channel, scopes=["bits:read"], client_id=APP)
            await self.subscribe_topics([tp.bits("fresh")[int(channel)]])

    seen = Recorder(client, "pubsub_bits")
    pool = conduit_pool(client, emu, cls=Pool, shards=[0, 1])
    try:
        await pool.subscribe_topics([bits(channel), bits(CHANNELS[3])])
        await pool.conduit.start()
        revoked = await emu.revoke(token=f"tok-{channel}")
        assert len(revoked) == 1
        await emu.wait_until(lambda: len(cheers(emu, pool.conduit.id)) == 2, timeout=5)
        assert refreshed == [[bits(channel).present]]
        assert [t.token for t in pool.topics if t.present == bits(channel).present] == ["fresh"]
        await cheer(emu, channel)
        await seen.wait("pubsub_bits", 1)
    finally:
        await pool.close()


async def test_close_from_inside_a_hook_leaves_nothing(client: Any, emu: EventSubEmulator) -> None:
    closed = asyncio.Event()

    class Pool(tp.PubSubPool):
        async def auth_fail_hook(self, topics: list[Any]) -> None:
            await self.close()
            closed.set()

    before = asyncio.all_tasks()
    pool = conduit_pool(client, emu, cls=Pool, shards=[0])
    await pool.subscribe_topics([bits(CHANNELS[0])])
    await pool.conduit.start()
    await emu.revoke(token=f"tok-{CHANNELS[0]}")
    await asyncio.wait_for(closed.wait(), 5)
    assert pool.closed
    await emu.wait_until(lambda: not [s for s in emu.sessions if s.status == "connected"])
    await asyncio.sleep(0.05)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert leftover == [asyncio.current_task()] or leftover == []
    # The conduit and the other subscriptions stay for the other processes.
    assert len(emu.conduits) == 1


async def test_a_refused_app_token_is_the_apps_problem_not_the_users(
    client: Any, emu: EventSubEmulator
) -> None:
    """The app's secret is rotated while the pool runs and its app token dies: a new
    topic fails with ConnectionFailure naming the app token; no user token is blamed
    (auth_fail_hook is not called) and no pubsub_error type INTERNAL appears."""
    blamed: list[Any] = []

    class Pool(tp.PubSubPool):
        async def auth_fail_hook(self, topics: list[Any]) -> None:
            blamed.extend(topics)

    seen = Recorder(client, "pubsub_error")
    pool = conduit_pool(client, emu, cls=Pool, shards=[0], connect_timeout=1.5)
    try:
        await pool.subscribe_topics([bits(CHANNELS[0])])
        emu.add_app(APP, "rotated-secret")
        for token in [t for t, rec in emu._tokens.items() if rec.user_id is None]:
            await emu.invalidate_token(token)
        with pytest.raises(tp.ConnectionFailure, match="app access token") as caught:
            await pool.subscribe_topics([bits(CHANNELS[1])])
        assert SECRET not in str(caught.value) and "rotated-secret" not in str(caught.value)
        assert blamed == []
        assert [e for e in seen.values("pubsub_error") if e.type == "INTERNAL"] == []
    finally:
        await pool.close()


async def test_close_with_delete_and_a_helix_that_never_answers(
    client: Any, emu: EventSubEmulator
) -> None:
    """close(delete=True) deletes within its deadline, or leaves the rest to Twitch: it
    never waits on a server that does not answer, and leaves nothing behind."""
    from .test_bridge_hostile import closes_cleanly

    pool = conduit_pool(client, emu, shards=[0])
    await pool.subscribe_topics([bits(CHANNELS[0])])
    await pool.conduit.start()
    await emu.slow_next_helix(3600, 20)
    await closes_cleanly(pool, delete=True, within=6.0)


async def test_session_reconnect_with_a_new_id_is_patched(client: Any) -> None:
    """If Twitch gave the moved session a new id, the shard would stay on the old one:
    the client PATCHes the new id before it closes the old socket."""
    async with EventSubEmulator(shard_reconnect_keeps_id=False) as emu:
        emu.add_app(APP, SECRET)
        emu.add_token("tok-x", "777", scopes=["bits:read"], client_id=APP)
        seen = Recorder(client, "pubsub_bits", "pubsub_error")
        pool = conduit_pool(client, emu, shards=[0], audit_interval=60.0)  # no audit
        try:
            await pool.subscribe_topics([tp.bits("tok-x")[777]])
            await pool.conduit.start()
            conduit_id = pool.conduit.id
            old = emu.shard(conduit_id, 0).session_id
            await emu.send_reconnect(old)
            await emu.wait_until(
                lambda: (
                    emu.shard(conduit_id, 0).session_id not in (None, old)
                    and emu.shard(conduit_id, 0).status == "enabled"
                    and len(emu.sessions) == 1
                ),
                timeout=5,
            )
            assert pool.conduit.shards[0].session_id == emu.shard(conduit_id, 0).session_id
            await emu.trigger("channel.cheer", broadcaster_user_id="777", bits=3)
            assert (await seen.wait("pubsub_bits"))[0].bits_used == 3
            assert emu.shard(conduit_id, 0).disconnected_at is None  # never disabled
        finally:
            await pool.close()


async def test_resize_opens_and_closes_shards_of_a_pool_serving_all(
    client: Any, emu: EventSubEmulator
) -> None:
    pool = conduit_pool(client, emu)  # shards=None: every shard of the conduit
    try:
        await pool.conduit.start()
        assert [s.id for s in pool.conduit.shards] == ["0"]
        await pool.conduit.resize(3)
        await pool.conduit.start()
        assert [(s.id, s.status) for s in pool.conduit.shards] == [
            ("0", "enabled"),
            ("1", "enabled"),
            ("2", "enabled"),
        ]
        assert [s.status for s in await pool.conduit.fetch_shards()] == ["enabled"] * 3
        await pool.conduit.resize(2)
        await emu.wait_until(lambda: len(pool.conduit.shards) == 2)
        assert pool.conduit.shard_count == 2 and len(emu.conduits[pool.conduit.id].shards) == 2
    finally:
        await pool.close()


async def test_a_notification_sent_twice_is_handled_once(
    client: Any, emu: EventSubEmulator
) -> None:
    seen = Recorder(client, "pubsub_bits")
    pool = conduit_pool(client, emu, shards=[0, 1])
    try:
        await pool.subscribe_topics([bits(c) for c in CHANNELS[:2]])
        await pool.conduit.start()
        await emu.duplicate_next(2)
        await cheer(emu, CHANNELS[0], 7)
        await cheer(emu, CHANNELS[1], 8)
        await seen.wait("pubsub_bits", 2)
        await asyncio.sleep(0.2)
        assert sorted(e.bits_used for e in seen.values("pubsub_bits")) == [7, 8]
    finally:
        await pool.close()


async def test_an_event_of_an_unsubscribed_topic_still_in_flight_is_not_dispatched(
    client: Any, emu: EventSubEmulator
) -> None:
    """Unsubscribing deletes the subscription; a notification of it already on its way
    (sent before the delete) is dropped, not dispatched as another process's topic."""
    import json
    import time as time_

    from twitchio_pubsub.emulator import eventsub_payloads
    from twitchio_pubsub.eventsub.types import SUBSCRIPTION_TYPES

    seen = Recorder(client, "pubsub_bits")
    pool = conduit_pool(client, emu, shards=[0])
    try:
        await pool.subscribe_topics([bits(CHANNELS[0]), bits(CHANNELS[1])])
        await pool.conduit.start()
        sub = next(
            s
            for s in cheers(emu, pool.conduit.id)
            if s["condition"]["broadcaster_user_id"] == CHANNELS[0]
        )
        wire = emu._public(sub, wire=True)
        await pool.unsubscribe_topics([bits(CHANNELS[0])])
        event = eventsub_payloads.build_event(
            SUBSCRIPTION_TYPES[("channel.cheer", "1")],
            {"broadcaster_user_id": CHANNELS[0]},
            time_.time_ns(),
        )
        frame = {
            "metadata": {
                "message_id": "late-1",
                "message_type": "notification",
                "message_timestamp": "2026-12-05T12:00:00.000000000Z",
                "subscription_type": "channel.cheer",
                "subscription_version": "1",
            },
            "payload": {"subscription": wire, "event": event},
        }
        session = emu.shard(pool.conduit.id, 0).session_id
        assert await emu.send_raw(json.dumps(frame), session) == 1
        await cheer(emu, CHANNELS[1], 9)  # after the late frame, on the same socket
        got = await seen.wait("pubsub_bits", 1)
        await asyncio.sleep(0.1)
        assert [e.channel_id for e in seen.values("pubsub_bits")] == [int(CHANNELS[1])]
        assert got[0].bits_used == 9
    finally:
        await pool.close()


async def test_unsubscribing_the_last_topic_keeps_the_shards_serving(
    client: Any, emu: EventSubEmulator
) -> None:
    """The pool's node leaves with its last topic, but this process still serves its
    shards: their sessions stay up (the pool keeps the HTTP session they use), and events
    of other processes' subscriptions keep arriving."""
    import twitchio

    other = conduit_pool(twitchio.Client(token="other"), emu, shards=[1], shard_count=2)
    seen = Recorder(client, "pubsub_bits")
    pool = None
    try:
        await other.subscribe_topics([bits(c) for c in CHANNELS])
        pool = conduit_pool(client, emu, shards=[0], conduit_id=other.conduit.id)
        await pool.subscribe_topics([bits(CHANNELS[0])])
        await pool.conduit.start()
        before = pool.conduit.shards[0].session_id
        await pool.unsubscribe_topics([bits(CHANNELS[0])])
        assert pool.nodes == []
        await asyncio.sleep(0.3)
        assert pool.conduit.shards[0].session_id == before
        assert emu.shard(other.conduit.id, 0).session_id == before
        homed = [c for c in CHANNELS[1:] if home(c, 2) == 0]
        for channel in homed:
            await cheer(emu, channel)
        got = await seen.wait("pubsub_bits", len(homed))
        assert sorted(e.channel_id for e in got) == sorted(int(c) for c in homed)
    finally:
        if pool is not None:
            await pool.close()
        await other.close()


def home(channel: str, shards: int) -> int:
    return route_hash(channel) % shards
