"""The EventSub bridge against a server that misbehaves on purpose: odd welcomes, foreign
reconnect URLs, broken and slow Helix answers, and close() at every awkward moment.

Every test here was written against a fault seen in an independent fault-injection run
and failed on the code before its fix.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import aiohttp
import pytest

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import EventSubEmulator

from . import test_bridge_faults as faults
from .conftest import LoopWatch, Recorder
from .eventsub_helpers import Client
from .test_bridge import B, bridge_pool
from .test_bridge_faults import HookPool, cheers

# The fault tests' fixtures: an emulator with three users' tokens, a HookPool, a Recorder.
emu, pool, seen = faults.emu, faults.pool, faults.seen

pytestmark = pytest.mark.usefixtures("emu")

BITS = f"channel-bits-events-v2.{B}"
#: The client id of the fixture's tokens (the emulator's default).
EMU_CLIENT = "emulator-client-id"


def tasks_left() -> list[asyncio.Task[Any]]:
    """Tasks of the library still alive (the test's own and the emulator's excluded)."""
    current = asyncio.current_task()
    left = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        where = code.co_filename if code is not None else ""
        if task is current or task.done() or "/emulator/" in where or "aiohttp/web" in where:
            continue
        left.append(task)
    return left


def sessions_open() -> list[aiohttp.ClientSession]:
    return [
        obj for obj in gc.get_objects() if isinstance(obj, aiohttp.ClientSession) and not obj.closed
    ]


# ---------------------------------------------------------------- welcomes


@pytest.mark.parametrize("value", [-5, 1, 0.001])
async def test_a_tiny_keepalive_is_clamped_and_the_session_is_kept(
    pool: Any, emu: EventSubEmulator, seen: Recorder, value: float
) -> None:
    await emu.next_welcome(keepalive_timeout_seconds=value)
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    [node] = pool.nodes
    first = node.session_id
    await asyncio.sleep(1.0)  # -5 used to count as "silent too long" at once: churn
    assert node.session_id == first and node.reconnects == 0
    await cheers(emu, range(1, 3))
    assert [c.bits_used for c in await seen.wait("pubsub_bits", 2)] == [1, 2]


async def test_a_nan_keepalive_keeps_the_watchdog_and_the_loop_timers(
    client: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    # NaN used to switch the watchdog off (a silent session was never replaced) and
    # reached call_later, delaying every other timer of the loop.
    pool = bridge_pool(client, emu)
    try:
        await emu.next_welcome(keepalive_timeout_seconds=float("nan"))
        with LoopWatch(tick=0.05) as watch:
            await pool.subscribe_topics([tp.bits("broadcaster")[B]])
            [node] = pool.nodes
            first = node.session_id
            await emu.stop_keepalives()
            # asked for 10 s (the default) + keepalive_margin 0.5 s
            await emu.wait_until(
                lambda: any(s.session_id != first for s in emu.sessions), timeout=13
            )
        assert watch.longest < 1.0
        await emu.wait_for_subscriptions(1, timeout=5)
    finally:
        await pool.close()


async def test_a_welcome_without_a_session_id_says_so(
    client: Any, emu: EventSubEmulator, seen: Recorder
) -> None:
    pool = bridge_pool(client, emu, connect_timeout=1.5)
    try:
        await emu.next_welcome(100, id=None)
        with pytest.raises(tp.ConnectionFailure) as failed:
            await pool.subscribe_topics([tp.bits("broadcaster")[B]])
        assert "invalid session_welcome" in str(failed.value)
        assert "without a session id" in str(failed.value)
        assert "no session_welcome" not in str(failed.value)
        errors = seen.values("pubsub_error")
        assert errors and errors[0].type == "INVALID_FRAME"
        assert "without a session id" in errors[0].reason
    finally:
        await pool.close()


# ---------------------------------------------------------------- reconnect_url


async def test_a_reconnect_url_on_another_host_is_not_followed(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    async with EventSubEmulator() as elsewhere:
        await pool.subscribe_topics([tp.bits("broadcaster")[B]])
        [node] = pool.nodes
        first = node.session_id
        await emu.send_reconnect(url=elsewhere.url)
        error = (await seen.wait("pubsub_error"))[0]
        assert "session_reconnect" in error.reason and "refused" in error.reason
        assert elsewhere.handshakes == 0
        # The current session carries on until the server ends it ...
        await cheers(emu, range(1, 3))
        assert [c.bits_used for c in await seen.wait("pubsub_bits", 2)] == [1, 2]
        assert node.session_id == first
        # ... (4004 after reconnect_grace, 2 s here), then a new session on this server.
        await emu.wait_until(
            lambda: any(s.session_id != first and emu.enabled(s.session_id) for s in emu.sessions),
            timeout=8,
        )
        await cheers(emu, range(3, 5))
        assert [c.bits_used for c in await seen.wait("pubsub_bits", 4)] == [1, 2, 3, 4]
        assert elsewhere.handshakes == 0


# ---------------------------------------------------------------- broken Helix answers


async def test_a_garbage_validate_answer_is_a_server_error_not_an_auth_failure(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    await emu.garbage_next_helix(3, call="validate")  # the call and listen_retries=2
    with pytest.raises(tp.ConnectionFailure) as failed:
        await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    assert emu.urls["id_url"] in str(failed.value)
    assert "malformed" in str(failed.value)
    assert pool.auth_failed == []  # the token is fine: no one should refresh it
    assert "broadcaster" not in str(failed.value)
    # One bad answer is retried (with backoff) and the subscribe goes through.
    await emu.garbage_next_helix(1, call="validate")
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    assert pool.auth_failed == []


async def test_an_app_token_is_still_refused_as_a_token(
    pool: HookPool, emu: EventSubEmulator
) -> None:
    emu.add_token("app-token", None, client_id=EMU_CLIENT)
    await pool.subscribe_topics([tp.bits("app-token")[B]])
    assert pool.auth_failed == [[BITS]]


async def test_a_garbage_create_answer_adopts_what_the_server_created(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    await emu.garbage_next_helix(1, call="create")
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    [node] = pool.nodes
    [sub] = emu.enabled()
    assert sub["transport"]["session_id"] == node.session_id
    assert len(emu.subscriptions) == 1  # adopted, not created twice
    await cheers(emu, range(1, 2))
    assert [c.bits_used for c in await seen.wait("pubsub_bits")] == [1]


async def test_garbage_create_answers_for_good_leave_nothing_on_the_server(
    pool: HookPool, emu: EventSubEmulator
) -> None:
    # The create answer is garbage and so is every look-up (with its retries) after it:
    # the subscribe fails, and what the server did create is deleted once it can be
    # found again (not merely left disabled when the session closes).
    await emu.garbage_next_helix(1, call="create")
    await emu.garbage_next_helix(3, call="list")
    with pytest.raises(tp.ListenError):
        await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    await emu.wait_until(lambda: not emu.subscriptions, timeout=5)


async def test_a_malformed_lookup_after_a_409_does_not_kill_the_node(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    # A subscription left by an earlier run makes the create answer 409; the look-up
    # that follows gets garbage. This used to end the node's supervisor silently.
    async with aiohttp.ClientSession() as http, Client(emu, http) as raw:
        sock = await raw.connect()
        condition = {"broadcaster_user_id": str(B)}
        status, _, _ = await raw.create(
            "broadcaster", sock.session_id, "channel.cheer", condition, client_id=EMU_CLIENT
        )
        assert status == 202
        await emu.garbage_next_helix(10, call="list")
        with pytest.raises(tp.ListenError):
            await pool.subscribe_topics([tp.bits("broadcaster")[B]])
        errors = [e for e in seen.values("pubsub_error") if e.type == "INTERNAL"]
        assert errors == []  # handled as a server failure, not a crash
    # The pool works on: the stale subscription went with its socket, a subscribe succeeds.
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    await cheers(emu, range(1, 2))
    assert [c.bits_used for c in await seen.wait("pubsub_bits")] == [1]


async def test_a_garbage_delete_answer_counts_as_deleted(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder
) -> None:
    # A delete's answer carries nothing the client reads: a 2xx with garbage is a
    # delete that happened (the emulator carried it out), and nothing is retried.
    topics = [tp.bits("broadcaster")[B], tp.channel_points("broadcaster")[B]]
    await pool.subscribe_topics(topics)
    await emu.garbage_next_helix(1, call="delete")
    await pool.unsubscribe_topics(topics[:1])
    assert [s["type"] for s in emu.enabled()].count("channel.cheer") == 0
    assert [e for e in seen.values("pubsub_error") if e.type == "INTERNAL"] == []
    await pool.unsubscribe_topics(topics[1:])
    await emu.wait_until(lambda: not emu.subscriptions)


# ---------------------------------------------------------------- close() at awkward moments


async def closes_cleanly(
    pool: Any, *calls: asyncio.Future[Any], within: float = 3.0, delete: bool = False
) -> None:
    """Close ``pool`` while ``calls`` wait: quickly, every call ending in PoolClosed, and
    nothing (task, socket, ClientSession) left behind."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(pool.close(delete=delete), within)
    assert loop.time() - started < within
    for call in calls:
        with pytest.raises(tp.PoolClosed):
            await asyncio.wait_for(call, 1.0)
    await asyncio.sleep(0)
    assert tasks_left() == [], tasks_left()
    assert sessions_open() == []
    assert pool.nodes == []


async def test_close_during_token_validation(pool: HookPool, emu: EventSubEmulator) -> None:
    await emu.slow_next_helix(3600, call="validate")  # a token server that never answers
    subscribing = asyncio.ensure_future(pool.subscribe_topics([tp.bits("broadcaster")[B]]))
    await asyncio.sleep(0.3)
    await closes_cleanly(pool, subscribing)


async def test_close_during_a_rate_limit_wait(pool: HookPool, emu: EventSubEmulator) -> None:
    await emu.fail_next_helix(429, 1, reset_after=30)
    subscribing = asyncio.ensure_future(pool.subscribe_topics([tp.bits("broadcaster")[B]]))
    await asyncio.sleep(0.5)
    await closes_cleanly(pool, subscribing)


async def test_close_during_a_create_that_never_answers(
    pool: HookPool, emu: EventSubEmulator
) -> None:
    await emu.slow_next_helix(3600, call="create")
    subscribing = asyncio.ensure_future(pool.subscribe_topics([tp.bits("broadcaster")[B]]))
    await asyncio.sleep(0.5)
    await closes_cleanly(pool, subscribing)


async def test_close_during_revalidation(client: Any, emu: EventSubEmulator) -> None:
    pool = bridge_pool(client, emu, validate_interval=0.2)
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    await emu.slow_next_helix(3600, call="validate")
    await asyncio.sleep(0.6)  # the re-validation now hangs on the token server
    await closes_cleanly(pool)


async def test_close_with_a_delete_that_never_answers(
    pool: HookPool, emu: EventSubEmulator
) -> None:
    topics = [tp.bits("broadcaster")[B], tp.channel_points("broadcaster")[B]]
    await pool.subscribe_topics(topics)
    await emu.slow_next_helix(3600, 10, call="delete")
    unsubscribing = asyncio.ensure_future(pool.unsubscribe_topics(topics[:1]))
    await asyncio.sleep(0.3)
    await closes_cleanly(pool, unsubscribing)


async def test_close_from_auth_fail_hook_during_revalidation(
    client: Any, emu: EventSubEmulator
) -> None:
    closed = asyncio.Event()

    class ClosingPool(tp.PubSubPool):
        async def auth_fail_hook(self, topics: list[tp.Topic]) -> None:
            await self.close()
            closed.set()

    pool = bridge_pool(client, emu, ClosingPool, validate_interval=0.2)
    await pool.subscribe_topics([tp.bits("broadcaster")[B]])
    await emu.expire_token("broadcaster")
    await asyncio.wait_for(closed.wait(), 5)
    await asyncio.sleep(0.5)  # more than two re-validation intervals
    assert tasks_left() == [], tasks_left()
    assert sessions_open() == []


# ---------------------------------------------------------------- races


@pytest.mark.parametrize("alone", [True, False], ids=["only-topic", "with-another"])
async def test_subscribe_again_while_its_unsubscribe_waits_on_a_slow_delete(
    pool: HookPool, emu: EventSubEmulator, seen: Recorder, alone: bool
) -> None:
    bits = tp.bits("broadcaster")[B]
    await pool.subscribe_topics([bits] if alone else [bits, tp.channel_points("broadcaster")[B]])
    await emu.slow_next_helix(1.5, call="delete")
    unsubscribing = asyncio.ensure_future(pool.unsubscribe_topics([bits]))
    await asyncio.sleep(0.2)
    # The later call wins: the topic ends subscribed, and the call returns once it is.
    await asyncio.wait_for(pool.subscribe_topics([bits]), 6)
    await asyncio.wait_for(unsubscribing, 6)
    assert bits in pool.topics
    await emu.wait_until(
        lambda: len([s for s in emu.enabled() if s["type"] == "channel.cheer"]) == 1
    )
    await cheers(emu, range(1, 2))
    assert [c.bits_used for c in await seen.wait("pubsub_bits")] == [1]


# ---------------------------------------------------------------- tokens kept


async def test_tokens_nothing_uses_are_forgotten(pool: HookPool, emu: EventSubEmulator) -> None:
    # Superseded tokens used to be kept (keyed by the secret) for the pool's life. The
    # cache is internal; this test looks at it because memory is what is at stake.
    for n in range(1, 4):
        emu.add_token(f"b{n}", B, scopes=["bits:read", "channel:read:redemptions"])
    tokens = pool._transport.tokens
    for n in range(1, 4):  # a refresh loop: b1, then b2, then b3
        await pool.subscribe_topics([tp.bits(f"b{n}")[B], tp.channel_points(f"b{n}")[B]])
    await asyncio.sleep(0.05)
    assert (tokens.known("b1"), tokens.known("b2")) == (None, None)
    assert tokens.known("b3") is not None and len(tokens) == 1
    await pool.subscribe_topics([tp.bits("chatter")[B]])  # refused: wrong user
    await asyncio.sleep(0.05)
    assert tokens.known("chatter") is None
    await pool.unsubscribe_topics(pool.topics)
    await emu.wait_until(lambda: not emu.subscriptions)  # deleted with b3
    await asyncio.sleep(0.05)
    assert len(tokens) == 0
