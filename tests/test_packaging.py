"""The package as a user gets it: built, installed into a fresh environment outside the
repository, and run. Slow (a venv and an install), so one test does it all."""

from __future__ import annotations

import asyncio
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def run(*args: str, cwd: Path, timeout: float = 240) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{args} failed:\n{text[-3000:]}"
    return text


async def test_the_built_wheel_installs_and_runs_outside_the_repository(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    await run(sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT), cwd=tmp_path)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")

    # The sdist ships no test suite (it could not run without the repository) ...
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert not [n for n in names if "/tests/" in n], "the sdist ships tests"
    assert any(n.endswith("/CHANGELOG.md") for n in names)
    assert any(n.endswith("/twitchio_pubsub/emulator/eventsub/server.py") for n in names)
    # ... and the wheel carries the package data and the metadata PyPI shows.
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
        [meta] = [n for n in files if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(meta).decode()
    assert "twitchio_pubsub/py.typed" in files
    assert any(n.startswith("twitchio_pubsub/emulator/") and n.endswith(".json") for n in files)
    assert "License-Expression: MIT" in metadata
    [summary] = [line for line in metadata.splitlines() if line.startswith("Summary:")]
    assert "EventSub" in summary
    assert "Classifier: Framework :: Pytest" in metadata
    assert "Classifier: Programming Language :: Python :: 3.13" in metadata
    assert "Classifier: License ::" not in metadata  # the SPDX expression says it

    # A user's own project, elsewhere: a fresh venv, the wheel, then the demo and an import.
    project = tmp_path / "my-bot"
    project.mkdir()
    await run(sys.executable, "-m", "venv", ".venv", cwd=project)
    python = str(project / ".venv" / "bin" / "python")
    await run(python, "-m", "pip", "install", "-q", str(wheel), cwd=project)
    out = await run(python, "-m", "twitchio_pubsub", "demo", cwd=project)
    assert "demo OK" in out
    where = await run(
        python, "-c", "import twitchio_pubsub; print(twitchio_pubsub.__file__)", cwd=project
    )
    assert str(project) in where and str(ROOT) not in where

    # The two ways docs/quickstart.rst gives for today: a clone's path, and a git URL.
    for source in (str(ROOT), f"git+file://{ROOT}"):
        await run(
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--force-reinstall",
            "--no-deps",
            source,
            cwd=project,
        )
        out = await run(python, "-m", "twitchio_pubsub", "--help", cwd=project)
        assert "eventsub" in out, source
