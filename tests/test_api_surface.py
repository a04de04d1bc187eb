"""The public API: the reference's names exist, every public name is documented."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import twitchio_pubsub as tp

DOCS = Path(__file__).resolve().parents[1] / "docs"

REFERENCE_NAMES = [
    "Topic",
    "PubSubPool",
    "PubSubWebsocket",
    "bits",
    "bits_badge",
    "channel_points",
    "channel_subscriptions",
    "moderation_user_action",
    "whispers",
    "PubSubChatMessage",
    "PubSubBadgeEntitlement",
    "PubSubMessage",
    "PubSubBitsMessage",
    "PubSubBitsBadgeMessage",
    "PubSubChannelPointsMessage",
    "PubSubModerationAction",
    "PubSubModerationActionBanRequest",
    "PubSubModerationActionChannelTerms",
    "PubSubModerationActionModeratorAdd",
    "PubSubChannelSubscribe",
    "PoolError",
    "PoolFull",
    "PubSubError",
]


def test_reference_names_are_importable_from_the_package() -> None:
    for name in REFERENCE_NAMES:
        assert hasattr(tp, name), name
        assert name in tp.__all__, name


def test_reference_pool_and_topic_members() -> None:
    for member in ("auth_fail_hook", "reconnect_hook", "subscribe_topics", "unsubscribe_topics"):
        assert inspect.iscoroutinefunction(getattr(tp.PubSubPool, member)), member
    sig = inspect.signature(tp.PubSubPool)
    for param, default in (("max_pool_size", 10), ("max_connection_topics", 50), ("mode", "group")):
        assert sig.parameters[param].default == default
        assert sig.parameters[param].kind is inspect.Parameter.KEYWORD_ONLY
    assert tp.PubSubWebsocket.ENDPOINT == "wss://pubsub-edge.twitch.tv"
    topic = tp.bits("t")[1]
    assert (topic.token, topic.args, topic.present) == ("t", [1], "channel-bits-events-v2.1")


def _modules() -> list[object]:
    mods = [tp]
    for info in pkgutil.walk_packages(tp.__path__, tp.__name__ + "."):
        mods.append(importlib.import_module(info.name))
    return mods


def test_every_module_has_all_and_every_public_name_a_docstring() -> None:
    missing = []
    for module in _modules():
        names = getattr(module, "__all__", None)
        assert names is not None, f"{module.__name__} has no __all__"
        assert module.__doc__, f"{module.__name__} has no docstring"
        for name in names:
            obj = getattr(module, name)
            if name in (
                "__version__",
                "KINDS",
                "ERRORS",
                "DOCUMENTED_TOPIC_PATTERNS",
            ) or name.startswith("ERR_"):
                continue
            if inspect.ismodule(obj) or getattr(obj, "__origin__", None) is not None:
                continue  # modules and type aliases (documented with #: comments)
            if not inspect.getdoc(obj):
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") or not (
                        inspect.isfunction(value) or isinstance(value, property)
                    ):
                        continue
                    if not inspect.getdoc(value):
                        missing.append(f"{module.__name__}.{name}.{attr}")
    assert missing == []


def test_docs_list_exactly_the_public_names() -> None:
    text = (DOCS / "api.rst").read_text()
    top = text.split(".. currentmodule:: twitchio_pubsub.emulator")[0]
    documented = set(re.findall(r"^\.\. auto(?:class|function|exception):: (\w+)$", top, re.M))
    public = set(tp.__all__) - {"__version__"}
    assert documented == public


def test_docstrings_are_numpy_style() -> None:
    doc = inspect.getdoc(tp.PubSubPool.subscribe_topics) or ""
    assert "Parameters\n----------" in doc and "Raises\n------" in doc
    assert "Attributes\n----------" in (inspect.getdoc(tp.PubSubBitsMessage) or "")
