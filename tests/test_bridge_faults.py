"""The EventSub bridge under faults: reconnects, drops, close codes, revocations, bad
tokens, Helix errors and Twitch's limits, all on the EventSub emulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import aiohttp
import pytest

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import EventSubEmulator

from .conftest import LoopWatch, Recorder, close_while_subscribing, refused_url
from .eventsub_helpers import CLIENT_ID, Client
from .test_bridge import EVENTS, MOD_SCOPES, B, M, U, bridge_pool

pytestmark = pytest.mark.usefixtures("emu")


@pytest.fixture
async def emu() -> Any:
    async with EventSubEmulator(reconnect_grace=2.0) as e:
        e.add_token("broadcaster", B, scopes=["bits:read", "channel:read:redemptions"])
        e.add_token("moderator", M, scopes=MOD_SCOPES)
        e.add_token("chatter", U, scopes=["user:read:whispers"])
        yield e


class HookPool(tp.PubSubPool):
    """Records both hooks' calls."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.auth_failed: list[list[str]] = []
        self.reconnected: list[tuple[Any, list[str]]] = []
        self.changed = asyncio.Event()

    async def auth_fail_hook(self, topics: list[tp.Topic]) -> None:
        self.auth_failed.append([t.present or "" for t in topics])
        self.changed.set()

    async def reconnect_hook(self, node: Any, topics: list[tp.Topic]) -> list[tp.Topic]:
        self.reconnected.append((node, [t.present or "" for t in topics]))
        self.changed.set()
        return topics

    async def wait(self, what: str, count: int = 1, timeout: float = 5.0) -> None:
        async def enough() -> None:
            while len(getattr(self, what)) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), timeout)


@pytest.fixture
async def pool(client: Any, emu: EventSubEmulator) -> Any:
    p = bridge_pool(client, emu, HookPool)
    yield p
    await p.close()


@pytest.fixture
def seen(client: Any) -> Recorder:
    return Recorder(client, *EVENTS)


async def cheers(emu: EventSubEmulator, values: range) -> None:
    for bits in values:
        await emu.trigger("channel.cheer", broadcaster_user_id=B, bits=bits)


async def new_session(emu: EventSubEmulator, old: str, subscriptions: int) -> str:
    """Wait until a session other than ``old`` holds ``subscriptions``; its id."""

    def ready() -> bool:
        return any(
            s.session_id != old and len(emu.enabled(s.session_id)) == subscriptions
            for s in emu.sessions
        )

    await emu.wait_until(ready, timeout=8)
    return next(s.session_id for s in emu.sessions if s.session_id != old)


# ---------------------------------------------------------------- session_reconnect


async def test_session_reconnect_mid_stream_loses_and_doubles_nothing(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    [node] = pool.nodes
    first = node.session_id
    stream = asyncio.ensure_future(cheers(emu, range(1, 301)))
    await asyncio.sleep(0.01)
    await emu.send_reconnect()
    await stream
    got = await seen.wait("pubsub_bits", 300)
    assert sorted(c.bits_used for c in got) == list(range(1, 301))  # 0 lost, 0 doubled
    await asyncio.sleep(0.1)
    assert len(seen.values("pubsub_bits")) == 300
    assert node.session_id != first
    assert pool.reconnected == []  # nothing was re-created, so no reconnect_hook
    assert len(emu.subscriptions) == 1  # the same subscription, moved


async def test_duplicate_delivery_is_dispatched_once(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    await emu.duplicate_next(3)
    await cheers(emu, range(1, 5))
    got = await seen.wait("pubsub_bits", 4)
    await asyncio.sleep(0.1)
    assert [c.bits_used for c in seen.values("pubsub_bits")] == [1, 2, 3, 4]
    assert len(got) == 4


# ---------------------------------------------------------------- lost sessions


async def test_dropped_session_recreates_subscriptions_and_runs_the_hook(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    topics = [tp.bits("broadcaster")[B], tp.channel_points("broadcaster")[B]]
    await pool.subscribe_topics(topics)
    [node] = pool.nodes
    old = node.session_id
    await emu.drop()
    new = await new_session(emu, old, 4)
    await pool.wait("reconnected")
    hooked_node, hooked = pool.reconnected[0]
    assert hooked_node is node and sorted(hooked) == sorted(t.present for t in topics)
    await emu.wait_until(lambda: len(emu.subscriptions) == 4)  # the stale ones deleted
    assert all(s["transport"]["session_id"] == new for s in emu.subscriptions.values())
    await cheers(emu, range(7, 8))
    assert (await seen.wait("pubsub_bits"))[0].bits_used == 7


async def test_reconnect_hook_edits_what_is_recreated(client: Any, emu: EventSubEmulator) -> None:
    class Dropping(HookPool):
        async def reconnect_hook(self, node: Any, topics: list[tp.Topic]) -> list[tp.Topic]:
            await super().reconnect_hook(node, topics)
            return [t for t in topics if t.family != "channel-points-channel-v1"]

    pool = bridge_pool(client, emu, Dropping)
    try:
        await pool.subscribe_topics(
            [tp.bits("broadcaster")[B], tp.channel_points("broadcaster")[B]]
        )
        old = pool.nodes[0].session_id
        await emu.close_session(None, 4000)
        await new_session(emu, old, 1)
        assert [t.present for t in pool.topics] == [f"channel-bits-events-v2.{B}"]
        assert [s["type"] for s in emu.enabled()] == ["channel.cheer"]
    finally:
        await pool.close()


@pytest.mark.parametrize("code", [4000, 4001, 4002, 4003, 4004, 4005, 4006, 4007])
async def test_each_close_code_gets_a_new_session(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder, code: int, caplog: Any
) -> None:
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    old = pool.nodes[0].session_id
    with caplog.at_level(logging.INFO, logger="twitchio_pubsub"):
        await emu.close_session(old, code)
        await new_session(emu, old, 1)
    await cheers(emu, range(3, 4))
    assert (await seen.wait("pubsub_bits"))[0].bits_used == 3
    assert len(pool.reconnected) == 1
    assert f"code {code}" in caplog.text
    if code == 4001:  # the client never sends: a bug worth shouting about
        assert any(r.levelno == logging.ERROR for r in caplog.records)


async def test_keepalive_silence_means_a_dead_session(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    old = pool.nodes[0].session_id
    await emu.stop_keepalives()
    # The keepalive timeout is 10 s at the least (Twitch's floor) plus the 0.5 s margin.
    await emu.wait_until(
        lambda: (
            any(s.session_id != old for s in emu.sessions)
            and len(emu.enabled()) == 1
            and emu.enabled()[0]["transport"]["session_id"] != old
        ),
        timeout=15,
    )
    assert len(pool.reconnected) == 1
    await cheers(emu, range(9, 10))
    assert (await seen.wait("pubsub_bits"))[0].bits_used == 9


# ---------------------------------------------------------------- authorization


async def test_revocation_goes_to_auth_fail_hook(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    bits, whisper = tp.bits("broadcaster")[B], tp.whispers("chatter")[U]
    await pool.subscribe_topics([bits, whisper])
    await emu.revoke("authorization_revoked", type="channel.cheer")
    await pool.wait("auth_failed")
    assert pool.auth_failed == [[bits.present]]
    [error] = await seen.wait("pubsub_error")
    assert error.topics == [bits] and "authorization_revoked" in error.reason
    assert pool.topics == [whisper]  # the other topic carries on


async def test_version_removed_is_an_error_not_an_auth_failure(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    points = tp.channel_points("broadcaster")[B]
    await pool.subscribe_topics([points])
    await emu.revoke("version_removed", type="channel.channel_points_custom_reward.update")
    [error] = await seen.wait("pubsub_error")
    assert error.error == "version_removed" and error.topics == [points]
    assert "channel.channel_points_custom_reward.update" in error.reason
    await emu.wait_until(lambda: not emu.subscriptions)  # its other two were deleted
    assert pool.topics == [] and pool.auth_failed == []


async def test_missing_scope_names_the_scope(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    emu.add_token("old-mod-token", M, scopes=["channel:moderate"])  # a PubSub-era token
    bits = tp.bits("broadcaster")[B]
    moderation = tp.moderation_user_action("old-mod-token")[B][M]
    await pool.subscribe_topics([bits, moderation])  # no exception: the hook takes it
    assert pool.auth_failed == [[moderation.present]]
    [error] = await seen.wait("pubsub_error")
    assert error.topic == moderation.present and error.error == "ERR_BADAUTH"
    assert "lacks scope moderator:manage:blocked_terms or moderator:read:blocked_terms" in (
        error.reason
    )
    assert pool.topics == [bits]


async def test_token_of_the_wrong_user(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    await pool.subscribe_topics([tp.bits("chatter")[B]])
    assert pool.auth_failed == [[f"channel-bits-events-v2.{B}"]]
    assert f"needs a token of user {B}" in (await seen.wait("pubsub_error"))[0].reason
    assert emu.helix_requests == 0  # refused before Helix was asked


async def test_invalid_token(pool: HookPool, emu: EventSubEmulator, seen: Recorder) -> None:
    await pool.subscribe_topics([tp.bits("nobody-issued-this")[B]])
    assert pool.auth_failed == [[f"channel-bits-events-v2.{B}"]]
    [error] = await seen.wait("pubsub_error")
    assert "invalid or expired" in error.reason
    assert "nobody-issued-this" not in repr(error) + error.reason


async def test_a_token_that_expires_is_found_by_revalidation(
    client: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    pool = bridge_pool(client, emu, HookPool, validate_interval=0.2)
    try:
        bits, whisper = tp.bits("broadcaster")[B], tp.whispers("chatter")[U]
        await pool.subscribe_topics([bits, whisper])
        await emu.expire_token("broadcaster")
        await pool.wait("auth_failed")
        assert pool.auth_failed == [[bits.present]]
        assert pool.topics == [whisper]
        await emu.wait_until(lambda: len(emu.enabled()) == 1)
    finally:
        await pool.close()


# ---------------------------------------------------------------- Helix errors


async def test_helix_429_waits_for_the_reset(pool: Any, emu: EventSubEmulator) -> None:
    await emu.fail_next_helix(429, 2, reset_after=0.5)
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    assert len(emu.enabled()) == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_helix_5xx_is_retried(pool: Any, emu: EventSubEmulator, status: int) -> None:
    await emu.fail_next_helix(status, 2)
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    assert len(emu.enabled()) == 1


async def test_helix_failing_for_good_raises(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    await emu.fail_next_helix(503, 50)
    with pytest.raises(tp.ListenError) as info:
        await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    assert info.value.error == "ERR_SERVER"
    assert pool.topics == []


# ---------------------------------------------------------------- limits


async def test_limits_three_sessions_of_300_subscriptions(client: Any) -> None:
    # 900 creations in a minute pass Twitch's 800 requests per minute: the bridge would
    # wait for the reset (tested below), so this emulator allows more.
    async with EventSubEmulator(rate_limit=5000) as emu:
        emu.add_token("moderator", M, scopes=MOD_SCOPES)
        await _fill_three_sessions(client, emu)


async def test_helix_rate_limit_exhausted_waits_for_the_reset(client: Any) -> None:
    async with EventSubEmulator(rate_limit=3) as emu:
        emu.add_token("moderator", M, scopes=MOD_SCOPES)
        pool = bridge_pool(client, emu)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            task = asyncio.ensure_future(
                pool.subscribe_topics(
                    [tp.moderation_user_action("moderator")[c][M] for c in range(1, 5)]
                )
            )
            await emu.wait_until(lambda: len(emu.enabled()) == 3)
            assert not task.done()  # the fourth waits for the bucket's reset
            task.cancel()
            assert loop.time() - started < 5
        finally:
            await pool.close()


async def _fill_three_sessions(client: Any, emu: EventSubEmulator) -> None:
    pool = bridge_pool(client, emu)
    try:
        channels = [tp.moderation_user_action("moderator")[c][M] for c in range(1, 902)]
        await pool.subscribe_topics(channels[:301])
        assert [n.subscriptions for n in pool.nodes] == [300, 1]
        await pool.subscribe_topics(channels[301:900])
        assert sorted(n.subscriptions for n in pool.nodes) == [300, 300, 300]
        asked = emu.helix_requests
        with pytest.raises(tp.PoolFull, match="Twitch allows 3 sessions per user"):
            await pool.subscribe_topics(channels[900:])
        assert emu.helix_requests == asked  # the planner refused; Helix never said 429
        assert len(emu.enabled()) == 900
    finally:
        await pool.close()
    assert emu.subscriptions == {}


async def test_close_leaves_no_task_socket_or_session(client: Any, emu: EventSubEmulator) -> None:
    before = asyncio.all_tasks()
    pool = bridge_pool(client, emu)
    await pool.subscribe_topics([tp.bits("broadcaster")[B], tp.whispers("chatter")[U]])
    session = pool._session
    await pool.close()
    assert session is not None and session.closed
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert [
        t.get_name() for t in leftover if "pubsub" in t.get_name() or "eventsub" in t.get_name()
    ] == []


class EagerEmulator(EventSubEmulator):
    """Sends a cheer the moment a subscription exists, before the 202 goes out."""

    async def _h_create(self, request: Any, token: Any, headers: Any) -> Any:
        response = await super()._h_create(request, token, headers)
        if response.status == 202:
            await self.trigger("channel.cheer", broadcaster_user_id=B, bits=77)
        return response


@contextlib.asynccontextmanager
async def on_server(client: Any, server: type[EventSubEmulator]) -> Any:
    """A bridge pool holding the broadcaster's bits topic on a ``server`` of its own."""
    async with server() as emu:
        emu.add_token("broadcaster", B, scopes=["bits:read"])
        pool = bridge_pool(client, emu)
        try:
            await pool.subscribe_topics([tp.bits("broadcaster")[B]])
            yield emu
        finally:
            await pool.close()


async def test_an_event_sent_as_its_subscription_is_created_is_not_lost(
    client: Any, seen: Recorder
) -> None:
    # Twitch may deliver a notification before the client has read the 202 that
    # created its subscription; the event still belongs to the topic being subscribed.
    async with on_server(client, EagerEmulator):
        assert [c.bits_used for c in await seen.wait("pubsub_bits")] == [77]


async def test_revocations_arriving_together_reach_the_hook_together(
    pool: HookPool, emu: EventSubEmulator
) -> None:
    topics = [tp.moderation_user_action("moderator")[c][M] for c in range(1, 11)]
    await pool.subscribe_topics(topics)
    assert len(await emu.revoke(token="moderator")) == 10
    await pool.wait("auth_failed")
    await asyncio.sleep(0.1)
    assert sorted(pool.auth_failed[0]) == sorted(t.present for t in topics)
    assert len(pool.auth_failed) == 1


async def test_a_refreshed_token_of_the_same_user_recreates_nothing(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    topic = tp.bits("broadcaster")[B]
    await pool.subscribe_topics([topic])
    [before] = emu.enabled()
    emu.add_token("broadcaster-refreshed", B, scopes=["bits:read"])
    await pool.subscribe_topics([topic.with_token("broadcaster-refreshed")])
    assert [t.token for t in pool.topics] == ["broadcaster-refreshed"]
    assert [s["id"] for s in emu.enabled()] == [before["id"]]  # the same subscription
    await emu.invalidate_token("broadcaster")  # the old token is gone; events still flow
    await cheers(emu, range(5, 6))
    assert (await seen.wait("pubsub_bits"))[0].bits_used == 5
    await pool.unsubscribe_topics([topic])
    assert emu.subscriptions == {}  # deleted with the new token


async def test_a_token_of_another_user_moves_the_topic_to_that_users_session(
    pool: Any, emu: EventSubEmulator
) -> None:
    # The bits-badge topic takes any chatter's token: switching tokens switches sessions.
    emu.add_token("reader-a", 501, scopes=["user:read:chat"])
    emu.add_token("reader-b", 502, scopes=["user:read:chat"])
    badge = tp.bits_badge("reader-a")[B]
    await pool.subscribe_topics([badge])
    assert [n.user_id for n in pool.nodes] == ["501"]
    await pool.subscribe_topics([badge.with_token("reader-b")])
    assert [n.user_id for n in pool.nodes] == ["502"]
    await emu.wait_until(
        lambda: [s["condition"]["user_id"] for s in emu.subscriptions.values()] == ["502"]
    )


class ForbiddingEmulator(EventSubEmulator):
    """A server that refuses channel.cheer with 403 although the token looks right."""

    def _create(self, token: Any, body: dict[str, Any]) -> Any:
        if body.get("type") == "channel.cheer":
            return 403, "subscription missing proper authorization", {}
        return super()._create(token, body)


async def test_a_403_from_helix_goes_to_auth_fail_hook(client: Any, seen: Recorder) -> None:
    async with ForbiddingEmulator() as emu:
        emu.add_token("broadcaster", B, scopes=["bits:read", "channel:read:redemptions"])
        pool = bridge_pool(client, emu, HookPool)
        try:
            bits, points = tp.bits("broadcaster")[B], tp.channel_points("broadcaster")[B]
            await pool.subscribe_topics([bits, points])  # no exception: the hook takes it
            assert pool.auth_failed == [[bits.present]]
            [error] = await seen.wait("pubsub_error")
            assert error.topic == bits.present and error.error == "ERR_BADAUTH"
            assert "HTTP 403: subscription missing proper authorization" in error.reason
            assert pool.topics == [points] and len(emu.enabled()) == 3
        finally:
            await pool.close()


async def test_an_unreachable_token_server_is_a_connection_failure(client: Any) -> None:
    pool = tp.PubSubPool(
        client,
        transport="eventsub",
        eventsub_url="ws://127.0.0.1:9/ws",
        helix_url="http://127.0.0.1:9/helix",
        id_url="http://127.0.0.1:9/oauth2",
        listen_timeout=1.0,
        backoff_base=0.01,
        backoff_cap=0.02,
    )
    try:
        with pytest.raises(tp.ConnectionFailure) as info:
            await pool.subscribe_topics([tp.bits("secret-token-value")[B]])
        assert "http://127.0.0.1:9/oauth2" in str(info.value)
        assert "secret-token-value" not in str(info.value)
        assert pool.topics == []
    finally:
        await pool.close()


async def test_reconnect_hook_may_swap_in_a_new_token(
    client: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    class Refreshing(HookPool):
        async def reconnect_hook(self, node: Any, topics: list[tp.Topic]) -> list[tp.Topic]:
            await super().reconnect_hook(node, topics)
            return [t.with_token("broadcaster-v2") for t in topics]

    emu.add_token("broadcaster-v2", B, scopes=["bits:read"])
    pool = bridge_pool(client, emu, Refreshing)
    try:
        await pool.subscribe_topics([tp.bits("broadcaster")[B]])
        old = pool.nodes[0].session_id
        await emu.drop()
        await new_session(emu, old, 1)
        assert [t.token for t in pool.topics] == ["broadcaster-v2"]
        assert [s["_token"] for s in emu.enabled()] == ["broadcaster-v2"]
        assert pool.auth_failed == []
        await cheers(emu, range(4, 5))
        assert (await seen.wait("pubsub_bits"))[0].bits_used == 4
    finally:
        await pool.close()


async def test_reconnect_hook_swapping_in_a_bad_token_reaches_auth_fail_hook(
    client: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    class Broken(HookPool):
        async def reconnect_hook(self, node: Any, topics: list[tp.Topic]) -> list[tp.Topic]:
            await super().reconnect_hook(node, topics)
            return [t.with_token("never-issued") for t in topics]

    pool = bridge_pool(client, emu, Broken)
    try:
        bits = tp.bits("broadcaster")[B]
        await pool.subscribe_topics([bits])
        await emu.drop()
        await pool.wait("auth_failed")
        assert pool.auth_failed == [[bits.present]]
        [error] = await seen.wait("pubsub_error")
        assert "invalid or expired" in error.reason and "never-issued" not in error.reason
        assert pool.topics == []
    finally:
        await pool.close()


async def test_an_unreachable_eventsub_server_is_a_connection_failure(
    client: Any, emu: EventSubEmulator
) -> None:
    urls = {**emu.urls, "eventsub_url": "ws://127.0.0.1:9/ws"}
    pool = tp.PubSubPool(
        client, transport="eventsub", **urls, connect_timeout=0.5, backoff_base=0.05
    )
    try:
        with pytest.raises(tp.ConnectionFailure, match="could not open an EventSub session"):
            await pool.subscribe_topics([tp.bits("broadcaster")[B]])
        assert pool.topics == [] and emu.helix_requests == 0
    finally:
        await pool.close()


async def test_close_while_sessions_keep_failing_to_open_always_finishes(
    client: Any, emu: EventSubEmulator
) -> None:
    # The EventSub twin of the PubSub test: a close that lands on a failing connect
    # must still stop the node (asyncio.wait_for before 3.12 could lose it).
    users = range(5000, 5010)
    for user in users:
        emu.add_token(f"streamer-{user}", user, scopes=["bits:read"])
    urls = {**emu.urls, "eventsub_url": refused_url("/ws")}
    for attempt in range(10):
        pool = tp.PubSubPool(
            client,
            transport="eventsub",
            **urls,
            backoff_base=0.001,
            backoff_cap=0.002,
            rng=random.Random(attempt),
        )
        topics = [tp.bits(f"streamer-{user}")[user] for user in users]
        subscribing = asyncio.ensure_future(pool.subscribe_topics(topics))
        for _ in range(400):  # the tokens are validated first, then the nodes open
            if len(pool.nodes) == len(users):
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)
        assert len(pool.nodes) == len(users)  # one per user, each failing every ~2 ms
        await close_while_subscribing(pool, subscribing)


# ---------------------------------------------------------------- bad frames

BAD_FRAMES = [
    ("not json", "not valid JSON"),
    ('{"metadata": {}}', "no metadata.message_type"),
    (
        '{"metadata": {"message_type": "notification"}, "payload": {}}',
        "notification without message_id or subscription id",
    ),
    (
        '{"metadata": {"message_type": "session_reconnect"}, "payload": {"session": {}}}',
        "session_reconnect without a reconnect_url",
    ),
    # Deeply nested arrays: json gives up with RecursionError, which must not reach the
    # reader (it used to end it: "Task exception was never retrieved", a new session).
    ("[" * 200_000 + "]" * 200_000, "not valid JSON"),
    ('{"metadata": {"message_type": "bogus"}, "payload": {}}', "unknown message_type 'bogus'"),
    (
        '{"metadata": {"message_type": "session_welcome"}, "payload": {"session": '
        '{"id": "x", "keepalive_timeout_seconds": 10}}}',
        "a second session_welcome on one socket",
    ),
]


async def test_bad_frames_are_reported_and_the_session_goes_on(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    [node] = pool.nodes
    first = node.session_id
    [session] = emu.sessions
    for text, _ in BAD_FRAMES:
        await session.ws.send_str(text)
    await session.ws.send_bytes(b"\x00\x01")
    await cheers(emu, range(1, 3))
    errors = await seen.wait("pubsub_error", len(BAD_FRAMES) + 1)
    assert [e.reason for e in errors] == [
        *(f"invalid frame: {why}" for _, why in BAD_FRAMES),
        "unexpected binary frame",
    ]
    assert [e.raw for e in errors] == [*(text for text, _ in BAD_FRAMES), None]
    assert {e.type for e in errors} == {"INVALID_FRAME"}
    got = await seen.wait("pubsub_bits", 2)
    assert [c.bits_used for c in got] == [1, 2]
    assert node.session_id == first and node.connected


async def test_a_flood_of_bad_frames_yields_to_the_loop(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    # As on PubSub: the reader yields every 64 frames whatever they are, so the
    # handlers' tasks never pile up by the thousand.
    flood = 3000
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    [session] = emu.sessions
    with LoopWatch(tick=0) as watch:
        for i in range(flood):
            await session.ws.send_str(f'{{"noise": {i}}}')
        await cheers(emu, range(1, 2))
        await seen.wait("pubsub_bits", timeout=10)
        await seen.wait("pubsub_error", flood, timeout=10)
    assert watch.most_tasks < 600


async def test_a_frame_over_max_message_size_is_an_error_and_a_new_session(
    client: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    pool = bridge_pool(client, emu, max_message_size=64 * 1024)
    try:
        await pool.subscribe_topics([tp.bits("broadcaster")[B]])
        [node] = pool.nodes
        first = node.session_id
        await emu.sessions[0].ws.send_str("x" * (100 * 1024))
        [error] = await seen.wait("pubsub_error")
        assert "too large" in error.reason and error.type == "INVALID_FRAME"
        await new_session(emu, first, 1)
        await cheers(emu, range(1, 2))
        await seen.wait("pubsub_bits")
    finally:
        await pool.close()


class BusyOldSocketEmulator(EventSubEmulator):
    """Sends a burst on the old socket right before the new socket's welcome."""

    def _welcome(self, session: Any, keepalive: int, moved_from: Any) -> None:
        if moved_from is not None:
            for sub in self.enabled(moved_from.session_id):
                for bits in range(1, 26):  # under the emulator's 30 unread
                    event = {"broadcaster_user_id": str(B), "bits": bits, "user_id": "1",
                             "user_login": "a", "user_name": "A", "is_anonymous": False,
                             "broadcaster_user_login": "b", "broadcaster_user_name": "B",
                             "message": ""}  # fmt: skip
                    payload = {"subscription": self._public(sub, wire=True), "event": event}
                    self._send_frame(moved_from, "notification", payload, sub)
        super()._welcome(session, keepalive, moved_from)


async def test_events_in_flight_on_the_old_socket_are_read_before_it_closes(
    client: Any, seen: Recorder
) -> None:
    async with on_server(client, BusyOldSocketEmulator) as emu:
        await emu.send_reconnect()
        got = await seen.wait("pubsub_bits", 25)
        assert sorted(c.bits_used for c in got) == list(range(1, 26))


async def test_a_stale_subscription_left_by_an_earlier_run_is_replaced(
    pool: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    # An earlier run of the bot crashed: its session is still open and holds the cheer.
    emu.add_token("broadcaster", B, scopes=["bits:read"], client_id=CLIENT_ID)
    async with aiohttp.ClientSession() as http, Client(emu, http) as earlier:
        sock = await earlier.connect()
        status, _, body = await earlier.create(
            "broadcaster", sock.session_id, "channel.cheer", {"broadcaster_user_id": str(B)}
        )
        assert status == 202
        stale = body["data"][0]["id"]
        await pool.subscribe_topics([tp.bits("broadcaster")[B]])  # 409, delete, create
        assert stale not in emu.subscriptions
        [fresh] = emu.enabled()
        assert fresh["transport"]["session_id"] == pool.nodes[0].session_id
        await cheers(emu, range(8, 9))
        assert (await seen.wait("pubsub_bits"))[0].bits_used == 8
