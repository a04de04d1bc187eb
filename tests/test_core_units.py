"""The pool core's pure pieces, without sockets: planner, de-duplicator, settings, logs."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twitchio_pubsub.dedup import Deduplicator
from twitchio_pubsub.logs import RateLimitedLog
from twitchio_pubsub.models.base import is_plain_int, to_datetime, to_int
from twitchio_pubsub.planner import plan
from twitchio_pubsub.settings import Settings
from twitchio_pubsub.transport import within
from twitchio_pubsub.websocket import _describe

# --------------------------------------------------------------------------- planner


def test_plan_prefers_one_existing_node_with_room() -> None:
    assert plan([0, 10, 30], 5, 50, 10) == [(1, 10)]
    assert plan([50], 0, 50, 0) == []


def test_plan_fills_new_nodes_first_then_existing_room() -> None:
    assert plan([3, 2], 2, 5, 12) == [(None, 5), (None, 5), (0, 2)]
    assert plan([1, 4], 0, 5, 5) == [(0, 1), (1, 4)]


def test_plan_refuses_what_does_not_fit() -> None:
    assert plan([2], 1, 5, 8) is None
    assert plan([-3], -1, 5, 1) is None


@given(
    st.lists(st.integers(0, 50), max_size=10),
    st.integers(0, 10),
    st.integers(1, 50),
    st.integers(0, 600),
)
def test_plan_never_overfills(free: list[int], new: int, cap: int, count: int) -> None:
    free = [min(room, cap) for room in free]
    placements = plan(free, new, cap, count)
    if placements is None:
        assert sum(free) + new * cap < count
        return
    assert sum(n for _, n in placements) == count
    assert sum(1 for index, _ in placements if index is None) <= new
    for index, n in placements:
        assert 0 < n <= (cap if index is None else free[index])
    existing = [index for index, _ in placements if index is not None]
    assert len(existing) == len(set(existing))


# --------------------------------------------------------------------------- de-duplicator


def test_dedup_only_drops_copies_from_the_other_socket() -> None:
    dedup = Deduplicator(window=5.0)
    assert not dedup.active
    dedup.begin()
    assert not dedup.duplicate(1, "t", "slow", 0.0)
    assert not dedup.duplicate(1, "t", "slowoff", 0.0)
    assert not dedup.duplicate(1, "t", "slow", 0.0)  # repeated on one socket: real
    assert dedup.duplicate(2, "t", "slow", 0.1)
    assert dedup.duplicate(2, "t", "slowoff", 0.1)
    assert dedup.duplicate(2, "t", "slow", 0.1)
    assert not dedup.duplicate(2, "t", "slow", 0.2)  # both copies matched: a new event
    assert not dedup.duplicate(2, "other", "slow", 0.2)


def test_dedup_window_after_the_handover() -> None:
    dedup = Deduplicator(window=1.0)
    dedup.begin()
    assert not dedup.duplicate(1, "t", "a", 0.0)
    assert not dedup.duplicate(2, "t", "b", 0.0)
    dedup.end(10.0)
    assert dedup.active and len(dedup) == 2
    assert not dedup.duplicate(2, "t", "c", 10.2)  # after the hand-over nothing new is kept
    assert len(dedup) == 2
    assert not dedup.duplicate(2, "t", "b", 10.3)  # its own earlier copy: not a duplicate
    assert dedup.duplicate(2, "t", "a", 10.5)  # the old socket's copy, late on the new one
    assert not dedup.duplicate(1, "t", "b", 11.5)  # window over: everything forgotten
    assert not dedup.active and len(dedup) == 0


def test_dedup_is_bounded_and_resettable() -> None:
    dedup = Deduplicator(window=1.0, max_entries=100)
    dedup.begin()
    for i in range(1000):
        dedup.duplicate(1, "t", "x" * 1000 + str(i), 0.0)
    assert len(dedup) == 100
    assert dedup.duplicate(2, "t", "x" * 1000 + "999", 0.0)
    assert not dedup.duplicate(2, "t", "x" * 1000 + "0", 0.0)  # evicted first
    dedup.reset()
    assert not dedup.active and len(dedup) == 0


# --------------------------------------------------------------------------- settings


def test_settings_defaults_and_freezing() -> None:
    settings = Settings.build()
    assert settings.max_message_size == 1024 * 1024 and settings.connect_timeout == 30.0
    with pytest.raises(AttributeError):
        settings.connect_timeout = 1.0  # type: ignore[misc]
    assert Settings.build(handover_delay=0).handover_delay == 0.0


@pytest.mark.parametrize(
    ("values", "error", "text"),
    [
        ({"endpoint": ""}, TypeError, "endpoint"),
        ({"endpoint": 5}, TypeError, "endpoint"),
        ({"rng": 5}, TypeError, "rng"),
        ({"max_pool_size": 0}, ValueError, "max_pool_size"),
        ({"max_pool_size": True}, TypeError, "max_pool_size"),
        ({"pong_timeout": "1"}, TypeError, "pong_timeout"),
        ({"pong_timeout": float("nan")}, ValueError, "finite"),
        ({"connect_timeout": float("inf")}, ValueError, "connect_timeout"),
        ({"listen_timeout": 0}, ValueError, "above 0"),
        ({"handover_delay": -1}, ValueError, "at least 0"),
        ({"listen_retries": -1}, ValueError, "listen_retries"),
        ({"ping_interval": 300}, ValueError, "300"),
        ({"backoff_base": 5, "backoff_cap": 1}, ValueError, "backoff_cap"),
        ({"max_message_size": 0}, ValueError, "max_message_size"),
    ],
)
def test_settings_reject_bad_values(values: dict[str, Any], error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        Settings.build(**values)


# --------------------------------------------------------------------------- logs


def test_rate_limited_log_counts_what_it_leaves_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = RateLimitedLog(logging.getLogger("twitchio_pubsub.test"), 10.0, lambda: now[0])
    caplog.set_level(logging.INFO, logger="twitchio_pubsub.test")
    assert limiter.log(logging.WARNING, "bad", "bad frame %d", 1)
    for i in range(5):
        assert not limiter.log(logging.WARNING, "bad", "bad frame %d", i)
    assert limiter.log(logging.WARNING, "other", "another kind")
    now[0] = 11.0
    assert limiter.log(logging.WARNING, "bad", "bad frame %d", 7)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad frame 1", "another kind", "bad frame 7 (5 similar line(s) left out)"]


def test_rate_limited_log_stays_bounded() -> None:
    limiter = RateLimitedLog(logging.getLogger("twitchio_pubsub.test"), 10.0, lambda: 0.0)
    for i in range(1000):
        limiter.log(logging.DEBUG, f"kind-{i}", "x")
    assert len(limiter._last) <= 257


# --------------------------------------------------------------------------- connect errors


def _connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey(  # type: ignore[attr-defined]
        "example.invalid", 443, True, True, None, None, None
    )
    return aiohttp.ClientConnectorError(key, os_error)


def test_connect_errors_are_described_without_secrets() -> None:
    assert _describe(asyncio.TimeoutError()) == "timed out"
    assert _describe(_connector_error(ConnectionRefusedError(111, "refused"))) == (
        "connection refused"
    )
    dns = _describe(_connector_error(OSError(-2, "Name or service not known")))
    assert dns.startswith("DNS lookup failed")
    assert _describe(_connector_error(OSError(113, "No route to host"))) == (
        "OSError: [Errno 113] No route to host"
    )
    key = aiohttp.client_reqrep.ConnectionKey(  # type: ignore[attr-defined]
        "example.invalid", 443, True, True, None, None, None
    )
    tls = aiohttp.ClientConnectorCertificateError(key, ssl.SSLCertVerificationError("bad"))
    assert _describe(tls).startswith("TLS error")
    assert _describe(ValueError("bad url")) == "ValueError: bad url"
    assert _describe(aiohttp.ClientError()) == "ClientError"


# --------------------------------------------------------------------------- timeouts


async def test_within_returns_the_result_in_time() -> None:
    assert await within(asyncio.sleep(0, "done"), 1.0) == "done"


async def test_within_times_out_and_cancels_the_work() -> None:
    work = asyncio.get_running_loop().create_future()
    with pytest.raises(asyncio.TimeoutError):
        await within(work, 0.01)
    assert work.cancelled()


async def test_within_keeps_a_cancel_that_lands_as_the_work_fails() -> None:
    # asyncio.wait_for before Python 3.12 raises the work's error here instead
    # (CPython issue 86296): the caller's cancellation is lost.
    work = asyncio.get_running_loop().create_future()
    caller = asyncio.ensure_future(within(work, 10.0))
    await asyncio.sleep(0)
    work.set_exception(ConnectionRefusedError("refused"))
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()


async def test_within_keeps_a_cancel_that_lands_as_the_work_succeeds() -> None:
    # ... and returns the work's result, which nobody will ever use; within() hands
    # it to ``discard`` (a socket gets closed) and stays cancelled.
    work = asyncio.get_running_loop().create_future()
    discarded: list[str] = []

    async def discard(result: str) -> None:
        discarded.append(result)

    caller = asyncio.ensure_future(within(work, 10.0, discard=discard))
    await asyncio.sleep(0)
    work.set_result("an open socket")
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert discarded == ["an open socket"]


async def test_within_discards_a_result_that_arrives_while_timing_out() -> None:
    started = asyncio.Event()
    discarded: list[str] = []

    async def stubborn() -> str:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # finishes its step anyway, with a result
        return "late socket"

    async def discard(result: str) -> None:
        discarded.append(result)

    with pytest.raises(asyncio.TimeoutError):
        await within(stubborn(), 0.01, discard=discard)
    assert started.is_set() and discarded == ["late socket"]


# --------------------------------------------------------------------------- model numbers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123", 123),
        (" 42 ", 42),
        (7, 7),
        (True, None),
        ("²", None),
        ("٣", None),
        ("9" * 5000, None),
        ("1e5", None),
        (1.5, None),
        (None, None),
    ],
)
def test_to_int_is_strict_and_never_raises(value: Any, expected: Any) -> None:
    assert to_int(value) == expected


def test_is_plain_int() -> None:
    assert is_plain_int("12345") and not is_plain_int("²") and not is_plain_int("9" * 31)
    assert not is_plain_int(12345) and not is_plain_int("")


@pytest.mark.parametrize("digits", [1, 2, 3, 4, 5, 6, 7, 9])
def test_to_datetime_any_fraction_length(digits: int) -> None:
    fraction = "123456789"[:digits]
    parsed = to_datetime(f"2021-03-04T05:06:07.{fraction}Z")
    assert parsed is not None
    assert parsed.microsecond == int(fraction[:6].ljust(6, "0"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0


def test_to_datetime_offsets_and_garbage() -> None:
    parsed = to_datetime("2021-03-04T05:06:07.5+02:00")
    assert parsed is not None and parsed.microsecond == 500000
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 7200
    assert to_datetime("not a time") is None and to_datetime(True) is None
    assert to_datetime(random.Random(1).random()) is not None


def test_error_event_reads_like_the_reference_dict() -> None:
    from twitchio_pubsub import PubSubErrorEvent

    event = PubSubErrorEvent("refused", error="ERR_BADAUTH", nonce="n1", type="RESPONSE")
    assert (event["type"], event["error"], event["nonce"]) == ("RESPONSE", "ERR_BADAUTH", "n1")
    assert "error" in event and "data" not in event
    assert event.get("nonce") == "n1" and event.get("data", 5) == 5
    with pytest.raises(KeyError):
        event["data"]
    assert "RESPONSE" in repr(event) and "ERR_BADAUTH" in repr(event)


async def test_parser_cache_keeps_only_short_topics(client: Any) -> None:
    from twitchio_pubsub.models import base

    long_topic = "channel-bits-events-v2." + "9" * 100_000
    event, model = base.parse_message(client, long_topic, '{"data": {"bits_used": 1}}')
    assert event == "pubsub_bits" and model.bits_used == 1  # type: ignore[attr-defined]
    assert long_topic not in base._BY_TOPIC
    base.parse_message(client, "channel-bits-events-v2.5", '{"data": {}}')
    assert "channel-bits-events-v2.5" in base._BY_TOPIC
    assert all(len(topic) <= 200 for topic in base._BY_TOPIC)


def test_pubsub_transport_plan_follows_the_planner() -> None:
    from twitchio_pubsub.settings import Settings
    from twitchio_pubsub.transports import PubSubTransport

    transport = PubSubTransport(Settings())
    # plan([3, 2], 2, 5, 12) == [(None, 5), (None, 5), (0, 2)]: new nodes -1 and -2, then 0
    assert transport.plan([3, 2], 2, 5, [1] * 12) == [-1] * 5 + [-2] * 5 + [0, 0]
    assert transport.plan([0, 10], 0, 50, [1] * 3) == [1, 1, 1]
    assert transport.plan([2], 1, 5, [1] * 8) is None


def test_transports_are_chosen_by_name_only() -> None:
    import aiohttp

    from twitchio_pubsub.settings import Settings
    from twitchio_pubsub.transports import TRANSPORTS, build_transport

    assert sorted(TRANSPORTS) == ["conduit", "eventsub", "pubsub"]
    with pytest.raises(ValueError, match="unknown transport 'conduits'"):
        build_transport("conduits", aiohttp.ClientSession, Settings(), {})
    with pytest.raises(ValueError, match="endpoint is the PubSub server's URL"):
        build_transport("conduit", aiohttp.ClientSession, Settings(endpoint="ws://x"), {})
    with pytest.raises(ValueError, match="shards applies only to transport='conduit'"):
        build_transport("pubsub", aiohttp.ClientSession, Settings(), {"shards": [0]})
    with pytest.raises(ValueError, match="endpoint is the PubSub server's URL"):
        build_transport("eventsub", aiohttp.ClientSession, Settings(endpoint="ws://x"), {})
