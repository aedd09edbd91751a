"""The simulated city's signals: plausible Bogotá values per sensor, variable and time (simulators). Pure.

Contract: `CitySignals(seed).value(sensor_id, variable, t)` is a deterministic function of (seed, sensor_id,
variable, instant t): no state, no clock, no global randomness. Values are returned in the unit the simulated
device reports (`REPORTED_UNITS`), not the canonical unit: the simulators exercise ingest's conversions.

The shape, for a city at ~2,600 m in America/Bogota (no DST):
- traffic (NO, NO2, NOx, CO, PM, BC, SO2): rush-hour peaks near 07 h and 18 h local time, lower on Saturday
  and lower still on Sunday; NOx = NO + NO2 exactly.
- O3: photochemical afternoon peak near 13–14 h.
- temperature: 8–20 °C daily cycle (minimum near dawn, maximum mid-afternoon); humidity inversely.
- pressure: ~752 hPa with the semidiurnal tide, reported in mmHg (≈564) as RMCAB does.
- solar radiation: 0 while the sun is below the horizon.
- noise: smooth value noise (hashed per-minute, per-20-minute and per-6-hour knots, interpolated), so
  consecutive samples do not jump; a per-sensor bias makes sites differ; weather is shared city-wide.
- episodes (`Episode`): a variable multiplied by `factor` inside a time window and an area (a circle around a
  centre, or a set of localities), ramping up and down inside the window; outside the window or the area the
  value is exactly the one without the episode. An episode of pm25 raises pm10 by the same added mass (PM10
  contains PM2.5); one of no or no2 raises nox (NOx = NO + NO2).

The amplitudes are illustrative simulator choices, not measurements; constants taken from a source say so.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sensors.domain import load
from sensors.sensor import Sensor

__all__ = ["REPORTED_UNITS", "CitySignals", "Episode", "Position", "SiteClimate", "bundled_positions",
           "distance_km"]

#: the unit each simulated device reports, per variable code. Station analysers report like RMCAB
#: (reference.json units_as_reported_by_rmcab_portal: gases in ppb, CO in ppm, pressure in mmHg). PM is per
#: actual m³ (local conditions). Microsensors (aqnet JSON) report the canonical unit of VARIABLES.md, which
#: for the variables they carry (pm25, pm10, temperature, relativehumidity) is the very same string as here.
REPORTED_UNITS: dict[str, str] = {
    "pm10": "µg/m³",
    "pm25": "µg/m³",
    "no": "ppb",
    "no2": "ppb",
    "nox": "ppb",
    "o3": "ppb",
    "so2": "ppb",
    "co": "ppm",
    "temperature": "°C",
    "temperature_8m": "°C",
    "temperature_20m": "°C",
    "relativehumidity": "%",
    "pressure": "mmHg",
    "wind_speed": "m/s",
    "wind_direction": "°",
    "precipitation": "mm",
    "solar_radiation": "W/m²",
    "bc": "µg/m³",
    "bbp": "%",
    "co2": "ppm",
}

_DAY_S = 86400.0
#: κ-Köhler hygroscopicity used for the optical-sensor humidity artefact (a simulator choice; the form of the
#: growth factor is Crilley et al. 2018, Atmos. Meas. Tech. 11, 709–720, eq. 2, with their 1.65 density ratio)
_KAPPA = 0.2


@dataclass(frozen=True, slots=True)
class SiteClimate:
    """The city the signals imitate; the defaults are Bogotá's."""

    timezone: str = "America/Bogota"  #: reference.json site.timezone
    latitude: float = 4.65  #: city centre, for the sun's elevation (reference.json stations span 4.5–4.8 N)
    longitude: float = -74.08
    temp_min_c: float = 8.0  #: reference.json site.temperature_note: typical daily range 8–20 °C
    temp_max_c: float = 20.0
    pressure_hpa: float = 752.0  #: station pressure of the worked examples (CONVERSIONS.md)

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises for an unknown zone
        if not self.temp_min_c < self.temp_max_c:
            raise ValueError(f"SiteClimate: temp_min_c {self.temp_min_c} must be below temp_max_c")
        if self.pressure_hpa <= 0:
            raise ValueError(f"SiteClimate: pressure_hpa must be positive, got {self.pressure_hpa}")


#: where a sensor is, for episodes: (latitude °, longitude °, locality name)
Position = tuple[float, float, str]
#: mean Earth radius, km (IUGG mean radius R1 = 6371.0088 km, Moritz 2000, Geodetic Reference System 1980)
_EARTH_RADIUS_KM = 6371.0088


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two (lat, lon) points in degrees, in km."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def bundled_positions() -> dict[str, Position]:
    """Position of every station and microsensor of reference.json, by id."""
    ref = load("reference")
    return {item.get("code") or item["id"]: (float(item["lat"]), float(item["lon"]), item["locality"])
            for item in (*ref["stations"], *ref["microsensors"])}


@dataclass(frozen=True, slots=True, kw_only=True)
class Episode:
    """A spatially correlated episode: `variable` × `factor` over [start, end) inside an area.

    The area is a circle (`centre` (lat, lon) and `radius_km`), or a set of `localities` (reference.json names,
    e.g. {"Kennedy", "Bosa"}), or the whole city when neither is given. The factor ramps in and out over
    `ramp_s` at each end of the window (at most a quarter of it each), so the episode builds up and clears like a
    real one; outside the window or the area nothing changes. Example, a PM2.5 episode over the south-west::

        Episode(variable="pm25", start=t0, end=t0 + timedelta(hours=12), centre=(4.61, -74.16), radius_km=6,
                factor=3.0)
    """

    variable: str  #: a code of REPORTED_UNITS
    start: datetime
    end: datetime
    factor: float  #: multiplier at full strength (> 0; below 1 for a clean-air episode)
    centre: tuple[float, float] | None = None  #: (lat, lon) in degrees
    radius_km: float | None = None
    localities: frozenset[str] = frozenset()
    ramp_s: float = 3600.0  #: build-up and clearing time at each end of the window

    def __post_init__(self) -> None:
        where = f"episode {self.variable} {self.start.isoformat()}..{self.end.isoformat()}"
        if self.variable not in REPORTED_UNITS:
            raise ValueError(f"{where}: variable: expected one of {', '.join(REPORTED_UNITS)}, got {self.variable!r}")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"{where}: start and end need a UTC offset")
        if not self.start < self.end:
            raise ValueError(f"{where}: start must be before end")
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"{where}: factor: expected a number > 0, got {self.factor}")
        if (self.centre is None) != (self.radius_km is None):
            raise ValueError(f"{where}: centre and radius_km go together")
        if self.radius_km is not None and not self.radius_km > 0:
            raise ValueError(f"{where}: radius_km: expected > 0, got {self.radius_km}")
        if self.centre is not None and self.localities:
            raise ValueError(f"{where}: give either centre and radius_km or localities, not both")
        if self.ramp_s < 0:
            raise ValueError(f"{where}: ramp_s: expected >= 0, got {self.ramp_s}")
        object.__setattr__(self, "localities", frozenset(self.localities))

    def weight(self, t: datetime) -> float:
        """How much of the episode is in force at `t`: 0 outside [start, end), 1 at full strength."""
        if not self.start <= t < self.end:
            return 0.0
        ramp = min(self.ramp_s, (self.end - self.start).total_seconds() / 4)
        if ramp <= 0:
            return 1.0
        edge = min((t - self.start).total_seconds(), (self.end - t).total_seconds()) / ramp
        if edge >= 1:
            return 1.0
        return edge * edge * (3 - 2 * edge)  # smoothstep: no jump at the window's edges

    def covers(self, position: Position | None) -> bool:
        """Whether a sensor at `position` is inside the episode's area (unknown position: city-wide only)."""
        if self.centre is None and not self.localities:
            return True
        if position is None:
            return False
        if self.localities:
            return position[2] in self.localities
        assert self.centre is not None
        assert self.radius_km is not None
        return distance_km(self.centre, position[:2]) <= self.radius_km


def _gauss(x: float, centre: float, width: float) -> float:
    return math.exp(-(((x - centre) / width) ** 2))


class CitySignals:
    """Deterministic city signals from a seed: `value(sensor_id, variable, t)` in the reported unit.

    `episodes` are applied at the sensors' positions: the bundled network's (reference.json), overridden or
    extended by `sensors` (e.g. synthetic ones) or `positions`.
    """

    def __init__(self, seed: int, *, site: SiteClimate | None = None, episodes: Iterable[Episode] = (),
                 sensors: Iterable[Sensor] = (), positions: Mapping[str, Position] | None = None) -> None:
        self.seed = seed
        self.site = site or SiteClimate()
        self.episodes = tuple(episodes)
        self._positions: dict[str, Position] = bundled_positions() if self.episodes else {}
        self._positions.update({s.id: (s.lat, s.lon, s.locality) for s in sensors})
        self._positions.update(positions or {})
        self._episodes_of: dict[str, tuple[Episode, ...]] = {}
        for episode in self.episodes:
            self._episodes_of[episode.variable] = (*self._episodes_of.get(episode.variable, ()), episode)
        self._tz = ZoneInfo(self.site.timezone)
        #: 1 mmHg = 1.33322387415 hPa (conversions.json constants.mmHg_to_hPa)
        self.mmhg_to_hpa = float(load("conversions")["constants"]["mmHg_to_hPa"])

    # -- noise -------------------------------------------------------------------------------------------
    def _hash(self, *parts: object) -> float:
        """A uniform number in [-1, 1) determined by the seed and `parts`."""
        text = "|".join(map(str, (self.seed, *parts))).encode()
        digest = hashlib.blake2b(text, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**63 - 1.0

    def _smooth(self, key: str, t_s: float, period_s: float) -> float:
        """Value noise in [-1, 1]: hashed knots every `period_s` seconds, smoothstep-interpolated."""
        x = t_s / period_s
        knot = math.floor(x)
        f = x - knot
        a, b = self._hash(key, period_s, knot), self._hash(key, period_s, knot + 1)
        return a + (b - a) * f * f * (3 - 2 * f)

    def _city(self, name: str, t_s: float) -> float:
        """Slow city-wide variability (weather, emissions) shared by every sensor."""
        key = f"city|{name}"
        return 0.6 * self._smooth(key, t_s, 6 * 3600) + 0.4 * self._smooth(key, t_s, _DAY_S)

    def _local(self, sensor_id: str, name: str, t_s: float) -> tuple[float, float, float]:
        """(bias, 20-minute, 1-minute) noise of one sensor's series."""
        key = f"{sensor_id}|{name}"
        return self._hash(key, "bias"), self._smooth(key, t_s, 1200), self._smooth(key, t_s, 60)

    # -- shapes ------------------------------------------------------------------------------------------
    def _local_time(self, t: datetime) -> tuple[float, int]:
        local = t.astimezone(self._tz)
        return local.hour + local.minute / 60 + local.second / 3600, local.weekday()

    @staticmethod
    def _traffic(hour: float, weekday: int) -> float:
        """Traffic activity: ~0.1 at night, 1.0 at the 07 h peak, ~0.85 at 18 h; weekends lower."""
        shape = 0.12 + _gauss(hour, 7.0, 1.4) + 0.85 * _gauss(hour, 18.0, 1.8) + 0.3 * _gauss(hour, 12.5, 2.5)
        week = 1.0 if weekday < 5 else (0.75 if weekday == 5 else 0.45)  # Sunday: Ciclovía, little freight
        return shape * week

    def _diurnal_temperature_shape(self, hour: float) -> float:
        """-1 at 05:30 (dawn minimum), +1 at 14:00 (afternoon maximum), cosine segments between."""
        if 5.5 <= hour < 14.0:
            return -math.cos(math.pi * (hour - 5.5) / 8.5)
        since_max = (hour - 14.0) % 24
        return math.cos(math.pi * since_max / 15.5)

    def _solar_elevation_sin(self, t: datetime) -> float:
        day = t.astimezone(self._tz).timetuple().tm_yday
        # declination, Cooper (1969): 23.45° · sin(360° · (284 + n) / 365)
        decl = math.radians(23.45) * math.sin(2 * math.pi * (284 + day) / 365)
        utc_hours = (t.timestamp() % _DAY_S) / 3600
        solar_hours = utc_hours + self.site.longitude / 15  # mean solar time; equation of time ignored
        hour_angle = math.radians(15 * (solar_hours - 12))
        lat = math.radians(self.site.latitude)
        return math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)

    def episode_factor(self, sensor_id: str, variable: str, t: datetime) -> float:
        """The product of the factors of `variable`'s episodes in force at `sensor_id` and `t` (1: none)."""
        factor = 1.0
        for episode in self._episodes_of.get(variable, ()):
            w = episode.weight(t)
            if w > 0 and episode.covers(self._positions.get(sensor_id)):
                factor *= 1 + (episode.factor - 1) * w
        return factor

    # -- variables ---------------------------------------------------------------------------------------
    def _temperature_c(self, sensor_id: str, t_s: float, hour: float) -> float:
        mid = (self.site.temp_min_c + self.site.temp_max_c) / 2
        amp = (self.site.temp_max_c - self.site.temp_min_c) / 2
        bias, slow, fast = self._local(sensor_id, "temperature", t_s)
        return (mid + amp * self._diurnal_temperature_shape(hour) + 1.5 * self._city("temperature", t_s)
                + 0.5 * bias + 0.2 * slow + 0.05 * fast)

    def _rh_percent(self, sensor_id: str, t_s: float, hour: float) -> float:
        temp = self._temperature_c(sensor_id, t_s, hour)
        _, slow, fast = self._local(sensor_id, "relativehumidity", t_s)
        rh = 95 - 3.6 * (temp - self.site.temp_min_c) + 5 * self._city("rh", t_s) + 2 * slow + 0.5 * fast
        return min(100.0, max(20.0, rh))

    def _traffic_pollutant(self, sensor_id: str, name: str, t_s: float, traffic: float,
                           base: float, gain: float, noise: float) -> float:
        bias, slow, fast = self._local(sensor_id, name, t_s)
        level = (base + gain * traffic) * (1 + 0.15 * bias) * (1 + 0.25 * self._city(name, t_s))
        return level + noise * (slow + 0.3 * fast)

    def _pm25(self, sensor_id: str, t_s: float, traffic: float) -> float:
        return max(1.0, self._traffic_pollutant(sensor_id, "pm25", t_s, traffic, 10.0, 22.0, 3.0))

    def _no(self, sensor_id: str, t_s: float, traffic: float) -> float:
        return max(0.5, self._traffic_pollutant(sensor_id, "no", t_s, traffic ** 1.5, 3.0, 40.0, 3.0))

    def _no2(self, sensor_id: str, t_s: float, traffic: float) -> float:
        return max(1.0, self._traffic_pollutant(sensor_id, "no2", t_s, traffic, 14.0, 26.0, 3.0))

    def value(self, sensor_id: str, variable: str, t: datetime, *, humidity_growth: bool = False) -> float:
        """`variable` at `sensor_id` and instant `t`, in `REPORTED_UNITS[variable]`.

        `humidity_growth=True` imitates an optical (low-cost) PM sensor, which reads high in humid air.
        """
        if t.tzinfo is None:
            raise ValueError("CitySignals.value: t must be timezone-aware")
        if variable not in REPORTED_UNITS:
            raise ValueError(f"CitySignals.value: unknown variable {variable!r}; "
                             f"expected one of {', '.join(REPORTED_UNITS)}")
        value = self._value(sensor_id, variable, t, humidity_growth)
        if self._episodes_of and variable not in ("pm10", "nox"):  # those two apply their parts' episodes
            value *= self.episode_factor(sensor_id, variable, t)
        return value

    def _value(self, sensor_id: str, variable: str, t: datetime, humidity_growth: bool) -> float:
        t_s = t.timestamp()
        hour, weekday = self._local_time(t)
        traffic = self._traffic(hour, weekday)
        bias, slow, fast = self._local(sensor_id, variable, t_s)
        episodes = bool(self._episodes_of)
        match variable:
            case "pm25" | "pm10":
                pm = self._pm25(sensor_id, t_s, traffic)
                if variable == "pm10":
                    # the coarse fraction plus the fine one (with the pm25 episodes: PM10 contains PM2.5)
                    fine = pm * self.episode_factor(sensor_id, "pm25", t) if episodes else pm
                    pm = pm * (0.8 + 0.2 * slow) + 1.5 * fast + fine
                    if episodes:
                        pm *= self.episode_factor(sensor_id, "pm10", t)
                if humidity_growth:
                    pm *= self._growth_factor(self._rh_percent(sensor_id, t_s, hour))
                return pm
            case "no":
                return self._no(sensor_id, t_s, traffic)
            case "no2":
                return self._no2(sensor_id, t_s, traffic)
            case "nox":
                no, no2 = self._no(sensor_id, t_s, traffic), self._no2(sensor_id, t_s, traffic)
                if episodes:
                    no *= self.episode_factor(sensor_id, "no", t)
                    no2 *= self.episode_factor(sensor_id, "no2", t)
                    return (no + no2) * self.episode_factor(sensor_id, "nox", t)
                return no + no2
            case "co":
                return max(0.1, self._traffic_pollutant(sensor_id, "co", t_s, traffic, 0.35, 1.0, 0.08))
            case "so2":
                return max(0.3, self._traffic_pollutant(sensor_id, "so2", t_s, traffic, 2.0, 4.0, 0.8))
            case "bc":
                return max(0.1, self._traffic_pollutant(sensor_id, "bc", t_s, traffic, 1.5, 6.0, 0.5))
            case "o3":
                weekend = 1.1 if weekday >= 5 else 1.0  # less NO titration at weekends
                level = (4 + 38 * _gauss(hour, 13.5, 2.8) * weekend) * (1 + 0.3 * self._city("o3", t_s))
                return max(1.0, level * (1 + 0.1 * bias) + 2 * slow + 0.6 * fast)
            case "temperature":
                return self._temperature_c(sensor_id, t_s, hour)
            case "temperature_8m" | "temperature_20m":
                # 6.5 K/km standard lapse rate (ICAO standard atmosphere): −0.05 K at 8 m, −0.13 K at 20 m
                height = 8 if variable == "temperature_8m" else 20
                return self._temperature_c(sensor_id, t_s, hour) - 0.0065 * height + 0.05 * slow
            case "relativehumidity":
                return self._rh_percent(sensor_id, t_s, hour)
            case "pressure":
                # semidiurnal atmospheric tide: ~1 hPa in the tropics, maxima near 10 h and 22 h local time
                # (Dai & Wang 1999, J. Atmos. Sci. 56, 3874); bias stands for station elevation differences
                hpa = (self.site.pressure_hpa + 1.2 * math.cos(2 * math.pi * (hour - 10) / 12)
                       + 1.0 * self._city("pressure", t_s) + 2.0 * bias + 0.05 * fast)
                return hpa / self.mmhg_to_hpa
            case "wind_speed":
                level = 1.0 + 2.2 * _gauss(hour, 15.0, 3.5) + 0.8 * self._city("wind", t_s)
                return max(0.0, level + 0.5 * slow + 0.2 * fast)
            case "wind_direction":
                return (90 + 50 * self._city("wind_direction", t_s) + 30 * slow + 5 * fast) % 360
            case "precipitation":
                # mm in the hour ending at t: afternoon convective showers, dry most hours
                wet = 0.5 * (1 + self._smooth("city|rain", t_s, 2 * 3600)) * (0.6 + 0.4 * _gauss(hour, 16, 3))
                return max(0.0, wet - 0.6) * 15
            case "solar_radiation":
                sin_elev = self._solar_elevation_sin(t)
                if sin_elev <= 0:
                    return 0.0
                cloud = 0.35 + 0.65 * 0.5 * (1 + 0.7 * self._city("cloud", t_s) + 0.3 * slow)
                return 1000 * sin_elev ** 1.2 * cloud
            case "bbp":
                return min(100.0, max(0.0, 20 + 8 * self._city("bbp", t_s) + 3 * slow + fast))
            case "co2":
                # ~420 ppm background (NOAA GML global mean, 2023–2024) plus traffic and the night-time
                # shallow boundary layer
                night = _gauss(hour, 5.0, 3.0)
                return 420 + 25 * traffic + 15 * night + 5 * self._city("co2", t_s) + 2 * slow + 0.5 * fast
        raise AssertionError(variable)  # unreachable: REPORTED_UNITS covers every case above

    @staticmethod
    def _growth_factor(rh_percent: float) -> float:
        """Optical PM over-reading at humidity RH (Crilley et al. 2018 κ-Köhler form), RH capped at 95 %."""
        aw = min(rh_percent, 95.0) / 100
        return 1 + (_KAPPA / 1.65) / (1 / aw - 1)
