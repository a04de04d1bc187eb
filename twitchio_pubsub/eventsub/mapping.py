"""PubSub topics as EventSub subscriptions, and EventSub events as PubSub messages.

Pure functions, no I/O: :func:`subscriptions_for` says which EventSub subscriptions
stand for a topic, and :func:`translate` turns one notification into the PubSub-shaped
message the topic's model reads, so the bridge dispatches the same events with the same
model classes as the PubSub transport. Fields EventSub lacks are left out (the models
then give ``None`` or their documented default); nothing is invented.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .types import SUBSCRIPTION_TYPES, SubscriptionType, missing_scopes

__all__ = (
    "FAMILIES",
    "Part",
    "required_user",
    "scopes_for",
    "subscriptions_for",
    "token_problem",
    "topic_for",
    "translate",
)


@dataclass(frozen=True)
class Part:
    """One EventSub subscription that a topic needs.

    Attributes
    ----------
    type: :class:`str`
    version: :class:`str`
    condition: Tuple[Tuple[:class:`str`, :class:`str`], ...]
        The condition, as sorted pairs (hashable).
    """

    type: str
    version: str
    condition: tuple[tuple[str, str], ...]

    @property
    def spec(self) -> SubscriptionType:
        """The subscription type's rules (scopes, token user)."""
        return SUBSCRIPTION_TYPES[(self.type, self.version)]

    def body(self, session_id: str, *, conduit_id: Optional[str] = None) -> dict[str, Any]:
        """The Helix *Create EventSub Subscription* body for ``session_id`` (or, with
        ``conduit_id``, for that conduit)."""
        transport = (
            {"method": "websocket", "session_id": session_id}
            if conduit_id is None
            else {"method": "conduit", "conduit_id": conduit_id}
        )
        return {
            "type": self.type,
            "version": self.version,
            "condition": dict(self.condition),
            "transport": transport,
        }


def _part(type: str, version: str, **condition: object) -> Part:
    return Part(type, version, tuple(sorted((k, str(v)) for k, v in condition.items())))


#: Per topic family: the EventSub (type, version) pairs that stand for it.
FAMILIES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "channel-bits-events-v2": (("channel.cheer", "1"),),
    "channel-bits-events-v1": (("channel.cheer", "1"),),
    "channel-bits-badge-unlocks": (("channel.chat.notification", "1"),),
    "channel-points-channel-v1": (
        ("channel.channel_points_custom_reward_redemption.add", "1"),
        ("channel.channel_points_custom_reward_redemption.update", "1"),
        ("channel.channel_points_custom_reward.update", "1"),
    ),
    "channel-subscribe-events-v1": (
        ("channel.subscribe", "1"),
        ("channel.subscription.message", "1"),
    ),
    "chat_moderator_actions": (("channel.moderate", "2"),),
    "whispers": (("user.whisper.message", "1"),),
    "automod-queue": (("automod.message.hold", "2"), ("automod.message.update", "2")),
    "user-moderation-notifications": (
        ("channel.chat.user_message_hold", "1"),
        ("channel.chat.user_message_update", "1"),
    ),
    "low-trust-users": (
        ("channel.suspicious_user.message", "1"),
        ("channel.suspicious_user.update", "1"),
    ),
}


def _ids(key: str) -> list[str]:
    return key.split(".")[1:]


def required_user(key: str) -> Optional[str]:
    """The user whose token must create the topic's subscriptions (``None``: any user).

    ``key`` is the topic's wire string, e.g. ``chat_moderator_actions.<mod>.<channel>``.
    """
    family = key.split(".", 1)[0]
    ids = _ids(key)
    if family == "channel-bits-badge-unlocks":
        return None  # any chatter who reads the channel's chat
    if len(ids) == 2:
        return ids[0]  # the moderator (or chatter) comes first on the wire
    return ids[0] if ids else None


def subscriptions_for(key: str, token_user: str) -> list[Part]:
    """The EventSub subscriptions for topic ``key`` created with ``token_user``'s token.

    Raises
    ------
    ValueError
        The topic's family has no EventSub counterpart.
    """
    family = key.split(".", 1)[0]
    pairs = FAMILIES.get(family)
    if pairs is None:
        raise ValueError(f"topic {key!r} has no EventSub counterpart")
    ids = _ids(key)
    parts = []
    for type_, version in pairs:
        if len(ids) == 2:
            first, channel = ids
            key_name = (
                "user_id" if family == "user-moderation-notifications" else ("moderator_user_id")
            )
            parts.append(_part(type_, version, broadcaster_user_id=channel, **{key_name: first}))
        elif family == "whispers":
            parts.append(_part(type_, version, user_id=ids[0]))
        elif family == "channel-bits-badge-unlocks":
            parts.append(_part(type_, version, broadcaster_user_id=ids[0], user_id=token_user))
        else:
            parts.append(_part(type_, version, broadcaster_user_id=ids[0]))
    return parts


def topic_for(part: Part) -> Optional[str]:
    """The topic key a subscription stands for, when no topic of this process names it.

    The first family of :data:`FAMILIES` with the subscription's type and version wins
    (``channel.cheer`` is ``channel-bits-events-v2``, not v1); ``None`` when no family
    has it or the condition lacks an id the topic needs. A conduit process dispatches
    events of subscriptions other processes created under this key.
    """
    condition = dict(part.condition)
    pair = (part.type, part.version)
    for family, pairs in FAMILIES.items():
        if pair not in pairs:
            continue
        channel = condition.get("broadcaster_user_id")
        if family == "whispers":
            ids = [condition.get("user_id")]
        elif family == "user-moderation-notifications":
            ids = [condition.get("user_id"), channel]
        elif "moderator_user_id" in condition:
            ids = [condition.get("moderator_user_id"), channel]
        else:
            ids = [channel]
        if not all(ids):
            return None
        key = ".".join([family, *(str(i) for i in ids)])
        token_user = condition.get("user_id") or ids[0] or ""
        return key if part in subscriptions_for(key, str(token_user)) else None
    return None


def scopes_for(*families: str) -> list[str]:
    """The scopes a token needs for topics of ``families`` (the read-only form of each).

    For example ``scopes_for("chat_moderator_actions")`` lists what a moderator's token
    needs for the moderation topic on EventSub; ask for these when authorizing.

    Raises
    ------
    KeyError
        A family has no EventSub counterpart.
    """
    out: dict[str, None] = {}
    for family in families:
        for pair in FAMILIES[family]:
            for group in SUBSCRIPTION_TYPES[pair].scopes:
                reads = sorted(s for s in group if ":read:" in s) or sorted(group)
                out.setdefault(reads[0])
    return list(out)


def token_problem(key: str, user_id: str, scopes: Sequence[str]) -> Optional[str]:
    """Why a token of ``user_id`` with ``scopes`` cannot serve topic ``key``, or ``None``.

    The reason names the missing scope or the user the topic needs, for the
    ``pubsub_error`` event and the log.
    """
    needed = required_user(key)
    if needed is not None and needed != user_id:
        return f"the token belongs to user {user_id}, but {key} needs a token of user {needed}"
    missing: dict[str, None] = {}
    for part in subscriptions_for(key, user_id):
        for group in missing_scopes(part.spec, scopes):
            missing.setdefault(group)
    if missing:
        return "the token lacks scope " + ", ".join(missing)
    return None


# ---------------------------------------------------------------------------- events


def _epoch(stamp: str) -> int:
    """Whole seconds since the epoch of an RFC 3339 UTC time."""
    return calendar.timegm(
        (
            int(stamp[0:4]),
            int(stamp[5:7]),
            int(stamp[8:10]),
            int(stamp[11:13]),
            int(stamp[14:16]),
            int(stamp[17:19]),
        )
    )


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _cheer(family: str, e: dict[str, Any], meta: dict[str, Any]) -> Optional[dict[str, Any]]:
    if family == "channel-bits-events-v1" and e.get("is_anonymous"):
        return None  # PubSub's v1 topic never carried anonymous cheers
    data: dict[str, Any] = {
        "bits_used": e.get("bits"),
        "channel_id": e.get("broadcaster_user_id"),
        "channel_name": e.get("broadcaster_user_login"),
        "chat_message": e.get("message"),
        "context": "cheer",
        "is_anonymous": bool(e.get("is_anonymous")),
        "time": meta["message_timestamp"],
        "badge_entitlement": None,
    }
    if e.get("user_id") is not None:
        data["user_id"] = e["user_id"]
        data["user_name"] = e.get("user_login")
    if family == "channel-bits-events-v1":
        del data["is_anonymous"]
    version = "1.0" if family == "channel-bits-events-v2" else None
    message = {"data": data, "message_type": "bits_event", "message_id": meta["message_id"]}
    if version:
        message["version"] = version
    return message


def _bits_badge(e: dict[str, Any], meta: dict[str, Any]) -> Optional[dict[str, Any]]:
    if e.get("notice_type") != "bits_badge_tier":
        return None
    source = e.get("source_broadcaster_user_id")
    if source is not None and source != e.get("broadcaster_user_id"):
        return None  # a shared-chat copy from another channel
    tier = (e.get("bits_badge_tier") or {}).get("tier")
    return {
        "user_id": e.get("chatter_user_id"),
        "user_name": e.get("chatter_user_login"),
        "channel_id": e.get("broadcaster_user_id"),
        "channel_name": e.get("broadcaster_user_login"),
        "badge_tier": tier,
        "chat_message": (e.get("message") or {}).get("text", ""),
        "time": meta["message_timestamp"],
    }


def _reward(r: dict[str, Any], channel: Any) -> dict[str, Any]:
    """A PubSub reward object from an EventSub reward (definition events)."""
    out: dict[str, Any] = {
        key: r.get(key)
        for key in (
            "id", "title", "prompt", "cost", "is_enabled", "is_paused", "is_in_stock",
            "is_user_input_required", "should_redemptions_skip_request_queue",
            "background_color", "image", "default_image", "cooldown_expires_at",
            "redemptions_redeemed_current_stream",
        )
        if key in r
    }  # fmt: skip
    out["channel_id"] = channel
    for name, inner in (
        ("max_per_stream", "max_per_stream"),
        ("max_per_user_per_stream", "max_per_user_per_stream"),
        ("global_cooldown", "global_cooldown_seconds"),
    ):
        value = r.get(name)
        if isinstance(value, dict):
            source = "seconds" if name == "global_cooldown" else "value"
            out[name] = {"is_enabled": value.get("is_enabled"), inner: value.get(source)}
    return out


def _redemption(kind: str, e: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    reward = e.get("reward") or {}
    redemption: dict[str, Any] = {
        "id": e.get("id"),
        "user": {
            "id": e.get("user_id"),
            "login": e.get("user_login"),
            "display_name": e.get("user_name"),
        },
        "channel_id": e.get("broadcaster_user_id"),
        "redeemed_at": e.get("redeemed_at"),
        "reward": {
            "id": reward.get("id"),
            "channel_id": e.get("broadcaster_user_id"),
            "title": reward.get("title"),
            "prompt": reward.get("prompt"),
            "cost": reward.get("cost"),
        },
        "status": _upper(e.get("status")),
    }
    if e.get("user_input"):
        redemption["user_input"] = e["user_input"]
    return {
        "type": kind,
        "data": {"timestamp": e.get("redeemed_at"), "redemption": redemption},
    }


def _reward_updated(e: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "custom-reward-updated",
        "data": {
            "timestamp": meta["message_timestamp"],
            "updated_reward": _reward(e, e.get("broadcaster_user_id")),
        },
    }


def _channel(e: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel_id": e.get("broadcaster_user_id"),
        "channel_name": e.get("broadcaster_user_login"),
        "time": meta["message_timestamp"],
    }


def _subscribe(e: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    out = _channel(e, meta)
    out.update(sub_plan=e.get("tier"), is_gift=bool(e.get("is_gift")))
    out["sub_message"] = {"message": "", "emotes": None}
    if e.get("is_gift"):
        # EventSub does not say who gifted it: the gifter stays unknown.
        out.update(
            context="subgift",
            recipient_id=e.get("user_id"),
            recipient_user_name=e.get("user_login"),
            recipient_display_name=e.get("user_name"),
        )
    else:
        out.update(
            context="sub",
            user_id=e.get("user_id"),
            user_name=e.get("user_login"),
            display_name=e.get("user_name"),
        )
    return out


def _resub(e: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    out = _channel(e, meta)
    message = e.get("message") or {}
    emotes = [
        {"start": m.get("begin"), "end": m.get("end"), "id": m.get("id")}
        for m in message.get("emotes") or ()
        if isinstance(m, dict)
    ]
    out.update(
        context="resub",
        user_id=e.get("user_id"),
        user_name=e.get("user_login"),
        display_name=e.get("user_name"),
        sub_plan=e.get("tier"),
        cumulative_months=e.get("cumulative_months"),
        multi_month_duration=e.get("duration_months"),
        is_gift=False,
        sub_message={"message": message.get("text", ""), "emotes": emotes or None},
    )
    if e.get("streak_months") is not None:
        out["streak_months"] = e["streak_months"]
    return out


_TERM_ACTIONS = {
    "add_blocked_term": "add_blocked_term",
    "add_permitted_term": "add_permitted_term",
    "remove_blocked_term": "delete_blocked_term",
    "remove_permitted_term": "delete_permitted_term",
}
_CHANNEL_ACTIONS = {
    "clear", "emoteonly", "emoteonlyoff", "subscribers", "subscribersoff", "followersoff",
    "slowoff", "followers", "slow", "uniquechat", "uniquechatoff",
}  # fmt: skip
_RENAMED = {"uniquechat": "r9kbeta", "uniquechatoff": "r9kbetaoff"}


def _moderate(e: dict[str, Any], meta: dict[str, Any]) -> Optional[list[dict[str, Any]]]:
    action = e.get("action")
    if not isinstance(action, str):
        return None
    stamp = meta["message_timestamp"]
    mod_id, mod_login = e.get("moderator_user_id"), e.get("moderator_user_login")
    channel = e.get("broadcaster_user_id")
    found = e.get(action)
    payload: dict[str, Any] = found if isinstance(found, dict) else {}
    if action in _TERM_ACTIONS:
        terms = e.get("automod_terms") or {}
        return [
            {
                "type": "channel_terms_action",
                "data": {
                    "type": _TERM_ACTIONS[action],
                    "id": "",
                    "text": term,
                    "requester_id": mod_id,
                    "requester_login": mod_login,
                    "channel_id": channel,
                    "expires_at": "",
                    "updated_at": stamp,
                    "from_automod": bool(terms.get("from_automod")),
                },
            }
            for term in terms.get("terms") or ()
        ]
    if action in ("approve_unban_request", "deny_unban_request"):
        request = e.get("unban_request") or {}
        return [
            {
                "type": action,
                "data": {
                    "moderation_action": action.upper(),
                    "created_by_id": mod_id,
                    "created_by_login": mod_login,
                    "moderator_message": request.get("moderator_message", ""),
                    "target_user_id": request.get("user_id"),
                    "target_user_login": request.get("user_login"),
                },
            }
        ]
    if action.startswith("shared_chat_"):
        return None  # taken in another channel of a shared chat: no PubSub form
    target_id, target_login = payload.get("user_id", ""), payload.get("user_login", "")
    if action in ("vip", "mod", "unmod"):
        data = {
            "channel_id": channel,
            "target_user_id": target_id,
            "target_user_login": target_login,
            "created_by_user_id": mod_id,
            "created_by": mod_login,
        }
        if action == "vip":
            return [{"type": "vip_added", "data": data}]
        data["moderation_action"] = action
        kind = "moderator_added" if action == "mod" else "moderator_removed"
        return [{"type": kind, "data": data}]
    args: list[str] = []
    if action == "ban":
        args = [target_login] + ([payload["reason"]] if payload.get("reason") else [])
    elif action == "timeout":
        expires = payload.get("expires_at")
        seconds = max(0, _epoch(expires) - _epoch(stamp)) if isinstance(expires, str) else 0
        args = [target_login, str(seconds), payload.get("reason") or ""]
    elif action == "delete":
        args = [target_login, payload.get("message_body", ""), payload.get("message_id", "")]
    elif action == "warn":
        args = [target_login, payload.get("reason") or "", *(payload.get("chat_rules_cited") or ())]
    elif action == "followers":
        args = [str(payload.get("follow_duration_minutes", ""))]
    elif action == "slow":
        args = [str(payload.get("wait_time_seconds", ""))]
    elif action not in _CHANNEL_ACTIONS:
        args = [target_login]
    data = {
        "type": "chat_channel_moderation"
        if action in _CHANNEL_ACTIONS
        else ("chat_login_moderation"),
        "moderation_action": _RENAMED.get(action, action),
        "args": args,
        "created_by": mod_login,
        "created_by_user_id": mod_id,
        "created_at": stamp,
        "msg_id": payload.get("message_id", "") if action == "delete" else "",
        "target_user_id": target_id,
        "target_user_login": target_login,
        "from_automod": False,
    }
    return [{"type": "moderation_action", "data": data}]


def _whisper(e: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    sender, recipient = e.get("from_user_id"), e.get("to_user_id")
    ids = sorted((str(sender), str(recipient)), key=lambda v: int(v) if v.isdigit() else 0)
    obj = {
        "message_id": e.get("whisper_id"),
        "thread_id": f"{ids[0]}_{ids[1]}",
        "body": (e.get("whisper") or {}).get("text", ""),
        "sent_ts": _epoch(meta["message_timestamp"]),
        "from_id": _int(sender),
        "tags": {
            "login": e.get("from_user_login"),
            "display_name": e.get("from_user_name"),
            "color": "",
            "emotes": [],
            "badges": [],
        },
        "recipient": {
            "id": _int(recipient),
            "username": e.get("to_user_login"),
            "display_name": e.get("to_user_name"),
            "color": "",
        },
    }
    return {"type": "whisper_received", "data": json.dumps(obj), "data_object": obj}


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.isdigit() else value


_AUTOMOD_STATUS = {"approved": "ALLOWED", "denied": "DENIED", "expired": "EXPIRED"}


def _automod(e: dict[str, Any], meta: dict[str, Any], held: bool) -> dict[str, Any]:
    message = e.get("message") or {}
    automod = e.get("automod") or {}
    category = automod.get("category", e.get("category"))
    level = automod.get("level", e.get("level"))
    data: dict[str, Any] = {
        "message": {
            "id": e.get("message_id"),
            "content": {
                "text": message.get("text", ""),
                "fragments": [{"text": f.get("text", "")} for f in message.get("fragments") or ()],
            },
            "sender": {
                "user_id": e.get("user_id"),
                "login": e.get("user_login"),
                "display_name": e.get("user_name"),
            },
            "sent_at": e.get("held_at"),
        },
        "content_classification": {"category": category, "level": level},
        "status": "PENDING"
        if held
        else _AUTOMOD_STATUS.get(e.get("status") or "", _upper(e.get("status"))),
        "reason_code": "",
        "resolver_id": "" if held else e.get("moderator_user_id", ""),
        "resolver_login": "" if held else e.get("moderator_user_login", ""),
    }
    return {"type": "automod_caught_message", "data": data}


def _user_message(e: dict[str, Any], held: bool) -> dict[str, Any]:
    status = (
        "PENDING" if held else _AUTOMOD_STATUS.get(e.get("status") or "", _upper(e.get("status")))
    )
    return {
        "type": "automod_caught_message",
        "data": {"message_id": e.get("message_id"), "status": status},
    }


_TREATMENT = {
    "none": "NO_TREATMENT",
    "active_monitoring": "ACTIVE_MONITORING",
    "restricted": "RESTRICTED",
}
_EVALUATION = {"unknown": "", "possible": "POSSIBLE_EVADER", "likely": "LIKELY_EVADER"}
_TYPES = {"ban_evader": "BAN_EVADER"}


def _low_trust_update(e: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "low_trust_user_treatment_update",
        "data": {
            "low_trust_id": f"{e.get('broadcaster_user_id')}.{e.get('user_id')}",
            "channel_id": e.get("broadcaster_user_id"),
            "updated_by": {
                "id": e.get("moderator_user_id"),
                "login": e.get("moderator_user_login"),
                "display_name": e.get("moderator_user_name"),
            },
            "updated_at": meta["message_timestamp"],
            "target_user_id": e.get("user_id"),
            "target_user": e.get("user_login"),
            "treatment": _TREATMENT.get(
                e.get("low_trust_status") or "", _upper(e.get("low_trust_status"))
            ),
            "types": [],
            "ban_evasion_evaluation": "",
            "evaluated_at": "0001-01-01T00:00:00Z",
        },
    }


def _low_trust_message(e: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    message = e.get("message") or {}
    status = e.get("low_trust_status")
    return {
        "type": "low_trust_user_new_message",
        "data": {
            "low_trust_user": {
                "id": e.get("user_id"),
                "low_trust_id": f"{e.get('broadcaster_user_id')}.{e.get('user_id')}",
                "channel_id": e.get("broadcaster_user_id"),
                "sender": {
                    "user_id": e.get("user_id"),
                    "login": e.get("user_login"),
                    "display_name": e.get("user_name"),
                },
                "treatment": _TREATMENT.get(status or "", _upper(status)),
                "types": [_TYPES.get(t, _upper(t)) for t in e.get("types") or ()],
                "ban_evasion_evaluation": _EVALUATION.get(
                    e.get("ban_evasion_evaluation") or "",
                    _upper(e.get("ban_evasion_evaluation")),
                ),
            },
            "message_content": {
                "text": message.get("text", ""),
                "fragments": [{"text": f.get("text", "")} for f in message.get("fragments") or ()],
            },
            "message_id": message.get("message_id"),
            "sent_at": meta["message_timestamp"],
        },
    }


_Translator = Callable[[str, dict[str, Any], dict[str, Any]], Any]

_BY_TYPE: dict[str, _Translator] = {
    "channel.cheer": _cheer,
    "channel.chat.notification": lambda f, e, m: _bits_badge(e, m),
    "channel.channel_points_custom_reward_redemption.add": lambda f, e, m: _redemption(
        "reward-redeemed", e, m
    ),
    "channel.channel_points_custom_reward_redemption.update": lambda f, e, m: _redemption(
        "redemption-status-update", e, m
    ),
    "channel.channel_points_custom_reward.update": lambda f, e, m: _reward_updated(e, m),
    "channel.subscribe": lambda f, e, m: _subscribe(e, m),
    "channel.subscription.message": lambda f, e, m: _resub(e, m),
    "channel.moderate": lambda f, e, m: _moderate(e, m),
    "user.whisper.message": lambda f, e, m: _whisper(e, m),
    "automod.message.hold": lambda f, e, m: _automod(e, m, held=True),
    "automod.message.update": lambda f, e, m: _automod(e, m, held=False),
    "channel.chat.user_message_hold": lambda f, e, m: _user_message(e, held=True),
    "channel.chat.user_message_update": lambda f, e, m: _user_message(e, held=False),
    "channel.suspicious_user.update": lambda f, e, m: _low_trust_update(e, m),
    "channel.suspicious_user.message": lambda f, e, m: _low_trust_message(e, m),
}


def translate(key: str, frame: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The PubSub messages one EventSub ``notification`` frame stands for on topic ``key``.

    Usually one; none when the event has no PubSub form (a chat notification of another
    kind, an anonymous cheer on the v1 topic, a shared-chat action); several for a
    ``channel.moderate`` term action with several terms (PubSub sent one per term).

    Raises
    ------
    KeyError, TypeError, ValueError
        The frame is not a well-formed notification; the caller reports it.
    """
    meta = frame["metadata"]
    event = frame["payload"]["event"]
    if not isinstance(event, dict):
        raise TypeError("the notification's event is not an object")
    translator = _BY_TYPE.get(meta["subscription_type"])
    if translator is None:
        return []
    out = translator(key.split(".", 1)[0], event, meta)
    if out is None:
        return []
    return out if isinstance(out, list) else [out]
