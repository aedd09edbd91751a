"""RawReading → Reading in the canonical unit, and the book of site T and P it uses (ingest stage). Pure.

Contract of `normalise(raw, site)`:
- Gases reported as mixing ratios (ppb, ppm) convert directly at the reference molar volume; T and P are never
  used for them (VARIABLES.md, CONVERSIONS.md).
- Mass concentrations (PM, and a gas reported in µg/m³) declare their conditions: `local` values are corrected
  to the reference conditions of Res. 2254/2017 with `site` (°C, hPa); `reference` values are only rescaled,
  never corrected twice; `None` is an error (every device must declare, VARIABLES.md).
- Met variables convert to their canonical unit. Flags: NEGATIVE (value < 0 for a quantity that cannot be
  negative), OUT_OF_RANGE (raw value outside the optional plausible range, in the reported unit), RECEIVE_TIME
  (the raw time is aqnet's receive time), plus the device's own status bits.
- Errors are `ValueError`s (permanent: dead-letter the reading): `NormaliseError`, `units.UnitError`,
  `sensors.variables.UnknownVariableError`.

`ConditionsBook` keeps the latest temperature and pressure per sensor (from normalised readings) and resolves
which T and P apply to a sensor at a given time: its own if recent, else the nearest station's, else the site
defaults of reference.json. Times are always passed in; the book never reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest import units
from ingest.reading import QC, Reading
from sensors.domain import load
from sensors.reading import RawReading
from sensors.sensor import Sensor
from sensors.variables import Kind, variable

__all__ = ["ConditionsBook", "NormaliseError", "SiteConditions", "normalise", "site_default_conditions"]

#: variables that may legitimately be negative (no NEGATIVE flag): temperatures in °C
_SIGNED = frozenset({"temperature", "temperature_8m", "temperature_20m"})
#: the variables the book tracks: ground temperature and station pressure
_TEMPERATURE, _PRESSURE = "temperature", "pressure"
#: mean Earth radius in km (IUGG mean radius R1), for the great-circle distance
_EARTH_RADIUS_KM = 6371.0088


class NormaliseError(ValueError):
    """A reading that cannot be normalised (permanent: dead-letter it); `reason` is a short metrics label."""

    def __init__(self, raw: RawReading, reason: str, detail: str) -> None:
        super().__init__(f"sensor {raw.sensor_id} device {raw.device_id} {raw.variable}: {detail}")
        self.sensor_id = raw.sensor_id
        self.variable = raw.variable
        self.reason = reason  #: "not_finite", "no_conditions", "no_site_conditions"


@dataclass(frozen=True, slots=True)
class SiteConditions:
    """Temperature (°C) and pressure (hPa) to correct a local mass concentration, and their origin."""

    temp_c: float
    pressure_hpa: float
    #: "own", "nearest:<sensor id>", "site-default", or "temperature:…;pressure:…" when they differ
    source: str

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


def normalise(raw: RawReading, site: SiteConditions | None, *,
              range_: tuple[float, float] | None = None) -> Reading:
    """`raw` in its canonical unit (local mass concentrations corrected to Res. 2254/2017), flagged."""
    if not math.isfinite(raw.value):
        raise NormaliseError(raw, "not_finite", f"value {raw.value!r} is not a finite number")
    canonical_unit = variable(raw.variable).unit
    value = units.convert(raw.value, raw.unit, raw.variable)
    if _is_mass_concentration(raw):
        if raw.conditions is None:
            raise NormaliseError(raw, "no_conditions", f"mass concentration in {raw.unit} without declared "
                                 "conditions: the device profile must say local or reference")
        if raw.conditions == "local":
            if site is None:
                raise NormaliseError(raw, "no_site_conditions", "local mass concentration needs site T and P "
                                     "for the reference correction, none given")
            value = units.to_reference_conditions(value, site.temp_c, site.pressure_hpa)
        # "reference": already at 25 °C, 760 mmHg: never corrected twice
    flags = QC(raw.device_status)
    if value < 0 and raw.variable not in _SIGNED:
        flags |= QC.NEGATIVE
    if range_ is not None and not (range_[0] <= raw.value <= range_[1]):
        flags |= QC.OUT_OF_RANGE
    if raw.time_source == "received":
        flags |= QC.RECEIVE_TIME
    return Reading.from_raw(raw, value, canonical_unit, flags)


def _great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    # haversine formula on a sphere: plenty for choosing the nearest station within a city
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class ConditionsBook:
    """Latest T and P per sensor, and the conditions that apply to a sensor at a given time.

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
        #: variable → sensor id → (time, value in °C or hPa)
        self._latest: dict[str, dict[str, tuple[datetime, float]]] = {_TEMPERATURE: {}, _PRESSURE: {}}

    def observe(self, reading: Reading) -> None:
        """Record a valid ground temperature (°C) or pressure (hPa) unless a newer one is recorded."""
        series = self._latest.get(reading.variable)
        if series is None or not reading.valid or not math.isfinite(reading.value):
            return
        last = series.get(reading.sensor_id)
        if last is None or reading.time >= last[0]:
            series[reading.sensor_id] = (reading.time, reading.value)

    def _fresh(self, var: str, sensor_id: str, now: datetime) -> float | None:
        entry = self._latest[var].get(sensor_id)
        if entry is None or now - entry[0] > self._max_age:
            return None
        return entry[1]

    def _resolve(self, var: str, sensor_id: str, now: datetime, default: float) -> tuple[float, str]:
        own = self._fresh(var, sensor_id, now)
        if own is not None:
            return own, "own"
        here = self._coords.get(sensor_id)
        if here is not None:
            candidates = []
            for other in self._stations:
                value = self._fresh(var, other, now) if other != sensor_id else None
                if value is not None:
                    distance = _great_circle_km(*here, *self._coords[other])
                    candidates.append((distance, other, value))
            if candidates:
                _, other, value = min(candidates)  # ties broken by sensor id: deterministic
                return value, f"nearest:{other}"
        return default, "site-default"

    def for_sensor(self, sensor_id: str, now: datetime) -> SiteConditions:
        """T and P for `sensor_id` at `now`: own if recent, else nearest station's, else site defaults."""
        temp_c, t_source = self._resolve(_TEMPERATURE, sensor_id, now, self._defaults.temp_c)
        pressure_hpa, p_source = self._resolve(_PRESSURE, sensor_id, now, self._defaults.pressure_hpa)
        source = t_source if t_source == p_source else f"temperature:{t_source};pressure:{p_source}"
        return SiteConditions(temp_c, pressure_hpa, source)
