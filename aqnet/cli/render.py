"""How `aqnet` commands print tables for a terminal. Shell (click's output side), pure: text in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["render_table"]


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned text table (columns as wide as their widest cell, None as empty), header first."""
    cells = [[str(h) for h in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)
