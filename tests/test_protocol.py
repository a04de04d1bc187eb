"""Unit tests for the sans-I/O protocol layer (synchronous, no sockets)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twitchio_pubsub import protocol as p

from .conftest import SAMPLES_DIR


def test_error_constants() -> None:
    assert p.ERR_BADMESSAGE == "ERR_BADMESSAGE"
    assert p.ERR_BADAUTH == "ERR_BADAUTH"
    assert p.ERR_SERVER == "ERR_SERVER"
    assert p.ERR_BADTOPIC == "ERR_BADTOPIC"
    assert p.ERR_TOO_MANY_TOPICS == "ERR_TOO_MANY_TOPICS"
    assert len(p.ERRORS) == 5


def test_nonce_is_fresh_hex() -> None:
    nonces = {p.new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    for nonce in nonces:
        assert len(nonce) >= 16
        int(nonce, 16)


def test_build_ping() -> None:
    assert json.loads(p.build_ping()) == {"type": "PING"}


def test_build_listen_has_fresh_nonce_and_topics() -> None:
    n1, frame = p.build_listen(["whispers.1", "whispers.2"], "secret")
    n2, _ = p.build_listen(["whispers.1"], "secret")
    assert n1 != n2
    obj = json.loads(frame)
    assert obj == {
        "type": "LISTEN",
        "nonce": n1,
        "data": {"topics": ["whispers.1", "whispers.2"], "auth_token": "secret"},
    }


def test_build_unlisten_omits_token_when_none() -> None:
    nonce, frame = p.build_unlisten(["whispers.1"], nonce="abc")
    assert nonce == "abc"
    assert json.loads(frame) == {
        "type": "UNLISTEN",
        "nonce": "abc",
        "data": {"topics": ["whispers.1"]},
    }


def test_listen_round_trips_through_client_parser_and_hides_token() -> None:
    nonce, frame = p.build_listen(["whispers.1"], "supersecret")
    parsed = p.parse_client_frame(frame)
    assert parsed == p.Listen(nonce, ("whispers.1",), "supersecret")
    assert "supersecret" not in repr(parsed)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"PONG"}', p.Pong()),
        ('{"type":"RECONNECT"}', p.Reconnect()),
        ('{"type":"RESPONSE","error":"","nonce":"xd123"}', p.Response("xd123", "")),
        ('{"type":"RESPONSE","nonce":"n","error":"ERR_BADAUTH"}', p.Response("n", "ERR_BADAUTH")),
        (
            '{"type":"RESPONSE","nonce":"","error":"ERR_BADMESSAGE"}',
            p.Response(None, "ERR_BADMESSAGE"),
        ),
        ('{"type":"RESPONSE","nonce":"n","error":null}', p.Response("n", "")),
        (
            '{"type":"AUTH_REVOKED","data":{"topics":["channel-bits-events-v1.1"]}}',
            p.AuthRevoked(("channel-bits-events-v1.1",)),
        ),
        (
            '{"type":"MESSAGE","data":{"topic":"whispers.1","message":"{\\"a\\":1}"}}',
            p.Message("whispers.1", '{"a":1}'),
        ),
    ],
)
def test_parse_server_frames(text: str, expected: p.ServerFrame) -> None:
    assert p.parse_server_frame(text) == expected


def test_response_ok_property() -> None:
    assert p.Response("n", "").ok
    assert not p.Response("n", "ERR_SERVER").ok


def test_message_given_as_object_is_reencoded() -> None:
    frame = p.parse_server_frame('{"type":"MESSAGE","data":{"topic":"t.1","message":{"a":1}}}')
    assert isinstance(frame, p.Message)
    assert json.loads(frame.message) == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        "42",
        "null",
        "{}",
        '{"type":7}',
        '{"type":"WHATEVER"}',
        '{"type":"MESSAGE"}',
        '{"type":"MESSAGE","data":[]}',
        '{"type":"MESSAGE","data":{"topic":"","message":"x"}}',
        '{"type":"MESSAGE","data":{"topic":"t","message":5}}',
        '{"type":"RESPONSE","error":5}',
        '{"type":"AUTH_REVOKED"}',
        '{"type":"AUTH_REVOKED","data":{"topics":[1]}}',
        "[" * 100000,
    ],
)
def test_bad_server_frames_are_invalid_not_errors(text: str) -> None:
    result = p.parse_server_frame(text)
    assert isinstance(result, p.InvalidFrame)
    assert result.raw == text
    assert result.reason


def test_captured_frames_parse() -> None:
    frames = json.loads((SAMPLES_DIR / "_frames.json").read_text())["frames"]
    for entry in frames:
        text = json.dumps(entry["frame"])
        if entry["direction"] == "server->client":
            assert not isinstance(p.parse_server_frame(text), p.InvalidFrame), entry["name"]
        else:
            assert not isinstance(p.parse_client_frame(text), p.InvalidFrame), entry["name"]


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        '{"type":"LISTEN"}',
        '{"type":"LISTEN","data":{"topics":[]}}',
        '{"type":"LISTEN","data":{"topics":"whispers.1"}}',
        '{"type":"LISTEN","data":{"topics":["a"],"auth_token":5}}',
        '{"type":"LISTEN","nonce":5,"data":{"topics":["a"]}}',
        '{"type":"SUBSCRIBE"}',
        '{"nonce":"x"}',
    ],
)
def test_bad_client_frames(text: str) -> None:
    assert isinstance(p.parse_client_frame(text), p.InvalidFrame)


def test_parse_client_ping_and_unlisten() -> None:
    assert p.parse_client_frame('{"type":"PING"}') == p.Ping()
    assert p.parse_client_frame(
        '{"type":"UNLISTEN","nonce":"my nonce","data":{"topics":["channel-bits-events-v2.12345"]}}'
    ) == p.Unlisten("my nonce", ("channel-bits-events-v2.12345",), None)


def test_events_are_immutable() -> None:
    resp = p.Response("n", "")
    with pytest.raises(AttributeError):
        resp.error = "x"  # type: ignore[misc]


def test_server_builders_round_trip() -> None:
    assert p.parse_server_frame(p.build_pong()) == p.Pong()
    assert p.parse_server_frame(p.build_reconnect()) == p.Reconnect()
    assert p.parse_server_frame(p.build_response("n", "ERR_SERVER")) == p.Response(
        "n", "ERR_SERVER"
    )
    assert p.parse_server_frame(p.build_message("t.1", '{"x":"ü"}')) == p.Message(
        "t.1", '{"x":"ü"}'
    )
    assert p.parse_server_frame(p.build_auth_revoked(["a.1", "b.2"])) == p.AuthRevoked(
        ("a.1", "b.2")
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.text())
def test_parsers_never_raise_on_text(text: str) -> None:
    assert p.parse_server_frame(text) is not None
    assert p.parse_client_frame(text) is not None


@given(
    st.sampled_from(["MESSAGE", "RESPONSE", "AUTH_REVOKED", "PONG", "RECONNECT", "LISTEN", "PING"]),
    json_values,
    json_values,
)
def test_parsers_never_raise_on_typed_json(kind: str, data: object, extra: object) -> None:
    text = json.dumps({"type": kind, "data": data, "nonce": extra, "error": extra})
    assert p.parse_server_frame(text) is not None
    assert p.parse_client_frame(text) is not None


def test_message_is_an_immutable_value_distinct_from_other_events() -> None:
    msg = p.Message("t.1", "{}")
    assert msg == p.Message("t.1", "{}") and hash(msg) == hash(p.Message("t.1", "{}"))
    assert msg != p.Message("t.1", "[]")
    assert msg != p.Response("t.1", "{}")
    assert msg != ("t.1", "{}")
    assert (msg.topic, msg.message) == ("t.1", "{}")
    assert repr(msg) == "Message(topic='t.1', message='{}')"
    with pytest.raises(AttributeError):
        msg.topic = "x"  # type: ignore[misc]
