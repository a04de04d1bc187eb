"""Command line: ``python -m twitchio_pubsub {serve,trigger,demo}``.

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
import signal
import sys
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


def _build_parser() -> argparse.ArgumentParser:
    from .emulator.payloads import KINDS

    parser = _Parser(prog="twitchio-pubsub", description=__doc__)
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
        help="also accept topics matching REGEX (repeatable)",
    )

    trigger = sub.add_parser("trigger", help="publish a realistic event on a running emulator")
    trigger.add_argument("kind", choices=sorted(KINDS), metavar="KIND", help=", ".join(KINDS))
    trigger.add_argument("--channel", required=True, help="channel id (whispers: user id)")
    trigger.add_argument(
        "--user", help="second id of two-id topics (moderator/chatter); default: any listener"
    )
    trigger.add_argument("--server", default="http://127.0.0.1:8765", help="emulator base URL")
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


async def _trigger(args: argparse.Namespace) -> int:
    import aiohttp

    body: dict[str, Any] = {"kind": args.kind, "channel": args.channel, "set": dict(args.overrides)}
    if args.user is not None:
        body["user"] = args.user
    url = args.server.rstrip("/") + "/control/trigger"
    try:
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
            try:
                answer = await resp.json(content_type=None)
            except ValueError:
                answer = {}
            if resp.status != 200 or not isinstance(answer, dict):
                error = answer.get("error") if isinstance(answer, dict) else None
                print(f"twitchio-pubsub: error: {error or f'HTTP {resp.status}'}", file=sys.stderr)
                return 1
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        print(
            f"twitchio-pubsub: error: cannot reach the emulator at {args.server}: "
            f"{exc or type(exc).__name__}",
            file=sys.stderr,
        )
        return 1
    print(f"{args.kind}: delivered to {answer.get('delivered', 0)} connection(s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface; returns the exit status."""
    args = _build_parser().parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        return asyncio.run(_serve(args))
    if args.command == "trigger":
        return asyncio.run(_trigger(args))
    return asyncio.run(_demo(args))


if __name__ == "__main__":
    sys.exit(main())
