"""Base models, shared helpers, and the registry that maps topic families to parsers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union

from twitchio import Channel, PartialUser

if TYPE_CHECKING:
    from twitchio import Client

    from ..topics import Topic

__all__ = (
    "ModelParser",
    "PubSubBadgeEntitlement",
    "PubSubChatMessage",
    "PubSubErrorEvent",
    "PubSubMessage",
    "parse_message",
    "register",
)

#: A parser builds a model from ``(client, topic, decoded message)``.
ModelParser = Callable[["Client", str, dict[str, Any]], "PubSubMessage"]

_T = TypeVar("_T")

_REGISTRY: dict[str, tuple[str, ModelParser]] = {}
#: topic string -> (event, parser, the model's ``topic``), so the hot path skips
#: splitting the topic.
_BY_TOPIC: dict[str, tuple[str, ModelParser, str]] = {}
_loads = json.loads


def register(family: str, event: str) -> Callable[[ModelParser], ModelParser]:
    """Register the parser of a topic family (decorator).

    Parameters
    ----------
    family: :class:`str`
        The topic family, the wire topic's part before the first dot, e.g.
        ``"channel-bits-events-v2"``.
    event: :class:`str`
        The client event its messages are dispatched as, e.g. ``"pubsub_bits"``.
    """

    def decorator(parser: ModelParser) -> ModelParser:
        _REGISTRY[family] = (event, parser)
        _BY_TOPIC.clear()
        return parser

    return decorator


def parse_message(
    client: Client, topic: str, text: Union[str, dict[str, Any]]
) -> tuple[str, PubSubMessage]:
    """Decode a MESSAGE payload and build its model.

    ``text`` is the payload as received (PubSub), or already decoded (the EventSub
    bridge builds it as a dict): the model then keeps that dict, and makes its
    :attr:`~PubSubMessage.raw` text only if it is asked for.

    Returns
    -------
    Tuple[:class:`str`, :class:`PubSubMessage`]
        The event name and the model. Topics the registry does not know give
        ``("pubsub_message", PubSubMessage)``.

    Raises
    ------
    ValueError
        The payload is not a JSON object.
    Exception
        Whatever a parser raised on a payload it could not model; callers turn this
        into a ``pubsub_error`` event.
    """
    raw: Optional[str]
    if isinstance(text, dict):
        data, raw = text, None
    else:
        data, raw = _loads(text), text
    if type(data) is not dict:
        raise ValueError("the message payload is not a JSON object")
    entry = _BY_TOPIC.get(topic)
    if entry is None:
        family = topic.split(".", 1)[0]
        found = _REGISTRY.get(family)
        # Models of known families show the family as their ``topic`` (as
        # twitchio.ext.pubsub does); the generic message shows the whole topic.
        entry = (*found, family) if found is not None else (*_GENERIC, topic)
        # Only topics the pool subscribed get here; the bounds keep the cache small
        # (at most about 1 MB) whatever the topics are.
        if len(_BY_TOPIC) < 5_000 and len(topic) <= 200:
            _BY_TOPIC[topic] = entry
    event, parser, shown = entry
    model = parser(client, topic, data)
    model.topic = shown
    model._raw = raw
    if model._compact and raw is not None:
        model._data = None  # decoded again from the text if asked for
    return event, model


# --------------------------------------------------------------------------- helpers


#: Longer digit strings are not ids or amounts Twitch sends; refusing them keeps
#: ``int()`` cheap and within Python's digit limit.
_MAX_DIGITS = 30


def is_plain_int(value: Any) -> bool:
    """Whether ``value`` is a short string of ASCII digits (the hot path's fast check)."""
    return type(value) is str and value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS


def to_int(value: Any) -> Optional[int]:
    """Turn an id or number given as int or string into an int; ``None`` if impossible.

    Only ASCII digits count (``"²"`` is not a number here), and strings of more than
    30 characters are refused.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_DIGITS or not text.isascii():
            return None
        try:
            return int(text)
        except ValueError:
            return None
    return None


def to_str(value: Any) -> Optional[str]:
    """Return ``value`` if it is a string, else ``None``."""
    return value if isinstance(value, str) else None


def to_dict(value: Any) -> dict[str, Any]:
    """Return ``value`` if it is a dict, else an empty dict."""
    return value if isinstance(value, dict) else {}


def list_of(value: Any, kind: type[_T]) -> list[_T]:
    """The items of ``value`` that are of ``kind``; an empty list if it is not a list."""
    return [item for item in value if isinstance(item, kind)] if isinstance(value, list) else []


def to_datetime(value: Any) -> Optional[datetime]:
    """Parse an RFC 3339 timestamp (nanoseconds allowed) or Unix seconds, timezone-aware."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    date_part, sep, rest = text.partition(".")
    if sep:
        # Keep at most microseconds: Python cannot hold Twitch's nanoseconds.
        # Python before 3.11 also wants exactly 3 or 6 digits; Twitch trims trailing
        # zeros, so pad to six.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        kept = rest[: min(digits, 6)].ljust(6, "0")
        text = f"{date_part}.{kept}{rest[digits:]}" if digits else date_part + rest
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def channel_id_of(value: Any, topic: str) -> int:
    """The channel id from the payload, else from the topic (the last id is the channel)."""
    if is_plain_int(value):
        return int(value)
    channel = to_int(value)
    if channel is None:
        channel = to_int(topic.rsplit(".", 1)[-1])
    return channel or 0


def topic_ids(topic: str) -> tuple[Optional[int], int]:
    """Return ``(first id, channel id)`` of a two-id wire topic ``family.<id>.<channel>``."""
    parts = topic.split(".")
    first = to_int(parts[1]) if len(parts) > 2 else None
    return first, to_int(parts[-1]) or 0


def make_channel(client: Client, name: Any) -> Optional[Channel]:
    """The client's :class:`twitchio.Channel` called ``name`` (a new one if not joined)."""
    if not isinstance(name, str) or not name:
        return None
    channel: Optional[Channel] = client.get_channel(name)
    return channel or Channel(name=name, websocket=client._connection)


def make_user(client: Client, user_id: Any, name: Any) -> Optional[PartialUser]:
    """Build a :class:`twitchio.PartialUser`, or ``None`` without a numeric id."""
    if is_plain_int(user_id) and type(name) is str and name:
        return PartialUser(client._http, user_id, name)
    uid = to_int(user_id)
    if uid is None:
        return None
    return PartialUser(client._http, uid, name if isinstance(name, str) and name else None)


# --------------------------------------------------------------------------- models


class PubSubChatMessage:
    """A chat message that came with an event.

    Attributes
    ----------
    content: :class:`str`
        The text of the message.
    id: :class:`str`
        The id of the payload the message came in.
    type: :class:`str`
        The payload type.
    """

    __slots__ = ("content", "id", "type")

    def __init__(self, content: str, id: str, type: str) -> None:
        self.content = content
        self.id = id
        self.type = type

    def __repr__(self) -> str:
        return f"<PubSubChatMessage id={self.id!r} type={self.type!r} content={self.content!r}>"


class PubSubBadgeEntitlement:
    """A Bits badge earned with a cheer.

    Attributes
    ----------
    new: :class:`int`
        The new badge version (for example ``25000``).
    old: :class:`int`
        The badge version held before.
    """

    __slots__ = ("new", "old")

    def __init__(self, new: int, old: int) -> None:
        self.new = new
        self.old = old

    def __repr__(self) -> str:
        return f"<PubSubBadgeEntitlement new={self.new} old={self.old}>"


class PubSubMessage:
    """A message from the PubSub websocket; the base of every model.

    Messages on topics the library does not model, and message types it does not
    know on a topic it does, arrive as this class.

    Attributes
    ----------
    topic: :class:`str`
        As in ``twitchio.ext.pubsub``: for the models of a known topic family
        (:class:`PubSubBitsMessage`, ...) the family, e.g. ``channel-bits-events-v2``;
        for a plain :class:`PubSubMessage` (what ``pubsub_message`` receives) the full
        topic, e.g. ``channel-bits-events-v2.12345``.
    full_topic: :class:`str`
        The full topic string the message arrived on, always.
    """

    __slots__ = ("_client", "_data", "_raw", "full_topic", "topic")

    #: Set by models that copy every field they need out of the payload in ``__init__``;
    #: they then keep only the payload's text, and :attr:`data` decodes it on access.
    #: Holding no dicts per queued event keeps bursts cheap for the garbage collector.
    _compact = False

    def __init__(self, client: Client, topic: Optional[str], data: dict[str, Any]) -> None:
        self._client = client
        self.full_topic: str = topic or ""
        self.topic: str = self.full_topic
        self._data: Optional[dict[str, Any]] = data
        self._raw: Optional[str] = None

    @classmethod
    def _generic_copy(cls, model: PubSubMessage) -> PubSubMessage:
        """The plain message ``pubsub_message`` receives for a modelled payload."""
        generic = cls.__new__(cls)
        generic._client = model._client
        generic.full_topic = generic.topic = model.full_topic
        generic._data = model._data
        generic._raw = model._raw
        return generic

    @property
    def data(self) -> dict[str, Any]:
        """The decoded payload, with everything the model does not expose."""
        if self._data is None:
            decoded = _loads(self._raw) if self._raw else {}
            self._data = decoded if type(decoded) is dict else {}
        return self._data

    @property
    def raw(self) -> str:
        """The payload as JSON text, exactly as received when it came from the server."""
        if self._raw is None:
            self._raw = json.dumps(self._data)
        return self._raw

    @property
    def message_type(self) -> Optional[str]:
        """The payload's ``type`` (or ``message_type``), when it has one."""
        return to_str(self.data.get("type")) or to_str(self.data.get("message_type"))

    def __repr__(self) -> str:
        kind = self.message_type
        extra = f" type={kind!r}" if kind else ""
        return f"<{type(self).__name__} topic={self.topic!r}{extra}>"


class PubSubErrorEvent:
    """What the ``pubsub_error`` event carries.

    It is dispatched for every error response to a LISTEN or UNLISTEN (before
    :meth:`~twitchio_pubsub.PubSubPool.auth_fail_hook` runs for ``ERR_BADAUTH``), for
    revoked authorizations, for frames or payloads that could not be handled, and for
    errors in your hooks.

    It also reads like the dict ``twitchio.ext.pubsub`` dispatched for error responses:
    ``event["error"]``, ``event["nonce"]`` and ``event["type"]`` work, as do ``in`` and
    :meth:`get`.

    Attributes
    ----------
    reason: :class:`str`
        A short description of what went wrong.
    type: :class:`str`
        ``"RESPONSE"`` for an error response from the server, otherwise what kind of
        problem it is (``"AUTH_REVOKED"``, ``"INVALID_FRAME"``, ``"PAYLOAD"``,
        ``"HOOK"``, ``"CONNECTION"``; with conduits ``"SHARD"`` for a shard Twitch
        would not assign and ``"SHARD_DISABLED"`` for a shard it disabled).
    error: Optional[:class:`str`]
        Twitch's error code (``ERR_BADAUTH``, ...), when the server sent one.
    nonce: Optional[:class:`str`]
        The nonce of the request the server answered, for error responses.
    topic: Optional[:class:`str`]
        The topic string involved, when there is a single one.
    topics: List[:class:`Topic`]
        The topics affected (for example those whose authorization failed).
    raw: Optional[:class:`str`]
        The raw frame or payload text, when one was received.
    exception: Optional[:class:`BaseException`]
        The exception raised while handling, if any.
    """

    __slots__ = ("error", "exception", "nonce", "raw", "reason", "topic", "topics", "type")

    #: The keys that item access (``event["error"]``) understands.
    KEYS = ("type", "error", "nonce", "topic", "topics", "reason", "raw")

    def __init__(
        self,
        reason: str,
        *,
        topic: Optional[str] = None,
        raw: Optional[str] = None,
        error: Optional[str] = None,
        topics: Optional[list[Topic]] = None,
        exception: Optional[BaseException] = None,
        nonce: Optional[str] = None,
        type: str = "ERROR",
    ) -> None:
        self.reason = reason
        self.topic = topic
        self.raw = raw
        self.error = error
        self.topics: list[Topic] = topics or []
        self.exception = exception
        self.nonce = nonce
        self.type = type

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.KEYS

    def get(self, key: str, default: Any = None) -> Any:
        """Return ``self[key]``, or ``default`` for a key it does not have."""
        return getattr(self, key) if key in self.KEYS else default

    def __repr__(self) -> str:
        parts = [f"type={self.type!r}", f"reason={self.reason!r}"]
        if self.error:
            parts.append(f"error={self.error!r}")
        if self.topic:
            parts.append(f"topic={self.topic!r}")
        if self.topics:
            parts.append(f"topics={[t.present for t in self.topics]!r}")
        return f"<PubSubErrorEvent {' '.join(parts)}>"


def _generic(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    return PubSubMessage(client, topic, data)


_GENERIC: tuple[str, ModelParser] = ("pubsub_message", _generic)
