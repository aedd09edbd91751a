"""Hourly and rolling (8 h / 24 h) averages with completeness rules. Pure (numpy), no I/O, no clock.

Time convention (stated once, here): every averaged value is stamped with the END of its period
(norms.json `averaging_conventions.hour`: hours are labelled by their end, local time America/Bogota,
the RMCAB portal convention; VARIABLES.md "Time"). The hour ending at H holds the samples with
``H - 1 h <= t < H`` (half-open, like TimescaleDB's ``time_bucket``, whose bucket start + 1 h is the label).
A rolling 8 h value ending at H is the mean of the hourly values ending at H-7 h … H; a rolling 24 h value
ending at H uses H-23 h … H (norms.json `averaging_conventions.8h_rolling` / `.24h`: aqnet evaluates alert
levels on the 24-h mean ending at the current hour). Hours are aligned to the network's time zone;
calendar-day periods (compliance) would be too, but only 1 h / 8 h / 24 h rolling are implemented now.

Completeness:
- 1 h from sub-hourly samples: valid when the number of valid samples is at least 75 % of the samples
  expected at the device's configured cadence (3600 / cadence_s). The norm is silent on sub-hourly
  completeness: this is an aqnet convention (VARIABLES.md "Time"), borrowed from the protocol's 75 % rule
  (norms.json `data_completeness`).
- 8 h rolling: valid with ≥ 6 of 8 valid hours; 24 h: ≥ 18 of 24 (norms.json `data_completeness.thresholds`,
  NORMS.md "Completeness (75 %) and averaging"), i.e. ceil(0.75 · hours).
- Samples flagged with any `ingest.reading.EXCLUDED` bit, and non-finite values, are not valid (VARIABLES.md
  "Which readings count"); suspect flags (spike, flatline, small negative) still count.

An average without enough data is NOT a silent number: `Average.value` is the mean of the valid samples that
were there (so a dashboard can still draw it), but `Average.valid` is False and `coverage` says how much was
there. Consumers that need a reportable value (alerts, indices, the norm's examples) use
`Average.valid_value`, which is None for an invalid average. With no valid sample at all, `value` is None too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from ingest.reading import EXCLUDED

__all__ = [
    "HOUR",
    "ROLLING_PERIODS",
    "SUBHOURLY_COMPLETENESS",
    "Average",
    "hourly_average",
    "min_valid_hours",
    "rolling_average",
    "sample_validity",
]

HOUR = timedelta(hours=1)

#: 75 % of the expected values must be valid (norms.json `data_completeness.rule`, MAVDT 2010 protocol);
#: applied to sub-hourly samples as an aqnet convention (the norm is silent there; VARIABLES.md "Time").
SUBHOURLY_COMPLETENESS = 0.75

#: rolling period → (hours in the window, valid hours required): norms.json `data_completeness.thresholds`
#: ("8h": "6 of 8 hours", "24h": "18 of 24 hours").
ROLLING_PERIODS: dict[str, tuple[int, int]] = {"8h": (8, 6), "24h": (24, 18)}


@dataclass(frozen=True, slots=True)
class Average:
    """One averaged value with its completeness. `value` is in the unit of the inputs."""

    value: float | None  #: mean of the valid inputs (None when there was none), kept even when invalid
    coverage: float  #: valid inputs / expected inputs, in [0, 1]
    samples: int  #: number of valid inputs that entered the mean
    valid: bool  #: True when the completeness rule is met

    def __post_init__(self) -> None:
        if not 0.0 <= self.coverage <= 1.0:
            raise ValueError(f"Average.coverage: expected 0..1, got {self.coverage}")
        if self.samples < 0:
            raise ValueError(f"Average.samples: expected >= 0, got {self.samples}")
        if (self.value is None) != (self.samples == 0):
            raise ValueError(f"Average: value {self.value} inconsistent with {self.samples} samples")
        if self.valid and self.value is None:
            raise ValueError("Average: a valid average needs a value")

    @property
    def valid_value(self) -> float | None:
        """The value when the average is valid, else None (what alerts and reports may use)."""
        return self.value if self.valid else None


def sample_validity(values: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Boolean mask of samples that count: finite value and no `EXCLUDED` QC bit (VARIABLES.md)."""
    values = np.asarray(values, dtype=float)
    flags = np.asarray(flags, dtype=np.int64)
    if values.shape != flags.shape:
        raise ValueError(f"sample_validity: values {values.shape} and flags {flags.shape} differ in shape")
    return np.isfinite(values) & ((flags & int(EXCLUDED)) == 0)


def _epoch_seconds(times: np.ndarray) -> np.ndarray:
    """Times as float seconds since the epoch: datetime64 (read as UTC), numbers, or aware datetimes."""
    arr = np.asarray(times)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[us]").astype(np.int64) / 1e6
    if np.issubdtype(arr.dtype, np.number):
        return arr.astype(float)
    out = np.empty(arr.shape, dtype=float)
    for i, t in enumerate(arr.ravel()):
        if not isinstance(t, datetime) or t.tzinfo is None:
            raise ValueError(f"times[{i}]: expected an aware datetime, datetime64 or epoch seconds, "
                             f"got {t!r}")
        out.flat[i] = t.timestamp()
    return out


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"{name}: expected an aware datetime, got naive {t.isoformat()}")
    return t.astimezone(UTC)


def hourly_average(
    times: np.ndarray, values: np.ndarray, valid: np.ndarray, hour_end: datetime, cadence_s: float
) -> Average:
    """Mean of the valid samples with ``hour_end - 1 h <= t < hour_end``; valid at ≥ 75 % of 3600/cadence_s.

    `valid` is a boolean mask (see `sample_validity`); samples outside the hour are ignored, so a caller may
    pass a longer series. The 75 % sub-hourly rule is an aqnet convention (module docstring).
    """
    if not cadence_s > 0 or not math.isfinite(cadence_s):
        raise ValueError(f"hourly_average: cadence_s: expected a positive number of seconds, got {cadence_s}")
    t = _epoch_seconds(times)
    v = np.asarray(values, dtype=float)
    ok = np.asarray(valid, dtype=bool)
    if not t.shape == v.shape == ok.shape:
        raise ValueError(f"hourly_average: times {t.shape}, values {v.shape}, valid {ok.shape}: "
                         "expected equal shapes")
    end = _aware(hour_end, "hour_end").timestamp()
    start = end - HOUR.total_seconds()
    use = (t >= start) & (t < end) & ok & np.isfinite(v)
    n = int(use.sum())
    expected = HOUR.total_seconds() / cadence_s
    # a device sending faster than its configured cadence would give > 100 %: coverage is capped,
    # `samples` keeps the real count.
    coverage = min(1.0, n / expected)
    # small tolerance so that exactly 75 % of a non-integer expectation is not lost to float rounding
    is_valid = n > 0 and n >= SUBHOURLY_COMPLETENESS * expected - 1e-9
    value = float(v[use].mean()) if n else None
    return Average(value=value, coverage=coverage, samples=n, valid=is_valid)


def min_valid_hours(hours: int) -> int:
    """Valid hours a rolling window of `hours` needs: ceil(75 %) (6 of 8, 18 of 24; norms.json)."""
    return math.ceil(SUBHOURLY_COMPLETENESS * hours - 1e-9)


def rolling_average(
    hourly_values: np.ndarray, hourly_valid: np.ndarray, hours: int = 8, min_valid: int | None = None
) -> Average:
    """Mean of the valid hourly values among the last `hours` entries (oldest → newest, the last one ends the
    window); valid with ≥ `min_valid` valid hours (default ceil(0.75 · hours): 6 of 8, 18 of 24 per
    norms.json `data_completeness.thresholds`). Missing hours may be NaN or marked invalid; a series shorter
    than `hours` counts the absent hours as missing. Divides by the number of VALID hours (norms.json
    `averaging_conventions.8h_rolling`).
    """
    if hours < 1:
        raise ValueError(f"rolling_average: hours: expected >= 1, got {hours}")
    need = min_valid_hours(hours) if min_valid is None else min_valid
    if not 1 <= need <= hours:
        raise ValueError(f"rolling_average: min_valid: expected 1..{hours}, got {need}")
    v = np.asarray(hourly_values, dtype=float)
    ok = np.asarray(hourly_valid, dtype=bool)
    if v.shape != ok.shape or v.ndim != 1:
        raise ValueError(f"rolling_average: values {v.shape} and valid {ok.shape}: expected equal 1-D shapes")
    v, ok = v[-hours:], ok[-hours:]
    use = ok & np.isfinite(v)
    n = int(use.sum())
    value = float(v[use].mean()) if n else None
    return Average(value=value, coverage=n / hours, samples=n, valid=n >= need)
