"""The benchmark harness runs end to end with tiny sizes (no timing is asserted)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


async def _script(name: str, *args: str, timeout: float = 120) -> tuple[str, str]:
    """Run ``benchmarks/<name>`` with ``args``; its stdout and stderr (it must succeed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH.parent / name),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def test_harness_smoke(tmp_path: Path) -> None:
    out_file = tmp_path / "results.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH),
        "--quick",
        "--runs",
        "1",
        "--json",
        str(out_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    for line in (
        "floor (bare aiohttp)",
        "twitchio.ext.pubsub",
        "twitchio_pubsub",
        "ratio",
        "subscribe",
        "RECONNECT",
        "resident memory",
        "latency",
        "idle pool CPU",
    ):
        assert line in text
    results = json.loads(out_file.read_text())
    for impl in ("floor", "ext", "ours"):
        run = results["throughput"][impl]
        assert run["median_events_per_s"] > 0 and len(run["runs"]) == 1
    assert results["pool"]["reconfirmed_topics"] == results["pool"]["topics"] == 20
    assert results["latency"]["events"] == 200


async def test_soak_smoke(tmp_path: Path) -> None:
    """A few seconds of the fault soak: its report holds together and nothing is doubled."""
    out_file = tmp_path / "soak.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH.parent / "soak.py"),
        "--minutes",
        "0.08",
        "--seed",
        "3",
        "--json",
        str(out_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert "duplicates" in out.decode() and "peak sockets" in out.decode()
    report = json.loads(out_file.read_text())
    assert report["expected_events"] > 100
    assert report["duplicates"] == 0
    assert report["per_fault"]["reconnect"]["lost"] == 0
    assert sum(row["fired"] for row in report["per_fault"].values()) >= 1
    assert all(row["unrecovered"] == 0 for row in report["per_fault"].values())
    assert report["peak_sockets"] <= 6  # 5 nodes + one hand-over at a time


async def test_eventsub_bench_smoke(tmp_path: Path) -> None:
    """The EventSub comparison runs all three clients on one emulator (no timing asserted)."""
    out_file = tmp_path / "eventsub.json"
    text, _ = await _script("eventsub_bench.py", "--quick", "--json", str(out_file), timeout=240)
    for name in ("twitchio_pubsub bridge", "pyTwitchAPI", "twitchio.ext.eventsub", "faster"):
        assert name in text
    results = json.loads(out_file.read_text())
    for impl in ("bridge", "pytwitchapi", "twitchio_ext"):
        assert results["throughput"][impl]["median_events_per_s"] > 0


async def test_eventsub_soak_smoke(tmp_path: Path) -> None:
    """A few seconds of the EventSub soak: nothing doubled, nothing left after close."""
    out_file = tmp_path / "soak.json"
    args = ("--transport", "eventsub", "--minutes", "0.08", "--seed", "3")
    text, _ = await _script("soak.py", *args, "--json", str(out_file))
    assert "peak sockets" in text
    report = json.loads(out_file.read_text())
    assert report["transport"] == "eventsub"
    assert report["expected_events"] > 100
    assert report["duplicates"] == 0
    assert report["subscriptions_left_after_close"] == 0
    assert all(row["unrecovered"] == 0 for row in report["per_fault"].values())


async def test_random_operations_leave_no_call_hung_and_everything_in_agreement() -> None:
    # 300 seeded operations per transport (the note quotes 1,000-operation runs).
    for transport in ("pubsub", "eventsub", "conduit"):
        out, _ = await _script(
            "random_ops.py", "--transport", transport, "--ops", "300", "--seed", "3"
        )
        assert "calls_hung: 0" in out, out
        assert "agreement: True" in out, out


async def test_conduit_bench_smoke() -> None:
    out, _ = await _script("conduit_bench.py", "throughput", "--quick", "--processes", "1", "2")
    assert "1 process(es):" in out and "2 process(es):" in out
    assert out.count("600/600 handled") == 2  # every event reached exactly one process
    out, _ = await _script("conduit_bench.py", "subscribe", "--quick")
    lines = out.splitlines()
    conduit = next(line for line in lines if line.startswith("conduit:"))
    eventsub = next(line for line in lines if line.startswith("eventsub:"))
    assert "120 subscriptions" in conduit and "1 socket(s)" in conduit
    assert "120 subscriptions" in eventsub and "120 socket(s)" in eventsub
