"""Zero/span check results: each check's zero and span responses against their expected values, the acceptance
limits per pollutant, and the drift over successive checks (ingest stage, validation evidence). Pure.

A check (`sensors.zero_span.CheckWindow`) leaves two series of readings, in the schedule's unit (ppb, ppm): the
zero phase and the span phase. The analyser needs time to settle after each switch of gas, so a phase's
**response** is the mean of its readings in the last `stable_fraction` of the phase (default one half: an aqnet
choice, configurable as `zero_span.stable_fraction`; None when that part holds no reading).

Against the expected values (`CheckSchedule.zero_value`, usually 0, and `span_value`, the span gas):
- zero error = zero response − zero expected, in the unit; accepted when |zero error| ≤ the zero limit;
- span error = 100 · (span response − span expected) / span expected, in %; accepted when |span error| ≤ the
  span limit.
`percent_of_limit` is the larger of |zero error| / zero limit and |span error| / span limit, × 100: 100 is the
acceptance limit, above it the check fails (the technicians' `zero_span` alert rule compares it with 100).

**Drift** is the least-squares slope of the zero error (unit per day) and of the span error (% per day) over the
device's recent checks (`drift`), the trend a technician reads to foresee the next failure.

**Limits** (`DEFAULT_LIMITS`): the EPA QA Handbook for Air Pollution Measurement Systems, Vol. II, Appendix D,
"Measurement Quality Objectives and Validation Templates" (revision 1, 03/17), has a zero/span check row in the
operational criteria of the O3, SO2, NO2 and CO templates. Its text could not be read while this was written, so
every default below is marked `unverified`: they are the values as recalled from that table (the 24-hour zero
drift and the span drift), to be checked against the document or replaced by the network's own procedure
(`zero_span.limits` in the settings). No default exists for any other variable: a schedule for one needs its
limits configured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sensors.zero_span import CheckWindow

__all__ = ["DEFAULT_LIMITS", "HANDBOOK", "CheckResult", "Drift", "Limits", "drift", "evaluate", "responses"]

#: where the default limits come from (module docstring)
HANDBOOK = ("EPA QA Handbook Vol. II, Appendix D (rev. 1, 03/17), validation template, operational criteria, "
            "zero/span check")

Status = Literal["verified_primary", "verified_secondary", "secondary_single", "unverified"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The acceptance limits of one pollutant's zero/span checks."""

    zero: float  #: largest accepted |zero error|, in `unit`
    span_pct: float  #: largest accepted |span error|, in %
    unit: str  #: the unit of `zero` (and of the schedule's span value)
    source: str  #: the document (or the network's procedure) the numbers come from
    status: Status = "unverified"  #: verification status of the numbers (the domain files' legend)

    def __post_init__(self) -> None:
        for name in ("zero", "span_pct"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"zero/span limits ({self.source}): {name}: expected > 0, got {value}")


#: default limits per vocabulary code, all unverified (module docstring): zero drift (24 h) and span drift
DEFAULT_LIMITS: dict[str, Limits] = {
    # O3 template: zero drift ≤ ±3.1 ppb (24 h), span drift ≤ ±7.1 % (unverified: recalled, not read)
    "o3": Limits(zero=3.1, span_pct=7.1, unit="ppb", source=f"{HANDBOOK}, O3 (unverified)"),
    # SO2 template: zero drift ≤ ±3.1 ppb (24 h), span drift ≤ ±10.1 % (unverified: recalled, not read)
    "so2": Limits(zero=3.1, span_pct=10.1, unit="ppb", source=f"{HANDBOOK}, SO2 (unverified)"),
    # NO2 template: zero drift ≤ ±3.1 ppb (24 h), span drift ≤ ±10.1 % (unverified: recalled, not read)
    "no2": Limits(zero=3.1, span_pct=10.1, unit="ppb", source=f"{HANDBOOK}, NO2 (unverified)"),
    # CO template: zero drift ≤ ±0.41 ppm (24 h), span drift ≤ ±10.1 % (unverified: recalled, not read)
    "co": Limits(zero=0.41, span_pct=10.1, unit="ppm", source=f"{HANDBOOK}, CO (unverified)"),
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's responses, errors and verdict (module docstring); None where a phase had no reading."""

    zero_response: float | None
    span_response: float | None
    zero_n: int  #: readings averaged for the zero response
    span_n: int
    zero_error: float | None  #: in the unit
    span_error_pct: float | None  #: in %
    percent_of_limit: float | None  #: the worse of the two errors as % of its limit; None: no response at all
    passed: bool | None  #: None: a response is missing (nothing to judge)


def responses(window: CheckWindow, samples: Sequence[tuple[datetime, float]], stable_fraction: float = 0.5
              ) -> tuple[tuple[float | None, int], tuple[float | None, int]]:
    """((zero response, n), (span response, n)) of one run from its readings (time, value in the schedule's unit):
    the mean over the last `stable_fraction` of each phase; non-finite values are left out."""
    if not 0 < stable_fraction <= 1:
        raise ValueError(f"responses: stable_fraction: expected 0 < f <= 1, got {stable_fraction}")

    def mean(start: datetime, end: datetime) -> tuple[float | None, int]:
        settled = end - (end - start) * stable_fraction
        values = [v for t, v in samples if settled <= t < end and math.isfinite(v)]
        return (math.fsum(values) / len(values), len(values)) if values else (None, 0)

    return mean(window.starts_at, window.span_at), mean(window.span_at, window.ends_at)


def evaluate(zero: tuple[float | None, int], span: tuple[float | None, int], *, zero_expected: float,
             span_expected: float, limits: Limits) -> CheckResult:
    """A check's errors and verdict against `limits` (module docstring)."""
    if span_expected == 0:
        raise ValueError("evaluate: span_expected must not be 0 (the span error is relative to it)")
    (z, zn), (s, sn) = zero, span
    zero_error = None if z is None else z - zero_expected
    span_error = None if s is None else 100.0 * (s - span_expected) / span_expected
    ratios = [abs(e) / lim for e, lim in ((zero_error, limits.zero), (span_error, limits.span_pct)) if e is not None]
    worst = 100.0 * max(ratios) if ratios else None
    if zero_error is None or span_error is None:
        passed = None if worst is None or worst <= 100.0 else False  # one bad phase is enough to fail
    else:
        passed = worst is not None and worst <= 100.0
    return CheckResult(z, s, zn, sn, zero_error, span_error, worst, passed)


@dataclass(frozen=True, slots=True)
class Drift:
    """The trend over a device's recent checks; None where fewer than two checks have the error."""

    zero_per_day: float | None  #: unit per day
    span_pct_per_day: float | None  #: % per day
    checks: int  #: checks considered


def _slope(points: Sequence[tuple[float, float]]) -> float | None:
    if len(points) < 2:
        return None
    n = len(points)
    mx = math.fsum(x for x, _ in points) / n
    my = math.fsum(y for _, y in points) / n
    sxx = math.fsum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return math.fsum((x - mx) * (y - my) for x, y in points) / sxx


def drift(history: Sequence[tuple[datetime, float | None, float | None]]) -> Drift:
    """Least-squares slopes of (check start, zero error, span error %) per day over `history`."""
    if not history:
        return Drift(None, None, 0)
    t0 = min(t for t, _, _ in history)
    days = [((t - t0).total_seconds() / 86400.0, z, s) for t, z, s in history]
    return Drift(_slope([(d, z) for d, z, _ in days if z is not None]),
                 _slope([(d, s) for d, _, s in days if s is not None]), len(history))
