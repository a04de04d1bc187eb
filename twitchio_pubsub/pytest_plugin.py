"""A pytest plugin with ready fixtures for testing bots against the PubSub emulator.

Installed with the package (a ``pytest11`` entry point), so any project that has
``twitchio-pubsub`` and ``pytest-asyncio`` installed can use these fixtures with no
configuration, in pytest-asyncio's default *strict* mode:

``pubsub_emulator``
    A running :class:`~twitchio_pubsub.emulator.PubSubEmulator` on a free loopback port,
    closed after the test.
``pubsub_client``
    A :class:`twitchio.Client` made inside the test's event loop (so its handlers run).
``pubsub_pool``
    A :class:`~twitchio_pubsub.PubSubPool` for ``pubsub_client``, aimed at
    ``pubsub_emulator``, closed after the test.
``eventsub_emulator``
    A running :class:`~twitchio_pubsub.emulator.EventSubEmulator` on a free loopback
    port (WebSocket, Helix and token validation), closed after the test.

Example::

    import pytest
    import twitchio_pubsub as pubsub

    @pytest.mark.asyncio
    async def test_cheer(pubsub_client, pubsub_pool, pubsub_emulator):
        seen = []
        pubsub_client.add_event(lambda e: seen.append(e), "event_pubsub_bits")
        ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

__all__ = ("eventsub_emulator", "pubsub_client", "pubsub_emulator", "pubsub_pool")

try:
    import pytest_asyncio

    _HAVE_ASYNCIO_PLUGIN = True
except ImportError:  # pragma: no cover - exercised only without pytest-asyncio
    _HAVE_ASYNCIO_PLUGIN = False


def _missing(*_: Any) -> Any:  # pragma: no cover - exercised only without pytest-asyncio
    pytest.fail(
        "the twitchio_pubsub fixtures need pytest-asyncio: pip install pytest-asyncio",
        pytrace=False,
    )


if _HAVE_ASYNCIO_PLUGIN:

    @pytest_asyncio.fixture
    async def pubsub_emulator() -> AsyncIterator[Any]:
        """A running PubSub emulator on a free loopback port."""
        from .emulator import PubSubEmulator

        async with PubSubEmulator() as emulator:
            yield emulator

    @pytest_asyncio.fixture
    async def eventsub_emulator() -> AsyncIterator[Any]:
        """A running EventSub emulator on a free loopback port."""
        from .emulator import EventSubEmulator

        async with EventSubEmulator() as emulator:
            yield emulator

    @pytest_asyncio.fixture
    async def pubsub_client() -> Any:
        """A twitchio Client created inside the running event loop."""
        import twitchio

        return twitchio.Client(token="pytest-bot-token")

    @pytest_asyncio.fixture
    async def pubsub_pool(pubsub_client: Any, pubsub_emulator: Any) -> AsyncIterator[Any]:
        """A pool for ``pubsub_client`` aimed at ``pubsub_emulator``, closed afterwards."""
        from .pool import PubSubPool

        pool = PubSubPool(pubsub_client, endpoint=pubsub_emulator.url)
        try:
            yield pool
        finally:
            await pool.close()

else:  # pragma: no cover - exercised only without pytest-asyncio
    pubsub_emulator = pytest.fixture(_missing, name="pubsub_emulator")
    eventsub_emulator = pytest.fixture(_missing, name="eventsub_emulator")
    pubsub_client = pytest.fixture(_missing, name="pubsub_client")
    pubsub_pool = pytest.fixture(_missing, name="pubsub_pool")
