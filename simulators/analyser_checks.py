"""Simulated analysers that run zero/span checks and drift, so the checks' detection, exclusion, recording and
alerting are testable without hardware. Pure: a value source wrapper, deterministic in time.

A `DriftingAnalyser` runs its `sensors.zero_span.CheckSchedule` like a real one without a status bit: in the zero
phase it reads zero air, in the span phase the span gas, and in the purge time the span gas washing out (the
excess decays linearly to 0 over the purge), then ambient air again. It drifts from `since`: its zero by
`zero_per_day` (in the schedule's unit, added to every reading) and its gain by `span_pct_per_day` (% per day,
multiplying every reading's concentration), so its span response moves away from the span gas value day after day
until a check exceeds its acceptance limit. `with_checks` wraps a station's value source (in the profile's
unit, which must be the schedule's unit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sensors.zero_span import CheckSchedule, window_at

__all__ = ["DriftingAnalyser", "with_checks"]

ValueSource = Callable[[str, str, datetime], float]


@dataclass(frozen=True, slots=True)
class DriftingAnalyser:
    """One analyser's check schedule and drift (module docstring)."""

    schedule: CheckSchedule
    since: datetime  #: when the drift starts (the last adjustment)
    zero_per_day: float = 0.0  #: zero drift, schedule unit per day
    span_pct_per_day: float = 0.0  #: gain drift, % per day

    def _days(self, t: datetime) -> float:
        return max((t - self.since).total_seconds() / 86400.0, 0.0)

    def offset(self, t: datetime) -> float:
        """The zero offset at `t`, in the schedule's unit."""
        return self.zero_per_day * self._days(t)

    def gain(self, t: datetime) -> float:
        """The gain at `t` (1: no drift)."""
        return 1.0 + self.span_pct_per_day * self._days(t) / 100.0

    def reading(self, ambient: float, t: datetime) -> float:
        """What the analyser reports at `t` when the ambient air holds `ambient` (schedule unit)."""
        s = self.schedule
        run = window_at(s, t)
        phase = run.phase(t) if run is not None else None
        if phase == "zero":
            concentration = s.zero_value
        elif phase == "span":
            concentration = s.span_value
        elif phase == "purge" and run is not None:
            left = (run.purge_ends_at - t) / (run.purge_ends_at - run.ends_at)
            concentration = ambient + (s.span_value - ambient) * left
        else:
            concentration = ambient
        return concentration * self.gain(t) + self.offset(t)


def with_checks(source: ValueSource, analysers: Iterable[DriftingAnalyser]) -> ValueSource:
    """`source` with every analyser's checks and drift applied to its (sensor, variable)."""
    by_key = {(a.schedule.sensor_id, a.schedule.variable): a for a in analysers}

    def value(sensor_id: str, variable: str, t: datetime) -> float:
        ambient = source(sensor_id, variable, t)
        analyser = by_key.get((sensor_id, variable))
        return ambient if analyser is None else analyser.reading(ambient, t)

    return value
