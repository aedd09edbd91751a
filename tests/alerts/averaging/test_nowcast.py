"""alerts.averaging.nowcast: the EPA NowCast (indices.json `nowcast`, INDICES.md "NowCast"), its edge cases and
properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.averaging.nowcast import NOWCAST_POLLUTANTS, WINDOW_HOURS, nowcast, nowcast_detail, truncate_decimal
from sensors.domain import load

NOWCAST = load("indices")["nowcast"]

concentration = st.floats(0, 1000, allow_nan=False)
hour = st.one_of(st.none(), concentration)


def test_constants_are_indices_json():
    assert WINDOW_HOURS == NOWCAST["window_hours"] == 12
    assert NOWCAST_POLLUTANTS == {"pm25": 1, "pm10": 0}  # nowcast.algorithm: PM2.5 0.1 ug/m3, PM10 1 ug/m3


def test_airnow_forum_example():
    # INDICES.md: "AirNow's forum example gives 28.409801" (examples.json EX053)
    hourly = [34.9, 43, 50, 64.9, 69.2, 66.2, 53.7, 48.6, 49.2, 35, None, 21]
    detail = nowcast_detail(hourly, "pm25")
    assert detail is not None
    assert detail.raw == pytest.approx(28.409801, abs=1e-6)
    assert detail.weight == 0.5 and detail.value == 28.4 and detail.hours == 11


def test_two_of_the_three_most_recent_hours_are_required():
    full = [10.0] * 9
    assert nowcast([*full, 10.0, 10.0, None], "pm25") == 10.0
    assert nowcast([*full, None, 10.0, 10.0], "pm25") == 10.0
    assert nowcast([*full, 10.0, None, None], "pm25") is None
    assert nowcast([*full, None, None, 10.0], "pm25") is None
    assert nowcast([None] * 12, "pm25") is None
    assert nowcast([], "pm25") is None


def test_the_exponent_keeps_the_true_hour_offset_when_the_current_hour_is_missing():
    # c1 missing: c2 = 20 gets weight w^1, c3 = 10 gets w^2; w = max(10/20, 0.5) = 0.5
    detail = nowcast_detail([10.0, 20.0, None], "pm25")
    assert detail is not None
    assert detail.raw == pytest.approx((0.5 * 20 + 0.25 * 10) / (0.5 + 0.25))


def test_missing_older_hours_are_skipped_and_a_short_list_is_fine():
    # indices.json nowcast.edge_cases.fewer_than_12_hours: allowed
    assert nowcast([30.0, 20.0], "pm25") == 24.0  # (20 + 2/3·30) / (1 + 2/3), examples.json EX059


def test_only_the_last_12_hours_count():
    assert nowcast([1000.0] * 5 + [10.0] * 12, "pm25") == 10.0


def test_weight_floor_is_one_half():
    detail = nowcast_detail([1.0] * 11 + [100.0], "pm25")
    assert detail is not None and detail.weight == 0.5


def test_all_zero_gives_zero_with_weight_one():
    # indices.json nowcast.edge_cases.max_is_zero: "use w = 1"
    detail = nowcast_detail([0.0] * 12, "pm10")
    assert detail is not None and (detail.value, detail.weight) == (0.0, 1.0)


def test_negative_hours_count_as_zero():
    # indices.json nowcast.edge_cases.negative_values (AirNow, secondary)
    assert nowcast([-5.0, -5.0, 10.0], "pm25") == nowcast([0.0, 0.0, 10.0], "pm25")
    assert nowcast([-1.0, -2.0], "pm25") == 0.0


def test_nan_is_missing():
    assert nowcast([10.0, math.nan, 20.0], "pm25") == nowcast([10.0, None, 20.0], "pm25")


def test_pm10_truncates_to_an_integer_and_pm25_to_a_tenth():
    # examples.json EX060: raw 57.742451 → 57 for PM10
    hourly = [40, 42, 45, 50, 48, 47, 52, 55, 60, 58, 57, 61]
    assert nowcast(hourly, "pm10") == 57.0
    assert nowcast(hourly, "pm25") == 57.7


def test_no_ozone_nowcast():
    # indices.json nowcast.ozone.status: unverified, "do not implement without the primary text"
    with pytest.raises(ValueError, match="ozone NowCast is unverified"):
        nowcast([0.05] * 12, "o3")
    with pytest.raises(ValueError, match=r"expected one of \['pm10', 'pm25'\]"):
        nowcast([1.0] * 12, "PM2.5")


@pytest.mark.parametrize(("value", "decimals", "expected"), [
    (0.29, 2, 0.29),  # examples.json conventions: binary floor(0.29*100)/100 gives 0.28
    (9.09, 1, 9.0),  # examples.json EX018
    (0.07099999999999998, 3, 0.071),  # VARIABLES.md: noise removed before the truncation
    (28.409801, 1, 28.4),
    (57.99, 0, 57.0),
    (0.0, 1, 0.0),
])
def test_truncate_decimal(value, decimals, expected):
    assert truncate_decimal(value, decimals) == expected


def test_truncate_decimal_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        truncate_decimal(math.inf, 1)


@given(concentration, st.integers(2, 12), st.sampled_from(["pm25", "pm10"]))
def test_nowcast_of_a_flat_series_is_the_plain_mean(c, n, pollutant):
    # INDICES.md step 3: min/max = 1 → w = 1, a plain mean, which for a flat series is the value itself
    assert nowcast([c] * n, pollutant) == truncate_decimal(c, NOWCAST_POLLUTANTS[pollutant])


@given(st.lists(hour, min_size=12, max_size=12))
def test_nowcast_with_weight_one_is_the_plain_mean_of_the_valid_hours(hourly):
    valid = [x for x in hourly if x is not None]
    detail = nowcast_detail(hourly, "pm25")
    if sum(x is not None for x in hourly[-3:]) < 2:
        assert detail is None
        return
    assert detail is not None and detail.hours == len(valid)
    if detail.weight == 1.0:
        assert detail.raw == pytest.approx(sum(valid) / len(valid))


@given(st.lists(hour, min_size=1, max_size=12))
def test_nowcast_lies_between_the_smallest_and_largest_valid_hour(hourly):
    detail = nowcast_detail(hourly, "pm25")
    if detail is None:
        return
    valid = [x for x in hourly if x is not None]
    assert 0.5 <= detail.weight <= 1.0
    assert min(valid) - 1e-9 <= detail.raw <= max(valid) + 1e-9
    # the 9-decimal noise removal may lift a value less than 5e-10 below a tenth onto it (module docstring)
    assert truncate_decimal(min(valid), 1) <= detail.value <= max(valid) + 5e-10
