"""The docs build's own code (docs/conf.py): identifiers in tables break at joints only."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

CONF = Path(__file__).resolve().parents[1] / "docs" / "conf.py"


def load_conf() -> Any:
    spec = importlib.util.spec_from_file_location("docs_conf", CONF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_code_in_tables_breaks_after_dots_and_underscores_only() -> None:
    conf = load_conf()
    pre = '<span class="pre">channel.channel_points_custom_reward.update</span>'
    body = f"<p>{pre}</p><table><tr><td><code>{pre}</code></td></tr></table>"
    context = {"body": body}
    conf._identifier_breaks(None, "eventsub", "page.html", context, None)
    outside, inside = context["body"].split("<table>")
    assert "<wbr>" not in outside  # prose keeps its code whole
    assert "channel.<wbr>channel_<wbr>points_<wbr>custom_<wbr>reward.<wbr>update" in inside
    css = (CONF.parent / "_static" / "custom.css").read_text(encoding="utf-8")
    assert "anywhere" not in css and "break-all" not in css
