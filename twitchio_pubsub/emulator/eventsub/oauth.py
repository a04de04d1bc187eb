"""The EventSub emulator's OAuth side: apps, and the token flows a bot needs.

``POST /oauth2/device`` starts the device code flow; ``POST /oauth2/token`` answers the
client credentials grant (an app access token), the device code grant (a user token,
once the code was approved through :meth:`OAuthMixin.approve_device` or the control API)
and the refresh grant. Bodies are form-encoded (query parameters are accepted too), and
errors are ``{"status": 400, "message": ...}`` with Twitch's messages. Where Twitch's
behaviour is unverified (``slow_down``), the emulator sends it only when asked to.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import string
import time
from typing import Any, Optional, Union

from aiohttp import web

from .helix import HelixMixin

__all__ = ("DeviceCode", "OAuthMixin")

#: How long an app access token lives (Twitch: about two months; use ``expires_in``).
APP_TOKEN_SECONDS = 5_000_000
#: How long a user access token from the device flow or a refresh lives (Twitch: ~4 h).
USER_TOKEN_SECONDS = 14_400
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclasses.dataclass
class DeviceCode:
    """A device code flow under way (see :meth:`OAuthMixin.approve_device`).

    Attributes
    ----------
    user_code: :class:`str`
        What the user types at the verification URL (8 capital letters).
    client_id: :class:`str`
    scopes: Tuple[:class:`str`, ...]
    expires_at: :class:`float`
        ``time.monotonic()`` when the code expires.
    user_id: Optional[:class:`str`]
        Who approved it; ``None`` while pending.
    used: :class:`bool`
        A token was issued for it (a code is good for one token).
    """

    device_code: str = dataclasses.field(repr=False)
    user_code: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    user_id: Optional[str] = None
    login: Optional[str] = None
    used: bool = False
    slow_downs: int = 0


class OAuthMixin(HelixMixin):
    """Apps and the ``/oauth2/device`` and ``/oauth2/token`` endpoints."""

    #: Registered apps: client id -> secret (``None``: a public client).
    _apps: dict[str, Optional[str]]
    _device_codes: dict[str, DeviceCode]
    #: Refresh token -> (client id, user id, login, scopes); single-use, as Twitch's are.
    _refresh_tokens: dict[str, tuple[str, str, str, tuple[str, ...]]]
    device_interval: float
    device_expires: float

    def add_app(self, client_id: str, client_secret: Optional[str] = None) -> None:
        """Register an app (a Twitch developer console application).

        Parameters
        ----------
        client_id: :class:`str`
        client_secret: Optional[:class:`str`]
            Its secret; ``None`` registers a *public* client (device flow without a
            secret; it cannot get app access tokens).
        """
        if not isinstance(client_id, str) or not client_id:
            raise TypeError("client_id must be a non-empty str")
        if client_secret is not None and (not isinstance(client_secret, str) or not client_secret):
            raise TypeError("client_secret must be a non-empty str or None")
        self._apps[client_id] = client_secret

    def approve_device(
        self, user_code: str, user_id: Union[str, int], login: Optional[str] = None
    ) -> str:
        """Approve a pending device code as user ``user_id`` (what the user does in a browser).

        Returns
        -------
        :class:`str`
            The client id the code was issued to.

        Raises
        ------
        ValueError
            No pending code has that user code (unknown, expired or used).
        """
        code = next(
            (
                c
                for c in self._device_codes.values()
                if c.user_code == str(user_code).upper() and not c.used
            ),
            None,
        )
        if code is None or time.monotonic() >= code.expires_at:
            raise ValueError(f"no pending device code {user_code!r}")
        uid = str(user_id)
        if not uid.isdigit():
            raise ValueError("user_id must be a numeric Twitch user id")
        code.user_id, code.login = uid, login or f"user{uid}"
        return code.client_id

    async def slow_down_next_poll(self, count: int = 1) -> None:
        """Answer the next ``count`` device token polls with ``slow_down`` (unverified for
        Twitch; clients should then poll 5 s less often)."""
        for code in self._device_codes.values():
            code.slow_downs += count

    # ------------------------------------------------------------------ routes

    @staticmethod
    async def _form(request: web.Request) -> dict[str, str]:
        """The request's form fields, query parameters included (Twitch takes both)."""
        fields = dict(request.query.items())
        if request.can_read_body:
            try:
                posted = await request.post()
            except ValueError:
                return fields
            fields.update((k, v) for k, v in posted.items() if isinstance(v, str))
        return fields

    @staticmethod
    def _oauth_error(message: str, status: int = 400) -> web.Response:
        return web.json_response({"status": status, "message": message}, status=status)

    async def _h_device(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refuse_host(request)
        if refusal is not None:
            return refusal
        form = await self._form(request)
        client_id = form.get("client_id", "")
        if client_id not in self._apps:
            return self._oauth_error("invalid client")
        scopes = tuple(s for s in form.get("scopes", "").split() if s)
        user_code = "".join(secrets.choice(string.ascii_uppercase) for _ in range(8))
        device_code = secrets.token_urlsafe(30)
        self._device_codes[device_code] = DeviceCode(
            device_code,
            user_code,
            client_id,
            scopes,
            time.monotonic() + self.device_expires,
        )
        return web.json_response(
            {
                "device_code": device_code,
                "expires_in": math.ceil(self.device_expires),
                "interval": self.device_interval,
                "user_code": user_code,
                "verification_uri": f"{self.http_url}/activate?device-code={user_code}",
            }
        )

    async def _h_token(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refuse_host(request)
        if refusal is not None:
            return refusal
        form = await self._form(request)
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        if client_id not in self._apps:
            return self._oauth_error("invalid client")
        secret = self._apps[client_id]
        if grant == "client_credentials":
            if secret is None or form.get("client_secret") != secret:
                return self._oauth_error("invalid client secret", 403)
            token = secrets.token_hex(15)
            self.add_token(token, None, client_id=client_id, expires_in=APP_TOKEN_SECONDS)
            return web.json_response(
                {"access_token": token, "expires_in": APP_TOKEN_SECONDS, "token_type": "bearer"}
            )
        if grant == _DEVICE_GRANT:
            return self._device_token(form, client_id)
        if grant == "refresh_token":
            if secret is not None and form.get("client_secret") != secret:
                return self._oauth_error("missing client secret")
            found = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
            if found is None or found[0] != client_id:
                return self._oauth_error("Invalid refresh token")
            _, user_id, login, scopes = found
            return self._user_token(client_id, user_id, login, scopes)
        return self._oauth_error("unsupported grant type")

    def _device_token(self, form: dict[str, str], client_id: str) -> web.Response:
        code = self._device_codes.get(form.get("device_code", ""))
        if (
            code is None
            or code.used
            or code.client_id != client_id
            or time.monotonic() >= code.expires_at
        ):
            return self._oauth_error("invalid device code")
        if code.slow_downs:
            code.slow_downs -= 1
            return self._oauth_error("slow_down")
        if code.user_id is None:
            return self._oauth_error("authorization_pending")
        code.used = True
        return self._user_token(client_id, code.user_id, code.login or "", code.scopes)

    def _user_token(
        self, client_id: str, user_id: str, login: str, scopes: tuple[str, ...]
    ) -> web.Response:
        token, refresh = secrets.token_hex(15), secrets.token_hex(25)
        self.add_token(
            token,
            user_id,
            scopes=scopes,
            client_id=client_id,
            login=login,
            expires_in=USER_TOKEN_SECONDS,
        )
        self._refresh_tokens[refresh] = (client_id, user_id, login, scopes)
        body: dict[str, Any] = {
            "access_token": token,
            "expires_in": USER_TOKEN_SECONDS,
            "refresh_token": refresh,
            "token_type": "bearer",
        }
        if scopes:
            body["scope"] = list(scopes)
        return web.json_response(body)
