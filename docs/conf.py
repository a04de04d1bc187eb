"""Sphinx configuration for twitchio-pubsub."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

sys.path.insert(0, os.path.abspath(".."))

project = "twitchio-pubsub"
author = "twitchio-pubsub contributors"
copyright = "2026, twitchio-pubsub contributors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_attr_annotations = True

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"show-inheritance": True}

rst_prolog = """
.. |coro| replace:: This function is a |coroutine_link|_.
.. |coroutine_link| replace:: *coroutine*
.. _coroutine_link: https://docs.python.org/3/library/asyncio-task.html#coroutine
"""

html_theme = "furo"
html_title = "twitchio-pubsub"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
exclude_patterns = ["_build"]


_TABLE = re.compile(r"<table.*?</table>", re.S)
_PRE = re.compile(r'(<span class="pre">)([^<]*)(</span>)')
_JOINT = re.compile(r"([._])(?=\w)")


def _identifier_breaks(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Let code in tables break after "." and "_" only (a <wbr>: invisible, not copied)."""
    body = context.get("body")
    if not body or "<table" not in body:
        return

    def joints(match: re.Match[str]) -> str:
        return match.group(1) + _JOINT.sub(r"\1<wbr>", match.group(2)) + match.group(3)

    context["body"] = _TABLE.sub(lambda table: _PRE.sub(joints, table.group(0)), body)


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _identifier_breaks)
    return {"parallel_read_safe": True}
