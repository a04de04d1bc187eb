"""EventSub facts shared by the EventSub emulator and the EventSub bridge."""

from __future__ import annotations

from .types import SUBSCRIPTION_TYPES, SubscriptionType, missing_scopes, subscription_type

__all__ = ("SUBSCRIPTION_TYPES", "SubscriptionType", "missing_scopes", "subscription_type")
