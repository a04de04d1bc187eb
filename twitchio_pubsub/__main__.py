"""Command line: ``python -m twitchio_pubsub {serve,trigger,demo}`` (``twitchio-pubsub``).

``serve`` runs the PubSub emulator; ``trigger`` asks a running emulator to publish a
realistic event; ``demo`` shows the library working end to end against an embedded
emulator.
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
from typing import Any, NoReturn

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

    serve = sub.add_parser("serve", help="run the PubSub emulator until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port to bind (8765; 0: any)")
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
    trigger.add_argument(
        "--server",
        default="http://127.0.0.1:8765",
        type=_server_url,
        help="the emulator's base URL (http://127.0.0.1:8765)",
    )
    trigger.add_argument(
        "--count", type=_count, default=1, metavar="N", help="send N events (1 to 1000)"
    )
    trigger.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="override a payload field; VALUE is JSON if it parses, else a string",
    )

    demo = sub.add_parser("demo", help="run the end-to-end demo against an embedded emulator")
    demo.add_argument("--quiet", action="store_true", help="print only the summary line")
    return parser


async def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    try:
        return await run_demo(quiet=args.quiet)
    except (RuntimeError, OSError, asyncio.TimeoutError) as exc:
        print(f"twitchio-pubsub: demo failed: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace) -> int:
    from .emulator import PubSubEmulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, stop.set)
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


def _error(message: str) -> int:
    print(f"twitchio-pubsub: error: {message}", file=sys.stderr)
    return 1


async def _trigger(args: argparse.Namespace) -> int:
    import aiohttp

    body: dict[str, Any] = {"kind": args.kind, "channel": args.channel, "set": dict(args.overrides)}
    if args.user is not None:
        body["user"] = args.user
    url = args.server + "/control/trigger"
    delivered = 0
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(args.count):
                async with session.post(url, json=body) as resp:
                    try:
                        answer = await resp.json(content_type=None)
                    except ValueError:
                        answer = {}
                if resp.status != 200 or not isinstance(answer, dict):
                    error = answer.get("error") if isinstance(answer, dict) else None
                    return _error(error or f"HTTP {resp.status} from {args.server}")
                print(json.dumps(answer.get("message"), indent=2, ensure_ascii=False))
                delivered += int(answer.get("delivered", 0))
    except aiohttp.ClientConnectorError:
        return _error(
            f"no emulator answers at {args.server}; start one with: twitchio-pubsub serve"
        )
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return _error(f"cannot reach the emulator at {args.server}: {exc or type(exc).__name__}")
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
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        return asyncio.run(_serve(args))
    if args.command == "trigger":
        return asyncio.run(_trigger(args))
    return asyncio.run(_demo(args))


if __name__ == "__main__":
    sys.exit(main())
