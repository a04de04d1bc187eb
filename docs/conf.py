"""Sphinx configuration for twitchio-pubsub."""

from __future__ import annotations

import os
import sys

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
