"""ingest.maintenance: which readings fall in a maintenance window (sensor, device or variable scope, [start, end)),
and the sensors in the maintenance state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.maintenance import CHECK_REASON, MaintenanceBook, MaintenanceWindow, flag_maintenance
from ingest.reading import EXCLUDED, QC, Reading
from sensors.zero_span import CheckSchedule

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
NO_FLAGS = QC(0)


def reading(sensor: str = "KEN", device: str = "KEN-t640", variable: str = "pm25", at: datetime = T0,
            flags: QC = NO_FLAGS) -> Reading:
    return Reading(sensor, device, variable, at, 12.0, "µg/m³", flags, 12.0, "µg/m³", at)


def test_window_is_half_open() -> None:
    book = MaintenanceBook([MaintenanceWindow("KEN", T0, T0 + H)])
    assert book.in_maintenance("KEN", "KEN-t640", "pm25", T0)
    assert book.in_maintenance("KEN", "KEN-t640", "pm25", T0 + H - timedelta(microseconds=1))
    assert not book.in_maintenance("KEN", "KEN-t640", "pm25", T0 + H)
    assert not book.in_maintenance("KEN", "KEN-t640", "pm25", T0 - timedelta(microseconds=1))


def test_sensor_window_covers_every_device_and_variable_of_that_sensor_only() -> None:
    book = MaintenanceBook([MaintenanceWindow("KEN", T0, T0 + H)])
    assert book.in_maintenance("KEN", "KEN-t200", "no2", T0 + H / 2)
    assert book.in_maintenance("KEN", "KEN-t640", "pm10", T0 + H / 2)
    assert not book.in_maintenance("USQ", "USQ-t640", "pm25", T0 + H / 2)


def test_device_window_covers_only_that_device() -> None:
    book = MaintenanceBook([MaintenanceWindow("KEN", T0, T0 + H, device_id="KEN-t200")])
    assert book.in_maintenance("KEN", "KEN-t200", "no2", T0)
    assert book.in_maintenance("KEN", "KEN-t200", "no", T0)
    assert not book.in_maintenance("KEN", "KEN-t640", "pm25", T0)


def test_variable_window_covers_only_that_variable_and_device_and_variable_combine() -> None:
    by_variable = MaintenanceBook([MaintenanceWindow("KEN", T0, T0 + H, variable="no2")])
    assert by_variable.in_maintenance("KEN", "KEN-t200", "no2", T0)
    assert by_variable.in_maintenance("KEN", "KEN-other", "no2", T0)
    assert not by_variable.in_maintenance("KEN", "KEN-t200", "no", T0)
    both = MaintenanceBook([MaintenanceWindow("KEN", T0, T0 + H, device_id="KEN-t200", variable="no2")])
    assert both.in_maintenance("KEN", "KEN-t200", "no2", T0)
    assert not both.in_maintenance("KEN", "KEN-other", "no2", T0)
    assert not both.in_maintenance("KEN", "KEN-t200", "no", T0)


def test_overlapping_windows_any_one_covers() -> None:
    # a long narrow window starting first must not hide a later, wider one
    long_narrow = MaintenanceWindow("KEN", T0, T0 + 10 * H, device_id="KEN-t200", id=1)
    short_wide = MaintenanceWindow("KEN", T0 + H, T0 + 2 * H, id=2, reason="filter change")
    book = MaintenanceBook([short_wide, long_narrow])
    assert book.window_for("KEN", "KEN-t640", "pm25", T0 + 1.5 * H) == short_wide
    assert book.window_for("KEN", "KEN-t200", "no2", T0 + 5 * H) == long_narrow
    assert book.window_for("KEN", "KEN-t640", "pm25", T0 + 5 * H) is None
    assert len(book) == 2 and set(book) == {long_narrow, short_wide}


def test_sensor_in_maintenance_state_flags_every_reading_at_any_time() -> None:
    book = MaintenanceBook(sensors_in_maintenance=["MS03"])
    assert book.sensors_in_maintenance == frozenset({"MS03"})
    assert book.in_maintenance("MS03", "MS03", "pm25", T0 - 1000 * H)
    assert not book.in_maintenance("MS04", "MS04", "pm25", T0)


def test_flag_maintenance_adds_the_bit_keeps_the_others_and_excludes_the_reading() -> None:
    book = MaintenanceBook([MaintenanceWindow("KEN", T0, T0 + H)])
    flagged = flag_maintenance(reading(flags=QC.CALIBRATED | QC.NEGATIVE), book)
    assert flagged.flags == QC.CALIBRATED | QC.NEGATIVE | QC.MAINTENANCE
    assert flagged.flags & EXCLUDED and not flagged.valid
    assert (flagged.value, flagged.raw_value, flagged.time) == (12.0, 12.0, T0)  # stored, not dropped or altered
    outside = reading(at=T0 + 2 * H)
    assert flag_maintenance(outside, book) is outside
    assert flag_maintenance(reading(), None) == reading()


def test_window_errors_name_the_window() -> None:
    with pytest.raises(ValueError, match=r"maintenance window 7 of sensor KEN: ends_at .* must be after starts_at"):
        MaintenanceWindow("KEN", T0, T0, id=7)
    with pytest.raises(ValueError, match="starts_at: expected an aware datetime"):
        MaintenanceWindow("KEN", T0.replace(tzinfo=None), T0 + H)


_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))


@given(windows=st.lists(st.tuples(_times, st.integers(1, 10**6), st.sampled_from([None, "KEN-t200"]),
                                  st.sampled_from([None, "no2", "pm25"])), max_size=8),
       at=_times, device=st.sampled_from(["KEN-t200", "KEN-t640"]), variable=st.sampled_from(["no2", "pm25"]))
def test_book_agrees_with_checking_every_window(windows, at, device, variable) -> None:
    built = [MaintenanceWindow("KEN", start, start + timedelta(seconds=seconds), device_id=dev, variable=var)
             for start, seconds, dev, var in windows]
    expected = any(w.covers("KEN", device, variable, at) for w in built)
    assert MaintenanceBook(built).in_maintenance("KEN", device, variable, at) == expected


# -- scheduled zero/span checks ---------------------------------------------------------------------------------

def _check(device: str = "KEN-t640") -> CheckSchedule:
    # nightly at 01:00 UTC: zero 10 min, span 10 min, purge 15 min
    return CheckSchedule("KEN", device, "pm25", UTC, at_minute=60, zero_min=10, span_min=10, purge_min=15,
                         span_value=400.0, unit="ppb")


@pytest.mark.parametrize(("minutes", "flagged"), [
    (59.99, False), (60, True), (70, True), (80, True), (94.99, True), (95, False)])
def test_a_scheduled_check_and_its_purge_are_maintenance_of_that_device(minutes: float, flagged: bool) -> None:
    book = MaintenanceBook(checks=[_check()])
    at = datetime(2026, 11, 24, tzinfo=UTC) + timedelta(minutes=minutes)
    got = flag_maintenance(reading(at=at), book)
    assert bool(got.flags & QC.MAINTENANCE) is flagged
    assert not flag_maintenance(reading(device="KEN-other", at=at), book).flags & QC.MAINTENANCE
    if flagged:
        window = book.window_for("KEN", "KEN-t640", "pm25", at)
        assert window is not None and window.reason == CHECK_REASON


def test_windows_between_lists_the_scheduled_runs_and_with_checks_keeps_the_rest() -> None:
    stored = MaintenanceWindow("KEN", T0, T0 + timedelta(hours=1))
    book = MaintenanceBook([stored], sensors_in_maintenance=["CSE"]).with_checks([_check()])
    got = book.windows_between("KEN", T0, T0 + timedelta(days=2))
    assert got[0] == stored and len(got) == 3 and all(w.reason == CHECK_REASON for w in got[1:])
    assert book.sensors_in_maintenance == {"CSE"} and len(book) == 1 and book.checks == (_check(),)
