"""Realistic EventSub ``event`` objects for the EventSub emulator's ``trigger``.

Each type starts from a template shaped like Twitch's documented example (the
templates live in ``eventsub_events.json`` beside this module), gets fresh ids and
timestamps, and then takes the caller's fields: any top-level or dotted field of the
event, plus the subscription's condition keys.
"""

from __future__ import annotations

import copy
import datetime
import json
import uuid
from collections.abc import Mapping
from importlib import resources
from typing import Any, Optional

from ..eventsub.types import SUBSCRIPTION_TYPES, SubscriptionType

__all__ = (
    "MODERATE_ACTIONS",
    "NOTICE_TYPES",
    "build_event",
    "event_fields",
    "latest_version",
    "rfc3339",
    "split_fields",
)

_TEMPLATES: dict[str, dict[str, Any]] = json.loads(
    resources.files(__package__).joinpath("eventsub_events.json").read_text("utf-8")
)

#: The ``channel.chat.notification`` notice types with a template (``sub`` by default).
NOTICE_TYPES: tuple[str, ...] = ("sub", "resub", "sub_gift", "bits_badge_tier")

_USER = {"user_id": "9001", "user_login": "cheery_viewer", "user_name": "Cheery_Viewer"}

#: ``channel.moderate`` actions: the payload key each fills and that payload's defaults.
MODERATE_ACTIONS: Mapping[str, tuple[Optional[str], Mapping[str, Any]]] = {
    "ban": ("ban", {**_USER, "reason": "spam"}),
    "timeout": ("timeout", {**_USER, "reason": "spam", "expires_at": None}),
    "unban": ("unban", _USER),
    "untimeout": ("untimeout", _USER),
    "delete": ("delete", {**_USER, "message_id": None, "message_body": "buy followers"}),
    "warn": ("warn", {**_USER, "reason": "be nice", "chat_rules_cited": ["No spam"]}),
    "followers": ("followers", {"follow_duration_minutes": 10}),
    "slow": ("slow", {"wait_time_seconds": 30}),
    "vip": ("vip", _USER),
    "unvip": ("unvip", _USER),
    "mod": ("mod", _USER),
    "unmod": ("unmod", _USER),
    "raid": ("raid", {**_USER, "viewer_count": 42}),
    "unraid": ("unraid", _USER),
    "approve_unban_request": (
        "unban_request",
        {"is_approved": True, **_USER, "moderator_message": "one more chance"},
    ),
    "deny_unban_request": (
        "unban_request",
        {"is_approved": False, **_USER, "moderator_message": "no"},
    ),
    **{
        f"{verb}_{kind}_term": (
            "automod_terms",
            {"action": verb, "list": kind, "terms": ["example.com"], "from_automod": False},
        )
        for verb in ("add", "remove")
        for kind in ("blocked", "permitted")
    },
    **{
        action: (None, {})
        for action in (
            "clear",
            "emoteonly",
            "emoteonlyoff",
            "followersoff",
            "slowoff",
            "subscribers",
            "subscribersoff",
            "uniquechat",
            "uniquechatoff",
        )
    },
}


def rfc3339(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) as Twitch writes times: RFC 3339, 9 digits, Z."""
    seconds, rest = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{rest:09d}Z"


def latest_version(type: str) -> str:
    """The highest version of ``type`` this project knows.

    Raises
    ------
    ValueError
        ``type`` is not a supported subscription type.
    """
    versions = sorted((v for t, v in SUBSCRIPTION_TYPES if t == type), key=int)
    if not versions:
        known = ", ".join(sorted({t for t, _ in SUBSCRIPTION_TYPES}))
        raise ValueError(f"unknown EventSub type {type!r}; known types: {known}")
    return versions[-1]


def _template(spec: SubscriptionType, notice_type: Any) -> dict[str, Any]:
    key = f"{spec.type}/{spec.version}"
    if spec.type == "channel.chat.notification":
        notice = notice_type or "sub"
        if notice not in NOTICE_TYPES:
            raise ValueError(
                f"notice_type {notice!r} has no template; use one of {', '.join(NOTICE_TYPES)}"
            )
        key = f"{key}/{notice}"
    return copy.deepcopy(_TEMPLATES[key])


def event_fields(spec: SubscriptionType) -> list[str]:
    """The top-level fields of ``spec``'s events, which ``trigger`` can override."""
    return list(_template(spec, None))


def split_fields(
    spec: SubscriptionType, fields: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Split ``trigger``'s fields into event overrides and delivery filters.

    A top-level or dotted event field overrides the event. A condition key that names no
    event field either sets the field it is matched with (``user_id`` of
    ``user.whisper.message`` sets ``to_user_id``) or, when it is matched with nothing,
    only narrows delivery (``moderator_user_id`` of ``automod.message.hold``).

    Raises
    ------
    ValueError
        A field is neither.
    """
    known = set(event_fields(spec))
    overrides: dict[str, Any] = {}
    filters: dict[str, str] = {}
    for key, value in fields.items():
        if key in known or ("." in key and key.split(".", 1)[0] in known):
            overrides[key] = value
        elif key in spec.condition or key in spec.optional:
            path = spec.event_path(key)
            if path is None or path == key:
                filters[key] = str(value)
            else:
                overrides[path] = value
        else:
            listed = dict.fromkeys([*sorted(known), *spec.condition, *spec.optional])
            raise ValueError(
                f"{spec.type} v{spec.version} has no field {key!r}; its fields: "
                + ", ".join(listed)
            )
    return overrides, filters


def _set(event: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target: Any = event
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise ValueError(f"field {path!r}: {part!r} is not an object in this event")
    old = target.get(parts[-1])
    if isinstance(old, str) and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # ids are strings on EventSub; let callers pass numbers
    target[parts[-1]] = value


def _moderate(event: dict[str, Any], action: str, now_ns: int) -> None:
    if action not in MODERATE_ACTIONS:
        raise ValueError(
            f"unknown channel.moderate action {action!r}; known: {', '.join(MODERATE_ACTIONS)}"
        )
    for key, _ in MODERATE_ACTIONS.values():
        if key is not None and key in event:
            event[key] = None
    key, payload = MODERATE_ACTIONS[action]
    event["action"] = action
    if key is None:
        return
    filled = dict(payload)
    if "expires_at" in filled:
        filled["expires_at"] = rfc3339(now_ns + 600 * 1_000_000_000)
    if "message_id" in filled:
        filled["message_id"] = str(uuid.uuid4())
    if key in event or action != "warn":
        event[key] = filled
    else:
        raise ValueError("the warn action needs channel.moderate version 2")


def build_event(
    spec: SubscriptionType, overrides: Mapping[str, Any], now_ns: int
) -> dict[str, Any]:
    """A fresh event of ``spec``'s type with ``overrides`` applied (see :func:`split_fields`).

    Ids (``message_id``, redemption ``id``, ``whisper_id``) are new UUIDs and event times
    (``redeemed_at``, ``held_at``, ``banned_at``) are ``now_ns``; overrides win over both.
    """
    event = _template(spec, overrides.get("notice_type"))
    now = rfc3339(now_ns)
    if spec.type == "channel.moderate" and "action" in overrides:
        _moderate(event, str(overrides["action"]), now_ns)
    for key in ("message_id", "whisper_id"):
        if key in event:
            event[key] = str(uuid.uuid4())
    if spec.type.startswith("channel.channel_points_custom_reward_redemption"):
        event["id"] = str(uuid.uuid4())
    message = event.get("message")
    if isinstance(message, dict) and "message_id" in message:
        message["message_id"] = str(uuid.uuid4())
    for key in ("redeemed_at", "held_at", "banned_at"):
        if key in event:
            event[key] = now
    if event.get("ends_at"):
        event["ends_at"] = rfc3339(now_ns + 600 * 1_000_000_000)
    if overrides.get("is_anonymous") is True and "user_id" in event:
        for key in ("user_id", "user_login", "user_name"):
            event[key] = None
    for path, value in overrides.items():
        _set(event, path, value)
    return event
