"""The averaging job's log of window computations (`window_computations`, migration 0006). I/O (psycopg 3, sync).

Each row says which windows of a period ending when were computed, why ('due': first computation, at most once
per (period, end) under a unique index, whichever process runs the job; 'late': recomputed for late data), for
how many (sensor, variable) series, at which job clock time and by which database backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import psycopg

__all__ = ["log_windows"]


def log_windows(conn: psycopg.Connection, period: str, reason: str, counts: Mapping[datetime, int],
                now: datetime) -> None:
    """Log the computation of `period` windows by end (`counts`: end → series) with `reason` 'due' or 'late'."""
    if reason not in ("due", "late"):
        raise ValueError(f"log_windows: reason: expected 'due' or 'late', got {reason!r}")
    if counts:
        ends = sorted(counts)
        conn.execute("INSERT INTO window_computations (period, period_end, reason, series, computed_at) "
                     "SELECT %s, e, %s, n, %s FROM unnest(%s::timestamptz[], %s::int[]) AS u(e, n)",
                     (period, reason, now, ends, [counts[e] for e in ends]))
