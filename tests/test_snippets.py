"""Every Python snippet in README.md and docs/ is a program that runs, or says it is not.

A snippet marked as a fragment (```` ```python fragment ```` in Markdown,
``:class: fragment`` under ``.. code-block:: python`` in reST) must still parse. Every
other snippet is a complete program: it is run against an emulator
(``PUBSUB_ENDPOINT``); if it subscribes to topics, one event is triggered on each and the
program must print something; programs that end by themselves must exit with 0.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from twitchio_pubsub.emulator import PubSubEmulator
from twitchio_pubsub.emulator.payloads import KINDS

ROOT = Path(__file__).resolve().parents[1]


def _markdown(path: Path) -> list[tuple[str, bool, str]]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```python([^\n]*)\n(.*?)^```", text, re.S | re.M):
        line = text[: match.start()].count("\n") + 1
        found.append((f"{path.name}:{line}", "fragment" in match.group(1), match.group(2)))
    return found


def _rest(path: Path) -> list[tuple[str, bool, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        options, body, cursor = [], [], index + 1
        while cursor < len(lines) and lines[cursor].strip().startswith(":"):
            options.append(lines[cursor].strip())
            cursor += 1
        while cursor < len(lines) and (not lines[cursor].strip() or lines[cursor][:1] == " "):
            body.append(lines[cursor][3:])
            cursor += 1
        fragment = any("fragment" in option for option in options)
        found.append((f"{path.name}:{index + 1}", fragment, "\n".join(body).strip() + "\n"))
    return found


SNIPPETS = _markdown(ROOT / "README.md") + [
    snippet for path in sorted((ROOT / "docs").glob("*.rst")) for snippet in _rest(path)
]
COMPLETE = [(name, code) for name, fragment, code in SNIPPETS if not fragment]


def test_snippets_were_found() -> None:
    assert len(SNIPPETS) >= 10 and len(COMPLETE) >= 5


@pytest.mark.parametrize(("name", "fragment", "code"), SNIPPETS, ids=[s[0] for s in SNIPPETS])
def test_every_snippet_parses_and_fits_the_page(name: str, fragment: bool, code: str) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if fragment else 0
    compile(code, name, "exec", flags=flags)
    # The docs theme shows about 84 characters of code at 800 px before cutting lines.
    long = [line for line in code.splitlines() if len(line) > 80]
    assert not long, long


def _kind_of(topic: str) -> tuple[str, int, int | None]:
    family, *ids = topic.split(".")
    kind = next(k for k, (f, _, _) in KINDS.items() if f == family)
    numbers = [int(i) for i in ids]
    return kind, numbers[-1], numbers[0] if len(numbers) == 2 else None


@pytest.mark.parametrize(("name", "code"), COMPLETE, ids=[c[0] for c in COMPLETE])
async def test_complete_snippet_runs_against_the_emulator(
    name: str, code: str, tmp_path: Path
) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    async with PubSubEmulator() as emu:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            env={**os.environ, "PUBSUB_ENDPOINT": emu.url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        listened: set[str] = set()
        try:
            wait = asyncio.ensure_future(proc.wait())
            listening = asyncio.ensure_future(
                emu.wait_until(lambda: any(c.topics for c in emu.connections), 15)
            )
            await asyncio.wait({wait, listening}, return_when=asyncio.FIRST_COMPLETED)
            listening.cancel()
            if not wait.done():
                # A bot: it runs until stopped. It listens: send it one event a topic.
                listened = {t for c in emu.connections for t in c.topics}
                for topic in sorted(listened):
                    kind, channel, user = _kind_of(topic)
                    assert await emu.trigger(kind, channel, user) == 1
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 10)
                assert line.strip(), f"{name} printed nothing for the events"
                proc.terminate()
            await wait
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        out, err = await proc.communicate()
    assert "Traceback" not in err.decode(), err.decode()
    if not listened:
        assert proc.returncode == 0, err.decode()
        assert out.strip(), f"{name} printed nothing"
