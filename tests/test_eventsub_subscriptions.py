"""Unit tests for the SubscriptionTable: each step of a node's use, invariants after each."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twitchio_pubsub.eventsub.mapping import Part
from twitchio_pubsub.eventsub.subscriptions import SubscriptionTable

CHEER = Part("channel.cheer", "1", (("broadcaster_user_id", "1"),))
ADD = Part("channel.channel_points_custom_reward_redemption.add", "1", (("b", "1"),))
UPDATE = Part("channel.channel_points_custom_reward_redemption.update", "1", (("b", "1"),))
#: Topic keys and their parts; bits v1 and v2 share one part, as in the bridge.
PARTS = {"bits-v2": [CHEER], "bits-v1": [CHEER], "points": [ADD, UPDATE]}


def add(table: SubscriptionTable[Any], key: str, token: str, ids: Any) -> None:
    """What a node does to hold ``key``: route each part, create the missing ones, hold."""
    for part in PARTS[key]:
        if table.route(key, part) is None:
            table.creating[part] = object()
            table.confirm(part, f"id-{next(ids)}")
        table.check()
    table.hold(key, token, PARTS[key])
    table.check()


def test_two_topics_share_one_subscription_until_both_leave() -> None:
    table: SubscriptionTable[Any] = SubscriptionTable()
    ids = itertools.count()
    add(table, "bits-v2", "t", ids)
    add(table, "bits-v1", "t", ids)
    assert len(table) == 1 and table.keys_for("id-0", None) == {"bits-v2", "bits-v1"}
    assert table.drop("bits-v2") == []  # still used by bits-v1
    table.check()
    assert table.drop("bits-v1") == [("bits-v1", "t", "id-0")]
    table.check()
    assert len(table) == 0 and table.routes == {}


def test_a_new_session_makes_everything_stale_with_a_token_to_delete_it() -> None:
    table: SubscriptionTable[Any] = SubscriptionTable()
    ids = itertools.count()
    add(table, "points", "t1", ids)
    table.move("points", "t2")
    table.forget_session({"points": "t2"})
    table.check()
    assert sorted(table.stale) == [("t2", "id-0"), ("t2", "id-1")]
    assert table.tokens() == {"t2"}
    stale = table.take_stale()
    assert table.tokens() == {"t2"}  # still needed while the deletes run
    table.deleted(stale, failed=stale[:1])
    assert table.stale == stale[:1] and table.deleting == []


def test_a_revocation_keeps_the_other_parts_and_marks_the_revoked_one_stale() -> None:
    table: SubscriptionTable[Any] = SubscriptionTable()
    ids = itertools.count()
    add(table, "points", "t", ids)
    part, keys = table.revoke("id-0", {"points": "t"}) or (None, set())
    table.check()
    assert (part, keys) == (ADD, {"points"})
    assert table.held["points"].parts == [UPDATE]
    assert table.stale == [("t", "id-0")]
    assert table.revoke("id-0", {}) is None  # not ours any more


def test_the_checks_catch_a_broken_table() -> None:
    table: SubscriptionTable[Any] = SubscriptionTable()
    table.created[CHEER] = "x"
    with pytest.raises(AssertionError, match=r"^1:"):
        table.check()
    table.by_id["x"] = CHEER
    with pytest.raises(AssertionError, match=r"^2:"):
        table.check()
    table.routes[CHEER] = {"bits-v2"}
    table.hold("points", "t", [ADD])
    with pytest.raises(AssertionError, match=r"^3:"):
        table.check()
    del table.held["points"]
    table.creating[CHEER] = object()
    with pytest.raises(AssertionError, match=r"^4:"):
        table.check()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "drop", "move", "revoke", "forget", "clean"]),
            st.sampled_from(sorted(PARTS)),
            st.integers(0, 5),
        ),
        max_size=40,
    )
)
def test_any_sequence_of_a_nodes_steps_keeps_the_invariants(steps: list[Any]) -> None:
    table: SubscriptionTable[Any] = SubscriptionTable()
    ids = itertools.count()
    wanted: dict[str, str] = {}
    for op, key, n in steps:
        if op == "add" and key not in table.held:
            wanted[key] = f"t{n}"
            add(table, key, wanted[key], ids)
        elif op == "drop" and key in table.held:
            wanted.pop(key, None)
            for _, token, sub_id in table.drop(key):
                assert sub_id not in table.by_id and token is not None
        elif op == "move" and key in table.held:
            wanted[key] = f"t{n}"
            table.move(key, wanted[key])
        elif op == "revoke" and table.by_id:
            sub_id = sorted(table.by_id)[n % len(table.by_id)]
            table.revoke(sub_id, dict(wanted))
        elif op == "forget":
            table.forget_session(dict(wanted))
        elif op == "clean":
            table.deleted(table.take_stale())
        table.check()
        assert table.tokens() >= {held.token for held in table.held.values() if held.token}
