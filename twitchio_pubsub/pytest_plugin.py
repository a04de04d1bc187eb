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
``eventsub_token``
    A token registered on ``eventsub_emulator`` for user :data:`EVENTSUB_USER_ID`
    (``1337``) with every scope any topic family needs: the token for topics of that
    channel (or of that moderator).
``eventsub_pool``
    A :class:`~twitchio_pubsub.PubSubPool` with ``transport="eventsub"`` for
    ``pubsub_client``, aimed at ``eventsub_emulator``, closed after the test.

pytest-asyncio warns (``PytestDeprecationWarning``) in a project that does not set its
``asyncio_default_fixture_loop_scope``; these fixtures are function-scoped, so one line
in the project's pytest configuration silences it::

    [tool.pytest.ini_options]
    asyncio_default_fixture_loop_scope = "function"

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

__all__ = (
    "EVENTSUB_USER_ID",
    "eventsub_emulator",
    "eventsub_pool",
    "eventsub_token",
    "pubsub_client",
    "pubsub_emulator",
    "pubsub_pool",
)

#: The user the ``eventsub_token`` fixture's token belongs to.
EVENTSUB_USER_ID = "1337"


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

    @pytest_asyncio.fixture
    async def eventsub_token(eventsub_emulator: Any) -> str:
        """A token of user 1337 on ``eventsub_emulator`` with every scope topics need."""
        from .eventsub.mapping import FAMILIES, scopes_for

        token = "pytest-eventsub-token"
        eventsub_emulator.add_token(token, EVENTSUB_USER_ID, scopes=scopes_for(*FAMILIES))
        return token

    @pytest_asyncio.fixture
    async def eventsub_pool(pubsub_client: Any, eventsub_emulator: Any) -> AsyncIterator[Any]:
        """An EventSub pool for ``pubsub_client`` aimed at ``eventsub_emulator``."""
        from .pool import PubSubPool

        pool = PubSubPool(pubsub_client, transport="eventsub", **eventsub_emulator.urls)
        try:
            yield pool
        finally:
            await pool.close()

else:  # pragma: no cover - exercised only without pytest-asyncio
    pubsub_emulator = pytest.fixture(_missing, name="pubsub_emulator")
    eventsub_emulator = pytest.fixture(_missing, name="eventsub_emulator")
    pubsub_client = pytest.fixture(_missing, name="pubsub_client")
    pubsub_pool = pytest.fixture(_missing, name="pubsub_pool")
    eventsub_token = pytest.fixture(_missing, name="eventsub_token")
    eventsub_pool = pytest.fixture(_missing, name="eventsub_pool")
