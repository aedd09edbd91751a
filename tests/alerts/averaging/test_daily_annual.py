"""alerts.averaging.averages: calendar days and years in the network's time zone, with their completeness rules
(norms.json `data_completeness.thresholds`: a day 18 of 24 hours, a year 274 of 365 / 275 of 366 days)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.averaging.averages import (
    Average,
    annual_average,
    daily_average,
    local_day_bounds,
    local_year_bounds,
    min_valid_days,
    min_valid_hours,
)
from sensors.domain import load

BOGOTA = ZoneInfo(load("reference")["site"]["timezone"])
NEW_YORK = ZoneInfo("America/New_York")  # a DST zone: 23- and 25-hour days
SANTIAGO = ZoneInfo("America/Santiago")  # DST starts at local midnight: 00:00 does not exist that day

MISSING = Average(value=None, coverage=0.0, samples=0, valid=False)


def hour(value: float, *, valid: bool = True) -> Average:
    return Average(value=value, coverage=1.0 if valid else 0.5, samples=60 if valid else 30, valid=valid)


def day_in(tz: ZoneInfo, d: date = date(2026, 3, 1)) -> tuple[datetime, datetime]:
    return local_day_bounds(d, tz)


def test_thresholds_are_the_norms():
    # norms.json data_completeness.thresholds: "24h": "18 of 24 hours"; "annual": "274 of 365, 275 of 366"
    thresholds = load("norms")["data_completeness"]["thresholds"]
    assert thresholds["24h"] == "18 of 24 hours" and min_valid_hours(24) == 18
    assert "274 of 365, 275 of 366" in thresholds["annual"]
    assert (min_valid_days(365), min_valid_days(366)) == (274, 275)


# ------------------------------------------------------------------ day bounds

def test_bogota_day_is_local_midnight_to_midnight_not_utc():
    start, end = local_day_bounds(date(2026, 3, 1), BOGOTA)
    assert start.astimezone(UTC) == datetime(2026, 3, 1, 5, tzinfo=UTC)  # UTC−5, no DST
    assert end.astimezone(UTC) == datetime(2026, 3, 2, 5, tzinfo=UTC)
    assert (start.hour, end.hour, end - start) == (0, 0, timedelta(hours=24))


@pytest.mark.parametrize(("d", "hours"), [(date(2026, 3, 8), 23), (date(2026, 11, 1), 25), (date(2026, 7, 1), 24)])
def test_dst_days_last_23_or_25_hours(d, hours):
    start, end = local_day_bounds(d, NEW_YORK)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)


def test_a_midnight_that_does_not_exist_starts_the_day_at_its_first_instant():
    # Chile moved its clocks from 24:00 to 01:00 on 2026-09-06
    start, end = local_day_bounds(date(2026, 9, 6), SANTIAGO)
    assert start.hour == 1 and end.hour == 0
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    previous_end = local_day_bounds(date(2026, 9, 5), SANTIAGO)[1]
    assert previous_end.astimezone(UTC) == start.astimezone(UTC)


def test_year_bounds():
    start, end = local_year_bounds(2026, BOGOTA)
    assert start.astimezone(UTC) == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2027, 1, 1, 5, tzinfo=UTC)


# ------------------------------------------------------------------ daily_average

def test_day_with_18_valid_hours_is_valid_and_17_is_not():
    # norms.json data_completeness.thresholds "24h": "18 of 24 hours" (examples.json EX071 / EX072)
    day = [hour(20.0)] * 18
    avg = daily_average(day, *day_in(BOGOTA))
    assert avg == Average(value=20.0, coverage=0.75, samples=18, valid=True)
    avg = daily_average(day[:17], *day_in(BOGOTA))
    assert (avg.valid, avg.samples, avg.valid_value, avg.value) == (False, 17, None, 20.0)


def test_invalid_hours_do_not_count_even_with_a_value():
    day = [hour(10.0)] * 18 + [hour(1000.0, valid=False)] * 6
    avg = daily_average(day, *day_in(BOGOTA))
    assert avg.valid and avg.value == 10.0 and avg.samples == 18


def test_missing_hours_may_be_absent_or_explicit():
    explicit = [hour(10.0)] * 18 + [MISSING] * 6
    assert daily_average(explicit, *day_in(BOGOTA)) == daily_average(explicit[:18], *day_in(BOGOTA))


def test_no_data_gives_no_value():
    assert daily_average([], *day_in(BOGOTA)) == Average(value=None, coverage=0.0, samples=0, valid=False)


def test_the_75_percent_rule_on_dst_days():
    short = day_in(NEW_YORK, date(2026, 3, 8))  # 23 h: ceil(17.25) = 18
    assert daily_average([hour(1.0)] * 18, *short).valid
    assert not daily_average([hour(1.0)] * 17, *short).valid
    assert daily_average([hour(1.0)] * 18, *short).coverage == pytest.approx(18 / 23)
    long = day_in(NEW_YORK, date(2026, 11, 1))  # 25 h: ceil(18.75) = 19
    assert not daily_average([hour(1.0)] * 18, *long).valid
    assert daily_average([hour(1.0)] * 19, *long).valid
    assert daily_average([hour(1.0)] * 25, *long).coverage == 1.0


def test_daily_average_refuses_what_is_not_a_day():
    start, end = day_in(BOGOTA)
    with pytest.raises(ValueError, match="at most 24"):
        daily_average([hour(1.0)] * 25, start, end)
    with pytest.raises(ValueError, match="spans 48 h: expected a calendar day"):
        daily_average([], start, end + timedelta(days=1))
    with pytest.raises(ValueError, match="whole number of hours"):
        daily_average([], start, end + timedelta(minutes=30))
    with pytest.raises(ValueError, match="whole number of hours"):
        daily_average([], end, start)
    with pytest.raises(ValueError, match="naive"):
        daily_average([], start.replace(tzinfo=None), end)


@given(st.integers(0, 24), st.integers(0, 24), st.floats(0, 1000, allow_nan=False))
def test_a_day_is_never_valid_below_18_valid_hours(n_valid, n_invalid, value):
    n_invalid = min(n_invalid, 24 - n_valid)
    day = [hour(value)] * n_valid + [hour(value, valid=False)] * n_invalid
    avg = daily_average(day, *day_in(BOGOTA))
    assert avg.valid is (n_valid >= 18)
    assert avg.samples == n_valid and avg.coverage == pytest.approx(n_valid / 24)
    if n_valid:
        assert avg.value == pytest.approx(value)


# ------------------------------------------------------------------ annual_average

def _year(n_valid: int, days: int, value: float = 10.0) -> list[Average]:
    return [Average(value=value, coverage=1.0, samples=24, valid=i < n_valid) for i in range(days)]


def test_year_needs_274_of_365_days():
    # norms.json data_completeness.thresholds.annual; examples.json EX073
    bounds = local_year_bounds(2026, BOGOTA)
    assert annual_average(_year(274, 365), *bounds).valid
    assert not annual_average(_year(273, 365), *bounds).valid
    assert annual_average(_year(274, 365), *bounds).coverage == pytest.approx(274 / 365)


def test_leap_year_needs_275_of_366_days():
    # NORMS.md: "≥ 274 days (275 in a leap year)": the same 75 %, ceil(0.75 · 366)
    bounds = local_year_bounds(2028, BOGOTA)
    assert not annual_average(_year(274, 366), *bounds).valid
    assert annual_average(_year(275, 366), *bounds).valid


def test_annual_mean_is_of_the_valid_days_only():
    daily = [Average(value=20.0, coverage=1.0, samples=24, valid=True)] * 300
    daily += [Average(value=999.0, coverage=0.5, samples=12, valid=False)] * 65
    avg = annual_average(daily, *local_year_bounds(2026, BOGOTA))
    assert avg == Average(value=20.0, coverage=300 / 365, samples=300, valid=True)


def test_year_in_a_dst_zone_has_365_days():
    assert annual_average(_year(274, 365), *local_year_bounds(2026, NEW_YORK)).valid


def test_annual_average_refuses_what_is_not_a_year():
    start, end = local_year_bounds(2026, BOGOTA)
    with pytest.raises(ValueError, match="365 or 366 days"):
        annual_average([], start, end - timedelta(days=30))
    with pytest.raises(ValueError, match="at most 365"):
        annual_average(_year(366, 366), start, end)


@given(st.integers(0, 366), st.booleans())
def test_a_year_is_never_valid_below_75_percent_of_its_days(n_valid, leap):
    days = 366 if leap else 365
    n_valid = min(n_valid, days)
    avg = annual_average(_year(n_valid, days), *local_year_bounds(2028 if leap else 2026, BOGOTA))
    assert avg.valid is (n_valid >= (275 if leap else 274))
