"""Sphinx configuration of aqnet's documentation: `make docs` (strict: -W --keep-going -n)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # aqnet's packages, for the generated references

project = "aqnet"
author = "aqnet contributors"
copyright = "aqnet contributors, Apache-2.0"

extensions = ["myst_parser", "sphinx_click", "aqnet_reference"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# MyST: `#anchor` links to headings down to level 4 are resolved (and checked: a missing one is a warning)
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "deflist"]
suppress_warnings: list[str] = []

html_theme = "furo"
html_title = "aqnet"
html_static_path: list[str] = []
html_show_sourcelink = False

# nitpicky (-n): every cross-reference must resolve. These targets come from sphinx-click's option lists and name
# nothing of ours.
nitpick_ignore: list[tuple[str, str]] = []
