"""Where new topics go: a pure function, tested without sockets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

__all__ = ("Placement", "plan")

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
