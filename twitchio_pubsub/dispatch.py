"""The one place that talks to twitchio's event system."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Union

from .models.base import PubSubErrorEvent, PubSubMessage, parse_message

if TYPE_CHECKING:
    from twitchio import Client

__all__ = ("Dispatcher",)

log = logging.getLogger(__name__)


class Dispatcher:
    """Turns MESSAGE payloads into models and hands them to ``client.run_event``.

    Every message is dispatched as its topic's event (``pubsub_bits``, ...) with its
    model, and also as ``pubsub_message`` with a plain :class:`PubSubMessage` (full topic,
    payload); a payload that cannot be modelled becomes a ``pubsub_error``.

    Nothing raised inside twitchio escapes from here: ``run_event`` runs ``wait_for``
    predicates synchronously, so user code (or a timed-out ``wait_for``) can raise in
    it. Such errors are logged with the event's name and the caller carries on.
    """

    __slots__ = ("_class_handler", "_client", "_run_event")

    def __init__(self, client: Client) -> None:
        self._client = client
        self._run_event = client.run_event
        # A subclass method ``event_pubsub_message`` cannot appear later; look once.
        self._class_handler = getattr(type(client), "event_pubsub_message", None) is not None

    def message(self, topic: str, text: Union[str, dict[str, Any]]) -> None:
        """Model one payload (its text, or the decoded dict) and dispatch it; never raises."""
        try:
            event, model = parse_message(self._client, topic, text)
        except Exception as exc:
            log.warning("could not model a message on %s: %s: %s", topic, type(exc).__name__, exc)
            self.error(
                PubSubErrorEvent(
                    "payload could not be modelled",
                    topic=topic,
                    raw=text if isinstance(text, str) else json.dumps(text, default=repr),
                    exception=exc,
                    type="PAYLOAD",
                )
            )
            return
        run = self._run_event
        try:
            if event != "pubsub_message":
                run(event, model)
                if not self._class_handler and not self._listened("pubsub_message"):
                    return  # nobody listens: skip twitchio's per-call overhead
                # As twitchio.ext.pubsub does, pubsub_message gets a plain message
                # whose ``topic`` is the full topic.
                model = PubSubMessage._generic_copy(model)
            event = "pubsub_message"
            run(event, model)
        except Exception:
            log.exception("twitchio's run_event raised while dispatching %s", event)

    def _listened(self, name: str) -> bool:
        """Whether any handler, listener or ``wait_for`` would receive ``name``."""
        client = self._client
        handler = f"event_{name}"
        try:
            if handler in client._events or handler in vars(client):
                return True
            waiting = client._waiting
            return bool(waiting) and any(entry[0] == name for entry in waiting)
        except (AttributeError, TypeError):
            return True  # an unexpected client: always dispatch

    def error(self, event: PubSubErrorEvent) -> None:
        """Dispatch ``pubsub_error``; never raises."""
        self.event("pubsub_error", event)

    def event(self, name: str, *args: object) -> None:
        """Dispatch any other event (``pubsub_pong``, ...); never raises."""
        try:
            self._run_event(name, *args)
        except Exception:
            log.exception("twitchio's run_event raised while dispatching %s", name)
