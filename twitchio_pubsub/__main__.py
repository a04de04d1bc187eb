"""Command line: ``python -m twitchio_pubsub {serve,trigger,eventsub,demo}``.

``serve`` runs the PubSub emulator; ``trigger`` asks a running emulator to publish a
realistic event; ``eventsub serve`` and ``eventsub trigger`` do the same for the EventSub
emulator; ``demo`` shows the library working end to end against embedded emulators.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import signal
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any, NoReturn, Optional, Union

__all__ = ("main",)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


_DESCRIPTION = (
    "Run a local Twitch PubSub emulator, make it send events, or watch the demo. "
    "'COMMAND --help' tells more about each command."
)


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(
            f"not a valid regular expression {text!r}: {exc}"
        ) from None
    return text


def _server_url(text: str) -> str:
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// URL; for example http://127.0.0.1:8765"
        )
    return text.rstrip("/")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 1000, got {text!r}")
    return value


def _add_server(trigger: argparse.ArgumentParser, port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    trigger.add_argument(
        "--server", default=url, type=_server_url, help=f"the emulator's base URL ({url})"
    )


def _add_overrides(trigger: argparse.ArgumentParser, what: str) -> None:
    trigger.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help=f"{what}; VALUE is JSON if it parses, else a string",
    )


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .emulator.payloads import ALIASES, KINDS

    parser = _Parser(
        prog="twitchio-pubsub",
        description=_DESCRIPTION,
    )
    parser.add_argument("--version", action="version", version=f"twitchio-pubsub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    serve = _serve_parser(sub, "PubSub", 8765)
    serve.add_argument(
        "--extra-topic",
        action="append",
        default=[],
        metavar="REGEX",
        type=_regex,
        help="also accept topics matching REGEX (repeatable)",
    )

    aliases = ", ".join(f"{alias} = {kind}" for alias, kind in ALIASES.items())
    trigger = sub.add_parser(
        "trigger",
        help="publish a realistic event on a running emulator",
        description="Make a running emulator publish a realistic event and print it.",
        epilog=f"KIND is one of: {', '.join(KINDS)}; Twitch CLI's names work too ({aliases}). "
        "A wrong --set field is an error that lists the fields of the kind.",
    )
    trigger.add_argument(
        "kind", choices=[*KINDS, *ALIASES], metavar="KIND", help="the kind of event"
    )
    trigger.add_argument("--channel", required=True, help="channel id (whispers: user id)")
    trigger.add_argument(
        "--user", help="second id of two-id topics (moderator/chatter); default: any listener"
    )
    _add_server(trigger, 8765)
    trigger.add_argument(
        "--count", type=_count, default=1, metavar="N", help="send N events (1 to 1000)"
    )
    _add_overrides(trigger, "override a payload field")

    _add_eventsub(sub)
    _add_token(sub)

    demo = sub.add_parser("demo", help="run the end-to-end demo against an embedded emulator")
    demo.add_argument("--quiet", action="store_true", help="print only the summary line")
    return parser


def _serve_parser(commands: Any, what: str, port: int) -> argparse.ArgumentParser:
    serve: argparse.ArgumentParser = commands.add_parser(
        "serve", help=f"run the {what} emulator until Ctrl-C"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=port, help=f"port to bind ({port}; 0: any)")
    return serve


def _token_spec(text: str) -> tuple[str, str, list[str]]:
    token, sep, rest = text.partition("=")
    user_id, _, scopes = rest.partition(":")
    if not sep or not token or not user_id:
        raise argparse.ArgumentTypeError(f"expected TOKEN=USER_ID[:scope,scope...], got {text!r}")
    if not user_id.isdigit():
        raise argparse.ArgumentTypeError(
            f"USER_ID must be a numeric Twitch user id, got {user_id!r} (in "
            "TOKEN=USER_ID[:scopes]; the token itself is not shown)"
        )
    return token, user_id, [s for s in scopes.split(",") if s]


#: Twitch CLI's event names (``twitch event trigger NAME``) for the types they stand for.
TWITCH_CLI_NAMES = {
    "cheer": "channel.cheer",
    "subscribe": "channel.subscribe",
    "gift": "channel.subscription.gift",
    "subscribe-message": "channel.subscription.message",
    "add-redemption": "channel.channel_points_custom_reward_redemption.add",
    "update-redemption": "channel.channel_points_custom_reward_redemption.update",
    "add-reward": "channel.channel_points_custom_reward.add",
    "update-reward": "channel.channel_points_custom_reward.update",
    "remove-reward": "channel.channel_points_custom_reward.remove",
    "ban": "channel.ban",
    "unban": "channel.unban",
    "add-moderator": "channel.moderator.add",
    "remove-moderator": "channel.moderator.remove",
    "vip-add": "channel.vip.add",
    "vip-remove": "channel.vip.remove",
}


def _add_eventsub(sub: Any) -> None:
    from .eventsub.types import SUBSCRIPTION_TYPES

    eventsub = sub.add_parser(
        "eventsub",
        help="run or drive the EventSub emulator (WebSocket, Helix and token validation)",
        description="The EventSub emulator: 'eventsub serve' runs it, 'eventsub trigger' "
        "makes a running one send an event.",
    )
    commands = eventsub.add_subparsers(dest="eventsub_command", metavar="COMMAND")
    commands.required = True
    serve = _serve_parser(commands, "EventSub", 8080)
    serve.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="CLIENT_ID[=SECRET]",
        help="register an app (repeatable); without a secret, a public client",
    )
    serve.add_argument(
        "--token",
        action="append",
        default=[],
        type=_token_spec,
        metavar="TOKEN=USER_ID[:SCOPES]",
        help="register a user token, e.g. abc=1337:bits:read,channel:read:redemptions "
        "(repeatable); issued to the first --app's client id (its user authorized that "
        "app, as conduits need), else to emulator-client-id",
    )
    types = sorted({t for t, _ in SUBSCRIPTION_TYPES})
    names = {n: t for n, t in TWITCH_CLI_NAMES.items() if t in types}
    trigger = commands.add_parser(
        "trigger",
        help="send a realistic event from a running EventSub emulator",
        description="Make a running EventSub emulator send TYPE to every matching "
        "subscription, and print the event. Without --broadcaster, the broadcaster is "
        "the one subscribed to TYPE when there is exactly one.",
        epilog=f"TYPE is one of: {', '.join(types)}; or one of Twitch CLI's names: "
        + ", ".join(f"{n} ({t})" for n, t in names.items())
        + ".",
    )
    trigger.add_argument(
        "type",
        choices=[*types, *names],
        metavar="TYPE",
        help="the subscription type, or its Twitch CLI name (cheer, add-redemption, ...)",
    )
    trigger.add_argument("--version", help="only subscriptions of this version (default: all)")
    trigger.add_argument("--broadcaster", help="broadcaster_user_id of the event")
    trigger.add_argument("--user", help="user_id (condition or event field)")
    trigger.add_argument("--moderator", help="moderator_user_id (condition or event field)")
    _add_server(trigger, 8080)
    _add_overrides(trigger, "override an event field (dotted keys reach nested ones)")
    approve = commands.add_parser(
        "approve",
        help="approve a device code on a running EventSub emulator (as its user would)",
        description="Approve the device code a 'token' command or your bot printed, as "
        "the user who would open the verification URL.",
    )
    approve.add_argument("code", help="the user code (8 letters)")
    approve.add_argument("--user", required=True, help="the approving user's id")
    _add_server(approve, 8080)


def _add_token(sub: Any) -> None:
    token = sub.add_parser(
        "token",
        help="get a user token with the scopes EventSub needs (device code flow)",
        description="Get a user access token for your app by Twitch's device code flow: "
        "it prints a URL and a code to enter there, waits for the approval, then prints "
        "the access and refresh tokens, with exactly the scopes the named topics need on "
        "EventSub.",
        epilog="Against the EventSub emulator, give --id-url (its id_url) and approve the "
        "code with: twitchio-pubsub eventsub approve CODE --user USER_ID.",
    )
    token.add_argument("--client-id", required=True, help="your app's client id")
    token.add_argument(
        "--topics",
        default="",
        metavar="NAMES",
        help="comma-separated topic factories: bits,channel_points,moderation_user_action,...",
    )
    token.add_argument("--scopes", default="", help="more scopes, comma-separated")
    token.add_argument(
        "--id-url",
        default="https://id.twitch.tv/oauth2",
        metavar="URL",
        help="the OAuth base (default Twitch's; an emulator's id_url for tests)",
    )


async def _token(args: argparse.Namespace) -> int:
    from . import auth

    names = [n.strip() for n in args.topics.split(",") if n.strip()]
    try:
        scopes = auth.scopes_for_topics(*names)
    except ValueError as exc:
        return _error(str(exc), status=2)
    scopes += [s.strip() for s in args.scopes.split(",") if s.strip() and s not in scopes]

    def show(code: Any) -> None:
        print(
            f"open {code.verification_uri} and enter the code {code.user_code} "
            f"(good for {code.expires_in / 60:.0f} min); waiting for the approval...",
            flush=True,
        )

    try:
        token = await auth.device_flow(args.client_id, scopes, show, id_url=args.id_url)
    except auth.AuthError as exc:
        return _error(str(exc))
    print(f"access token:  {token.access_token}")
    print(f"refresh token: {token.refresh_token}")
    print(f"scopes: {' '.join(token.scopes) or '(none)'}; expires in {token.expires_in} s")
    return 0


async def _eventsub_approve(args: argparse.Namespace) -> int:
    import aiohttp

    body = {"user_code": args.code, "user_id": args.user}
    async with aiohttp.ClientSession() as session:
        state = await _state(session, args.server, "EventSub")
        if isinstance(state, int):
            return state
        answer = await _post(
            session, args.server, "/control/approve", body, "twitchio-pubsub eventsub serve"
        )
    if isinstance(answer, int):
        return answer
    print(f"approved {args.code} as user {args.user} for client {answer.get('client_id')}")
    return 0


async def _eventsub_serve(args: argparse.Namespace) -> int:
    from .emulator import EventSubEmulator

    stop = _stop_on_signals()
    try:
        emu = EventSubEmulator(args.host, args.port)
        await emu.start()
    except OSError as exc:
        return _error(f"cannot listen on {args.host}:{args.port}: {exc}")
    for app in args.app:
        client_id, _, secret = app.partition("=")
        emu.add_app(client_id, secret or None)
    issuer = args.app[0].partition("=")[0] if args.app else "emulator-client-id"
    for token, user_id, scopes in args.token:
        emu.add_token(token, user_id, scopes=scopes, client_id=issuer)
    urls = emu.urls
    print(
        f"EventSub emulator: eventsub_url={urls['eventsub_url']} helix_url={urls['helix_url']} "
        f"id_url={urls['id_url']} (control API: {emu.http_url}/control/); Ctrl-C stops\n"
        f"a bot: PubSubPool(client, transport='eventsub', **eventsub_urls({emu.http_url!r})) "
        "with: from twitchio_pubsub.emulator import eventsub_urls",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await emu.close()
    return 0


async def _eventsub_trigger(args: argparse.Namespace) -> int:
    import aiohttp

    kind = TWITCH_CLI_NAMES.get(args.type, args.type)
    fields = dict(args.overrides)
    for option, key in (
        ("broadcaster", "broadcaster_user_id"),
        ("user", "user_id"),
        ("moderator", "moderator_user_id"),
    ):
        if getattr(args, option) is not None:
            fields[key] = getattr(args, option)
    start = "twitchio-pubsub eventsub serve"
    async with aiohttp.ClientSession() as session:
        state = await _state(session, args.server, "EventSub")
        if isinstance(state, int):
            return state
        subscribed = [s for s in state.get("subscriptions", []) if s.get("status") == "enabled"]
        mine = [s for s in subscribed if s.get("type") == kind]
        if "broadcaster_user_id" not in fields:
            broadcasters = {str(s["condition"].get("broadcaster_user_id")) for s in mine}
            broadcasters.discard("None")
            if len(broadcasters) == 1:
                fields["broadcaster_user_id"] = broadcasters.pop()
                print(
                    f"broadcaster {fields['broadcaster_user_id']}: the only one subscribed "
                    f"to {kind}",
                    file=sys.stderr,
                )
        body: dict[str, Any] = {"type": kind, "fields": fields}
        if args.version is not None:
            body["version"] = args.version
        answer = await _post(session, args.server, "/control/trigger", body, start)
    if isinstance(answer, int):
        return answer
    print(json.dumps(answer.get("event"), indent=2, ensure_ascii=False))
    delivered = int(answer.get("delivered", 0))
    print(f"{kind}: delivered to {delivered} session(s)")
    if not delivered:
        print(f"no subscription to {kind} matches on this emulator; ", end="", file=sys.stderr)
        if subscribed:
            print("subscribed:", file=sys.stderr)
            for sub in subscribed:
                condition = ", ".join(f"{k}={v}" for k, v in sorted(sub["condition"].items()))
                print(f"  {sub['type']} v{sub['version']} ({condition})", file=sys.stderr)
        else:
            print("nothing is subscribed at all", file=sys.stderr)
    return 0


#: The two emulators: the key only its state has, the command that starts it, and the
#: one that triggers its events.
_EMULATORS = {
    "PubSub": ("connections", "twitchio-pubsub serve", "twitchio-pubsub trigger"),
    "EventSub": ("sessions", "twitchio-pubsub eventsub serve", "twitchio-pubsub eventsub trigger"),
}


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "AEIOU" else f"a {word}"


async def _state(session: Any, server: str, kind: str) -> Union[dict[str, Any], int]:
    """The ``kind`` emulator's ``/control/state``, or an exit status (2: the other kind)."""
    key, start, _ = _EMULATORS[kind]
    answer = await _request(session, "GET", server, "/control/state", None, start)
    if isinstance(answer, int):
        return answer
    if key not in answer:
        other = next(name for name in _EMULATORS if name != kind)
        return _error(
            f"{server} is {_a(other)} emulator; this command drives {_a(kind)} one ({start}). "
            f"For the {other} emulator, use: {_EMULATORS[other][2]}",
            status=2,
        )
    state: dict[str, Any] = answer
    return state


async def _post(session: Any, server: str, path: str, body: dict[str, Any], start: str) -> Any:
    """POST to a running emulator's control API: its JSON answer, or an exit status."""
    return await _request(session, "POST", server, path, body, start)


async def _request(
    session: Any,
    method: str,
    server: str,
    path: str,
    body: Optional[dict[str, Any]],
    start: str,
) -> Any:
    """Call a running emulator's control API: its JSON answer, or an exit status.

    ``start`` is the command that starts that emulator, for the error message. A request
    the emulator refuses (400: a wrong field, say) is a usage error: status 2.
    """
    import aiohttp

    try:
        async with session.request(method, server + path, json=body) as resp:
            try:
                answer = await resp.json(content_type=None)
            except ValueError:
                answer = {}
    except aiohttp.ClientConnectorError:
        return _error(f"no emulator answers at {server}; start one with: {start}")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return _error(f"cannot reach the emulator at {server}: {exc or type(exc).__name__}")
    if resp.status != 200 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        return _error(
            error or f"HTTP {resp.status} from {server}", status=2 if resp.status == 400 else 1
        )
    return answer


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    try:
        return await run_demo(quiet=args.quiet)
    except (RuntimeError, OSError, asyncio.TimeoutError) as exc:
        print(f"twitchio-pubsub: demo failed: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace) -> int:
    from .emulator import PubSubEmulator

    stop = _stop_on_signals()
    try:
        emu = PubSubEmulator(args.host, args.port, extra_topic_patterns=args.extra_topic)
        await emu.start()
    except OSError as exc:
        print(
            f"twitchio-pubsub: error: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(
        f"PubSub emulator on {emu.url} (control API: {emu.http_url}/control/); Ctrl-C stops",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await emu.close()
    return 0


def _error(message: str, status: int = 1) -> int:
    print(f"twitchio-pubsub: error: {message}", file=sys.stderr)
    return status


async def _trigger(args: argparse.Namespace) -> int:
    import aiohttp

    body: dict[str, Any] = {"kind": args.kind, "channel": args.channel, "set": dict(args.overrides)}
    if args.user is not None:
        body["user"] = args.user
    delivered = 0
    answer: Any = {}
    async with aiohttp.ClientSession() as session:
        state = await _state(session, args.server, "PubSub")
        if isinstance(state, int):
            return state
        for _ in range(args.count):
            answer = await _post(
                session, args.server, "/control/trigger", body, "twitchio-pubsub serve"
            )
            if isinstance(answer, int):
                return answer
            print(json.dumps(answer.get("message"), indent=2, ensure_ascii=False))
            delivered += int(answer.get("delivered", 0))
    topics = ", ".join(answer.get("topics") or [])
    print(f"{args.kind}: {args.count} event(s) on {topics}: delivered {delivered} time(s)")
    if not delivered:
        listened = answer.get("listened") or []
        print(
            f"nobody listens to {topics} on this emulator; "
            + (f"listened: {', '.join(listened)}" if listened else "no topic is listened at all"),
            file=sys.stderr,
        )
    return 0


def _check_eventsub_fields(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A wrong --set field is a usage error (status 2), as for ``trigger``."""
    from .emulator import eventsub_payloads
    from .eventsub.types import SUBSCRIPTION_TYPES

    kind = TWITCH_CLI_NAMES.get(args.type, args.type)
    versions = [args.version] if args.version else [v for t, v in SUBSCRIPTION_TYPES if t == kind]
    specs = [SUBSCRIPTION_TYPES[(kind, v)] for v in versions if (kind, v) in SUBSCRIPTION_TYPES]
    if not specs:
        parser.error(f"{kind} has no version {args.version!r}")
    errors = []
    for spec in sorted(specs, key=lambda spec: -int(spec.version)):
        try:
            eventsub_payloads.split_fields(spec, dict(args.overrides))
            return  # a version the trigger may reach knows every field
        except ValueError as exc:
            errors.append(str(exc))
    parser.error(errors[0])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "trigger":
        from .emulator.payloads import fields

        known = fields(args.kind)
        unknown = [key for key, _ in args.overrides if key not in known]
        if unknown:
            parser.error(f"{args.kind} has no field {unknown[0]!r}; its fields: {', '.join(known)}")
    if args.command == "eventsub" and args.eventsub_command == "trigger":
        _check_eventsub_fields(parser, args)
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        return asyncio.run(_serve(args))
    if args.command == "trigger":
        return asyncio.run(_trigger(args))
    if args.command == "eventsub":
        if args.eventsub_command == "serve":
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
            return asyncio.run(_eventsub_serve(args))
        if args.eventsub_command == "approve":
            return asyncio.run(_eventsub_approve(args))
        return asyncio.run(_eventsub_trigger(args))
    if args.command == "token":
        return asyncio.run(_token(args))
    return asyncio.run(_demo(args))


if __name__ == "__main__":
    sys.exit(main())
