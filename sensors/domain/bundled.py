"""Bundled domain data (network, norms, indices, conversions): the loader over the package files. Pure.

The JSON files beside this module are copies of the project's domain reference data with their sources
(README.md here). Nothing reads outside the installed package at run time.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load"]

_NAMES = frozenset({"reference", "norms", "indices", "conversions", "examples"})


@cache
def load(name: str) -> Any:
    """Return the parsed bundled domain file `name` (reference, norms, indices, conversions, examples)."""
    if name not in _NAMES:
        raise ValueError(f"unknown domain file {name!r}: expected one of {sorted(_NAMES)}")
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)
