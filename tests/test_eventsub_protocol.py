"""Unit tests for the sans-I/O EventSub parser (synchronous, no sockets)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twitchio_pubsub.eventsub import protocol as esp
from twitchio_pubsub.eventsub.mapping import Part

from .eventsub_helpers import EVENTSUB_SAMPLES

ENVELOPES: dict[str, Any] = json.loads((EVENTSUB_SAMPLES / "_envelopes.json").read_text())


def frame(kind: str, payload: Any, **metadata: Any) -> str:
    return json.dumps({"metadata": {"message_type": kind, **metadata}, "payload": payload})


def welcome(**session: Any) -> str:
    base = {"id": "abc", "status": "connected", "keepalive_timeout_seconds": 10}
    base.update(session)
    return frame("session_welcome", {"session": base})


def test_the_sample_envelopes_parse() -> None:
    kinds = {}
    for name, sample in ENVELOPES.items():
        if not isinstance(sample, dict) or "metadata" not in sample:
            continue
        kinds[name] = type(esp.parse(json.dumps(sample)))
    assert esp.Invalid not in kinds.values(), kinds
    assert {esp.Welcome, esp.Keepalive, esp.Reconnect} <= set(kinds.values())


def test_every_event_sample_is_a_notification_with_its_part() -> None:
    checked = 0
    for path in sorted(EVENTSUB_SAMPLES.glob("*.json")):
        if path.name.startswith("_"):
            continue
        sample = json.loads(path.read_text())
        envelope = json.loads(json.dumps(ENVELOPES["notification"]))
        sub = envelope["payload"]["subscription"]
        sub.update(
            type=sample["subscription_type"],
            version=sample["version"],
            condition=sample["condition"],
        )
        envelope["payload"]["event"] = sample["event"]
        message = esp.parse(json.dumps(envelope))
        assert isinstance(message, esp.Notification), (path.name, message)
        assert message.subscription_id == sub["id"]
        assert message.frame["payload"]["event"] == sample["event"]
        assert message.part == Part(
            sample["subscription_type"],
            sample["version"],
            tuple(sorted((k, str(v)) for k, v in sample["condition"].items())),
        )
        checked += 1
    assert checked >= 30


def test_welcome() -> None:
    message = esp.parse(welcome(id="s1", keepalive_timeout_seconds=30))
    assert message == esp.Welcome("s1", 30.0, None)


@pytest.mark.parametrize(
    ("value", "expected", "why"),
    [
        (1, 10.0, "below 10"),
        (-5, 10.0, "below 10"),
        (1e9, 600.0, "above 600"),
        (float("inf"), 600.0, "above 600"),
        (float("-inf"), 10.0, "below 10"),
        (float("nan"), 25.0, "NaN"),
        (None, 25.0, "not a number"),
        ("30", 25.0, "not a number"),
        (True, 25.0, "not a number"),
    ],
)
def test_a_keepalive_out_of_range_is_clamped(value: Any, expected: float, why: str) -> None:
    # json.dumps writes NaN and Infinity as JavaScript literals, which json.loads reads.
    message = esp.parse(welcome(keepalive_timeout_seconds=value), keepalive=25)
    assert isinstance(message, esp.Welcome)
    assert message.keepalive == expected
    assert message.clamped is not None and why in message.clamped


@given(st.one_of(st.floats(), st.integers(), st.none(), st.text(), st.booleans()))
def test_no_keepalive_value_leaves_the_range(value: Any) -> None:
    seconds, _ = esp.clamp_keepalive(value, 10)
    assert math.isfinite(seconds) and 10 <= seconds <= 600


@pytest.mark.parametrize(
    ("session", "reason"),
    [
        ({"id": None}, "without a session id"),
        ({"id": ""}, "without a session id"),
        ({"id": 7}, "without a session id"),
    ],
)
def test_a_welcome_without_a_usable_id_is_invalid(session: dict[str, Any], reason: str) -> None:
    message = esp.parse(welcome(**session))
    assert isinstance(message, esp.Invalid) and reason in message.reason


def test_a_welcome_missing_its_session_is_invalid() -> None:
    message = esp.parse(frame("session_welcome", {}))
    assert isinstance(message, esp.Invalid)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("wss://eventsub.wss.twitch.tv/ws?id=1", True),
        ("ws://127.0.0.1:8080/ws", True),
        ("https://eventsub.wss.twitch.tv/ws", False),
        ("javascript:alert(1)", False),
        ("ws://", False),
        ("ws://host:99999/ws", False),
    ],
)
def test_reconnect_url_must_be_a_websocket_url(url: str, ok: bool) -> None:
    message = esp.parse(frame("session_reconnect", {"session": {"reconnect_url": url}}))
    assert isinstance(message, esp.Reconnect) is ok
    if ok:
        assert isinstance(message, esp.Reconnect) and message.url == url


def test_same_origin() -> None:
    base = "wss://eventsub.wss.twitch.tv/ws"
    assert esp.same_origin("wss://eventsub.wss.twitch.tv/ws?reconnect=1", base)
    assert esp.same_origin("WSS://EventSub.wss.twitch.tv/other", base)
    assert not esp.same_origin("ws://eventsub.wss.twitch.tv/ws", base)  # downgraded
    assert not esp.same_origin("wss://evil.example/ws", base)
    assert not esp.same_origin("wss://eventsub.wss.twitch.tv:444/ws", base)
    assert not esp.same_origin("wss://eventsub.wss.twitch.tv:99999/ws", base)


def test_notification_and_revocation() -> None:
    sub = {"id": "sub1", "type": "channel.cheer", "version": "1", "condition": {"b": 1}}
    text = frame("notification", {"subscription": sub, "event": {}}, message_id="m1")
    message = esp.parse(text)
    assert isinstance(message, esp.Notification)
    assert (message.message_id, message.subscription_id) == ("m1", "sub1")
    assert message.part == Part("channel.cheer", "1", (("b", "1"),))
    revoked = esp.parse(frame("revocation", {"subscription": {**sub, "status": "user_removed"}}))
    assert revoked == esp.Revocation("sub1", "user_removed")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "null",
        "[1, 2]",
        "[" * 100_000 + "]" * 100_000,
        '{"metadata": 3, "payload": {}}',
        '{"metadata": {"message_type": 5}, "payload": {}}',
        '{"metadata": {"message_type": "notification"}, "payload": []}',
        frame("notification", {"subscription": {"id": "s"}, "event": {}}),  # no message_id
        frame("notification", {"subscription": {"id": "s"}}, message_id="m"),  # no event
        frame("notification", {"subscription": {"id": 5}, "event": {}}, message_id="m"),
        frame("revocation", {"subscription": {}}),
        frame("something_new", {}),
    ],
)
def test_malformed_frames_are_invalid_not_errors(text: str) -> None:
    assert isinstance(esp.parse(text), esp.Invalid)


@given(st.text(max_size=200))
def test_parse_never_raises_on_text(text: str) -> None:
    esp.parse(text)


_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(
    st.sampled_from(
        ["notification", "revocation", "session_welcome", "session_reconnect", "session_keepalive"]
    ),
    st.dictionaries(st.sampled_from(["id", "message_id", "subscription", "session"]), _json),
    _json,
)
def test_parse_never_raises_on_envelopes(kind: str, metadata: Any, payload: Any) -> None:
    message = esp.parse(
        json.dumps({"metadata": {**metadata, "message_type": kind}, "payload": payload})
    )
    if isinstance(message, esp.Welcome):
        assert 10 <= message.keepalive <= 600 and message.session_id
