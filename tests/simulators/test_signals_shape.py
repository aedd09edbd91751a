"""simulators.signals: the city's statistical shape, with named windows and effect sizes; a flat signal (the
control) must fail the very same checks. Episodes: raised only inside their window and area; determinism."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from sensors.network import bundled_network
from simulators.signals import REPORTED_UNITS, CitySignals, Episode, bundled_positions, distance_km
from tests.simulators import shape
from tests.simulators.shape import BOGOTA, Check, Signal

STATIONS = {s.id: s for s in bundled_network() if s.kind == "station"}
NO2_STATIONS = [sid for sid, s in STATIONS.items() if "no2" in s.variables][:4]
O3_STATIONS = [sid for sid, s in STATIONS.items() if "o3" in s.variables][:4]
PRESSURE_STATIONS = [sid for sid, s in STATIONS.items() if "pressure" in s.variables] or ["KEN"]
MICROSENSORS = [s.id for s in bundled_network() if s.kind == "microsensor"][:5]

#: a PM2.5 episode over the south-west (Kennedy, Bosa, Ciudad Bolívar), 06–18 h local on Tuesday
SOUTH_WEST = Episode(variable="pm25", start=datetime(2026, 3, 3, 6, tzinfo=BOGOTA),
                     end=datetime(2026, 3, 3, 18, tzinfo=BOGOTA), centre=(4.61, -74.165), radius_km=6.0, factor=3.0)


def flat(_sensor: str, variable: str, _t: datetime) -> float:
    """The control: a constant signal, in a plausible magnitude for every variable."""
    return 564.0 if variable == "pressure" else 20.0


def _checks(signal: Signal) -> list[Check]:
    return [shape.rush_hour(signal, NO2_STATIONS), shape.ozone_afternoon_peak(signal, O3_STATIONS),
            shape.weekday_over_sunday(signal, NO2_STATIONS), shape.pressure_at_altitude(signal, PRESSURE_STATIONS)]


@pytest.mark.parametrize("seed", [1, 42, 2026])
def test_city_signals_have_the_shape(seed: int) -> None:
    for check in _checks(CitySignals(seed).value):
        assert check.ok, check


def test_flat_control_fails_every_shape_check() -> None:
    for check in _checks(flat):
        assert not check.ok, check


def test_no2_rush_hour_effect_size() -> None:
    check = shape.rush_hour(CitySignals(7).value, NO2_STATIONS)
    assert check.ok and check.effect > 1.5, check
    for variable in ("co", "pm25", "no"):
        assert shape.rush_hour(CitySignals(7).value, NO2_STATIONS, variable, min_ratio=1.3).ok, variable


def test_pressure_check_needs_the_level_and_the_tide() -> None:
    sig = CitySignals(3)

    def sea_level(s: str, v: str, t: datetime) -> float:
        return sig.value(s, v, t) * 1013.25 / 752  # the tide but not the altitude

    assert not shape.pressure_at_altitude(sea_level, PRESSURE_STATIONS).ok
    assert shape.pressure_at_altitude(sig.value, PRESSURE_STATIONS).effect > 1.0


def test_episode_raises_pm25_only_inside_its_window_and_area() -> None:
    positions = bundled_positions()
    signals = CitySignals(5, episodes=[SOUTH_WEST])
    baseline = CitySignals(5)
    check = shape.episode_confined(signals.value, baseline.value, SOUTH_WEST, positions)
    assert check.ok and check.effect >= 2.6, check
    inside = {s for s, p in positions.items() if SOUTH_WEST.covers(p)}
    assert {"KEN", "CSE", "CBV", "MS07", "MS21", "MS22"} <= inside
    assert not {"USQ", "GYR", "MAM", "SUB"} & inside
    # the flat control, and a signal without the episode, fail the same check
    assert not shape.episode_confined(flat, flat, SOUTH_WEST, positions).ok
    assert not shape.episode_confined(baseline.value, baseline.value, SOUTH_WEST, positions).ok


def test_episode_ramps_inside_its_window_and_carries_into_pm10_and_not_into_gases() -> None:
    signals, baseline = CitySignals(5, episodes=[SOUTH_WEST]), CitySignals(5)
    start = SOUTH_WEST.start
    instants = [start + timedelta(minutes=m) for m in (0, 15, 30, 45, 60, 120)]
    ratios = [signals.value("KEN", "pm25", t) / baseline.value("KEN", "pm25", t) for t in instants]
    assert ratios == sorted(ratios) and ratios[0] == pytest.approx(1.0) and ratios[-1] == pytest.approx(3.0)
    mid = start + timedelta(hours=6)
    added = signals.value("KEN", "pm25", mid) - baseline.value("KEN", "pm25", mid)
    assert signals.value("KEN", "pm10", mid) - baseline.value("KEN", "pm10", mid) == pytest.approx(added)
    assert signals.value("KEN", "no2", mid) == baseline.value("KEN", "no2", mid)


def test_episode_by_localities_and_nox_follows_no2() -> None:
    start = datetime(2026, 3, 4, 0, tzinfo=BOGOTA)
    episode = Episode(variable="no2", start=start, end=start + timedelta(days=1), localities=frozenset({"Kennedy"}),
                      factor=2.0, ramp_s=0)
    signals, baseline = CitySignals(9, episodes=[episode]), CitySignals(9)
    t = start + timedelta(hours=8)
    assert signals.value("KEN", "no2", t) == pytest.approx(2 * baseline.value("KEN", "no2", t))
    assert signals.value("KEN", "nox", t) == pytest.approx(signals.value("KEN", "no", t)
                                                           + signals.value("KEN", "no2", t))
    assert signals.value("USQ", "no2", t) == baseline.value("USQ", "no2", t)


def test_low_cost_pm_reads_high_in_humid_air_and_the_control_does_not() -> None:
    sig = CitySignals(11)

    def lowcost(s: str, v: str, t: datetime) -> float:
        return sig.value(s, v, t, humidity_growth=True)

    check = shape.humid_over_read(lowcost, sig.value, MICROSENSORS)
    assert check.ok, check
    assert not shape.humid_over_read(sig.value, sig.value, MICROSENSORS).ok
    assert not shape.humid_over_read(flat, flat, MICROSENSORS).ok


def test_deterministic_for_a_seed_with_episodes() -> None:
    t = datetime(2026, 3, 3, 11, 17, 3, tzinfo=BOGOTA)
    a, b = CitySignals(5, episodes=[SOUTH_WEST]), CitySignals(5, episodes=[SOUTH_WEST])
    assert [a.value(s, v, t) for s in ("KEN", "MS07") for v in REPORTED_UNITS] == \
        [b.value(s, v, t) for s in ("KEN", "MS07") for v in REPORTED_UNITS]
    assert a.value("KEN", "pm25", t) != CitySignals(6, episodes=[SOUTH_WEST]).value("KEN", "pm25", t)


def test_synthetic_sensors_get_positions_from_the_caller() -> None:
    t = SOUTH_WEST.start + timedelta(hours=6)
    near = {"SYN-M0001": (4.611, -74.166, "Kennedy")}
    signals = CitySignals(5, episodes=[SOUTH_WEST], positions=near)
    assert signals.value("SYN-M0001", "pm25", t) == pytest.approx(3 * CitySignals(5).value("SYN-M0001", "pm25", t))
    unknown = CitySignals(5, episodes=[SOUTH_WEST])
    assert unknown.value("SYN-M0001", "pm25", t) == CitySignals(5).value("SYN-M0001", "pm25", t)


def test_distance_km() -> None:
    # Bogotá to Medellín: about 240 km great-circle
    assert distance_km((4.711, -74.072), (6.244, -75.581)) == pytest.approx(238, abs=5)
    assert distance_km((4.6, -74.1), (4.6, -74.1)) == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"variable": "h2s"}, "variable"),
    ({"factor": 0}, "factor"),
    ({"end": datetime(2026, 3, 3, 5, tzinfo=BOGOTA)}, "before end"),
    ({"radius_km": None}, "go together"),
    ({"localities": frozenset({"Bosa"})}, "not both"),
    ({"start": datetime(2026, 3, 3, 6)}, "UTC offset"),
])
def test_episode_validation(kwargs: dict, message: str) -> None:
    base = {"variable": "pm25", "start": SOUTH_WEST.start, "end": SOUTH_WEST.end, "centre": (4.6, -74.1),
            "radius_km": 5.0, "factor": 2.0}
    with pytest.raises(ValueError, match=message):
        Episode(**{**base, **kwargs})
