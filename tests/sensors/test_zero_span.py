"""Scheduled zero/span check windows (pure): runs, phases, purge, every_days, time zones."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensors.zero_span import CheckSchedule, occurrences, window_at

BOGOTA = ZoneInfo("America/Bogota")  # UTC-5, no DST


def schedule(**kw: object) -> CheckSchedule:
    base: dict[str, object] = {"sensor_id": "KEN", "device_id": "KEN-o3", "variable": "o3", "tz": BOGOTA,
                               "at_minute": 60, "zero_min": 10, "span_min": 10, "purge_min": 15,
                               "span_value": 400.0, "unit": "ppb"}
    return CheckSchedule(**(base | kw))  # type: ignore[arg-type]


def test_a_nightly_run_and_its_phases() -> None:
    s = schedule()
    (run,) = occurrences(s, datetime(2026, 3, 2, 5, tzinfo=UTC), datetime(2026, 3, 2, 7, tzinfo=UTC))
    # 01:00 in Bogotá is 06:00 UTC
    assert run.starts_at == datetime(2026, 3, 2, 6, tzinfo=UTC)
    assert (run.span_at - run.starts_at, run.ends_at - run.span_at, run.purge_ends_at - run.ends_at) == (
        timedelta(minutes=10), timedelta(minutes=10), timedelta(minutes=15))
    start = run.starts_at
    assert run.phase(start - timedelta(microseconds=1)) is None
    assert run.phase(start) == "zero"
    assert run.phase(start + timedelta(minutes=10)) == "span"
    assert run.phase(start + timedelta(minutes=20)) == "purge"
    assert run.phase(start + timedelta(minutes=34, seconds=59)) == "purge"
    assert run.phase(start + timedelta(minutes=35)) is None


def test_every_days_counts_from_the_epoch_in_the_schedule_zone() -> None:
    s = schedule(every_days=3)
    runs = occurrences(s, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC))
    days = [r.starts_at.astimezone(BOGOTA).date() for r in runs]
    assert all((d - days[0]).days % 3 == 0 for d in days) and len(days) == 10
    assert all((d.toordinal() - datetime(1970, 1, 1).toordinal()) % 3 == 0 for d in days)


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
       st.integers(0, 1439), st.integers(1, 4), st.integers(0, 60))
def test_window_at_agrees_with_occurrences(t: datetime, at_minute: int, every: int, purge: int) -> None:
    s = schedule(at_minute=at_minute, every_days=every, purge_min=purge)
    run = window_at(s, t)
    around = occurrences(s, t - timedelta(days=every + 1), t + timedelta(days=every + 1))
    inside = [r for r in around if r.phase(t) is not None]
    assert (run is None) == (not inside)
    if run is not None:
        assert inside == [run]
        assert run.starts_at <= t < run.purge_ends_at
    # consecutive runs are every_days apart (no DST in Bogotá)
    starts = [r.starts_at for r in around]
    assert all(b - a == timedelta(days=every) for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize(("kw", "message"), [
    ({"at_minute": 1440}, "at_minute"), ({"every_days": 0}, "every_days"), ({"zero_min": 0}, "zero_min"),
    ({"purge_min": -1}, "purge_min"), ({"span_value": 0.0}, "span_value"),
    ({"zero_min": 800, "span_min": 700}, "shorter than the schedule"),
])
def test_bad_schedules_name_the_field(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedule(**kw)


def test_status_purge_keeps_the_bit_for_its_time_after_the_bit_clears_per_device() -> None:
    from sensors.zero_span import StatusPurge

    bit = 1 << 6
    t0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    purge = StatusPurge({"NOX": 300, "O3": 0}, bit)
    at = [t0 + timedelta(minutes=m) for m in range(12)]
    assert purge.apply("NOX", at[0], 0) == 0  # no check seen yet
    assert purge.apply("NOX", at[1], bit | 1) == bit | 1  # in the check: as reported
    assert purge.apply("NOX", at[2], bit) == bit
    assert purge.apply("NOX", at[3], 0) == bit  # cleared at 03:03: purged until 03:08
    assert purge.apply("NOX", at[7], 1) == bit | 1  # other bits kept
    assert purge.apply("NOX", at[8], 0) == 0  # the purge is over
    assert purge.apply("O3", at[1], bit) == bit and purge.apply("O3", at[2], 0) == 0  # 0 s: no purge
    assert purge.apply("CO", at[1], bit) == bit and purge.apply("CO", at[2], 0) == 0  # not configured
    assert purge.apply("NOX", at[9], bit) == bit and purge.apply("NOX", at[10], 0) == bit  # a second check


def test_status_purge_refuses_a_negative_or_infinite_time() -> None:
    from sensors.zero_span import StatusPurge

    with pytest.raises(ValueError, match="status purge of NOX: expected seconds >= 0"):
        StatusPurge({"NOX": -1}, 1 << 6)
    with pytest.raises(ValueError, match="maintenance_bit"):
        StatusPurge({}, 0)
