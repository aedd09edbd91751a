"""Normalisation and QC of one batch of RawReadings with numpy, identical to the reading-by-reading path (ingest
stage). Pure: the caller passes `now`, the books and the QC states (which it keeps, as the pipeline does).

Contract: `BatchNormaliser(...)(raws, now, conditions=…, qc=…, ranges=…, calibrations=…, maintenance=…)` returns
exactly what `normalise_each` — the reference, reading by reading with `ingest.normalise.normalise`,
`ingest.qc.check` and `ingest.maintenance.flag_maintenance` — returns for the same input: the same Readings
(values, units, flags, provenance, calibration ids) in the same order, the same refusals (reason and detail), the
same QC states after it and the same observations recorded in the `ConditionsBook`. A -0.0 may come out as 0.0
(equal, and never a different flag). The order is the pipeline's: meteorological readings first (their T, P
and RH are observed before the batch's mass concentrations are corrected), the rest after, each part in the
order given.

How: the per-sensor state is looked up once per batch — site conditions once per sensor (after the
meteorological readings are observed), calibration periods once per (device, variable), maintenance windows
once per sensor, QC states once per series, unit conversions once per (unit, variable) and then cached — and the
arithmetic runs over arrays: calibration (Horner's rule over padded coefficients, the κ-Köhler form, a·x + b·RH + c),
conversion (`ingest.units.Conversion`), the reference-conditions factor, the flags, and QC (`ingest.batch_qc`),
each with the scalar path's operations in its order, so the floats are the same bit for bit. A reading the batch
cannot normalise is handed to the scalar `normalise` for its exact error; the meteorological part is normalised
reading by reading when one of its readings has a humidity calibration (its RH can come from the reading before
it), and batches smaller than `min_batch` take the reference path whole (numpy's fixed cost per batch exceeds
its gain on a few readings).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from ingest import units
from ingest.batch_qc import check_batch
from ingest.calibration import KAPPA_DENSITY_RATIO, Calibration, CalibrationBook, rh_usable
from ingest.maintenance import MaintenanceBook, flag_maintenance
from ingest.normalise import REPORTED_REFERENCE, ConditionsBook, SiteConditions, normalise
from ingest.plausibility import TimeWindow
from ingest.qc import (
    DEFAULT_FLATLINE_AFTER_S,
    DEFAULT_SKEW_TOLERANCE_S,
    DEFAULT_SPIKE_LIMITS,
    DEFAULT_SPIKE_MIN_INTERVAL_S,
    DEFAULT_STALE_AFTER_S,
    QCState,
    check,
)
from ingest.reading import QC, Reading
from sensors.reading import RawReading
from sensors.variables import Kind, UnknownVariableError, variable

__all__ = ["DEFAULT_MIN_BATCH", "BatchNormaliser", "Normalised", "Refusal", "normalise_each"]

#: below this many readings a batch takes the reference path (measured with `python -m bench ingest`: numpy's
#: fixed cost per array operation outweighs its gain on a driver's submission of a few readings)
DEFAULT_MIN_BATCH = 80

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SIGNED = frozenset({"temperature", "temperature_8m", "temperature_20m"})  # as ingest.normalise._SIGNED
_MASS_UNITS = frozenset({"µg/m³", "mg/m³", "ng/m³"})
_CALIBRATED, _NEGATIVE, _OUT_OF_RANGE = int(QC.CALIBRATED), int(QC.NEGATIVE), int(QC.OUT_OF_RANGE)
_RECEIVE_TIME, _MAINTENANCE = int(QC.RECEIVE_TIME), int(QC.MAINTENANCE)

SeriesKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reading that cannot be normalised: the reason (metrics label) and detail of the scalar path's error."""

    raw: RawReading
    reason: str
    detail: str


@dataclass(slots=True)
class Normalised:
    """A batch's outcome: the readings (flagged, in processing order) and the refused readings (same order)."""

    readings: list[Reading] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def _met_first(raw: RawReading) -> int:
    # temperature and pressure of a message are observed before its mass concentrations are corrected
    try:
        return 0 if variable(raw.variable).kind is Kind.MET else 1
    except UnknownVariableError:
        return 1


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + us * _US


def normalise_each(raws: Sequence[RawReading], now: datetime, *, conditions: ConditionsBook,
                   qc: dict[SeriesKey, QCState], ranges: Mapping[tuple[str, str], tuple[float, float]],
                   calibrations: CalibrationBook | None, maintenance: MaintenanceBook | None,
                   time_window: TimeWindow, skew_tolerance_s: float = DEFAULT_SKEW_TOLERANCE_S) -> Normalised:
    """The reference: `raws` normalised, checked and flagged one by one (met first); updates `qc` and the book."""
    out = Normalised()
    # only meteorological readings change the conditions book, and they come first: after them, a sensor's
    # site conditions are the same for the rest of the batch, so they are looked up once
    sites: dict[str, SiteConditions] = {}
    for raw in sorted(raws, key=_met_first):
        try:
            time_window.check(raw, now)
            if _met_first(raw) == 0:
                site = conditions.for_sensor(raw.sensor_id, now)
            else:
                site = sites.get(raw.sensor_id) or sites.setdefault(
                    raw.sensor_id, conditions.for_sensor(raw.sensor_id, now))
            reading = normalise(raw, site, range_=ranges.get((raw.device_id, raw.variable)),
                                calibrations=calibrations)
        except ValueError as exc:  # UnitError, UnknownVariableError, NormaliseError
            out.refused.append(Refusal(raw, getattr(exc, "reason", type(exc).__name__), str(exc)))
            continue
        key = (reading.sensor_id, reading.device_id, reading.variable)
        reading, qc[key] = check(reading, qc.get(key), now, skew_tolerance_s=skew_tolerance_s)
        # flagged before it may become a site condition: a reading in maintenance is not valid
        reading = flag_maintenance(reading, maintenance)
        conditions.observe(reading)
        out.readings.append(reading)
    return out


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a batch needs to know about one (reported unit, variable), computed once."""

    conversion: units.Conversion
    unit: str  #: canonical unit
    mass: bool  #: a mass concentration: declared conditions, reference correction
    signed: bool  #: may be negative (no NEGATIVE flag)
    spike_limit: float  #: NaN: not checked
    flatline_after_s: float  #: NaN: not checked


class _NeedsSequence(Exception):
    """A met reading with a humidity calibration: its RH may come from the reading before it."""


@dataclass(slots=True)
class _Site:
    factor: float  #: units.reference_factor of the site's T and P
    site: SiteConditions


class BatchNormaliser:
    """Normalises and checks whole batches with numpy, identical to `normalise_each` (module docstring).

    Args:
        time_window: device times outside it are refused (`ingest.plausibility`).
        skew_tolerance_s: as `qc.check`; the other QC limits are `qc.check`'s defaults, as the pipeline's.
        min_batch: smaller batches take the reference path whole.
    """

    def __init__(self, *, time_window: TimeWindow | None = None,
                 skew_tolerance_s: float = DEFAULT_SKEW_TOLERANCE_S, min_batch: int = DEFAULT_MIN_BATCH) -> None:
        self.time_window = time_window or TimeWindow()
        self.skew_tolerance_s = skew_tolerance_s
        self.min_batch = min_batch
        self._plans: dict[tuple[str, str], _Plan | None] = {}
        self._met: dict[str, int] = {}  #: variable code → _met_first (0: meteorological)

    def __call__(self, raws: Sequence[RawReading], now: datetime, *, conditions: ConditionsBook,
                 qc: dict[SeriesKey, QCState], ranges: Mapping[tuple[str, str], tuple[float, float]],
                 calibrations: CalibrationBook | None, maintenance: MaintenanceBook | None) -> Normalised:
        """`raws` normalised, checked and flagged as `normalise_each` would; updates `qc` and the book."""
        if len(raws) < self.min_batch:
            return normalise_each(raws, now, conditions=conditions, qc=qc, ranges=ranges, calibrations=calibrations,
                                  maintenance=maintenance, time_window=self.time_window,
                                  skew_tolerance_s=self.skew_tolerance_s)
        met_of = self._met
        cached = [met_of.get(raw.variable) for raw in raws]
        order = [_met_first(raw) if o is None else o for raw, o in zip(raws, cached, strict=True)]
        if None in cached:
            met_of.update((raw.variable, o) for raw, o in zip(raws, order, strict=True))
        # sorted(raws, key=_met_first) as a stable partition
        met = [raw for o, raw in zip(order, raws, strict=True) if not o]
        rest = [raw for o, raw in zip(order, raws, strict=True) if o]
        out = Normalised()
        books = (conditions, qc, ranges, calibrations, maintenance)
        if met:
            try:
                done = self._part(met, now, None, *books)
            except _NeedsSequence:
                done = normalise_each(met, now, conditions=conditions, qc=qc, ranges=ranges,
                                      calibrations=calibrations, maintenance=maintenance,
                                      time_window=self.time_window, skew_tolerance_s=self.skew_tolerance_s)
            else:
                for reading in done.readings:
                    conditions.observe(reading)
            out.readings.extend(done.readings)
            out.refused.extend(done.refused)
        if rest:
            sites: dict[str, _Site] = {}
            for raw in rest:
                if raw.sensor_id not in sites:
                    site = conditions.for_sensor(raw.sensor_id, now)
                    sites[raw.sensor_id] = _Site(units.reference_factor(site.temp_c, site.pressure_hpa), site)
            done = self._part(rest, now, sites, *books)
            out.readings.extend(done.readings)
            out.refused.extend(done.refused)
        return out

    def _plan(self, unit: str, code: str) -> _Plan | None:
        key = (unit, code)
        if key not in self._plans:
            try:
                conv = units.conversion(unit, code)
            except ValueError:  # UnitError, UnknownVariableError: the scalar path words the refusal
                self._plans[key] = None
            else:
                var = variable(code)
                mass = var.kind in (Kind.MASS, Kind.GAS) and units.parse_unit(unit) in _MASS_UNITS
                self._plans[key] = _Plan(conv, var.unit, mass, code in _SIGNED,
                                         DEFAULT_SPIKE_LIMITS.get(code, math.nan),
                                         DEFAULT_FLATLINE_AFTER_S.get(code, math.nan))
        return self._plans[key]

    def _refusal(self, raw: RawReading, now: datetime, site: SiteConditions | None,
                 ranges: Mapping[tuple[str, str], tuple[float, float]],
                 calibrations: CalibrationBook | None) -> Refusal:
        # the scalar path's own error, so reason and detail are the same word for word
        try:
            self.time_window.check(raw, now)
            normalise(raw, site, range_=ranges.get((raw.device_id, raw.variable)), calibrations=calibrations)
        except ValueError as exc:
            return Refusal(raw, getattr(exc, "reason", type(exc).__name__), str(exc))
        raise RuntimeError(f"ingest.batch: {raw} was refused by the batch and accepted by normalise(): a bug")

    def _part(self, raws: Sequence[RawReading], now: datetime, sites: dict[str, _Site] | None,
              conditions: ConditionsBook, qc: dict[SeriesKey, QCState],
              ranges: Mapping[tuple[str, str], tuple[float, float]], calibrations: CalibrationBook | None,
              maintenance: MaintenanceBook | None) -> Normalised:
        # one part of a batch: all of it meteorological (sites None) or none of it
        del conditions  # observed by the caller, after the part
        earliest = _us(now - timedelta(days=self.time_window.past_days))
        latest = _us(now + timedelta(seconds=self.time_window.future_s))
        has_cals = calibrations is not None and len(calibrations) > 0
        known = self._plans
        us_of: dict[int, int] = {}  # id(datetime) → µs: a message's readings share their times
        t_us: list[int] = []
        received_us: list[int] = []
        refused: list[tuple[int, Refusal]] = []
        kept: list[RawReading] = []
        kept_pos: list[int] = []
        plans: list[_Plan] = []
        cals: list[Calibration | None] = []
        rhs: list[float] = []  # RH for a humidity calibration (NaN: none)
        periods: dict[tuple[str, str], tuple[tuple[datetime, ...], tuple[Calibration, ...]]] = {}
        unit_ok: dict[tuple[int, str], bool] = {}
        for pos, raw in enumerate(raws):
            t, received = raw.time, raw.received_at
            if (t_at := us_of.get(id(t))) is None:
                t_at = us_of[id(t)] = _us(t)
            if (received_at := us_of.get(id(received))) is None:
                received_at = us_of[id(received)] = _us(received)
            value = raw.value
            plan = known.get((raw.unit, raw.variable))
            if plan is None and (raw.unit, raw.variable) not in known:
                plan = self._plan(raw.unit, raw.variable)
            bad = (raw.time_source == "device" and not earliest <= t_at <= latest) or \
                not (isinstance(value, int | float) and math.isfinite(value)) or plan is None or \
                (plan.mass and raw.conditions is None)
            cal = None
            if not bad and has_cals:
                assert calibrations is not None
                key = (raw.device_id, raw.variable)
                entry = periods.get(key)
                if entry is None:
                    entry = periods[key] = calibrations.periods(*key)
                if entry[1]:
                    i = bisect.bisect_right(entry[0], raw.time) - 1
                    cal = entry[1][i] if i >= 0 and entry[1][i].covers(raw.time) else None
                if cal is not None:
                    ok = unit_ok.get((cal.id, raw.unit))
                    if ok is None:
                        ok = unit_ok[(cal.id, raw.unit)] = cal.applies_to_unit(raw.unit)
                    bad = not ok
            if bad:
                site = sites[raw.sensor_id] if sites is not None else None
                refused.append((pos, self._refusal(raw, now, site.site if site else None, ranges, calibrations)))
                continue
            rh = math.nan
            if cal is not None and cal.needs_humidity:
                if sites is None:
                    raise _NeedsSequence
                usable = sites[raw.sensor_id].site.rh_pct
                if usable is None or not rh_usable(cal.kind, usable):
                    cal = None  # no usable RH: stored uncalibrated (Calibration.apply returns None)
                else:
                    rh = usable
            assert plan is not None
            kept.append(raw)
            kept_pos.append(pos)
            plans.append(plan)
            cals.append(cal)
            rhs.append(rh)
            t_us.append(t_at)
            received_us.append(received_at)
        readings, late = self._arrays(kept, plans, cals, rhs, np.array(t_us, np.int64),
                                      np.array(received_us, np.int64), now, sites, qc, ranges, maintenance)
        for i in late:
            raw, site = kept[i], sites[kept[i].sensor_id] if sites is not None else None
            refused.append((kept_pos[i], self._refusal(raw, now, site.site if site else None, ranges, calibrations)))
        refused.sort(key=lambda item: item[0])
        return Normalised(readings, [r for _, r in refused])

    def _arrays(self, raws: list[RawReading], plans: list[_Plan], cals: list[Calibration | None],
                rhs: list[float], t_us: np.ndarray, received_us: np.ndarray, now: datetime,
                sites: dict[str, _Site] | None,
                qc: dict[SeriesKey, QCState], ranges: Mapping[tuple[str, str], tuple[float, float]],
                maintenance: MaintenanceBook | None) -> tuple[list[Reading], list[int]]:
        # → (readings, indices of the raws whose calibration is not finite: refused after all)
        n = len(raws)
        if n == 0:
            return [], []
        x = np.fromiter((raw.value for raw in raws), np.float64, n)
        calibrated = self._calibrate(x, cals, rhs)
        with np.errstate(all="ignore"):
            finite = np.isfinite(calibrated)
        late: list[int] = []
        if not finite.all():  # calibration_not_finite: out of the batch before QC sees it
            keep = finite.tolist()
            late = [i for i, ok in enumerate(keep) if not ok]
            raws = [raw for raw, ok in zip(raws, keep, strict=True) if ok]
            plans = [p for p, ok in zip(plans, keep, strict=True) if ok]
            cals = [c for c, ok in zip(cals, keep, strict=True) if ok]
            rhs = [r for r, ok in zip(rhs, keep, strict=True) if ok]
            x, calibrated, n = x[finite], calibrated[finite], len(raws)
            t_us, received_us = t_us[finite], received_us[finite]
            if n == 0:
                return [], late
        factors = [sites[raw.sensor_id].factor if sites is not None and plan.mass and raw.conditions == "local"
                   else 1.0 for raw, plan in zip(raws, plans, strict=True)]
        conv = np.array([(p.conversion.add, p.conversion.mul1, p.conversion.mul2, p.conversion.div,
                          p.spike_limit, p.flatline_after_s, p.signed) for p in plans], np.float64).reshape(n, 7)
        with np.errstate(all="ignore"):
            value = (calibrated + conv[:, 0]) * conv[:, 1] * conv[:, 2] / conv[:, 3] * np.array(factors)
        lo_hi = np.array([ranges.get((raw.device_id, raw.variable), (-math.inf, math.inf)) for raw in raws],
                         np.float64).reshape(n, 2)
        base = np.fromiter((raw.device_status | (_RECEIVE_TIME if raw.time_source == "received" else 0)
                            | (_CALIBRATED if cal is not None else 0) for raw, cal in zip(raws, cals, strict=True)),
                           np.int64, n)
        base |= np.where((value < 0) & (conv[:, 6] == 0), _NEGATIVE, 0)
        base |= np.where((lo_hi[:, 0] <= x) & (x <= lo_hi[:, 1]), 0, _OUT_OF_RANGE)
        keys = [(raw.sensor_id, raw.device_id, raw.variable) for raw in raws]
        added, states = check_batch(
            keys, [raw.time for raw in raws], [raw.value for raw in raws], t_us=t_us, received_us=received_us,
            value=value, raw_value=x, spike_limit=conv[:, 4], flatline_after=conv[:, 5], states=qc,
            now_us=_us(now), to_us=_us, skew_tolerance_s=self.skew_tolerance_s, stale_after_s=DEFAULT_STALE_AFTER_S,
            spike_min_interval_s=DEFAULT_SPIKE_MIN_INTERVAL_S)
        flags = base | added
        if maintenance is not None:
            flags |= _maintenance(raws, t_us, maintenance)
        qc.update(states)
        out: list[Reading] = []
        flags_of = {bits: QC(bits) for bits in np.unique(flags).tolist()}
        for raw, plan, cal, rh, v, bits in zip(raws, plans, cals, rhs, value.tolist(), flags.tolist(), strict=True):
            temp_c = pressure_hpa = source = None
            if plan.mass:
                if raw.conditions == "local":
                    assert sites is not None
                    site = sites[raw.sensor_id].site
                    temp_c, pressure_hpa, source = site.temp_c, site.pressure_hpa, site.source
                else:
                    source = REPORTED_REFERENCE
            out.append(Reading(raw.sensor_id, raw.device_id, raw.variable, raw.time, v, plan.unit,
                               flags_of[bits], raw.value, raw.unit, raw.received_at, temp_c, pressure_hpa,
                               source, cal.id if cal is not None else None,
                               rh if cal is not None and cal.needs_humidity else None, raw.delivery))
        return out, late

    @staticmethod
    def _calibrate(x: np.ndarray, cals: list[Calibration | None], rhs: list[float]) -> np.ndarray:
        # Calibration.apply's arithmetic over the batch: Horner's rule for linear (a, b) = polynomial (b, a)
        # and polynomials, x / C for the humidity form; uncalibrated values pass unchanged
        if all(cal is None for cal in cals):
            return x
        out = x.copy()
        poly = [i for i, cal in enumerate(cals) if cal is not None and not cal.needs_humidity]
        with np.errstate(all="ignore"):
            if poly:
                rows = [_coefficients(cals[i]) for i in poly]  # type: ignore[arg-type]
                width = max(len(r) for r in rows)
                coef = np.array([r + (0.0,) * (width - len(r)) for r in rows], np.float64)
                xp = x[poly]
                result = np.zeros(len(poly))
                for k in range(width - 1, -1, -1):  # leading zero coefficients leave 0.0 (x is finite)
                    result = result * xp + coef[:, k]
                out[poly] = result
            hum = [i for i, cal in enumerate(cals) if cal is not None and cal.kind == "humidity"]
            lin_rh = [i for i, cal in enumerate(cals) if cal is not None and cal.kind == "linear_rh"]
            if lin_rh:  # a·x + b·RH + c, in Calibration.apply's order of operations
                abc = np.array([cals[i].coefficients for i in lin_rh], np.float64)  # type: ignore[union-attr]
                rh = np.array([rhs[i] for i in lin_rh], np.float64)
                out[lin_rh] = abc[:, 0] * x[lin_rh] + abc[:, 1] * rh + abc[:, 2]
            if hum:
                kappa = np.array([cals[i].coefficients[0] for i in hum], np.float64)  # type: ignore[union-attr]
                a_w = np.array([rhs[i] for i in hum], np.float64) / 100.0
                out[hum] = x[hum] / (1.0 + (kappa / KAPPA_DENSITY_RATIO) * a_w / (1.0 - a_w))
        return out


def _coefficients(cal: Calibration) -> tuple[float, ...]:
    # Horner's coefficients (c0, c1, …): a linear (a, b) is b + a·x
    if cal.kind == "linear":
        return (float(cal.coefficients[1]), float(cal.coefficients[0]))
    return tuple(float(c) for c in cal.coefficients)


def _maintenance(raws: list[RawReading], t_us: np.ndarray, book: MaintenanceBook) -> np.ndarray:
    # flag_maintenance over the batch: the sensor in maintenance, or any of its windows covering the reading
    n = len(raws)
    flags = np.zeros(n, np.int64)
    by_sensor: dict[str, list[int]] = {}
    for i, raw in enumerate(raws):
        by_sensor.setdefault(raw.sensor_id, []).append(i)
    for sensor_id, idx in by_sensor.items():
        if sensor_id in book.sensors_in_maintenance:
            flags[idx] = _MAINTENANCE
            continue
        t = t_us[idx]
        windows = book.windows_between(sensor_id, _from_us(int(t.min())), _from_us(int(t.max())))
        if not windows:
            continue
        hit = np.zeros(len(idx), np.bool_)
        for w in windows:
            mask = (t >= _us(w.starts_at)) & (t < _us(w.ends_at))
            if w.device_id is not None or w.variable is not None:
                mask &= np.fromiter(((w.device_id is None or raws[i].device_id == w.device_id)
                                     and (w.variable is None or raws[i].variable == w.variable) for i in idx),
                                    np.bool_, len(idx))
            hit |= mask
        flags[np.array(idx)[hit]] = _MAINTENANCE
    return flags
