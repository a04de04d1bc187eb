"""The benchmark harness runs end to end with tiny sizes (no timing is asserted)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


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
