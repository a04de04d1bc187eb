"""What one EventSub session holds, in one object: routes, subscriptions and clean-up.

An EventSub node turns each topic it is given into *parts* (EventSub subscriptions,
see :func:`~twitchio_pubsub.eventsub.mapping.subscriptions_for`). Two topics may share a
part (bits v1 and v2 of one channel), a part's subscription is created on the session by
one Helix call, and what an old session held has to be deleted later. This table is the
one owner of that bookkeeping; it does no I/O, so its rules are unit-tested on their own.

Invariants (:meth:`SubscriptionTable.check` asserts them; the tests call it after every
step):

1. ``created`` and ``by_id`` are inverse maps: a part has at most one subscription id on
   the session and an id stands for one part.
2. Every created part is routed to at least one topic key: a part nobody needs is taken
   out (and its subscription deleted) as its last key leaves.
3. Every held topic's parts are created and routed to it: a topic counts as held only
   once all its subscriptions exist on this session.
4. A part is never both being created and created: a create in flight is the only one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Optional, TypeVar

from .mapping import Part

__all__ = ("Held", "SubscriptionTable")

#: A pending create's handle (the node keeps an ``asyncio.Future`` here).
F = TypeVar("F")
#: ``(token it was created with, subscription id)``: a subscription to delete.
Deletion = tuple[Optional[str], str]


class Held:
    """A topic whose subscriptions all exist on the current session.

    Attributes
    ----------
    token: Optional[:class:`str`]
        The token the topic holds them with (any token of the session's user deletes them).
    parts: List[:class:`~twitchio_pubsub.eventsub.mapping.Part`]
    """

    __slots__ = ("parts", "token")

    def __init__(self, token: Optional[str], parts: list[Part]) -> None:
        self.token = token
        self.parts = parts

    def __repr__(self) -> str:
        return f"<Held parts={len(self.parts)}>"  # never the token


class SubscriptionTable(Generic[F]):
    """The subscriptions of one EventSub node: on its session now, and to clean up.

    Attributes
    ----------
    held: Dict[:class:`str`, :class:`Held`]
        Topic key -> what it holds on the session.
    routes: Dict[Part, Set[:class:`str`]]
        Part -> the topic keys it serves, registered *before* the part's create is sent
        (Twitch may deliver an event before the client has read the create's answer).
    created: Dict[Part, :class:`str`]
        Part -> its subscription id on this session.
    by_id: Dict[:class:`str`, Part]
        The inverse of ``created``, to route notifications.
    creating: Dict[Part, F]
        Creates in flight, so that two topics sharing a part send one create.
    stale: List[Tuple[Optional[:class:`str`], :class:`str`]]
        Subscriptions of earlier sessions (or revoked), still to delete.
    unsure: List[Tuple[:class:`str`, Part]]
        Parts whose create answer could not be read: looked for, and deleted, later.
    deleting: List[List[Tuple[Optional[:class:`str`], :class:`str`]]]
        Deletes under way (their tokens are still needed).
    """

    __slots__ = ("by_id", "created", "creating", "deleting", "held", "routes", "stale", "unsure")

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self.routes: dict[Part, set[str]] = {}
        self.created: dict[Part, str] = {}
        self.by_id: dict[str, Part] = {}
        self.creating: dict[Part, F] = {}
        self.stale: list[Deletion] = []
        self.unsure: list[tuple[str, Part]] = []
        self.deleting: list[list[Deletion]] = []

    def __len__(self) -> int:
        """How many subscriptions the session holds."""
        return len(self.created)

    # ------------------------------------------------------------------ creating

    def route(self, key: str, part: Part) -> Optional[str]:
        """Route ``part`` to topic ``key``; its subscription id if it already exists."""
        self.routes.setdefault(part, set()).add(key)
        return self.created.get(part)

    def confirm(self, part: Part, sub_id: str) -> None:
        """The server created ``part`` as ``sub_id`` on this session."""
        self.creating.pop(part, None)
        old = self.created.get(part)
        if old is not None and old != sub_id:
            self.by_id.pop(old, None)
        self.created[part] = sub_id
        self.by_id[sub_id] = part

    def hold(self, key: str, token: Optional[str], parts: list[Part]) -> None:
        """Every part of topic ``key`` exists: it is held, with ``token``."""
        self.held[key] = Held(token, parts)

    def unroute(self, key: str, part: Part) -> Optional[str]:
        """Take topic ``key`` off ``part``; the subscription id when nothing else uses it."""
        keys = self.routes.get(part)
        if keys is not None:
            keys.discard(key)
            if keys:
                return None
            del self.routes[part]
        sub_id = self.created.pop(part, None)
        if sub_id is not None:
            self.by_id.pop(sub_id, None)
        return sub_id

    # ------------------------------------------------------------------ reconciling

    def move(self, key: str, token: Optional[str]) -> None:
        """A held topic now has ``token`` (same user: nothing is created again)."""
        self.held[key].token = token

    def drop(self, key: str) -> list[tuple[str, Optional[str], str]]:
        """Topic ``key`` is no longer wanted: ``(key, token, id)`` of what to delete."""
        held = self.held.pop(key)
        deletes = []
        for part in held.parts:
            sub_id = self.unroute(key, part)
            if sub_id is not None:
                deletes.append((key, held.token, sub_id))
        return deletes

    def token_of(self, part: Part, wanted: dict[str, Optional[str]]) -> Optional[str]:
        """A token of a topic ``part`` serves (held first, then ``wanted``: key -> token)."""
        keys = self.routes.get(part, ())
        held = (self.held[k].token for k in keys if k in self.held)
        return next((t for t in held if t), None) or next(
            (wanted[k] for k in keys if wanted.get(k)), None
        )

    def forget_session(self, wanted: dict[str, Optional[str]]) -> None:
        """A new session holds nothing: what the old one held becomes stale."""
        for sub_id, part in self.by_id.items():
            self.stale.append((self.token_of(part, wanted), sub_id))
        self.held.clear()
        self.routes.clear()
        self.created.clear()
        self.by_id.clear()

    def revoke(
        self, sub_id: str, wanted: dict[str, Optional[str]]
    ) -> Optional[tuple[Part, set[str]]]:
        """Twitch ended ``sub_id``: its part and the keys it served (``None``: not ours).

        The subscription is kept as stale (to delete it, leaving the account clean) and
        the topics it served hold their other parts only (the pool drops them, and the
        next pass deletes the rest).
        """
        part = self.by_id.get(sub_id)
        if part is None:
            return None
        self.stale.append((self.token_of(part, wanted), sub_id))
        del self.by_id[sub_id]
        self.created.pop(part, None)
        keys = self.routes.pop(part, set())
        for key in keys:
            held = self.held.get(key)
            if held is not None:
                held.parts = [p for p in held.parts if p != part]
        return part, keys

    def keys_for(self, sub_id: str, part: Optional[Part]) -> set[str]:
        """The topic keys a notification of ``sub_id`` (or of ``part``) goes to."""
        found = self.by_id.get(sub_id) or part
        return self.routes.get(found, set()) if found is not None else set()

    # ------------------------------------------------------------------ clean-up

    def take_stale(self) -> list[Deletion]:
        """The stale subscriptions, now in :attr:`deleting` (put them back with
        :meth:`deleted`)."""
        stale, self.stale = self.stale, []
        if stale:
            self.deleting.append(stale)
        return stale

    def deleting_now(self, deletes: list[Deletion]) -> None:
        """``deletes`` are under way."""
        self.deleting.append(deletes)

    def deleted(self, deletes: list[Deletion], *, failed: Iterable[Deletion] = ()) -> None:
        """``deletes`` are over; ``failed`` ones are stale again."""
        self.deleting = [d for d in self.deleting if d is not deletes]
        self.stale.extend(failed)

    def tokens(self) -> set[str]:
        """Every token this table may still use to delete what the session made."""
        need = {held.token for held in self.held.values() if held.token}
        need.update(token for token, _ in self.stale if token)
        need.update(token for token, _ in self.unsure)
        for deletes in self.deleting:
            need.update(token for token, _ in deletes if token)
        return need

    # ------------------------------------------------------------------ invariants

    def check(self) -> None:
        """Raise :class:`AssertionError` naming the first invariant that does not hold."""
        for part, sub_id in self.created.items():
            if self.by_id.get(sub_id) != part:
                raise AssertionError(f"1: {part} -> {sub_id} has no way back")
            if not self.routes.get(part):
                raise AssertionError(f"2: {part} is created but serves no topic")
        if len(self.by_id) != len(self.created):
            raise AssertionError("1: by_id has ids that created does not")
        for key, held in self.held.items():
            for part in held.parts:
                if part not in self.created or key not in self.routes.get(part, ()):
                    raise AssertionError(f"3: {key} is held but {part} is not created for it")
        both = set(self.creating) & set(self.created)
        if both:
            raise AssertionError(f"4: {sorted(map(str, both))} created and being created")
