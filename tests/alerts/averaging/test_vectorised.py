"""alerts.averaging.vectorised computes many series at once and must agree with the per-series pure functions
(alerts.averaging.averages.hourly_average / rolling_average / daily_average, alerts.averaging.nowcast.nowcast) on
random series with invalid flags, NaNs, negative values, missing hours and samples on the hour boundaries: bit for
bit, except the hourly mean from sums, whose last bits follow the order of the additions."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.averaging import vectorised
from alerts.averaging.averages import (
    Average,
    daily_average,
    hourly_average,
    min_valid_hours,
    rolling_average,
    sample_validity,
)
from alerts.averaging.nowcast import nowcast
from alerts.averaging.vectorised import HourTable, hourly_from_sums, nowcast_values, segment_means, window_averages
from ingest.reading import EXCLUDED, QC

ORIGIN = datetime(2026, 3, 2, 5, tzinfo=UTC)  # an hour end
H = 3600.0

values_st = st.one_of(st.floats(-50, 1000, allow_nan=False), st.just(math.nan), st.just(0.1), st.just(1e-9),
                      st.floats(allow_nan=True, allow_infinity=True, width=64))
# no flag, every excluded bit, a suspect flag that still counts (spike), one excluded bit alone
flags_st = st.sampled_from([0, 0, 0, int(EXCLUDED), int(QC.SPIKE), int(QC.DEVICE_INVALID), int(QC.NEGATIVE)])


def same(a: float | None, b: float) -> bool:
    """`a` (per-series, None = missing) equals `b` (vectorised, NaN = missing) bit for bit."""
    if a is None:
        return math.isnan(b)
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_equal(expected: Average, got: Average) -> None:
    assert got.samples == expected.samples and got.valid == expected.valid
    assert got.coverage == expected.coverage
    assert (got.value is None) == (expected.value is None)
    if expected.value is not None:
        assert got.value == expected.value or (math.isnan(got.value) and math.isnan(expected.value))


@st.composite
def sample_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 120))
    series = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    # offsets in seconds from 3 h before ORIGIN: whole hours (boundaries), whole seconds, fractions
    offsets = draw(st.lists(st.one_of(st.integers(0, 5).map(lambda k: k * H), st.integers(0, 5 * 3600).map(float),
                                      st.floats(0, 5 * H)), min_size=n, max_size=n))
    values = draw(st.lists(values_st, min_size=n, max_size=n))
    flags = draw(st.lists(flags_st, min_size=n, max_size=n))
    times = ORIGIN.timestamp() - 3 * H + np.array(offsets, dtype=float)
    return (np.array(series, dtype=np.int64), times, np.array(values, dtype=float),
            sample_validity(np.array(values, dtype=float), np.array(flags, dtype=np.int64)))


def database_sums(series: np.ndarray, times: np.ndarray, values: np.ndarray, valid: np.ndarray,
                  device: np.ndarray, origin: float) -> tuple[np.ndarray, ...]:
    """The samples summed per (series, device, hour on `origin`'s grid) the way `storage.windows_store.due_hours`
    does (time_bucket; count and plain running sum of the valid samples; a group for every sample, valid or not)."""
    groups: dict[tuple[int, int, float], tuple[int, float]] = {}
    for s, t, v, ok, d in zip(series.tolist(), times.tolist(), values.tolist(), valid.tolist(), device.tolist(),
                              strict=True):
        end = origin + (math.floor((t - origin) / H) + 1) * H
        n, total = groups.get((s, d, end), (0, 0.0))
        groups[(s, d, end)] = (n + 1, total + v) if ok else (n, total)
    keys = list(groups)
    return (np.array([k[0] for k in keys], dtype=np.int64), np.array([k[2] for k in keys], dtype=float),
            np.array([groups[k][0] for k in keys], dtype=np.int64), np.array([groups[k][1] for k in keys]))


@settings(max_examples=300, deadline=None)
@given(sample_sets(), st.lists(st.tuples(st.integers(0, 4), st.integers(-3, 3)), max_size=12, unique=True),
       st.sampled_from([1.0, 5.0, 60.0, 300.0, 7.0, 3600.0]), st.randoms(use_true_random=False))
def test_hourly_from_sums_equal_the_per_series_function(samples, windows, cadence, rnd) -> None:
    series, times, values, valid = samples
    values = np.where(np.abs(values) <= 1e6, values, np.nan)  # concentrations: the mean's last bits, not overflow
    valid &= np.isfinite(values)
    device = np.array([rnd.randint(0, 1) for _ in range(series.size)], dtype=np.int64)  # pooled devices add up
    ws = np.array([w[0] for w in windows], dtype=np.int64)
    we = np.array([ORIGIN.timestamp() + k * H for _, k in windows], dtype=float)
    got = hourly_from_sums(*database_sums(series, times, values, valid, device, ORIGIN.timestamp()), ws, we, cadence)
    for i, (s, k) in enumerate(windows):
        mine = series == s
        expected = hourly_average(times[mine], values[mine], valid[mine], ORIGIN + timedelta(hours=k), cadence)
        one = got.average(i)
        assert (one.samples, one.valid, one.coverage) == (expected.samples, expected.valid, expected.coverage)
        assert (one.value is None) == (expected.value is None)
        if expected.value is not None:
            scale = np.abs(values[mine & valid]).max()  # the sum's rounding is relative to its terms
            assert one.value == pytest.approx(expected.value, rel=1e-12, abs=1e-12 * max(scale, 1.0))


def test_hourly_from_sums_pools_devices_and_repeats_a_window_asked_twice() -> None:
    # two devices in the hour ending at ORIGIN, one in the hour before; a window asked twice; an empty hour
    s = np.zeros(3, dtype=np.int64)
    e = np.array([ORIGIN.timestamp(), ORIGIN.timestamp(), ORIGIN.timestamp() - H])
    got = hourly_from_sums(s, e, np.array([30, 20, 6]), np.array([300.0, 400.0, 12.0]), np.zeros(4, dtype=np.int64),
                           np.array([ORIGIN.timestamp(), ORIGIN.timestamp() - H, ORIGIN.timestamp(),
                                     ORIGIN.timestamp() + H]), 60.0)
    assert got.samples.tolist() == [50, 6, 50, 0]
    assert got.value[:3].tolist() == [14.0, 2.0, 14.0] and math.isnan(got.value[3])
    assert got.valid.tolist() == [True, False, True, False]
    assert got.coverage.tolist() == [50 / 60, 0.1, 50 / 60, 0.0]


def test_hourly_from_sums_refuse_a_bad_cadence() -> None:
    with pytest.raises(ValueError, match="cadence_s"):
        hourly_from_sums(np.zeros(1), np.array([H]), np.ones(1), np.zeros(1), np.zeros(1), np.array([H]), 0.0)


hour_st = st.tuples(st.one_of(st.floats(-20, 500, allow_nan=False), st.just(math.nan), st.just(0.1)), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([(8, 6), (24, 18), (8, 1), (3, 3)]), st.data())
def test_window_averages_equal_rolling_average(period, data) -> None:
    hours, need = period
    rows = data.draw(st.lists(st.lists(hour_st, min_size=hours, max_size=hours), min_size=1, max_size=6))
    values = np.array([[v for v, _ in r] for r in rows])
    valid = np.array([[ok for _, ok in r] for r in rows])
    got = window_averages(values, valid, need)
    for i in range(len(rows)):
        assert_equal(rolling_average(values[i], valid[i], hours, need), got.average(i))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([23, 24, 25]), st.data())
def test_window_averages_equal_daily_average(hours, data) -> None:
    rows = data.draw(st.lists(st.lists(st.one_of(st.none(), hour_st), min_size=hours, max_size=hours),
                              min_size=1, max_size=5))
    start = datetime(2026, 3, 1, 5, tzinfo=UTC)
    end = start + timedelta(hours=hours)
    values = np.array([[math.nan if h is None else h[0] for h in r] for r in rows])
    valid = np.array([[h is not None and h[1] for h in r] for r in rows])
    got = window_averages(values, valid, min_valid_hours(hours))
    for i, r in enumerate(rows):
        hourly = [Average(value=None if math.isnan(h[0]) else h[0], coverage=0.0 if math.isnan(h[0]) else 1.0,
                          samples=0 if math.isnan(h[0]) else 1, valid=h[1] and not math.isnan(h[0]))
                  for h in r if h is not None]
        assert_equal(daily_average(hourly, start, end), got.average(i))


def test_window_averages_refuse_an_impossible_threshold() -> None:
    with pytest.raises(ValueError, match="min_valid"):
        window_averages(np.zeros((1, 8)), np.ones((1, 8), dtype=bool), 9)


# steps of 0.1 and 1 make the truncation land near a step: the exact per-series fallback must take over
nowcast_hour = st.one_of(st.none(), st.floats(-5, 600, allow_nan=False),
                         st.integers(0, 3000).map(lambda k: k / 10), st.integers(0, 300).map(float))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["pm25", "pm10"]),
       st.lists(st.lists(nowcast_hour, min_size=1, max_size=12), min_size=1, max_size=8))
def test_nowcast_values_equal_nowcast(pollutant, rows) -> None:
    matrix = np.full((len(rows), 12), np.nan)
    for i, r in enumerate(rows):
        matrix[i, 12 - len(r):] = [math.nan if x is None else x for x in r]
    got = nowcast_values(matrix, pollutant)
    for i, r in enumerate(rows):
        assert same(nowcast(r, pollutant), got[i]), (r, got[i])


def test_nowcast_values_of_flat_and_zero_series() -> None:
    flat = np.array([[0.3] * 12, [0.0] * 12, [np.nan] * 10 + [0.3, 0.3], [np.nan] * 11 + [5.0]])
    got = nowcast_values(flat, "pm25")
    assert got[0] == 0.3 and got[1] == 0.0 and got[2] == 0.3 and math.isnan(got[3])


def test_nowcast_values_refuse_ozone() -> None:
    with pytest.raises(ValueError, match="ozone"):
        nowcast_values(np.zeros((1, 12)), "o3")


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300), st.data())
def test_segment_means_equal_numpy_mean(values, data) -> None:
    x = np.array(values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=6)))
    bounds = [0, *cuts, len(values)]
    starts = np.array(bounds[:-1])
    counts = np.diff(bounds)
    got = segment_means(x, starts, counts)
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        assert (math.isnan(got[i]) if a == b else got[i] == float(x[a:b].mean()))


def test_hour_table_finds_stored_hours_and_misses_the_rest() -> None:
    table = HourTable(np.array([0, 0, 2]), np.array([7200.0, 3600.0, 3600.0]), np.array([1.5, np.nan, 3.0]),
                      np.array([True, False, True]))
    values, valid = table.get(np.array([[0], [2], [1]]), np.array([3600.0, 7200.0, 3600.5]))
    assert valid.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    assert values[0, 1] == 1.5 and values[1, 0] == 3.0 and np.isnan(values[2]).all()
    assert len(table) == 3
    empty = HourTable(np.empty(0), np.empty(0), np.empty(0), np.empty(0, dtype=bool))
    assert not empty.get(np.array([0]), np.array([3600.0]))[1].any()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_hour_table_dense_or_sorted_answers_like_a_dict(data: st.DataObject) -> None:
    """The table finds each (series, whole-second end) it was given, the first value of a key given twice, and
    nothing else; its dense matrix (hours on one grid) and its sorted keys (any ends, or forced by a zero cell
    budget) answer alike."""
    base = data.draw(st.sampled_from([0.0, 1_772_400_000.0, 1_772_401_800.0]))
    offsets = st.one_of(st.integers(-3, 40).map(lambda k: k * 3600.0), st.sampled_from([1800.0, 0.5, 7199.0]))
    n = data.draw(st.integers(0, 30))
    series = np.array(data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), dtype=np.int64)
    ends = base + np.array(data.draw(st.lists(offsets, min_size=n, max_size=n)), dtype=float)
    values = np.array(data.draw(st.lists(st.floats(-5, 5) | st.just(math.nan), min_size=n, max_size=n)), dtype=float)
    valid = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    expected: dict[tuple[int, float], tuple[float, bool]] = {}
    for s, e, v, ok in zip(series.tolist(), ends.tolist(), values.tolist(), valid.tolist(), strict=True):
        if e == round(e):
            expected.setdefault((s, e), (v, ok))
    m = data.draw(st.integers(1, 40))
    ask_s = np.array(data.draw(st.lists(st.integers(-1, 7), min_size=m, max_size=m)), dtype=np.int64)
    ask_e = base + np.array(data.draw(st.lists(offsets, min_size=m, max_size=m)), dtype=float)
    answers = []
    for cells in (vectorised._DENSE_CELLS, 0):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(vectorised, "_DENSE_CELLS", cells)
            table = HourTable(series, ends, values, valid)
        got_v, got_ok = table.get(ask_s, ask_e)
        for s, e, v, ok in zip(ask_s.tolist(), ask_e.tolist(), got_v.tolist(), got_ok.tolist(), strict=True):
            want_v, want_ok = expected.get((s, e), (math.nan, False))
            assert ok == want_ok and (v == want_v or (math.isnan(v) and math.isnan(want_v))), (s, e)
        answers.append((got_v, got_ok))
    np.testing.assert_array_equal(answers[0][0], answers[1][0])
    np.testing.assert_array_equal(answers[0][1], answers[1][1])
