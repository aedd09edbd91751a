"""The data indicators of device health: completeness of its series, how long it has been flat, and its drift
against a co-located reference. Pure (alerts stage, numpy for the fit); the database reads are
`storage.health_store`'s. Definitions (aqnet's; docs/operators/device-health.md):

- **Completeness** over a window of N whole hours: the sum of the coverage (0..1, valid readings over the
  readings expected at the device's cadence, `averages.coverage`) of the 1-h averages of the series the device
  feeds (the variables it is the primary device of), divided by N × the number of those series. An hour without
  an average counts 0. It is the network's usual data capture, read from the averages job's results.
- **Flat**: per variable, the minutes from the first to the last of the run of latest valid readings whose
  max − min stays within a tolerance (`health.flatline_tolerance`, default 0: exactly constant) — the
  definition of the `flatline` equipment rule — when the run holds at least 3 readings, else 0; the device's
  value is its worst variable.
- **Drift** (against a co-located reference, never the device's own history: a city's concentrations change
  with the seasons, a reference beside the device does not drift with them): over the hours where both have a
  valid 1-h average of a variable, d = device − reference; the drift is the least-squares slope of d against
  time, in the variable's unit per day, with the mean of d (the bias) and the number of hours. Only devices of
  a sensor with a reference station of the same variable within `health.colocation_max_distance_m` have one;
  the reference analysers' own drift is what their zero/span checks measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

__all__ = ["Drift", "completeness", "drift", "flat_minutes"]

#: a flat run shorter than this many readings is no flat run (the flatline equipment rule's, alerts.rules.equipment)
MIN_FLAT_READINGS = 3


def completeness(coverage_sums: Sequence[float], hours: int) -> float | None:
    """Sum of the series' hourly coverage over `hours` × the number of series, 0..1; None without series."""
    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    if not coverage_sums:
        return None
    total = sum(min(max(c, 0.0), float(hours)) for c in coverage_sums)
    return total / (hours * len(coverage_sums))


def flat_minutes(last: datetime | None, run_start: datetime | None, run_length: int) -> float:
    """Minutes from the flat run's first to its last reading; 0 for a run of fewer than 3 readings."""
    if last is None or run_start is None or run_length < MIN_FLAT_READINGS:
        return 0.0
    return max((last - run_start).total_seconds() / 60.0, 0.0)


@dataclass(frozen=True, slots=True)
class Drift:
    """A device's drift against its co-located reference for one variable."""

    variable: str
    reference_sensor: str
    hours: int  #: paired hours used
    bias: float  #: mean device − reference, the variable's unit
    per_day: float | None  #: least-squares slope of the difference, unit per day (None: fewer than 2 days)


def drift(variable: str, reference_sensor: str, hour_ends: Sequence[datetime], device: Sequence[float],
          reference: Sequence[float]) -> Drift | None:
    """The drift of the paired hourly values (module docstring); None without pairs."""
    if not (len(hour_ends) == len(device) == len(reference)):
        raise ValueError(f"drift: {len(hour_ends)} hours, {len(device)} device and {len(reference)} reference "
                         "values: expected as many of each")
    if not hour_ends:
        return None
    d = np.asarray(device, np.float64) - np.asarray(reference, np.float64)
    t0 = hour_ends[0]
    days = np.array([(t - t0).total_seconds() / 86400.0 for t in hour_ends], np.float64)
    slope: float | None = None
    if days.max() - days.min() >= 1.0:
        a = np.column_stack([days, np.ones_like(days)])
        coef, *_ = np.linalg.lstsq(a, d, rcond=None)
        slope = float(coef[0])
    return Drift(variable, reference_sensor, len(d), float(d.mean()), slope)
