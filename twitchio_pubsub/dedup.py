"""Dropping the events a hand-over delivers twice: a pure object with an injected clock."""

from __future__ import annotations

__all__ = ("Deduplicator",)


class Deduplicator:
    """Recognises events seen on both sockets of a hand-over.

    During a hand-over the old and the new socket both carry a node's topics, so an
    event may arrive on each. An event is a duplicate only when the *other* socket
    already delivered the same payload and that copy has not been matched yet: a
    payload repeated on one socket (``slow``, ``slowoff``, ``slow``) is not.

    Entries are keyed by a hash of topic and payload (a small integer, whatever the
    payload's size) and their number is capped, so memory stays bounded however long
    a hand-over lasts or however large its events are.

    Parameters
    ----------
    window: :class:`float`
        Seconds after the hand-over ends during which late copies are still matched.
    max_entries: :class:`int`
        The most payloads remembered; the oldest are forgotten first.
    """

    __slots__ = ("_active", "_seen", "_until", "max_entries", "window")

    def __init__(self, window: float, max_entries: int = 50_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._active = False
        self._until = 0.0
        # hash -> [source, unmatched count]; a dict keeps insertion order for eviction.
        self._seen: dict[int, list[int]] = {}

    @property
    def active(self) -> bool:
        """Whether a hand-over is running or its window has not yet expired."""
        return self._active or bool(self._seen)

    def __len__(self) -> int:
        return len(self._seen)

    def begin(self) -> None:
        """A hand-over starts: a second socket is about to carry the same topics."""
        self._active = True

    def end(self, now: float) -> None:
        """The old socket is closed; late copies are matched for ``window`` more seconds."""
        self._active = False
        self._until = now + self.window

    def reset(self) -> None:
        """Forget everything (the node lost its sockets)."""
        self._active = False
        self._seen.clear()

    def duplicate(self, source: int, topic: str, message: str, now: float) -> bool:
        """Whether this event, received on socket ``source``, is another socket's copy."""
        if not self._active and now > self._until:
            self._seen.clear()
            return False
        key = hash((topic, message))
        entry = self._seen.get(key)
        if entry is not None:
            if entry[0] != source:
                entry[1] -= 1
                if not entry[1]:
                    del self._seen[key]
                return True
            if self._active:
                entry[1] += 1
            return False
        if not self._active:
            return False  # after the hand-over only the old socket's copies are matched
        if len(self._seen) >= self.max_entries:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = [source, 1]
        return False
