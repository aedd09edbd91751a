"""Quality-control checks on a normalised Reading (ingest stage). Pure: the caller passes `now` and the state.

Contract: `check(reading, state, now)` returns the reading with the flags it earned added (never removed,
the value never changed: flagged readings are stored, VARIABLES.md) and the series' new `QCState`. The caller
keeps one state per (sensor, variable) series; `None` starts a series. A clock-skewed reading does not
advance the state (its future time would hide the readings that follow).

Implemented here:
- CLOCK_SKEW: the measurement time is more than `skew_tolerance_s` ahead of its receive time or of `now`,
  whichever is earlier (a device clock running fast; the reading is excluded from averages).
- STALE: the measurement time is more than `stale_after_s` older than its receive time (a device replaying a
  backlog, or a clock running slow).

Not implemented yet (a later issue adds them with per-variable limits from a cited source): SPIKE, FLATLINE.
Range, negative and device-invalid flags are set by `ingest.normalise`, which sees the reported unit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime

from ingest.reading import QC, Reading

__all__ = ["DEFAULT_SKEW_TOLERANCE_S", "DEFAULT_STALE_AFTER_S", "QCState", "check"]

#: aqnet convention (no norm sets it): 5 min covers an unsynchronised logger clock without accepting hours
DEFAULT_SKEW_TOLERANCE_S = 300.0
#: aqnet convention (no norm sets it): a reading received more than 1 h after it was measured is stale
DEFAULT_STALE_AFTER_S = 3600.0


@dataclass(frozen=True, slots=True)
class QCState:
    """What the stateful checks remember about one (sensor, variable) series."""

    last_time: datetime | None = None  #: measurement time of the newest reading seen (None: none yet)
    last_value: float | None = None  #: its value, canonical unit


def check(reading: Reading, state: QCState | None, now: datetime, *,
          skew_tolerance_s: float = DEFAULT_SKEW_TOLERANCE_S,
          stale_after_s: float = DEFAULT_STALE_AFTER_S) -> tuple[Reading, QCState]:
    """Add CLOCK_SKEW and STALE to `reading` as earned; return it with the series' new state."""
    if now.tzinfo is None:
        raise ValueError("qc.check: `now` must be timezone-aware")
    if not (math.isfinite(skew_tolerance_s) and skew_tolerance_s >= 0):
        raise ValueError(f"qc.check: skew_tolerance_s must be >= 0, got {skew_tolerance_s}")
    if not (math.isfinite(stale_after_s) and stale_after_s >= 0):
        raise ValueError(f"qc.check: stale_after_s must be >= 0, got {stale_after_s}")
    flags = reading.flags
    reference = min(now, reading.received_at)
    if (reading.time - reference).total_seconds() > skew_tolerance_s:
        flags |= QC.CLOCK_SKEW
    if (reading.received_at - reading.time).total_seconds() > stale_after_s:
        flags |= QC.STALE
    checked = reading if flags == reading.flags else dataclasses.replace(reading, flags=flags)
    state = QCState() if state is None else state
    if not flags & QC.CLOCK_SKEW and (state.last_time is None or reading.time >= state.last_time):
        state = QCState(reading.time, reading.value)
    return checked, state
