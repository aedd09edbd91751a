"""Simulated analysers running zero/span checks and drifting (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensors.zero_span import CheckSchedule, window_at
from simulators.analyser_checks import DriftingAnalyser, with_checks

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SCHEDULE = CheckSchedule("KEN", "KEN-o3", "o3", UTC, at_minute=60, zero_min=10, span_min=10, purge_min=10,
                         span_value=400.0, unit="ppb")


def test_phases_read_zero_span_purge_then_ambient() -> None:
    a = DriftingAnalyser(SCHEDULE, since=T0)
    start = T0 + timedelta(hours=1)
    assert a.reading(30.0, start + timedelta(minutes=5)) == 0.0
    assert a.reading(30.0, start + timedelta(minutes=15)) == 400.0
    assert a.reading(30.0, start + timedelta(minutes=25)) == pytest.approx(30 + 370 * 0.5)
    assert a.reading(30.0, start + timedelta(minutes=30)) == 30.0


@given(st.integers(0, 30), st.floats(-5, 5), st.floats(-2, 2), st.floats(0, 200))
def test_drift_grows_with_days(days: int, zero_per_day: float, span_pct_per_day: float, ambient: float) -> None:
    a = DriftingAnalyser(SCHEDULE, since=T0, zero_per_day=zero_per_day, span_pct_per_day=span_pct_per_day)
    t = T0 + timedelta(days=days, hours=12)  # outside any check
    assert window_at(SCHEDULE, t) is None
    expected = ambient * (1 + span_pct_per_day * (days + 0.5) / 100) + zero_per_day * (days + 0.5)
    assert a.reading(ambient, t) == pytest.approx(expected, abs=1e-9)


def test_with_checks_only_touches_its_sensor_and_variable() -> None:
    source = with_checks(lambda s, v, t: 12.0, [DriftingAnalyser(SCHEDULE, since=T0)])
    during = T0 + timedelta(hours=1, minutes=15)
    assert source("KEN", "o3", during) == 400.0
    assert source("KEN", "no2", during) == 12.0 and source("USQ", "o3", during) == 12.0


def test_the_simulated_network_serves_the_analysers_checks_and_drift() -> None:
    from sensors.network import bundled_network
    from simulators.network_sim import SimulatedNetwork
    from simulators.signals import CitySignals

    network = [s for s in bundled_network() if s.id == "KEN"]
    device = next(d for d in network[0].devices if "o3" in d.variables)
    schedule = CheckSchedule("KEN", device.id, "o3", UTC, at_minute=60, zero_min=10, span_min=10, purge_min=10,
                             span_value=400.0, unit="ppb")
    analyser = DriftingAnalyser(schedule, since=T0, span_pct_per_day=1.0)
    signals = CitySignals(7)
    sim = SimulatedNetwork(network, signals, lambda: T0, analysers=[analyser])
    day3 = T0 + timedelta(days=3)
    span_time = day3 + timedelta(hours=1, minutes=15)
    assert sim.value("KEN", "o3", span_time) == pytest.approx(400.0 * analyser.gain(span_time))
    noon = day3 + timedelta(hours=12)
    assert sim.value("KEN", "o3", noon) == pytest.approx(signals.value("KEN", "o3", noon) * 1.035)
    assert sim.value("KEN", "no2", noon) == signals.value("KEN", "no2", noon)
