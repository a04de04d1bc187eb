"""Realistic event payloads for every documented PubSub topic family.

Each builder returns the decoded inner message (a ``dict``) in the shape Twitch sent
on the wire: string ids, RFC 3339 timestamps with nanoseconds, optional keys left out
rather than ``null``, and the whisper payload double-encoded. Keyword overrides replace
fields of the event's main object (for example ``bits_used=500`` for a cheer, or
``user_input="hi"`` for a redemption); a dotted key such as ``"reward.cost"`` walks into
nested objects, and a value of ``None`` removes the key (to mimic an omitted field).

:func:`build_event` picks the builder by kind name and also returns the topic string.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = (
    "ALIASES",
    "KINDS",
    "automod_queue",
    "bits",
    "bits_badge",
    "bits_v1",
    "build_event",
    "channel_points",
    "event_topic",
    "fields",
    "low_trust_user",
    "moderation",
    "rfc3339_now",
    "subscription",
    "user_moderation_notification",
    "whisper",
)


def rfc3339_now() -> str:
    """Return the current UTC time as Twitch writes it: RFC 3339 with nanoseconds."""
    ns = time.time_ns()
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


#: The deepest dotted override key accepted (payloads nest a few levels at most).
MAX_KEY_DEPTH = 8


def _apply(target: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        node = target
        *parents, last = key.split(".")
        if len(parents) >= MAX_KEY_DEPTH:
            raise ValueError(
                f"override key {key[:60]!r} is too deep (at most {MAX_KEY_DEPTH} dots)"
            )
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value


def bits(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A cheer on ``channel-bits-events-v2`` (``is_anonymous`` inside ``data``, as live)."""
    data: dict[str, Any] = {
        "user_name": "cheerfan",
        "channel_name": "emulated_channel",
        "user_id": "1001",
        "channel_id": str(channel_id),
        "time": rfc3339_now(),
        "chat_message": "Cheer100 great stream!",
        "bits_used": 100,
        "total_bits_used": 1100,
        "is_anonymous": False,
        "context": "cheer",
        "badge_entitlement": None,
    }
    _apply(data, overrides)
    return {
        "data": data,
        "version": "1.0",
        "message_type": "bits_event",
        "message_id": str(uuid.uuid4()),
    }


def bits_v1(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A cheer on ``channel-bits-events-v1`` (no ``is_anonymous``)."""
    message = bits(channel_id)
    del message["data"]["is_anonymous"]
    _apply(message["data"], overrides)
    return message


def bits_badge(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A shared Bits badge unlock: a flat object with no wrapper."""
    message: dict[str, Any] = {
        "user_id": "1001",
        "user_name": "cheerfan",
        "channel_id": str(channel_id),
        "channel_name": "emulated_channel",
        "badge_tier": 1000,
        "chat_message": "Finally got the 1000 badge!",
        "time": rfc3339_now(),
    }
    _apply(message, overrides)
    return message


def _reward(channel_id: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "channel_id": channel_id,
        "title": "Hydrate!",
        "prompt": "Make the streamer drink some water",
        "cost": 250,
        "is_user_input_required": False,
        "is_sub_only": False,
        "image": None,
        "default_image": {
            "url_1x": "https://static-cdn.jtvnw.net/custom-reward-images/default-1.png",
            "url_2x": "https://static-cdn.jtvnw.net/custom-reward-images/default-2.png",
            "url_4x": "https://static-cdn.jtvnw.net/custom-reward-images/default-4.png",
        },
        "background_color": "#00C7AC",
        "is_enabled": True,
        "is_paused": False,
        "is_in_stock": True,
        "max_per_stream": {"is_enabled": False, "max_per_stream": 0},
        "should_redemptions_skip_request_queue": False,
        "template_id": None,
        "updated_for_indicator_at": None,
        "max_per_user_per_stream": {"is_enabled": False, "max_per_user_per_stream": 0},
        "global_cooldown": {"is_enabled": False, "global_cooldown_seconds": 0},
        "redemptions_redeemed_current_stream": None,
        "cooldown_expires_at": None,
    }


def channel_points(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A ``reward-redeemed`` event; overrides apply to ``data.redemption``.

    ``user_input`` is left out (as for rewards without input) unless given.
    """
    channel = str(channel_id)
    now = rfc3339_now()
    redemption: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "user": {"id": "1002", "login": "pointsfan", "display_name": "PointsFan"},
        "channel_id": channel,
        "redeemed_at": now,
        "reward": _reward(channel),
        "status": "UNFULFILLED",
    }
    _apply(redemption, overrides)
    return {"type": "reward-redeemed", "data": {"timestamp": now, "redemption": redemption}}


def subscription(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A ``resub`` with a shared streak: a flat object discriminated by ``context``."""
    message: dict[str, Any] = {
        "benefit_end_month": 0,
        "user_name": "loyalviewer",
        "display_name": "LoyalViewer",
        "channel_name": "emulated_channel",
        "user_id": "1003",
        "channel_id": str(channel_id),
        "time": rfc3339_now(),
        "sub_message": {"message": "Six months already!", "emotes": None},
        "sub_plan": "1000",
        "sub_plan_name": "Channel Subscription (emulated_channel)",
        "months": 0,
        "cumulative_months": 6,
        "streak_months": 6,
        "context": "resub",
        "is_gift": False,
        "multi_month_duration": 0,
    }
    _apply(message, overrides)
    return message


def moderation(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A ``moderation_action`` timeout (``args`` are strings, as live)."""
    data: dict[str, Any] = {
        "type": "chat_login_moderation",
        "moderation_action": "timeout",
        "args": ["spammer42", "600", "spamming links"],
        "created_at": rfc3339_now(),
        "created_by": "mod_name",
        "created_by_user_id": str(channel_id),
        "msg_id": "",
        "target_user_id": "1004",
        "target_user_login": "spammer42",
        "from_automod": False,
    }
    _apply(data, overrides)
    return {"type": "moderation_action", "data": data}


def whisper(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A ``whisper_received`` event to user ``channel_id``, double-encoded as on the wire.

    Overrides apply to the whisper object; ``data`` is re-encoded from it afterwards.
    """
    recipient = int(channel_id)
    sender = 1005
    low, high = sorted((recipient, sender))
    obj: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "id": 42,
        "thread_id": f"{low}_{high}",
        "body": "hey, are you streaming tonight?",
        "sent_ts": int(time.time()),
        "from_id": sender,
        "tags": {
            "login": "whisperer",
            "display_name": "Whisperer",
            "color": "#2E8B57",
            "emotes": [],
            "badges": [],
        },
        "recipient": {
            "id": recipient,
            "username": "emulated_channel",
            "display_name": "Emulated_Channel",
            "color": "#CC44FF",
        },
    }
    _apply(obj, overrides)
    return {
        "type": "whisper_received",
        "data": json.dumps(obj, separators=(",", ":")),
        "data_object": obj,
    }


def automod_queue(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A PENDING ``automod_caught_message`` for moderators; overrides apply to ``data``."""
    text = "you are a clown"
    data: dict[str, Any] = {
        "content_classification": {"category": "aggression", "level": 2},
        "message": {
            "content": {
                "text": text,
                "fragments": [{"text": text, "automod": {"topics": {"bullying": 5}}}],
            },
            "id": str(uuid.uuid4()),
            "sender": {
                "user_id": "1006",
                "login": "grumpy_chatter",
                "display_name": "Grumpy_Chatter",
                "chat_color": "#FF4500",
                "badges": [{"id": "subscriber", "version": "3"}],
            },
            "sent_at": rfc3339_now(),
        },
        "reason_code": "",
        "resolver_id": "",
        "resolver_login": "",
        "status": "PENDING",
    }
    _apply(data, overrides)
    return {"type": "automod_caught_message", "data": data}


def user_moderation_notification(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """The chatter's own held message was resolved; overrides apply to ``data``."""
    data: dict[str, Any] = {"message_id": str(uuid.uuid4()), "status": "DENIED"}
    _apply(data, overrides)
    return {"type": "automod_caught_message", "data": data}


def low_trust_user(channel_id: int | str, /, **overrides: Any) -> dict[str, Any]:
    """A ``low_trust_user_treatment_update`` (a user put under monitoring)."""
    channel = str(channel_id)
    target = "1007"
    data: dict[str, Any] = {
        "low_trust_id": f"{channel}.{target}",
        "channel_id": channel,
        "updated_by": {"id": channel, "login": "emulated_channel", "display_name": "Emulated"},
        "updated_at": rfc3339_now(),
        "target_user_id": target,
        "target_user": "suspicious_user",
        "treatment": "ACTIVE_MONITORING",
        "types": ["MANUALLY_ADDED"],
        "ban_evasion_evaluation": "UNLIKELY_EVADER",
        "evaluated_at": rfc3339_now(),
    }
    _apply(data, overrides)
    return {"type": "low_trust_user_treatment_update", "data": data}


#: kind name -> (topic family, number of ids in the topic, builder)
KINDS: dict[str, tuple[str, int, Callable[..., dict[str, Any]]]] = {
    "bits": ("channel-bits-events-v2", 1, bits),
    "bits_v1": ("channel-bits-events-v1", 1, bits_v1),
    "bits_badge": ("channel-bits-badge-unlocks", 1, bits_badge),
    "channel_points": ("channel-points-channel-v1", 1, channel_points),
    "subscription": ("channel-subscribe-events-v1", 1, subscription),
    "moderation": ("chat_moderator_actions", 2, moderation),
    "whisper": ("whispers", 1, whisper),
    "automod_queue": ("automod-queue", 2, automod_queue),
    "user_moderation_notification": (
        "user-moderation-notifications",
        2,
        user_moderation_notification,
    ),
    "low_trust_user": ("low-trust-users", 2, low_trust_user),
}


#: Twitch CLI's names for the same events (``twitch event trigger cheer``), accepted too.
ALIASES: dict[str, str] = {
    "cheer": "bits",
    "subscribe": "subscription",
    "add-redemption": "channel_points",
}

#: Fields Twitch sends only sometimes, so the default events leave them out; they may
#: be set all the same.
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "bits": ("message_id",),
    "channel_points": ("user_input",),
    "subscription": (
        "recipient_id",
        "recipient_user_name",
        "recipient_display_name",
        "user_id",
        "user_name",
        "is_anonymous",
    ),
    "moderation": ("moderator_message", "requester_id", "requester_login"),
}

_PROBE = "__twitchio_pubsub_probe__"


def _find_probe(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        if _PROBE in value:
            return value
        for child in value.values():
            found = _find_probe(child)
            if found is not None:
                return found
    return None


def _paths(obj: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in obj.items():
        path = prefix + key
        out.append(path)
        if isinstance(value, dict):
            out.extend(_paths(value, path + "."))
    return out


def fields(kind: str) -> list[str]:
    """The fields an override of ``kind`` may set, as dotted paths, sorted.

    Raises
    ------
    ValueError
        ``kind`` is unknown.
    """
    kind = ALIASES.get(kind, kind)
    _, _, builder = _kind(kind)
    target = _find_probe(builder("1", **{_PROBE: True}))
    if target is None:  # pragma: no cover - every builder applies its overrides
        return []
    del target[_PROBE]
    return sorted({*_paths(target), *OPTIONAL_FIELDS.get(kind, ())})


def event_topic(kind: str, channel_id: int | str, user_id: int | str | None = None) -> str:
    """Return the wire topic for ``kind``; two-id topics read ``<user>.<channel>``.

    ``user_id`` defaults to the channel (the broadcaster acting as its own moderator).
    """
    family, ids, _ = _kind(kind)
    if ids == 1:
        return f"{family}.{channel_id}"
    return f"{family}.{user_id if user_id is not None else channel_id}.{channel_id}"


def _kind(kind: str) -> tuple[str, int, Callable[..., dict[str, Any]]]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown event kind {kind!r}; expected one of: {', '.join(KINDS)}"
        ) from None


def build_event(
    kind: str, channel_id: int | str, user_id: int | str | None = None, /, **overrides: Any
) -> tuple[str, dict[str, Any]]:
    """Build a realistic event of ``kind``.

    Parameters
    ----------
    kind: :class:`str`
        One of :data:`KINDS` (``bits``, ``channel_points``, ``whisper``, ...).
    channel_id: Union[:class:`int`, :class:`str`]
        The channel (for whispers: the receiving user).
    user_id: Optional[Union[:class:`int`, :class:`str`]]
        The second id of two-id topics (moderator or chatter); defaults to the channel.
    **overrides:
        Fields to replace, see the module documentation.

    Returns
    -------
    Tuple[:class:`str`, :class:`dict`]
        The topic string and the decoded message.

    Raises
    ------
    ValueError
        ``kind`` is unknown or ``channel_id`` is not numeric.
    """
    _, _, builder = _kind(kind)
    for value in (channel_id, user_id):
        if value is not None and not str(value).isdigit():
            raise ValueError(f"ids must be numeric Twitch user ids, got {value!r}")
    return event_topic(kind, channel_id, user_id), builder(channel_id, **overrides)
