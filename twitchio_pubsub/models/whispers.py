"""Whispers: ``whispers.<user_id>`` (double-encoded payloads)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from twitchio import PartialUser

from .base import PubSubMessage, list_of, make_user, register, to_datetime, to_dict, to_int, to_str

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("PubSubWhisperMessage",)


def _whisper_object(data: dict[str, Any]) -> dict[str, Any]:
    """Find the whisper inside the payload: ``data`` is itself JSON text on the wire."""
    inner = data.get("data")
    if isinstance(inner, str):
        try:
            decoded = json.loads(inner)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            return decoded
    if isinstance(data.get("data_object"), dict):
        return data["data_object"]  # type: ignore[no-any-return]
    if "body" in data or "thread_id" in data:
        # The 2016 documentation put the fields at the top level with data={"id": ...}.
        merged = {k: v for k, v in data.items() if k != "data"}
        merged.setdefault("id", to_dict(inner).get("id"))
        return merged
    return to_dict(inner)


class PubSubWhisperMessage(PubSubMessage):
    """A whisper received (or sent) by the listening user (``pubsub_whisper``).

    Attributes
    ----------
    id: Optional[:class:`int`]
        The whisper's numeric id within its thread.
    message_id: Optional[:class:`str`]
        The whisper's unique id.
    thread_id: :class:`str`
        The conversation id, ``<lower user id>_<higher user id>``.
    content: :class:`str`
        The text of the whisper.
    user: Optional[:class:`twitchio.PartialUser`]
        The sender, with their login as ``name``.
    display_name: Optional[:class:`str`]
        The sender's display name.
    recipient: Optional[:class:`twitchio.PartialUser`]
        The receiver, with their login as ``name``.
    timestamp: Optional[:class:`datetime.datetime`]
        When it was sent.
    emotes: List[:class:`dict`]
        Emotes in :attr:`content`: ``{"emote_id": str, "start": int, "end": int}``.
    badges: List[:class:`dict`]
        The sender's badges: ``{"id": str, "version": str}``.
    color: Optional[:class:`str`]
        The sender's chat colour, e.g. ``#2E8B57``.
    """

    __slots__ = (
        "badges",
        "color",
        "content",
        "display_name",
        "emotes",
        "id",
        "message_id",
        "recipient",
        "thread_id",
        "timestamp",
        "user",
    )

    def __init__(self, client: Client, topic: str, data: dict[str, Any]) -> None:
        super().__init__(client, topic, data)
        whisper = _whisper_object(data)
        tags = to_dict(whisper.get("tags"))
        recipient = to_dict(whisper.get("recipient"))
        self.id: Optional[int] = to_int(whisper.get("id"))
        self.message_id: Optional[str] = to_str(whisper.get("message_id"))
        self.thread_id: str = to_str(whisper.get("thread_id")) or ""
        self.content: str = to_str(whisper.get("body")) or ""
        self.user: Optional[PartialUser] = make_user(
            client, whisper.get("from_id"), tags.get("login")
        )
        self.display_name: Optional[str] = to_str(tags.get("display_name"))
        self.recipient: Optional[PartialUser] = make_user(
            client, recipient.get("id"), recipient.get("username")
        )
        self.timestamp: Optional[datetime] = to_datetime(whisper.get("sent_ts"))
        emotes = tags.get("emotes")
        self.emotes: list[dict[str, Any]] = list_of(emotes, dict)
        badges = tags.get("badges")
        self.badges: list[dict[str, Any]] = list_of(badges, dict)
        self.color: Optional[str] = to_str(tags.get("color")) or None

    def __repr__(self) -> str:
        who = self.user.name if self.user else None
        return f"<PubSubWhisperMessage from={who!r} content={self.content!r}>"


@register("whispers", "pubsub_whisper")
def _parse(client: Client, topic: str, data: dict[str, Any]) -> PubSubMessage:
    if data.get("type") in ("whisper_received", "whisper_sent"):
        return PubSubWhisperMessage(client, topic, data)
    return PubSubMessage(client, topic, data)
