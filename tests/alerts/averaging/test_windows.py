"""alerts.averaging.windows: hour ends, local days and years in the network time zone, and which of them are due."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from alerts.averaging.windows import (
    day_bounds,
    day_of_hour_end,
    days_ending_in,
    hour_end_at_or_before,
    hour_end_containing,
    hour_ends_in,
    year_bounds,
    years_ending_in,
)

BOGOTA = ZoneInfo("America/Bogota")
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30
NEW_YORK = ZoneInfo("America/New_York")  # DST
H = timedelta(hours=1)


def test_hour_ends_are_whole_local_hours():
    assert hour_end_at_or_before(datetime(2026, 3, 1, 15, 59, tzinfo=BOGOTA), BOGOTA) == datetime(
        2026, 3, 1, 20, tzinfo=UTC)
    assert hour_end_containing(datetime(2026, 3, 1, 10, 45, tzinfo=KOLKATA), KOLKATA) == datetime(
        2026, 3, 1, 11, tzinfo=KOLKATA)
    assert hour_end_containing(datetime(2026, 3, 1, 11, 0, tzinfo=KOLKATA), KOLKATA) == datetime(
        2026, 3, 1, 12, tzinfo=KOLKATA)  # the end is exclusive


def test_hour_ends_in_is_half_open():
    end = datetime(2026, 3, 1, 20, tzinfo=UTC)
    assert hour_ends_in(end - 3 * H, end) == [end - 2 * H, end - H, end]
    assert hour_ends_in(end - 2.5 * H, end) == [end - 2 * H, end - H, end]
    assert hour_ends_in(end, end) == [] and hour_ends_in(end + H, end) == []


def test_the_hour_ending_at_midnight_belongs_to_the_day_before():
    midnight = datetime(2026, 3, 2, tzinfo=BOGOTA)
    assert day_of_hour_end(midnight, BOGOTA) == date(2026, 3, 1)
    assert day_of_hour_end(midnight + H, BOGOTA) == date(2026, 3, 2)


def test_days_are_local_calendar_days_not_utc():
    start, end = day_bounds(date(2026, 3, 1), BOGOTA)
    assert (start, end) == (datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 3, 2, 5, tzinfo=UTC))
    # New York's spring-forward day has 23 hours, the fall-back day 25
    s, e = day_bounds(date(2026, 3, 8), NEW_YORK)
    assert e - s == 23 * H
    s, e = day_bounds(date(2026, 11, 1), NEW_YORK)
    assert e - s == 25 * H


def test_days_and_years_ending_in_a_range():
    after = datetime(2026, 2, 28, 12, tzinfo=BOGOTA)
    assert days_ending_in(after, datetime(2026, 3, 2, 0, tzinfo=BOGOTA), BOGOTA) == [date(2026, 2, 28),
                                                                                      date(2026, 3, 1)]
    assert days_ending_in(after, datetime(2026, 3, 1, 23, tzinfo=BOGOTA), BOGOTA) == [date(2026, 2, 28)]
    assert year_bounds(2025, BOGOTA)[1] == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert years_ending_in(datetime(2025, 12, 31, 20, tzinfo=BOGOTA), datetime(2026, 1, 1, tzinfo=BOGOTA),
                           BOGOTA) == [2025]
    assert years_ending_in(datetime(2026, 1, 1, tzinfo=BOGOTA), datetime(2026, 1, 2, tzinfo=BOGOTA), BOGOTA) == []


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
       st.integers(min_value=0, max_value=24 * 40), st.sampled_from([BOGOTA, KOLKATA, NEW_YORK]))
def test_no_window_is_due_before_it_ends_and_none_is_skipped(now, span_h, tz):
    last = hour_end_at_or_before(now, tz)
    assert last <= now < last + H
    after = last - span_h * H - timedelta(minutes=7)
    ends = hour_ends_in(after, last)
    assert len(ends) == span_h + 1 and all(b - a == H for a, b in itertools.pairwise(ends))
    for day in days_ending_in(after, last, tz):
        assert after < day_bounds(day, tz)[1] <= last <= now
