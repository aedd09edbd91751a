"""The annual compliance report: per station and pollutant, the annual mean against the annual limit of Res.
2254/2017 Tabla 1 and the count of exceedances of each short-term limit, each figure with the coverage behind it and
the periods validation excluded. Pure: no I/O, no clock (`now` is a parameter).

Rules, each with its source (sensors/domain/norms.json, the project's domain data):

- Limits: Res. 2254/2017 Art. 2 Tabla 1 (`max_permissible_levels`, status verified_secondary): annual PM10 50,
  PM2.5 25, NO2 60 µg/m³; 24 h PM10 75, PM2.5 37 (in force from 2018-07-01), SO2 50; 1 h SO2 100, NO2 200,
  CO 35 000; 8 h O3 100, CO 5 000 — read from the file by `tabla1_limits`, never typed here.
- Exceedance: an average exceeds when value > limit (`max_permissible_levels.exceedance_rule`, an aqnet
  convention: the norm's rounding and comparison rule was not found); only valid averages count.
- The 24-hour limit is evaluated on the calendar day in the network's time zone (`averaging_conventions.24h`,
  compliance); 8 h on the rolling mean ending at each hour (`averaging_conventions.8h_rolling`).
- Annual mean: the mean of the valid daily means of the local calendar year, valid with ≥ 75 % of the days valid:
  274 of 365, 275 of 366 (`data_completeness.thresholds.annual`, from the MAVDT 2010 monitoring protocol adopted by
  Res. 650/2010; status partially verified: the 75 % clause itself was not read). The same rule as
  `alerts.averaging.averages.annual_average`.
- Short-term counts: the norm and the protocol say nothing about the completeness of a year's count of
  exceedances. aqnet's convention, stated in the report: a count with at least one exceedance is "exceeded" whatever
  its coverage (a valid exceedance is a fact); a count of zero is "not_exceeded" only when at least 75 % of the
  year's periods are valid (the protocol's 75 % rule, `data_completeness.rule`, applied to the periods), else
  "incomplete".
- A period belongs to the year of its START in the network's time zone (as `exceedances(tz)`, migration 0007).

Excluded periods: the decisions in force (`validation_in_force`) covering the series, resolved as validation
resolves them (the latest decision covering an instant decides: `ingest.validation.resolve`); the spans an
invalidation decides are the excluded periods, clipped to the year.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Literal

from alerts.averaging.averages import SUBHOURLY_COMPLETENESS, local_day_bounds, local_year_bounds, min_valid_days
from sensors.domain import load
from sensors.variables import BY_REFERENCE_NAME

__all__ = ["COMPLETENESS_NOTE", "AnnualMean", "AnnualReport", "Decision", "Exclusion", "NormLimit", "PeriodValue",
           "SeriesInput", "SeriesReport", "ShortTermCount", "annual_report", "excluded_periods", "tabla1_limits"]

_AVERAGING = {"annual": "year", "24h": "day", "1h": "1h", "8h": "8h"}
_SHORT = ("day", "8h", "1h")

COMPLETENESS_NOTE = (
    "annual mean valid with >= 75 % of the year's days valid (274 of 365, 275 of 366): norms.json "
    "data_completeness.thresholds.annual (MAVDT 2010 protocol, Res. 650/2010; 75 % clause not read: partially "
    "verified). Exceedance counts: no completeness rule in the norm; aqnet convention: any valid exceedance is "
    "'exceeded'; zero is 'not_exceeded' only with >= 75 % of the periods valid, else 'incomplete'. Exceedance: "
    "value > limit (aqnet convention, norms.json exceedance_rule). Limits: Res. 2254/2017 Art. 2 Tabla 1.")


@dataclass(frozen=True, slots=True)
class NormLimit:
    """One maximum permissible level of Tabla 1 (µg/m³ at 25 °C and 760 mmHg)."""

    variable: str  #: variable code (pm25, no2, …)
    period: str  #: year | day | 8h | 1h
    value_ugm3: float
    since: date  #: in force from
    source: str

    def __post_init__(self) -> None:
        if self.period not in ("year", *_SHORT):
            raise ValueError(f"norm limit {self.variable}: period expected year, day, 8h or 1h, got {self.period!r}")
        if not self.value_ugm3 > 0:
            raise ValueError(f"norm limit {self.variable} {self.period}: expected > 0, got {self.value_ugm3}")


def tabla1_limits(norms: dict[str, Any] | None = None) -> tuple[NormLimit, ...]:
    """Tabla 1's levels from `norms` (default: the bundled sensors/domain/norms.json)."""
    doc = norms if norms is not None else load("norms")
    section = doc["max_permissible_levels"]
    out = []
    for i, level in enumerate(section["levels"]):
        where = f"norms.json max_permissible_levels.levels[{i}]"
        if level["pollutant"] not in BY_REFERENCE_NAME or level["averaging"] not in _AVERAGING:
            raise ValueError(f"{where}: unknown pollutant {level['pollutant']!r} or averaging {level['averaging']!r}")
        out.append(NormLimit(BY_REFERENCE_NAME[level["pollutant"]], _AVERAGING[level["averaging"]],
                             float(level["value"]), date.fromisoformat(level["since"]),
                             f"Res. 2254/2017 Art. 2 Tabla 1: {level['pollutant']} {level['averaging']} "
                             f"({section['status']})"))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class PeriodValue:
    """One stored average of a series: its period kind, bounds, value and validity."""

    period: str  #: day | 8h | 1h
    start: datetime
    end: datetime
    value: float | None
    valid: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """A validation decision in force covering the series (validation_in_force)."""

    id: int
    action: Literal["validate", "invalidate"]
    start: datetime
    end: datetime
    reason: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A span the validation excluded, clipped to the year, and the decision that excluded it."""

    decision_id: int
    start: datetime
    end: datetime
    reason: str | None
    device_id: str | None

    @property
    def hours(self) -> float:
        """Its length in hours."""
        return (self.end - self.start).total_seconds() / 3600


@dataclass(frozen=True, slots=True)
class SeriesInput:
    """One station's pollutant over the year: its stored averages and the decisions covering it."""

    sensor_id: str
    sensor_name: str
    variable: str
    unit: str
    averages: Sequence[PeriodValue]
    decisions: Sequence[Decision] = ()


@dataclass(frozen=True, slots=True)
class AnnualMean:
    """The year's mean and its verdict against the annual limit."""

    value: float | None  #: mean of the valid daily means (None: no valid day)
    valid_days: int
    days: int
    required_days: int
    coverage: float  #: valid_days / days
    valid: bool  #: valid_days >= required_days
    limit_ugm3: float | None
    source: str | None
    verdict: Literal["exceeds", "complies", "incomplete", "no_limit", "no_data"]


@dataclass(frozen=True, slots=True)
class ShortTermCount:
    """Exceedances of one short-term limit over the year, and the periods behind the count."""

    period: str  #: day | 8h | 1h
    limit_ugm3: float
    source: str
    exceedances: int
    valid_periods: int
    expected_periods: int
    coverage: float  #: valid_periods / expected_periods
    verdict: Literal["exceeded", "not_exceeded", "incomplete"]
    max_value: float | None  #: the highest valid average


@dataclass(frozen=True, slots=True)
class SeriesReport:
    """The report of one station and pollutant."""

    sensor_id: str
    sensor_name: str
    variable: str
    unit: str
    annual: AnnualMean
    short_term: tuple[ShortTermCount, ...]
    exclusions: tuple[Exclusion, ...]

    @property
    def excluded_hours(self) -> float:
        """Hours of the year the validation excluded."""
        return sum(e.hours for e in self.exclusions)


@dataclass(frozen=True, slots=True)
class AnnualReport:
    """The annual compliance report of one calendar year in the network's time zone."""

    year: int
    timezone: str
    year_start: datetime
    year_end: datetime
    generated_at: datetime
    partial: bool  #: the year had not ended when the report was made
    series: tuple[SeriesReport, ...]
    rules: str = COMPLETENESS_NOTE


def excluded_periods(decisions: Iterable[Decision], start: datetime, end: datetime) -> tuple[Exclusion, ...]:
    """The spans of [start, end) that an invalidation decides (the latest decision covering an instant decides),
    each with its decision; adjacent spans of one decision merged."""
    clipped = [d for d in decisions if d.end > start and d.start < end]
    cuts = sorted({start, end, *(max(d.start, start) for d in clipped), *(min(d.end, end) for d in clipped)})
    out: list[Exclusion] = []
    for lo, hi in itertools.pairwise(cuts):
        covering = [d for d in clipped if d.start <= lo and hi <= d.end]
        if not covering:
            continue
        deciding = max(covering, key=lambda d: d.id)
        if deciding.action != "invalidate":
            continue
        if out and out[-1].decision_id == deciding.id and out[-1].end == lo:
            out[-1] = Exclusion(deciding.id, out[-1].start, hi, deciding.reason, deciding.device_id)
        else:
            out.append(Exclusion(deciding.id, lo, hi, deciding.reason, deciding.device_id))
    return tuple(out)


def _annual(days: int, day_values: Sequence[PeriodValue], limit: NormLimit | None, year: int) -> AnnualMean:
    valid = [p.value for p in day_values if p.valid and p.value is not None]
    required = min_valid_days(days)
    mean = sum(valid) / len(valid) if valid else None
    complete = len(valid) >= required
    in_force = limit is not None and limit.since.year <= year
    verdict: Literal["exceeds", "complies", "incomplete", "no_limit", "no_data"]
    if mean is None:
        verdict = "no_data"
    elif not complete:
        verdict = "incomplete"
    elif not in_force or limit is None:
        verdict = "no_limit"
    else:
        verdict = "exceeds" if mean > limit.value_ugm3 else "complies"
    return AnnualMean(mean, len(valid), days, required, len(valid) / days, complete,
                      limit.value_ugm3 if in_force and limit else None, limit.source if in_force and limit else None,
                      verdict)


def _short(limit: NormLimit, values: Sequence[PeriodValue], start: datetime, end: datetime,
           tz: tzinfo) -> ShortTermCount | None:
    since = max(start, local_day_bounds(limit.since, tz)[0])
    if since >= end:
        return None  # not in force that year
    counted = [p for p in values if p.period == limit.period and since <= p.start < end]
    valid = [p.value for p in counted if p.valid and p.value is not None]
    span_h = round((end - since).total_seconds() / 3600)
    expected = round((end - since) / timedelta(days=1)) if limit.period == "day" else span_h
    exceedances = sum(1 for v in valid if v > limit.value_ugm3)
    coverage = len(valid) / expected if expected else 0.0
    verdict: Literal["exceeded", "not_exceeded", "incomplete"]
    if exceedances:
        verdict = "exceeded"
    elif coverage >= SUBHOURLY_COMPLETENESS:
        verdict = "not_exceeded"
    else:
        verdict = "incomplete"
    return ShortTermCount(limit.period, limit.value_ugm3, limit.source, exceedances, len(valid), expected,
                          coverage, verdict, max(valid) if valid else None)


def annual_report(year: int, tz: tzinfo, timezone_name: str, inputs: Iterable[SeriesInput],
                  limits: Sequence[NormLimit], now: datetime) -> AnnualReport:
    """The report of `year` (local calendar year in `tz`) for every series in `inputs` that has a Tabla 1 limit."""
    if now.tzinfo is None:
        raise ValueError(f"annual_report: now must be aware, got {now!r}")
    start, end = local_year_bounds(year, tz)
    days = round((end - start) / timedelta(days=1))
    by_variable: dict[str, list[NormLimit]] = {}
    for limit in limits:
        by_variable.setdefault(limit.variable, []).append(limit)
    series = []
    for s in sorted(inputs, key=lambda s: (s.sensor_id, s.variable)):
        own = by_variable.get(s.variable)
        if not own:
            continue
        annual_limit = next((lim for lim in own if lim.period == "year"), None)
        day_values = [p for p in s.averages if p.period == "day" and start <= p.start < end]
        if len(day_values) > days:
            raise ValueError(f"{s.sensor_id} {s.variable}: {len(day_values)} daily averages for a year of {days} "
                             "days")
        counts = [_short(lim, s.averages, start, end, tz)
                  for lim in sorted(own, key=lambda lim: _SHORT.index(lim.period) if lim.period in _SHORT else -1)
                  if lim.period != "year"]
        series.append(SeriesReport(s.sensor_id, s.sensor_name, s.variable, s.unit,
                                   _annual(days, day_values, annual_limit, year),
                                   tuple(c for c in counts if c is not None),
                                   excluded_periods(s.decisions, start, end)))
    return AnnualReport(year, timezone_name, start, end, now, now < end, tuple(series))
