"""Where new topics go: a pure function, tested without sockets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

__all__ = ("Placement", "plan", "plan_weighted")

#: ``(index of an existing node, or None for a new node, how many topics go there)``.
Placement = tuple[Optional[int], int]


def plan(
    free: Sequence[int], new_allowed: int, capacity: int, count: int
) -> Optional[list[Placement]]:
    """Decide where ``count`` new topics go.

    A call that fits on one existing node goes to the first node with room for all of it,
    so a bot's topics stay together and nodes are reused. A larger call fills new nodes
    first (whole ones), then the room left on existing nodes.

    Parameters
    ----------
    free: Sequence[:class:`int`]
        The free room of each existing node, in the pool's order.
    new_allowed: :class:`int`
        How many more nodes may be opened.
    capacity: :class:`int`
        The most topics one node holds.
    count: :class:`int`
        How many topics to place.

    Returns
    -------
    Optional[List[Tuple[Optional[:class:`int`], :class:`int`]]]
        The placements, or ``None`` when the topics do not fit at all.
    """
    if count <= 0:
        return []
    for index, room in enumerate(free):
        if room >= count:
            return [(index, count)]
    new_allowed = max(new_allowed, 0)
    if sum(max(room, 0) for room in free) + new_allowed * capacity < count:
        return None
    placements: list[Placement] = []
    remaining = count
    while remaining and new_allowed:
        take = min(capacity, remaining)
        placements.append((None, take))
        remaining -= take
        new_allowed -= 1
    for index, room in enumerate(free):
        if not remaining:
            break
        if room > 0:
            take = min(room, remaining)
            placements.append((index, take))
            remaining -= take
    return placements


def plan_weighted(
    free: Sequence[int], new_allowed: int, capacity: int, weights: Sequence[int]
) -> Optional[list[int]]:
    """Decide where topics of different sizes go (EventSub: subscriptions per topic).

    As :func:`plan`: a call that fits on one existing node goes to the first with room
    for all of it; otherwise each topic goes to the first node with room for it, existing
    nodes first, then new ones.

    Parameters
    ----------
    free: Sequence[:class:`int`]
        The free room of each existing node.
    new_allowed: :class:`int`
        How many more nodes may be opened.
    capacity: :class:`int`
        The room of one node.
    weights: Sequence[:class:`int`]
        The room each topic takes, in order.

    Returns
    -------
    Optional[List[:class:`int`]]
        For each topic, the index of an existing node (``>= 0``) or of a new node
        (``-1`` for the first new one, ``-2`` for the second...); ``None`` when the
        topics do not fit.
    """
    total = sum(weights)
    if not weights:
        return []
    for index, room in enumerate(free):
        if room >= total:
            return [index] * len(weights)
    rooms = [max(room, 0) for room in free]
    new_rooms: list[int] = []
    out: list[int] = []
    for weight in weights:
        if weight > capacity:
            return None
        spot = next((i for i, room in enumerate(rooms) if room >= weight), None)
        if spot is not None:
            rooms[spot] -= weight
            out.append(spot)
            continue
        spot = next((i for i, room in enumerate(new_rooms) if room >= weight), None)
        if spot is None:
            if len(new_rooms) >= new_allowed:
                return None
            new_rooms.append(capacity)
            spot = len(new_rooms) - 1
        new_rooms[spot] -= weight
        out.append(-1 - spot)
    return out
