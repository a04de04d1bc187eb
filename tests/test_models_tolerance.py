"""Models survive what Twitch (or a broken proxy) may send: missing keys, nulls, wrong types."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import twitchio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import twitchio_pubsub as tp
from twitchio_pubsub.emulator import PubSubEmulator
from twitchio_pubsub.models import parse_message

from .conftest import FAST, Recorder, load_samples

SAMPLES = load_samples()
CLIENT: Any = None


def get_client() -> Any:
    global CLIENT
    if CLIENT is None:
        import asyncio

        loop = asyncio.new_event_loop()
        try:
            CLIENT = twitchio.Client(token="bot", loop=loop)
        finally:
            loop.close()
    return CLIENT


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out.extend(paths(value, (*prefix, i)))
    return out


REPLACEMENTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.just([]),
    st.just({}),
    st.lists(st.integers(), max_size=3),
    st.just("2021-13-45T99:99:99Z"),
    st.just("not a date"),
    st.just("-5"),
)


def mutate(message: Any, draw: Any) -> Any:
    message = copy.deepcopy(message)
    for _ in range(draw(st.integers(1, 4))):
        candidates = paths(message)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = message
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["delete", "null", "replace"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "null":
            parent[path[-1]] = None
        else:
            parent[path[-1]] = draw(REPLACEMENTS)
    return message


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_mutated_samples_never_make_models_raise(data: st.DataObject) -> None:
    _, sample = data.draw(st.sampled_from(SAMPLES))
    message = mutate(sample["message"], data.draw)
    text = json.dumps(message)
    event, model = parse_message(get_client(), sample["topic"], text)
    assert event.startswith("pubsub_")
    assert isinstance(model, tp.PubSubMessage)
    touch_every_attribute(model)


def touch_every_attribute(model: tp.PubSubMessage) -> None:
    """Read every public attribute, lazy ones included: none may raise."""
    repr(model)
    for name in dir(model):
        if not name.startswith("_"):
            value = getattr(model, name)
            if name == "reward":
                repr(value.title)


@pytest.mark.parametrize("text", ["[1, 2]", "null", "7", '"just a string"', "{not json"])
def test_non_object_payloads_raise_value_error_for_the_reader_to_report(text: str) -> None:
    with pytest.raises(ValueError):
        parse_message(get_client(), "channel-bits-events-v2.1", text)


def test_unknown_topic_and_subtype_fall_back_to_generic() -> None:
    event, model = parse_message(get_client(), "hype-train-events-v1.5", '{"type":"hype"}')
    assert (event, type(model)) == ("pubsub_message", tp.PubSubMessage)
    assert model.message_type == "hype"
    event, model = parse_message(get_client(), "chat_moderator_actions.1.2", '{"type":"brand_new"}')
    assert (event, type(model)) == ("pubsub_moderation", tp.PubSubMessage)


async def test_reader_survives_mutated_payloads(emulator: PubSubEmulator) -> None:
    """Through the real socket: garbage and mutations in, every good event still out."""
    import asyncio
    import random

    client = twitchio.Client(token="bot")
    rec = Recorder(client, "pubsub_bits", "pubsub_message", "pubsub_error")
    rng = random.Random(1234)
    async with tp.PubSubPool(client, endpoint=emulator.url, **FAST) as pool:
        await pool.subscribe_topics([tp.bits("t")[1]])
        topic = "channel-bits-events-v2.1"
        good = 0
        for i in range(60):
            if i % 3 == 0:
                await emulator.trigger("bits", 1, bits_used=i + 1)
                good += 1
                continue
            _, sample = rng.choice(SAMPLES)
            message = copy.deepcopy(sample["message"])
            keys = list(message)
            if keys:
                message[rng.choice(keys)] = rng.choice([None, 5, "x", [], {}])
            await emulator.publish(topic, message if i % 2 else "{broken json")
        await emulator.trigger("bits", 1, bits_used=999_999)  # frames arrive in order
        for _ in range(200):
            if any(b.bits_used == 999_999 for b in rec.values("pubsub_bits")):
                break
            await asyncio.sleep(0.01)
        seen = {b.bits_used for b in rec.values("pubsub_bits")}
        assert seen >= {i + 1 for i in range(0, 60, 3)} and good == 20
        assert pool.nodes[0].connected and emulator.handshakes == 1
        assert rec.events["pubsub_error"], "broken JSON must be surfaced as pubsub_error"
        assert all(e[0].topic == topic and e[0].raw for e in rec.events["pubsub_error"])


def test_bare_reward_still_becomes_a_custom_reward() -> None:
    payload = {
        "type": "reward-redeemed",
        "data": {
            "redemption": {
                "id": "r1",
                "user": {"id": "5", "login": "u"},
                "reward": {"id": "x", "title": "Hi"},
            }
        },
    }
    event, model = parse_message(get_client(), "channel-points-channel-v1.77", json.dumps(payload))
    assert event == "pubsub_channel_points"
    assert isinstance(model, tp.PubSubChannelPointsMessage)
    assert isinstance(model.reward, twitchio.CustomReward)
    assert (model.reward.id, model.reward.title, model.reward.cost) == ("x", "Hi", 0)
    assert model.channel_id == 77 and model.input is None and model.timestamp is None


@pytest.mark.parametrize(
    ("topic", "payload", "attribute", "expected"),
    [
        (
            "channel-bits-events-v2.1",
            {"data": {"user_id": None, "user_name": None, "is_anonymous": True}},
            "user",
            None,
        ),
        ("channel-bits-events-v2.1", {"data": {"bits_used": "250"}}, "bits_used", 250),
        (
            "channel-bits-events-v2.1",
            {"data": {"badge_entitlement": {"new_version": 100, "previous_version": 1}}},
            "badge_entitlement.old",
            1,
        ),
        ("channel-subscribe-events-v1.1", {"sub_message": None, "context": "sub"}, "emotes", None),
        (
            "chat_moderator_actions.1.2",
            {"type": "moderation_action", "data": {"args": None}},
            "args",
            None,
        ),
        (
            "whispers.1",
            {"type": "whisper_received", "data": "not json", "data_object": None},
            "content",
            "",
        ),
        ("automod-queue.1.2", {"type": "automod_caught_message", "data": None}, "status", ""),
        (
            "low-trust-users.1.2",
            {"type": "low_trust_user_treatment_update", "data": {"types": None}},
            "types",
            [],
        ),
    ],
)
def test_nulls_and_wrong_types_get_defaults(
    topic: str, payload: dict[str, Any], attribute: str, expected: Any
) -> None:
    _, model = parse_message(get_client(), topic, json.dumps(payload))
    value: Any = model
    for part in attribute.split("."):
        value = getattr(value, part)
    assert value == expected
