"""Tests for alerts.averaging.averages: hourly completeness at the device cadence, rolling 8 h / 24 h, examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.averaging.averages import (
    ROLLING_PERIODS,
    Average,
    hourly_average,
    min_valid_hours,
    rolling_average,
    sample_validity,
)
from ingest.reading import EXCLUDED, QC
from sensors.domain import load

HOUR_END = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def minute_series(n: int, *, step_s: float = 60.0) -> np.ndarray:
    start = (HOUR_END - timedelta(hours=1)).replace(tzinfo=None)
    return np.array([np.datetime64(start + timedelta(seconds=i * step_s), "us") for i in range(n)])


def test_full_hour_at_one_minute_cadence_is_valid_with_mean():
    t = minute_series(60)
    v = np.arange(60, dtype=float)
    avg = hourly_average(t, v, np.ones(60, bool), HOUR_END, 60.0)
    assert avg == Average(value=29.5, coverage=1.0, samples=60, valid=True)


def test_exactly_75_percent_is_valid_and_one_less_is_not():
    t = minute_series(60)
    v = np.full(60, 10.0)
    ok = np.zeros(60, bool)
    ok[:45] = True  # 45 of 60 expected = 75 % exactly
    avg = hourly_average(t, v, ok, HOUR_END, 60.0)
    assert avg.valid and avg.samples == 45 and avg.coverage == pytest.approx(0.75)
    ok[44] = False
    avg = hourly_average(t, v, ok, HOUR_END, 60.0)
    assert not avg.valid and avg.samples == 44


def test_invalid_hour_keeps_the_mean_of_what_there_was_but_is_marked_invalid():
    t = minute_series(30)
    v = np.full(30, 42.0)
    avg = hourly_average(t, v, np.ones(30, bool), HOUR_END, 60.0)
    assert avg.value == 42.0
    assert not avg.valid
    assert avg.coverage == pytest.approx(0.5)
    assert avg.valid_value is None


def test_no_sample_gives_no_value_and_zero_coverage():
    avg = hourly_average(np.array([], "datetime64[us]"), np.array([]), np.array([], bool), HOUR_END, 60.0)
    assert avg == Average(value=None, coverage=0.0, samples=0, valid=False)


def test_expected_samples_follow_the_device_cadence():
    # 10 s cadence: 360 expected, 270 needed
    t = minute_series(270, step_s=10.0)
    avg = hourly_average(t, np.ones(270), np.ones(270, bool), HOUR_END, 10.0)
    assert avg.valid and avg.coverage == pytest.approx(0.75)
    avg = hourly_average(t[:269], np.ones(269), np.ones(269, bool), HOUR_END, 10.0)
    assert not avg.valid
    # 2-minute cadence: 30 expected, 23 needed (ceil of 22.5)
    t = minute_series(23, step_s=120.0)
    assert hourly_average(t, np.ones(23), np.ones(23, bool), HOUR_END, 120.0).valid
    assert not hourly_average(t[:22], np.ones(22), np.ones(22, bool), HOUR_END, 120.0).valid


def test_hour_is_half_open_and_labelled_by_its_end():
    start = HOUR_END - timedelta(hours=1)
    second = timedelta(seconds=1)
    times = np.array([start - second, start, HOUR_END - second, HOUR_END], dtype=object)
    v = np.array([1000.0, 1.0, 3.0, 1000.0])
    avg = hourly_average(times, v, np.ones(4, bool), HOUR_END, 1800.0)
    assert avg.samples == 2 and avg.value == 2.0 and avg.valid


def test_excluded_flags_do_not_count_but_suspect_flags_do():
    flags = np.array([0, int(QC.SPIKE), int(QC.NEGATIVE | QC.FLATLINE), int(QC.MAINTENANCE),
                      int(QC.DEVICE_INVALID), int(QC.OUT_OF_RANGE), int(QC.CLOCK_SKEW), int(QC.CALIBRATED)])
    values = np.array([1.0, 2.0, -0.5, 99.0, 99.0, 99.0, 99.0, 3.0])
    ok = sample_validity(values, flags)
    assert ok.tolist() == [True, True, True, False, False, False, False, True]
    assert all(not (int(f) & int(EXCLUDED)) for f in flags[ok])


def test_nan_values_are_not_valid():
    assert sample_validity(np.array([np.nan, 1.0]), np.array([0, 0])).tolist() == [False, True]
    avg = hourly_average(minute_series(2), np.array([np.nan, 4.0]), np.ones(2, bool), HOUR_END, 1800.0)
    assert avg.samples == 1 and avg.value == 4.0


def test_epoch_seconds_and_aware_datetimes_are_accepted():
    start = HOUR_END - timedelta(hours=1)
    secs = np.array([start.timestamp() + 60 * i for i in range(60)])
    assert hourly_average(secs, np.ones(60), np.ones(60, bool), HOUR_END, 60.0).valid
    naive = np.array([datetime(2026, 3, 1, 9, 30)], dtype=object)
    with pytest.raises(ValueError, match="aware"):
        hourly_average(naive, np.ones(1), np.ones(1, bool), HOUR_END, 60.0)


def test_bad_cadence_is_rejected_with_its_value():
    with pytest.raises(ValueError, match=r"cadence_s.*got 0"):
        hourly_average(minute_series(1), np.ones(1), np.ones(1, bool), HOUR_END, 0)


def test_rolling_thresholds_are_the_norms():
    assert ROLLING_PERIODS == {"8h": (8, 6), "24h": (24, 18)}
    assert min_valid_hours(8) == 6 and min_valid_hours(24) == 18


def _series(hourly):
    v = np.array([np.nan if x is None else float(x) for x in hourly])
    return v, np.isfinite(v)


AVERAGING = [e for e in load("examples")["examples"] if e["kind"] == "averaging"]


@pytest.mark.parametrize("ex", [e for e in AVERAGING if "hourly_ugm3" in e["input"]], ids=lambda e: e["id"])
def test_norm_examples_rolling(ex):
    v, ok = _series(ex["input"]["hourly_ugm3"])
    avg = rolling_average(v, ok, hours=len(v))
    assert avg.valid is ex["expected"]["valid"]
    assert avg.samples == ex["expected"]["n_valid"]
    if ex["expected"]["mean"] is None:
        assert avg.valid_value is None
    else:
        assert avg.valid_value == pytest.approx(ex["expected"]["mean"])


def test_norm_example_rolling_labelled_by_end_hour():
    (ex,) = [e for e in AVERAGING if "hourly_ugm3_hours_1_to_9" in e["input"]]
    v, ok = _series(ex["input"]["hourly_ugm3_hours_1_to_9"])
    assert rolling_average(v[:8], ok[:8], hours=8).valid_value == ex["expected"]["avg_ending_hour_8"]
    assert rolling_average(v, ok, hours=8).valid_value == ex["expected"]["avg_ending_hour_9"]


def test_rolling_short_series_counts_absent_hours_as_missing():
    avg = rolling_average(np.full(5, 10.0), np.ones(5, bool), hours=8)
    assert avg.samples == 5 and avg.coverage == pytest.approx(5 / 8) and not avg.valid and avg.value == 10.0


def test_rolling_ignores_invalid_hourlies_even_with_a_value():
    v = np.array([10.0] * 6 + [1000.0, 1000.0])
    ok = np.array([True] * 6 + [False, False])
    avg = rolling_average(v, ok, hours=8)
    assert avg.valid and avg.value == 10.0 and avg.samples == 6


@given(st.lists(st.one_of(st.none(), st.floats(0, 1000)), min_size=24, max_size=24))
def test_rolling_24h_validity_is_18_valid_hours(hourly):
    v, ok = _series(hourly)
    avg = rolling_average(v, ok, hours=24)
    n = sum(x is not None for x in hourly)
    assert avg.samples == n
    assert avg.valid is (n >= 18)
    if n:
        assert avg.value == pytest.approx(np.mean([x for x in hourly if x is not None]))
