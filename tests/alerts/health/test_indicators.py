"""alerts/health/indicators.py: completeness, flat minutes and drift (exact cases and properties)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.health.indicators import completeness, drift, flat_minutes

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_completeness_is_covered_hours_over_expected() -> None:
    assert completeness([24.0, 12.0], 24) == pytest.approx(0.75)
    assert completeness([], 24) is None
    with pytest.raises(ValueError, match="hours"):
        completeness([1.0], 0)


@given(st.lists(st.floats(-5, 50, allow_nan=False), min_size=1, max_size=6), st.integers(1, 48))
def test_completeness_stays_within_0_and_1(sums: list[float], hours: int) -> None:
    value = completeness(sums, hours)
    assert value is not None and 0.0 <= value <= 1.0


def test_flat_minutes_needs_three_readings() -> None:
    assert flat_minutes(T0 + timedelta(minutes=30), T0, 3) == 30
    assert flat_minutes(T0 + timedelta(minutes=30), T0, 2) == 0
    assert flat_minutes(None, None, 0) == 0


@given(bias=st.floats(-50, 50), per_day=st.floats(-2, 2), hours=st.integers(25, 400))
def test_drift_recovers_a_linear_difference(bias: float, per_day: float, hours: int) -> None:
    ends = [T0 + timedelta(hours=h) for h in range(hours)]
    ref = [10.0 + (h % 7) for h in range(hours)]
    dev = [r + bias + per_day * h / 24.0 for h, r in enumerate(ref)]
    got = drift("pm25", "USQ", ends, dev, ref)
    assert got is not None and got.hours == hours
    assert got.per_day == pytest.approx(per_day, abs=1e-9)
    assert got.bias == pytest.approx(bias + per_day * (hours - 1) / 2 / 24.0, abs=1e-9)


def test_drift_needs_a_day_for_a_slope_and_equal_lengths() -> None:
    got = drift("pm25", "USQ", [T0, T0 + timedelta(hours=1)], [2.0, 4.0], [1.0, 1.0])
    assert got is not None and got.per_day is None and got.bias == 2.0
    assert drift("pm25", "USQ", [], [], []) is None
    with pytest.raises(ValueError, match="as many"):
        drift("pm25", "USQ", [T0], [1.0, 2.0], [1.0])
