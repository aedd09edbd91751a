"""ingest.maintenance: which readings fall in a maintenance window (sensor, device or variable scope, [start, end)),
and the sensors in the maintenance state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.maintenance import MaintenanceBook, MaintenanceWindow, flag_maintenance
from ingest.reading import EXCLUDED, QC, Reading

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
