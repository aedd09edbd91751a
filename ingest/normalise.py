"""RawReading → calibrated Reading in the canonical unit with its provenance; the site-conditions book. Pure.

Contract of `normalise(raw, site, *, range_, calibrations)`:
- Calibration first: the calibration of `calibrations` (an `ingest.calibration.CalibrationBook`) valid for the
  device and variable at the reading's time applies to the value in the device's reported unit, before any
  conversion (see `ingest.calibration` for why); the reading gets CALIBRATED and `calibration_id`. The
  humidity form uses `site.rh_pct` (the sensor's own recent relative humidity); without it the reading stays
  uncalibrated (no CALIBRATED bit). A calibration in another unit than the reported one is an error.
- Gases reported as mixing ratios (ppb, ppm) convert directly at the reference molar volume; T and P are never
  used for them (VARIABLES.md, CONVERSIONS.md).
- Mass concentrations (PM, and a gas reported in µg/m³) declare their conditions: `local` values are corrected
  to the reference conditions of Res. 2254/2017 with `site` (°C, hPa); `reference` values are only rescaled,
  never corrected twice; `None` is an error (every device must declare, VARIABLES.md). The T and P used and
  their source are recorded in the Reading (`conditions_*`); a reading reported at reference conditions gets
  `conditions_source = "reported-reference"` and no T/P, so `aqnet reprocess` knows never to correct it.
- Met variables convert to their canonical unit. Flags: NEGATIVE (value < 0 for a quantity that cannot be
  negative), OUT_OF_RANGE (raw value outside the optional plausible range, in the reported unit), RECEIVE_TIME
  (the raw time is aqnet's receive time), plus the device's own status bits.
- Errors are `ValueError`s (permanent: dead-letter the reading): `NormaliseError`, `units.UnitError`,
  `sensors.variables.UnknownVariableError`.

`renormalise(stored, calibrations, rh_pct=…)` re-derives a stored Reading from its raw value and unit with the
T and P recorded with it (never correcting twice, never re-resolving conditions) and the calibrations given:
`aqnet reprocess` after a calibration fix. It re-derives value, unit, CALIBRATED, NEGATIVE and the calibration
provenance; every other flag (range, device status, spike, flatline, stale, skew, receive time) is kept.

`ConditionsBook` keeps the latest temperature, pressure and relative humidity per sensor (from normalised
readings) and resolves which T and P apply to a sensor at a given time: its own if recent, else the nearest
station's, else the site defaults of reference.json. Relative humidity (for humidity-correction calibrations)
is the sensor's own only: the correction is for the air the sensor sampled. Times are always passed in; the
book never reads a clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest import units
from ingest.calibration import CalibrationBook
from ingest.reading import EXCLUDED, QC, Reading
from sensors.domain import load
from sensors.reading import Conditions, RawReading
from sensors.sensor import Sensor
from sensors.variables import Kind, variable

__all__ = [
    "REPORTED_REFERENCE",
    "ConditionsBook",
    "NormaliseError",
    "SiteConditions",
    "normalise",
    "renormalise",
    "site_default_conditions",
]

#: variables that may legitimately be negative (no NEGATIVE flag): temperatures in °C
_SIGNED = frozenset({"temperature", "temperature_8m", "temperature_20m"})
#: the variables the book tracks: ground temperature, station pressure, relative humidity
_TEMPERATURE, _PRESSURE, _HUMIDITY = "temperature", "pressure", "relativehumidity"
#: `conditions_source` of a mass concentration the device reported at the reference conditions (not corrected)
REPORTED_REFERENCE = "reported-reference"
#: flags `renormalise` re-derives; every other bit of a stored reading is kept
_REDERIVED = QC.CALIBRATED | QC.NEGATIVE
#: Reading.valid, as a plain int (an IntFlag operation costs more than the rest of observe)
_EXCLUDED = int(EXCLUDED)
#: mean Earth radius in km (IUGG mean radius R1), for the great-circle distance
_EARTH_RADIUS_KM = 6371.0088


class NormaliseError(ValueError):
    """A reading that cannot be normalised (permanent: dead-letter it); `reason` is a short metrics label."""

    def __init__(self, raw: RawReading, reason: str, detail: str) -> None:
        super().__init__(f"sensor {raw.sensor_id} device {raw.device_id} {raw.variable}: {detail}")
        self.sensor_id = raw.sensor_id
        self.variable = raw.variable
        #: "not_finite", "no_conditions", "no_site_conditions", "calibration_unit", "calibration_not_finite",
        #: "no_provenance" (renormalise: a stored mass concentration without recorded conditions)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SiteConditions:
    """Temperature (°C) and pressure (hPa) to correct a local mass concentration, and their origin."""

    temp_c: float
    pressure_hpa: float
    #: "own", "nearest:<sensor id>", "site-default", or "temperature:…;pressure:…" when they differ
    source: str
    #: the sensor's own recent relative humidity, %, for humidity-correction calibrations (None: unknown)
    rh_pct: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temp_c) and self.temp_c > -units.ZERO_C_IN_K):
            raise ValueError(f"SiteConditions ({self.source}): temperature must be above -273.15 °C, "
                             f"got {self.temp_c}")
        if not (math.isfinite(self.pressure_hpa) and self.pressure_hpa > 0):
            raise ValueError(f"SiteConditions ({self.source}): pressure must be positive hPa, "
                             f"got {self.pressure_hpa}")


def site_default_conditions() -> SiteConditions:
    """The network's fallback T and P: reference.json `site` (IDEAM city mean 13.1 °C; typical 750 hPa)."""
    site = load("reference")["site"]
    # mean_temperature_C: IDEAM city mean as quoted in reference.json; typical_station_pressure_hPa: approx,
    # reference.json says to prefer the station's own barometer (which ConditionsBook does first)
    return SiteConditions(float(site["mean_temperature_C"]), float(site["typical_station_pressure_hPa"]),
                          "site-default")


_MASS_UNITS = frozenset({"µg/m³", "mg/m³", "ng/m³"})


def _is_mass_concentration(raw: RawReading) -> bool:
    # PM always; a gas only when reported as a mass (a mixing ratio needs no conditions). bc (Kind.OTHER) is
    # stored in µg/m³ without reference conditions (VARIABLES.md), so it is not corrected.
    kind = variable(raw.variable).kind
    return kind in (Kind.MASS, Kind.GAS) and units.parse_unit(raw.unit) in _MASS_UNITS


def _calibrate(raw: RawReading, calibrations: CalibrationBook | None, rh_pct: float | None
               ) -> tuple[float, int | None, float | None]:
    # → (value in the reported unit, calibration id or None, RH used or None)
    cal = calibrations.find(raw.device_id, raw.variable, raw.time) if calibrations is not None else None
    if cal is None:
        return raw.value, None, None
    if not cal.applies_to_unit(raw.unit):
        raise NormaliseError(raw, "calibration_unit", f"{cal.where} is in {cal.unit}, the reading in {raw.unit}: "
                             "fix the calibration's unit (no unit is guessed)")
    value = cal.apply(raw.value, rh_pct=rh_pct)
    if value is None:  # humidity form without a usable RH: stored uncalibrated, reprocess can apply it later
        return raw.value, None, None
    if not math.isfinite(value):
        raise NormaliseError(raw, "calibration_not_finite", f"{cal.where} turned {raw.value} into {value}")
    return value, cal.id, (rh_pct if cal.needs_humidity else None)


def normalise(raw: RawReading, site: SiteConditions | None, *, range_: tuple[float, float] | None = None,
              calibrations: CalibrationBook | None = None, rh_pct: float | None = None) -> Reading:
    """`raw` calibrated, in its canonical unit (local mass concentrations corrected to Res. 2254/2017), flagged.

    `rh_pct` (%) overrides `site.rh_pct` for a humidity calibration.
    """
    if not (isinstance(raw.value, int | float) and math.isfinite(raw.value)):
        raise NormaliseError(raw, "not_finite", f"value {raw.value!r} is not a finite number")
    canonical_unit = variable(raw.variable).unit
    if rh_pct is None and site is not None:
        rh_pct = site.rh_pct
    calibrated, calibration_id, rh_used = _calibrate(raw, calibrations, rh_pct)
    value = units.convert(calibrated, raw.unit, raw.variable)
    temp_c = pressure_hpa = source = None
    if _is_mass_concentration(raw):
        if raw.conditions is None:
            raise NormaliseError(raw, "no_conditions", f"mass concentration in {raw.unit} without declared "
                                 "conditions: the device profile must say local or reference")
        if raw.conditions == "local":
            if site is None:
                raise NormaliseError(raw, "no_site_conditions", "local mass concentration needs site T and P "
                                     "for the reference correction, none given")
            value = units.to_reference_conditions(value, site.temp_c, site.pressure_hpa)
            temp_c, pressure_hpa, source = site.temp_c, site.pressure_hpa, site.source
        else:  # "reference": already at 25 °C, 760 mmHg: never corrected twice
            source = REPORTED_REFERENCE
    flags = QC(raw.device_status)
    if value < 0 and raw.variable not in _SIGNED:
        flags |= QC.NEGATIVE
    if range_ is not None and not (range_[0] <= raw.value <= range_[1]):
        flags |= QC.OUT_OF_RANGE
    if raw.time_source == "received":
        flags |= QC.RECEIVE_TIME
    if calibration_id is not None:
        flags |= QC.CALIBRATED
    return Reading.from_raw(raw, value, canonical_unit, flags, conditions_temp_c=temp_c,
                            conditions_pressure_hpa=pressure_hpa, conditions_source=source,
                            calibration_id=calibration_id, calibration_rh_pct=rh_used)


def renormalise(stored: Reading, calibrations: CalibrationBook | None, *, rh_pct: float | None = None) -> Reading:
    """`stored` re-derived from its raw value and unit with its recorded T/P and `calibrations` (reprocess).

    `rh_pct` is used by a humidity calibration when the stored reading has no recorded RH. Raises
    NormaliseError "no_provenance" for a mass concentration stored without recorded conditions (before
    provenance was recorded: re-deriving it could correct it twice or not at all), "not_finite" for a
    reading without a raw value.
    """
    mass = variable(stored.variable).kind in (Kind.MASS, Kind.GAS) and \
        units.parse_unit(stored.raw_unit) in _MASS_UNITS
    site: SiteConditions | None = None
    rh = stored.calibration_rh_pct if stored.calibration_rh_pct is not None else rh_pct
    conditions: Conditions | None = None
    if stored.conditions_temp_c is not None and stored.conditions_pressure_hpa is not None:
        conditions = "local"
        site = SiteConditions(stored.conditions_temp_c, stored.conditions_pressure_hpa,
                              stored.conditions_source or "", rh)
    elif stored.conditions_source == REPORTED_REFERENCE:
        conditions = "reference"
    raw = RawReading(stored.sensor_id, stored.device_id, stored.variable, stored.raw_value, stored.raw_unit,
                     stored.time, stored.received_at, conditions)
    if stored.raw_value is None or not math.isfinite(stored.raw_value):
        raise NormaliseError(raw, "not_finite", "stored without a raw value: nothing to re-derive from")
    if mass and conditions is None:
        raise NormaliseError(raw, "no_provenance", "stored without the conditions it was normalised with "
                             "(before provenance was recorded): not re-derived")
    fresh = normalise(raw, site, calibrations=calibrations, rh_pct=rh)
    flags = (stored.flags & ~_REDERIVED) | (fresh.flags & _REDERIVED)
    return dataclasses.replace(stored, value=fresh.value, unit=fresh.unit, flags=flags,
                               calibration_id=fresh.calibration_id, calibration_rh_pct=fresh.calibration_rh_pct)


def _great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    # haversine formula on a sphere: plenty for choosing the nearest station within a city
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class ConditionsBook:
    """Latest T, P and RH per sensor, and the conditions that apply to a sensor at a given time.

    Args:
        sensors: the network; coordinates choose the nearest station. Only `kind == "station"` sensors
            serve as neighbours ("the nearest station that has it", VARIABLES.md); any sensor may use its
            own values.
        defaults: the fallback; `site_default_conditions()` (reference.json `site`) when None.
        max_age: a value older than this (relative to `now`) is not used. 2 h by default: an aqnet
            convention, long enough to bridge a missed hourly report, short enough to follow the
            diurnal cycle.
    """

    def __init__(self, sensors: Iterable[Sensor], *, defaults: SiteConditions | None = None,
                 max_age: timedelta = timedelta(hours=2)) -> None:
        network = list(sensors)
        self._coords = {s.id: (s.lat, s.lon) for s in network}
        self._stations = sorted(s.id for s in network if s.kind == "station")
        self._defaults = defaults or site_default_conditions()
        self._max_age = max_age
        #: sensor id → the other stations by (distance, id), nearest first; filled on first use
        self._nearest: dict[str, tuple[str, ...]] = {}
        #: variable → sensor id → (time, value in °C, hPa or %)
        self._latest: dict[str, dict[str, tuple[datetime, float]]] = {_TEMPERATURE: {}, _PRESSURE: {},
                                                                        _HUMIDITY: {}}
        #: called with (variable, sensor id, time, value) for each observation `observe` records (a daemon with
        #: several processes passes them on: `aqnet.daemon.processes`); never for `record`
        self.on_observe: Callable[[str, str, datetime, float], None] | None = None

    def with_network(self, sensors: Iterable[Sensor]) -> ConditionsBook:
        """A book for a changed network (sensors added, moved, retired) that keeps the observations recorded so
        far, so readings without their own T and P go on using the nearest station's instead of site defaults."""
        book = ConditionsBook(sensors, defaults=self._defaults, max_age=self._max_age)
        book._latest = {var: dict(series) for var, series in self._latest.items()}
        book.on_observe = self.on_observe
        return book

    def observe(self, reading: Reading) -> None:
        """Record a valid ground temperature (°C), pressure (hPa) or RH (%) unless a newer one is recorded.

        A temperature at or below -273.15 °C or a pressure at or below 0 hPa is not a condition any correction
        can use (`SiteConditions` refuses it): it is not recorded, so it cannot refuse the later readings of the
        sensor and of its neighbours.
        """
        if int(reading.flags) & _EXCLUDED:
            return
        if self._store(reading.variable, reading.sensor_id, reading.time, reading.value) and self.on_observe:
            self.on_observe(reading.variable, reading.sensor_id, reading.time, reading.value)

    def record(self, variable: str, sensor_id: str, time: datetime, value: float) -> None:
        """Record a T (°C), P (hPa) or RH (%) observed elsewhere (another process) unless a newer one is
        recorded; unlike `observe`, `on_observe` is not called. An implausible T or P is not recorded (`observe`)."""
        self._store(variable, sensor_id, time, value)

    def _store(self, variable: str, sensor_id: str, time: datetime, value: float) -> bool:
        """Keep a finite, plausible condition unless a newer one is kept; whether it was kept."""
        series = self._latest.get(variable)
        if series is None or not math.isfinite(value):
            return False
        if (variable == _TEMPERATURE and not value > -units.ZERO_C_IN_K) or (variable == _PRESSURE and not value > 0):
            return False
        last = series.get(sensor_id)
        if last is not None and time < last[0]:
            return False
        series[sensor_id] = (time, value)
        return True

    def _fresh(self, var: str, sensor_id: str, now: datetime) -> float | None:
        entry = self._latest[var].get(sensor_id)
        if entry is None or now - entry[0] > self._max_age:
            return None
        return entry[1]

    def _resolve(self, var: str, sensor_id: str, now: datetime, default: float) -> tuple[float, str]:
        own = self._fresh(var, sensor_id, now)
        if own is not None:
            return own, "own"
        for other in self._nearest_stations(sensor_id):
            value = self._fresh(var, other, now)
            if value is not None:
                return value, f"nearest:{other}"
        return default, "site-default"

    def _nearest_stations(self, sensor_id: str) -> tuple[str, ...]:
        # the stations other than `sensor_id` by (distance, id): ties broken by sensor id, deterministic. The
        # network is fixed for the book's life (with_network builds a new book), so the order is computed once.
        order = self._nearest.get(sensor_id)
        if order is None:
            here = self._coords.get(sensor_id)
            order = () if here is None else tuple(other for _, other in sorted(
                (_great_circle_km(*here, *self._coords[other]), other)
                for other in self._stations if other != sensor_id))
            self._nearest[sensor_id] = order
        return order

    def for_sensor(self, sensor_id: str, now: datetime) -> SiteConditions:
        """T and P for `sensor_id` at `now`: own if recent, else nearest station's, else site defaults; own RH."""
        temp_c, t_source = self._resolve(_TEMPERATURE, sensor_id, now, self._defaults.temp_c)
        pressure_hpa, p_source = self._resolve(_PRESSURE, sensor_id, now, self._defaults.pressure_hpa)
        source = t_source if t_source == p_source else f"temperature:{t_source};pressure:{p_source}"
        return SiteConditions(temp_c, pressure_hpa, source, self._fresh(_HUMIDITY, sensor_id, now))
