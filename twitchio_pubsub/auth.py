"""Getting the tokens EventSub needs: the device code flow, refreshing, app tokens.

Migrating a PubSub bot to EventSub usually needs new user tokens (EventSub asks for
scopes PubSub did not, see :func:`~twitchio_pubsub.eventsub.mapping.scopes_for`). These
coroutines get them from Twitch's OAuth server (``https://id.twitch.tv/oauth2``) or from
the EventSub emulator, which speaks the same flows offline::

    code = await auth.start_device_flow(CLIENT_ID, auth.scopes_for_topics("bits"))
    print("open", code.verification_uri, "and enter", code.user_code)
    token = await auth.finish_device_flow(CLIENT_ID, code)
    ...
    token = await auth.refresh(CLIENT_ID, token.refresh_token)  # from auth_fail_hook, say

Tokens never appear in a ``repr``, a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Iterable
from typing import Any, Callable, Optional, Union

import aiohttp

from .errors import PubSubError
from .eventsub.bridge import DEFAULT_ID_URL
from .eventsub.mapping import scopes_for
from .topics import Topic

__all__ = (
    "AppToken",
    "AuthError",
    "DeviceCode",
    "UserToken",
    "app_token",
    "device_flow",
    "finish_device_flow",
    "refresh",
    "scopes_for_topics",
    "start_device_flow",
)

_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: How much longer to wait between polls after ``slow_down`` (RFC 8628).
_SLOW_DOWN = 5.0


class AuthError(PubSubError):
    """The OAuth server refused (or could not answer) a token request.

    Attributes
    ----------
    status: :class:`int`
        The HTTP status (``0`` when the server could not be reached).
    reason: :class:`str`
        The server's message (``invalid device code``, ``Invalid refresh token``...).
    """

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class DeviceCode:
    """A device code flow under way: show :attr:`verification_uri` and :attr:`user_code`.

    Attributes
    ----------
    device_code: :class:`str`
        The secret that polls for the token (not shown in ``repr``).
    user_code: :class:`str`
    verification_uri: :class:`str`
    expires_in: :class:`float`
        Seconds the code is good for.
    interval: :class:`float`
        Seconds to wait between polls.
    scopes: Tuple[:class:`str`, ...]
        The scopes asked for.
    started_at: :class:`float`
        The event loop's time when the code was issued (its lifetime counts from there).
    """

    device_code: str = dataclasses.field(repr=False)
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float
    scopes: tuple[str, ...]
    started_at: float = 0.0


@dataclasses.dataclass(frozen=True)
class UserToken:
    """A user access token and what comes with it (the tokens are not shown in ``repr``).

    Attributes
    ----------
    access_token: :class:`str`
    refresh_token: :class:`str`
        Single-use for public clients: keep the new one each refresh returns.
    expires_in: :class:`int`
        Seconds it lives.
    scopes: Tuple[:class:`str`, ...]
    """

    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    expires_in: int
    scopes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class AppToken:
    """An app access token (client credentials); not shown in ``repr``.

    Attributes
    ----------
    access_token: :class:`str`
    expires_in: :class:`int`
    """

    access_token: str = dataclasses.field(repr=False)
    expires_in: int


def scopes_for_topics(*topics: str | Topic) -> list[str]:
    """The scopes a token needs for these topics on EventSub (one of each any-of group).

    Parameters
    ----------
    *topics: Union[:class:`str`, :class:`~twitchio_pubsub.Topic`]
        Topic factory names (``"bits"``, ``"channel_points"``...) or topics.

    Raises
    ------
    ValueError
        A name is not a topic factory, or EventSub has nothing for that topic.
    """
    from . import topics as factories

    names = [name for name in factories.__all__ if name[0].islower()]  # the factories
    families = []
    for item in topics:
        if isinstance(item, Topic):
            families.append(item.family)
        elif item in names:
            families.append(getattr(factories, item)("x").family)
        else:
            raise ValueError(f"unknown topic {item!r}; one of: " + ", ".join(names))
    return scopes_for(*families)


async def _post(
    url: str, form: dict[str, str], session: Optional[aiohttp.ClientSession]
) -> tuple[int, Any]:
    own = session is None
    http = session or aiohttp.ClientSession()
    try:
        async with http.post(url, data=form, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            return resp.status, body
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise AuthError(f"cannot reach {url}: {type(exc).__name__}") from None
    finally:
        if own:
            await http.close()


def _failure(url: str, status: int, body: Any) -> AuthError:
    reason = str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""
    return AuthError(f"{url} answered {status}: {reason or 'no reason given'}", status, reason)


def _field(body: Any, name: str, kind: Union[type, tuple[type, ...]], url: str) -> Any:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise AuthError(f"{url} answered without a usable {name!r}", 502)
    return value


async def start_device_flow(
    client_id: str,
    scopes: Iterable[str],
    *,
    id_url: str = DEFAULT_ID_URL,
    session: Optional[aiohttp.ClientSession] = None,
) -> DeviceCode:
    """|coro|

    Start the device code flow: the user then opens the code's ``verification_uri``.

    Parameters
    ----------
    client_id: :class:`str`
        Your app's client id (a public client needs no secret).
    scopes: Iterable[:class:`str`]
        The scopes to ask for (see :func:`scopes_for_topics`).
    id_url: :class:`str`
        The OAuth base, ``https://id.twitch.tv/oauth2`` or an emulator's ``id_url``.
    session: Optional[:class:`aiohttp.ClientSession`]
        A session to use; a short-lived one otherwise.

    Raises
    ------
    AuthError
        The server refused (an unknown client id, say) or could not be reached.
    """
    wanted = tuple(dict.fromkeys(scopes))
    url = f"{id_url.rstrip('/')}/device"
    started = asyncio.get_running_loop().time()
    status, body = await _post(url, {"client_id": client_id, "scopes": " ".join(wanted)}, session)
    if status != 200:
        raise _failure(url, status, body)
    return DeviceCode(
        device_code=_field(body, "device_code", str, url),
        user_code=_field(body, "user_code", str, url),
        verification_uri=_field(body, "verification_uri", str, url),
        expires_in=float(_field(body, "expires_in", (int, float), url)),
        interval=float(_field(body, "interval", (int, float), url)),
        scopes=wanted,
        started_at=started,
    )


async def finish_device_flow(
    client_id: str,
    code: DeviceCode,
    *,
    id_url: str = DEFAULT_ID_URL,
    session: Optional[aiohttp.ClientSession] = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> UserToken:
    """|coro|

    Poll until the user approved ``code`` (every ``code.interval`` seconds; 5 s more after
    each ``slow_down``) and return the token.

    Raises
    ------
    AuthError
        The code expired before it was approved, or the server refused it
        (``invalid device code``: unknown, expired or already used).
    """
    url = f"{id_url.rstrip('/')}/token"
    loop = asyncio.get_running_loop()
    deadline = (code.started_at or loop.time()) + code.expires_in
    interval = code.interval
    expired = AuthError(
        f"the device code expired before it was approved ({code.expires_in:g} s)", 400, "expired"
    )
    form = {
        "client_id": client_id,
        "device_code": code.device_code,
        "grant_type": _DEVICE_GRANT,
        "scopes": " ".join(code.scopes),
    }
    while True:
        status, body = await _post(url, form, session)
        if status == 200:
            return _user_token(body, url, code.scopes)
        error = _failure(url, status, body)
        if error.reason == "slow_down":
            interval += _SLOW_DOWN
        elif error.reason == "invalid device code" and loop.time() >= deadline - interval:
            raise expired  # the server's clock ran out first
        elif error.reason != "authorization_pending":
            raise error
        if loop.time() + interval >= deadline:
            raise expired
        await sleep(interval)


async def device_flow(
    client_id: str,
    scopes: Iterable[str],
    show: Callable[[DeviceCode], Any],
    *,
    id_url: str = DEFAULT_ID_URL,
    session: Optional[aiohttp.ClientSession] = None,
) -> UserToken:
    """|coro|

    The whole device code flow: start it, hand the code to ``show`` (print it, send it to
    a chat...; it may be a coroutine function), and wait for the user's approval.
    """
    code = await start_device_flow(client_id, scopes, id_url=id_url, session=session)
    shown = show(code)
    if asyncio.iscoroutine(shown):
        await shown
    return await finish_device_flow(client_id, code, id_url=id_url, session=session)


async def refresh(
    client_id: str,
    refresh_token: str,
    *,
    client_secret: Optional[str] = None,
    id_url: str = DEFAULT_ID_URL,
    session: Optional[aiohttp.ClientSession] = None,
) -> UserToken:
    """|coro|

    A new user token for ``refresh_token`` (a public client gives no secret). Usable from
    :meth:`~twitchio_pubsub.PubSubPool.auth_fail_hook`.

    Raises
    ------
    AuthError
        ``Invalid refresh token`` (already used, or revoked), ``missing client secret``...
    """
    url = f"{id_url.rstrip('/')}/token"
    form = {"client_id": client_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
    if client_secret is not None:
        form["client_secret"] = client_secret
    status, body = await _post(url, form, session)
    if status != 200:
        raise _failure(url, status, body)
    return _user_token(body, url, ())


async def app_token(
    client_id: str,
    client_secret: str,
    *,
    id_url: str = DEFAULT_ID_URL,
    session: Optional[aiohttp.ClientSession] = None,
) -> AppToken:
    """|coro|

    An app access token (client credentials grant), for the Helix calls that need one.

    Raises
    ------
    AuthError
        The id or secret was refused, or the server could not be reached.
    """
    url = f"{id_url.rstrip('/')}/token"
    form = {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "client_credentials",
    }
    status, body = await _post(url, form, session)
    if status != 200:
        raise _failure(url, status, body)
    return AppToken(
        access_token=_field(body, "access_token", str, url),
        expires_in=int(_field(body, "expires_in", int, url)),
    )


def _user_token(body: Any, url: str, asked: tuple[str, ...]) -> UserToken:
    scopes = body.get("scope") if isinstance(body, dict) else None
    return UserToken(
        access_token=_field(body, "access_token", str, url),
        refresh_token=_field(body, "refresh_token", str, url),
        expires_in=int(_field(body, "expires_in", int, url)),
        scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else asked,
    )
