"""What the PubSub and EventSub emulators share: an aiohttp server, per-connection writers,
connection faults, ``wait_until`` and the guarded JSON control API."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import ipaddress
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, Optional, TypeVar, Union

from aiohttp import web

from ..transport import within

__all__ = ("Connection", "EmulatorServer")

log = logging.getLogger("twitchio_pubsub.emulator")

#: Frames a client may leave unread before the emulator drops it (Twitch: "more than 30").
MAX_BUFFERED = 30
#: The longest outage ``refuse_connections`` takes, and the most queued faults.
MAX_REFUSE_SECONDS = 86_400.0
MAX_FAULTS = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_loopback(host: str) -> bool:
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _no_constants(name: str) -> Any:
    raise ValueError(f"numbers must be finite, got {name}")


class _BadRequest(Exception):
    pass


_REQUIRED: Any = object()


@dataclasses.dataclass(frozen=True)
class Param:
    """One field of a control request's JSON body.

    Attributes
    ----------
    name: :class:`str`
        The field's name in the body.
    kind: Union[type, Tuple[type, ...]]
        The JSON types it may have (a boolean is never taken for a number).
    default: Any
        Its value when absent or ``null``; without one the field is required.
    arg: Optional[:class:`str`]
        The keyword it is passed to the method as; its own name by default.
    check: Optional[Callable[[Any], Any]]
        Validates (raising :class:`ValueError`) and converts the value.
    """

    name: str
    kind: Union[type, tuple[type, ...]]
    default: Any = _REQUIRED
    arg: Optional[str] = None
    check: Optional[Callable[[Any], Any]] = None


@dataclasses.dataclass(frozen=True)
class Control:
    """A control endpoint, ``POST /control/<name>``: the method its body's fields go to.

    Attributes
    ----------
    method: :class:`str`
        The emulator's method (a coroutine or a plain one) the fields are passed to.
    params: Tuple[:class:`Param`, ...]
        The body's fields.
    answer: Union[:class:`str`, Callable, None]
        How the JSON answer is made: a key to put the method's result under, a function
        of ``(emulator, result, arguments)``, or ``None`` (the result is the answer).
    get: :class:`bool`
        Served on ``GET`` (with no body) instead of ``POST``.
    """

    method: str
    params: tuple[Param, ...] = ()
    answer: Union[str, Callable[[Any, Any, dict[str, Any]], Any], None] = None
    get: bool = False


def count(value: Any) -> int:
    """A control field that counts something: a whole number, not negative."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a non-negative integer")
    return value


def _error_status(value: int) -> int:
    if not 400 <= value <= 599:
        raise ValueError("status must be an HTTP error status (400-599)")
    return value


#: The endpoints both emulators have.
BASE_CONTROLS: dict[str, Control] = {
    "state": Control("state", get=True),
    "refuse": Control(
        "refuse_connections",
        (
            Param("seconds", (int, float), arg="seconds", check=float),
            Param("status", int, 503, check=_error_status),
        ),
        answer=lambda emu, _, args: {"refusing_for": args["seconds"]},
    ),
}


class Connection:
    """A client socket with its own writer task, so one slow reader holds up only itself.

    Attributes
    ----------
    id: :class:`int`
        The connection's id, unique for the emulator's lifetime.
    """

    __slots__ = ("_drop_timer", "_outbox", "_request", "_wakeup", "_writer", "id", "ws")

    def __init__(self, id: int, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.id = id
        self.ws = ws
        self._request = request
        self._outbox: collections.deque[str] = collections.deque()
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._drop_timer: asyncio.TimerHandle | None = None

    def send(self, text: str) -> bool:
        """Queue a frame; ``False`` when the client already has too many waiting."""
        if len(self._outbox) >= MAX_BUFFERED:
            return False
        self._outbox.append(text)
        self._wakeup.set()
        return True

    def _start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(
            self._write(), name=f"emulator-connection-{self.id}-writer"
        )

    async def _write(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._outbox:
                text = self._outbox[0]
                try:
                    await self.ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    self._outbox.clear()
                    return
                self._outbox.popleft()

    async def _stop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.wait((writer,))
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._drop_timer is not None:
            self._drop_timer.cancel()
            self._drop_timer = None

    def abort(self) -> None:
        """Drop the TCP connection at once, without a websocket close frame."""
        self._cancel_timer()
        transport = self._request.transport
        if transport is not None:
            transport.abort()


C = TypeVar("C", bound=Connection)


class EmulatorServer(Generic[C]):
    """The server half both emulators share (not used on its own).

    Subclasses add their routes in :meth:`_add_routes`, declare their control endpoints
    in :attr:`CONTROLS` and keep their open connections in ``_connections``.
    """

    _kind = "emulator"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._connections: dict[int, C] = {}
        self._ids = itertools.count(1)
        self._refuse_until = 0.0
        self._refuse_status = 503
        self._runner: web.AppRunner | None = None
        self._changed_event: asyncio.Event | None = None
        self._bound_port: int | None = None
        #: Handshakes attempted and refused (for tests).
        self.handshakes = 0
        self.refused = 0
        #: The most connections that were open at once (tests may reset it to 0).
        self.peak_connections = 0
        #: Connections dropped for leaving more than 30 messages unread.
        self.slow_clients_dropped = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def http_url(self) -> str:
        """The server's base URL (control API), e.g. ``http://127.0.0.1:8765``."""
        return f"http://{self._url_host}:{self._port()}"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def _port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("the emulator is not running; use 'async with' or start()")
        return self._bound_port

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    #: The control API, ``name -> Control``; each emulator extends :data:`BASE_CONTROLS`.
    CONTROLS: ClassVar[Mapping[str, Control]] = BASE_CONTROLS

    async def start(self) -> None:
        """Start listening. Prefer ``async with`` the emulator."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._control_errors])
        self._add_routes(app)
        for name, control in self.CONTROLS.items():
            method = "GET" if control.get else "POST"
            app.router.add_route(method, f"/control/{name}", self._control_handler(control))
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._bound_port = int(runner.addresses[0][1])
        self._runner = runner
        log.info("%s listening on %s", self._kind, self.http_url)
        if not _is_loopback(self.host):
            log.warning(
                "the emulator is bound to %s, so not only this machine can reach it: "
                "anyone who can connect may drive its control API, which has no "
                "authentication. Bind to 127.0.0.1 unless you mean it.",
                self.host,
            )

    async def _before_close(self) -> None:
        """Subclass hook: stop timers and tasks before the connections close."""

    async def close(self) -> None:
        """Close every connection (close code 1001) and stop the server."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self._before_close()
        for conn in list(self._connections.values()):
            await conn.ws.close(code=1001, message=b"server shutting down")
        await runner.cleanup()
        self._connections.clear()
        self._bound_port = None
        log.info("%s stopped", self._kind)

    # ------------------------------------------------------------------ waiting

    @property
    def _changed(self) -> asyncio.Event:
        # Created on first use so that it belongs to the running loop (Python 3.9).
        if self._changed_event is None:
            self._changed_event = asyncio.Event()
        return self._changed_event

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, checking after every change of state.

        Raises
        ------
        asyncio.TimeoutError
            ``predicate`` was still false after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError("the emulator's state did not change as expected")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await within(self._changed.wait(), min(remaining, 0.25))

    # ------------------------------------------------------------------ connections

    def _refusing(self, request: web.Request) -> web.Response | None:
        """Count a handshake; during an outage answer it with the outage's status."""
        self.handshakes += 1
        if time.monotonic() < self._refuse_until:
            self.refused += 1
            log.info("refusing connection from %s (outage)", request.remote)
            return web.Response(status=self._refuse_status, text="emulated outage")
        return None

    def _opened(self, conn: C) -> None:
        conn._start()
        self._connections[conn.id] = conn
        self.peak_connections = max(self.peak_connections, len(self._connections))
        self._changed.set()

    async def _closed(self, conn: C) -> None:
        await conn._stop()
        self._connections.pop(conn.id, None)
        self._changed.set()

    def _select(self, connection: int | None) -> list[C]:
        if connection is None:
            return list(self._connections.values())
        conn = self._connections.get(connection)
        return [conn] if conn is not None else []

    async def _send(self, conns: Iterable[C], text: str) -> int:
        sent = 0
        for conn in conns:
            if conn.ws.closed:
                continue
            if conn.send(text):
                sent += 1
                continue
            # As Twitch does with a client that has more than 30 messages unread.
            log.info("connection %d left %d messages unread; dropping it", conn.id, MAX_BUFFERED)
            self.slow_clients_dropped += 1
            self._drop_now(conn.id)
        # Let the connections' writers run before the next event is queued.
        await asyncio.sleep(0)
        return sent

    def _drop_now(self, connection: int | None = None) -> int:
        """Abort connections at once (also used from a timer callback)."""
        conns = self._select(connection)
        for conn in conns:
            self._connections.pop(conn.id, None)
            conn.abort()
        self._changed.set()
        log.info("dropped %d connection(s)", len(conns))
        return len(conns)

    async def close_connection(self, connection: int | None = None, code: int = 1001) -> int:
        """Close one connection or all gracefully, with a websocket close frame."""
        conns = self._select(connection)
        for conn in conns:
            await conn.ws.close(code=code, message=self._close_reason(code))
        log.info("closed %d connection(s) with code %d", len(conns), code)
        return len(conns)

    def _close_reason(self, code: int) -> bytes:
        return b"closed by the emulator"

    async def refuse_connections(self, seconds: float, status: int = 503) -> None:
        """Answer every new handshake with HTTP ``status`` (503) for ``seconds`` (an outage)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("seconds must be finite and not negative")
        if seconds > MAX_REFUSE_SECONDS:
            raise ValueError(f"seconds must be at most {MAX_REFUSE_SECONDS:g}")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._refuse_until = time.monotonic() + seconds
        self._refuse_status = status
        log.info("refusing new connections for %.1f s", seconds)

    # ------------------------------------------------------------------ control API

    @web.middleware
    async def _control_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/control/"):
            return await handler(request)
        refusal = self._refuse_control(request)
        if refusal is not None:
            return refusal
        try:
            return await handler(request)
        except (_BadRequest, ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except web.HTTPException:
            raise
        except Exception as exc:
            log.exception("control request %s failed", request.path)
            return web.json_response({"error": f"internal error: {type(exc).__name__}"}, status=500)

    def _refuse_host(self, request: web.Request) -> web.Response | None:
        """Refuse a request to a loopback emulator that names another Host.

        DNS rebinding: a web page whose name resolves to 127.0.0.1 sends its own Host.
        """
        if _is_loopback(self.host) and not _is_loopback(request.host):
            return web.json_response(
                {"error": f"Host {request.host[:80]!r} is not allowed: use 127.0.0.1"},
                status=403,
            )
        return None

    def _refuse_control(self, request: web.Request) -> web.Response | None:
        """Guard the unauthenticated control API against other web pages."""
        refusal = self._refuse_host(request)
        if refusal is not None:
            return refusal
        if request.method == "POST" and request.content_type != "application/json":
            # Pages can POST text/plain or forms cross-origin without asking; not JSON.
            return web.json_response(
                {"error": "control requests must have Content-Type: application/json"},
                status=415,
            )
        return None

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = json.loads(await request.text(), parse_constant=_no_constants)
        except ValueError as exc:
            detail = str(exc) if "finite" in str(exc) else "body is not valid JSON"
            raise _BadRequest(detail) from None
        if not isinstance(body, dict):
            raise _BadRequest("body must be a JSON object")
        return body

    @staticmethod
    def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
        if name not in body:
            raise _BadRequest(f"missing field {name!r}")
        value = body[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise _BadRequest(f"field {name!r} has the wrong type")
        return value

    @classmethod
    def _optional(
        cls, body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any
    ) -> Any:
        if body.get(name) is None:
            return default
        return cls._field(body, name, kind)

    def _control_handler(self, control: Control) -> Handler:
        """The route handler of one :class:`Control`: read, check, call, answer."""

        async def handler(request: web.Request) -> web.Response:
            body = {} if control.get else await self._body(request)
            args: dict[str, Any] = {}
            for param in control.params:
                if param.default is _REQUIRED:
                    value = self._field(body, param.name, param.kind)
                else:
                    value = self._optional(body, param.name, param.kind, param.default)
                if param.check is not None and value is not None:
                    try:
                        value = param.check(value)
                    except ValueError as exc:
                        # "must be ..." names the field; a whole sentence stands as it is.
                        text = str(exc)
                        if text.startswith("must"):
                            text = f"field {param.name!r} {text}"
                        raise _BadRequest(text) from None
                args[param.arg or param.name] = value
            result = getattr(self, control.method)(**args)
            if inspect.isawaitable(result):
                result = await result
            answer = control.answer
            if answer is None:
                return web.json_response(result)
            if isinstance(answer, str):
                return web.json_response({answer: result})
            return web.json_response(answer(self, result, args))

        return handler

    def state(self) -> dict[str, Any]:
        """A JSON-ready view of the emulator (each emulator says what it holds)."""
        raise NotImplementedError
