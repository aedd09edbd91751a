"""storage/rows.py: the measurements row layout (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.reading import QC, Reading
from storage.rows import MEASUREMENT_COLUMNS, MEASUREMENT_KEY, MEASUREMENT_TYPES, reading_row

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
NO_FLAGS = QC(0)


def _reading(value: float = 12.5, flags: QC = NO_FLAGS, **kw: object) -> Reading:
    fields: dict[str, object] = dict(sensor_id="USQ", device_id="USQ-pm", variable="pm25", time=T0,
                                     value=value, unit="µg/m³", flags=flags, raw_value=value,
                                     raw_unit="ug/m3", received_at=T0 + timedelta(seconds=2))
    fields.update(kw)
    return Reading(**fields)  # type: ignore[arg-type]


def test_columns_match_the_migration_and_key_is_a_subset() -> None:
    assert MEASUREMENT_COLUMNS == ("time", "sensor_id", "variable", "value", "unit", "flags", "raw_value",
                                   "raw_unit", "device_id", "received_at")
    assert len(MEASUREMENT_TYPES) == len(MEASUREMENT_COLUMNS)
    assert set(MEASUREMENT_KEY) <= set(MEASUREMENT_COLUMNS) and "time" in MEASUREMENT_KEY


def test_row_follows_column_order() -> None:
    r = _reading(flags=QC.SPIKE | QC.CALIBRATED)
    row = dict(zip(MEASUREMENT_COLUMNS, reading_row(r), strict=True))
    assert row == {"time": T0, "sensor_id": "USQ", "variable": "pm25", "value": 12.5, "unit": "µg/m³",
                   "flags": 4 | 256, "raw_value": 12.5, "raw_unit": "ug/m3", "device_id": "USQ-pm",
                   "received_at": T0 + timedelta(seconds=2)}
    assert type(row["flags"]) is int


def test_nan_is_stored_as_null() -> None:
    row = reading_row(_reading(value=math.nan, raw_value=math.nan))
    assert row[MEASUREMENT_COLUMNS.index("value")] is None
    assert row[MEASUREMENT_COLUMNS.index("raw_value")] is None


def test_naive_time_is_refused_naming_the_reading() -> None:
    with pytest.raises(ValueError, match="USQ/USQ-pm/pm25"):
        reading_row(_reading(time=datetime(2026, 1, 1)))


@given(st.floats(allow_nan=False), st.integers(min_value=0, max_value=(1 << 10) - 1))
def test_value_and_flags_round_trip(value: float, flags: int) -> None:
    row = reading_row(_reading(value=value, flags=QC(flags)))
    assert row[3] == value and row[5] == flags
