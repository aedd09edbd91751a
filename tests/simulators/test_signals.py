"""simulators.signals: determinism, plausible ranges over a week, diurnal shapes, units the devices report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from statistics import mean
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.units import convert
from sensors.network import ANALYSERS, bundled_network
from sensors.variables import VARIABLES
from simulators.signals import REPORTED_UNITS, CitySignals, SiteClimate

BOGOTA = ZoneInfo("America/Bogota")
MONDAY = datetime(2026, 3, 2, tzinfo=BOGOTA)  # a Monday
SIG = CitySignals(42)

#: a week sampled every 20 minutes, local time
WEEK = [MONDAY + timedelta(minutes=20 * i) for i in range(3 * 24 * 7)]

#: plausible bounds per variable in the reported unit (wider than the typical ranges the model aims at)
BOUNDS = {
    "pm25": (1, 80), "pm10": (2, 150), "no": (0, 150), "no2": (1, 100), "nox": (1, 250), "o3": (0, 120),
    "so2": (0, 15), "co": (0.1, 3.0), "temperature": (3, 25), "temperature_8m": (3, 25),
    "temperature_20m": (3, 25), "relativehumidity": (20, 100), "pressure": (555, 572), "wind_speed": (0, 15),
    "wind_direction": (0, 360), "precipitation": (0, 20), "solar_radiation": (0, 1300), "bc": (0.1, 30),
    "bbp": (0, 100), "co2": (400, 520),
}


def _week(sensor: str, variable: str) -> list[float]:
    return [SIG.value(sensor, variable, t) for t in WEEK]


def test_reported_units_cover_every_simulated_analyser_variable() -> None:
    simulated = {v for variables in ANALYSERS.values() for v in variables}
    assert simulated <= set(REPORTED_UNITS)
    assert set(REPORTED_UNITS) <= set(VARIABLES)
    assert REPORTED_UNITS["pressure"] == "mmHg"
    assert REPORTED_UNITS["co"] == "ppm"
    assert {REPORTED_UNITS[v] for v in ("no", "no2", "nox", "o3", "so2")} == {"ppb"}


def test_microsensors_report_the_canonical_unit() -> None:
    for sensor in bundled_network():
        if sensor.kind == "microsensor":
            for v in sensor.variables:
                assert REPORTED_UNITS[v] == VARIABLES[v].unit


@pytest.mark.parametrize("variable", sorted(REPORTED_UNITS))
def test_reported_unit_is_accepted_by_ingest(variable: str) -> None:
    assert convert(1.0, REPORTED_UNITS[variable], variable) > -1e9


def test_deterministic_for_seed_sensor_variable_time() -> None:
    t = datetime(2026, 3, 2, 7, 13, 27, tzinfo=BOGOTA)
    for v in REPORTED_UNITS:
        assert SIG.value("USQ", v, t) == CitySignals(42).value("USQ", v, t)
        assert SIG.value("USQ", v, t) == SIG.value("USQ", v, t.astimezone(UTC))  # same instant
    assert SIG.value("USQ", "no2", t) != CitySignals(43).value("USQ", "no2", t)
    assert SIG.value("USQ", "no2", t) != SIG.value("KEN", "no2", t)


@given(seconds=st.integers(min_value=0, max_value=10 * 365 * 86400), seed=st.integers(0, 2**32),
       variable=st.sampled_from(sorted(REPORTED_UNITS)))
def test_always_finite_and_in_bounds(seconds: int, seed: int, variable: str) -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    value = CitySignals(seed).value("MS07", variable, t)
    lo, hi = BOUNDS[variable]
    assert lo <= value <= hi


@pytest.mark.parametrize("variable", sorted(REPORTED_UNITS))
def test_week_in_plausible_range(variable: str) -> None:
    values = _week("CDAR", variable)
    lo, hi = BOUNDS[variable]
    assert lo <= min(values) and max(values) <= hi


def test_typical_levels_over_a_week() -> None:
    assert 10 <= mean(_week("USQ", "pm25")) <= 40
    assert 20 <= mean(_week("USQ", "pm10")) <= 70
    assert 1 <= mean(_week("USQ", "so2")) <= 10
    assert 0.3 <= mean(_week("USQ", "co")) <= 2
    assert 410 <= mean(_week("USQ", "co2")) <= 450
    assert mean(_week("USQ", "pressure")) == pytest.approx(564, abs=2)
    temps = _week("USQ", "temperature")
    assert 6 <= min(temps) <= 11 and 17 <= max(temps) <= 23


def test_nox_is_no_plus_no2() -> None:
    for t in WEEK[::17]:
        total = SIG.value("USQ", "no", t) + SIG.value("USQ", "no2", t)
        assert SIG.value("USQ", "nox", t) == pytest.approx(total)


def _at_hour(sensor: str, variable: str, hour: float, days: range = range(5)) -> float:
    """Mean over weekdays (Mon–Fri by default) at a local hour."""
    return mean(SIG.value(sensor, variable, MONDAY + timedelta(days=d, hours=hour)) for d in days)


def test_rush_hours_above_night_for_traffic_pollutants() -> None:
    for variable in ("no2", "no", "co", "pm25", "bc"):
        night = _at_hour("USQ", variable, 3)
        assert _at_hour("USQ", variable, 7) > 1.3 * night, variable
        assert _at_hour("USQ", variable, 18) > 1.3 * night, variable


def test_weekend_traffic_lower() -> None:
    weekday = _at_hour("USQ", "no2", 7, range(5))
    sunday = _at_hour("USQ", "no2", 7, range(6, 7))
    assert sunday < weekday


def test_ozone_afternoon_peak() -> None:
    assert _at_hour("USQ", "o3", 13.5) > 2 * _at_hour("USQ", "o3", 3)
    assert _at_hour("USQ", "o3", 13.5) > _at_hour("USQ", "o3", 7)


def test_temperature_and_humidity_diurnal_cycle() -> None:
    afternoon, dawn = _at_hour("GYR", "temperature", 14), _at_hour("GYR", "temperature", 5.5)
    assert afternoon - dawn > 8
    assert _at_hour("GYR", "relativehumidity", 14) < _at_hour("GYR", "relativehumidity", 5.5) - 15
    # the mast thermometers read slightly cooler than the ground one
    assert _at_hour("GYR", "temperature_20m", 14) < afternoon


def test_solar_zero_at_night_positive_at_noon() -> None:
    for t in WEEK:
        hour = t.hour + t.minute / 60
        value = SIG.value("KEN", "solar_radiation", t)
        if hour < 5.5 or hour >= 18.5:
            assert value == 0.0, t
        if 10 <= hour <= 14:
            assert value > 150, t


def test_noise_is_smooth_between_samples() -> None:
    t = datetime(2026, 3, 3, 10, 0, tzinfo=BOGOTA)
    series = [SIG.value("USQ", "pm25", t + timedelta(seconds=s)) for s in range(0, 600, 5)]
    jumps = [abs(b - a) for a, b in pairwise(series)]
    assert max(jumps) < 1.0  # µg/m³ in 5 s
    assert len(set(series)) > 100  # not constant


def test_microsensor_pm_reads_higher_in_humid_air() -> None:
    dawn = datetime(2026, 3, 3, 5, 30, tzinfo=BOGOTA)  # humid
    plain = SIG.value("MS01", "pm25", dawn)
    grown = SIG.value("MS01", "pm25", dawn, humidity_growth=True)
    assert grown > 1.1 * plain
    temperature = SIG.value("MS01", "temperature", dawn)
    assert SIG.value("MS01", "temperature", dawn, humidity_growth=True) == temperature


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="unknown variable"):
        SIG.value("USQ", "h2s", MONDAY)
    with pytest.raises(ValueError, match="timezone-aware"):
        SIG.value("USQ", "no2", datetime(2026, 3, 2))
    with pytest.raises(ValueError):
        SiteClimate(temp_min_c=20, temp_max_c=8)


def test_site_changes_levels() -> None:
    warm = CitySignals(42, site=SiteClimate(temp_min_c=20, temp_max_c=30, pressure_hpa=1013.25))
    assert mean(warm.value("USQ", "temperature", t) for t in WEEK) > 22
    assert mean(warm.value("USQ", "pressure", t) for t in WEEK) == pytest.approx(760, abs=3)
