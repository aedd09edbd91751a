"""Hourly and rolling (8 h / 24 h) averages with completeness rules. Pure (numpy), no I/O, no clock.

Time convention (stated once, here): every averaged value is stamped with the END of its period
(norms.json `averaging_conventions.hour`: hours are labelled by their end, local time America/Bogota,
the RMCAB portal convention; VARIABLES.md "Time"). The hour ending at H holds the samples with
``H - 1 h <= t < H`` (half-open, like TimescaleDB's ``time_bucket``, whose bucket start + 1 h is the label).
A rolling 8 h value ending at H is the mean of the hourly values ending at H-7 h … H; a rolling 24 h value
ending at H uses H-23 h … H (norms.json `averaging_conventions.8h_rolling` / `.24h`: aqnet evaluates alert
levels on the 24-h mean ending at the current hour). Hours are aligned to the network's time zone.

Calendar periods (compliance), in the network's time zone (America/Bogota for the bundled network), never UTC:
- day ('day' period): the local calendar day 00:00–24:00, i.e. the hours ending 01:00 … 24:00 local
  (norms.json `averaging_conventions.24h`, compliance). `local_day_bounds` gives its aware start and end; in a
  zone with daylight saving time the day lasts 23 or 25 hours, and `daily_average` expects that many hours.
- year ('year' period): the local calendar year, the mean of the valid daily means (norms.json
  `averaging_conventions.annual`); `local_year_bounds` gives its start and end.

Completeness:
- 1 h from sub-hourly samples: valid when the number of valid samples is at least 75 % of the samples
  expected at the device's configured cadence (3600 / cadence_s). The norm is silent on sub-hourly
  completeness: this is an aqnet convention (VARIABLES.md "Time"), borrowed from the protocol's 75 % rule
  (norms.json `data_completeness`).
- 8 h rolling: valid with ≥ 6 of 8 valid hours; 24 h: ≥ 18 of 24 (norms.json `data_completeness.thresholds`,
  NORMS.md "Completeness (75 %) and averaging"), i.e. ceil(0.75 · hours).
- day: ≥ 18 of 24 valid hours (same source). A 23- or 25-hour DST day applies the same 75 % rule to the hours
  it really has: ceil(0.75 · 23) = 18, ceil(0.75 · 25) = 19 (aqnet's reading of the 75 % rule; Bogotá has no
  DST, so the bundled network always has 24-hour days).
- year: ≥ 274 of 365 valid days, 275 of 366 in a leap year (norms.json `data_completeness.thresholds.annual`:
  "75 % of days with a valid daily mean: 274 of 365, 275 of 366"; NORMS.md; examples.json EX073), i.e.
  ceil(0.75 · days in the year): the leap year scales by the same 75 %, not by a fixed 274.
- Samples flagged with any `ingest.reading.EXCLUDED` bit, and non-finite values, are not valid (VARIABLES.md
  "Which readings count"); suspect flags (spike, flatline, small negative) still count.

An average without enough data is NOT a silent number: `Average.value` is the mean of the valid samples that
were there (so a dashboard can still draw it), but `Average.valid` is False and `coverage` says how much was
there. Consumers that need a reportable value (alerts, indices, the norm's examples) use
`Average.valid_value`, which is None for an invalid average. With no valid sample at all, `value` is None too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import numpy as np

from ingest.reading import EXCLUDED

__all__ = [
    "HOUR",
    "ROLLING_PERIODS",
    "SUBHOURLY_COMPLETENESS",
    "Average",
    "annual_average",
    "daily_average",
    "hourly_average",
    "local_day_bounds",
    "local_year_bounds",
    "min_valid_days",
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
    valid: np.ndarray = np.isfinite(values) & ((flags & int(EXCLUDED)) == 0)
    return valid


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


def local_day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Start and end (aware, in `tz`) of the local calendar day `day`: 00:00 to the next day's 00:00.

    The span is 24 h, or 23 / 25 h across a DST change; a day is stamped with its end (module docstring).
    """
    return _local_midnight(day, tz), _local_midnight(day + timedelta(days=1), tz)


def local_year_bounds(year: int, tz: tzinfo) -> tuple[datetime, datetime]:
    """Start and end (aware, in `tz`) of the local calendar year: 1 January 00:00 to the next 1 January 00:00."""
    return _local_midnight(date(year, 1, 1), tz), _local_midnight(date(year + 1, 1, 1), tz)


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    # fold=0 and a round trip through UTC: a midnight that does not exist (DST starting at 00:00) becomes the
    # first real instant of the day
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC).astimezone(tz)


def _whole_hours(start: datetime, end: datetime, what: str) -> int:
    start, end = _aware(start, f"{what}_start"), _aware(end, f"{what}_end")
    seconds = (end - start).total_seconds()
    hours = round(seconds / HOUR.total_seconds())
    if seconds <= 0 or hours * HOUR.total_seconds() != seconds:
        raise ValueError(f"{what}_start {start.isoformat()} .. {what}_end {end.isoformat()}: "
                         "expected a positive whole number of hours")
    return hours


def _mean_of_valid(inputs: Sequence[Average]) -> tuple[float | None, int]:
    values = [a.valid_value for a in inputs]
    valid = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(valid.size)
    return (float(valid.mean()) if n else None), n


def daily_average(hourly: Sequence[Average], day_start: datetime, day_end: datetime) -> Average:
    """The 'day' average: mean of the VALID hourly averages of one local calendar day.

    `hourly` holds the day's '1h' averages that exist (any order; absent hours are simply missing; an invalid
    hour does not count even if it has a value). `day_start`/`day_end` are the day's bounds
    (`local_day_bounds`): the expected number of hours is their span, 24, or 23 / 25 across a DST change.
    Valid with ≥ ceil(0.75 · hours) valid hours: 18 of 24 (norms.json `data_completeness.thresholds` "24h":
    "18 of 24 hours"; NORMS.md), 18 of 23, 19 of 25. `coverage` = valid hours / expected hours. An invalid
    day keeps the mean of the valid hours it had as `value` (like `rolling_average`).
    """
    hours = _whole_hours(day_start, day_end, "day")
    if not 23 <= hours <= 25:
        raise ValueError(f"daily_average: day_start {day_start.isoformat()} .. day_end {day_end.isoformat()} "
                         f"spans {hours} h: expected a calendar day of 23, 24 or 25 h")
    if len(hourly) > hours:
        raise ValueError(f"daily_average: {len(hourly)} hourly averages for a day of {hours} h: expected at most "
                         f"{hours}")
    value, n = _mean_of_valid(hourly)
    return Average(value=value, coverage=n / hours, samples=n, valid=n >= min_valid_hours(hours))


def min_valid_days(days: int) -> int:
    """Valid days a year of `days` days needs: ceil(75 %): 274 of 365, 275 of 366 (norms.json
    `data_completeness.thresholds.annual`)."""
    return math.ceil(SUBHOURLY_COMPLETENESS * days - 1e-9)


def annual_average(daily: Sequence[Average], year_start: datetime, year_end: datetime) -> Average:
    """The 'year' average: mean of the VALID daily means of one local calendar year.

    `daily` holds the year's 'day' averages that exist (absent days are missing; invalid days do not count).
    `year_start`/`year_end` are the year's bounds (`local_year_bounds`); the year has 365 or 366 days (counted
    from the span, which a DST zone leaves a whole number of days). Valid with ≥ ceil(0.75 · days) valid days:
    274 of 365, 275 of 366 (norms.json `data_completeness.thresholds.annual`; NORMS.md; examples.json EX073).
    `coverage` = valid days / days in the year.
    """
    start, end = _aware(year_start, "year_start"), _aware(year_end, "year_end")
    days = round((end - start).total_seconds() / 86400)
    if days not in (365, 366) or abs((end - start).total_seconds() - days * 86400) > 2 * HOUR.total_seconds():
        raise ValueError(f"annual_average: year_start {year_start.isoformat()} .. year_end {year_end.isoformat()}: "
                         "expected a calendar year of 365 or 366 days")
    if len(daily) > days:
        raise ValueError(f"annual_average: {len(daily)} daily averages for a year of {days} days: expected at "
                         f"most {days}")
    value, n = _mean_of_valid(daily)
    return Average(value=value, coverage=n / days, samples=n, valid=n >= min_valid_days(days))
