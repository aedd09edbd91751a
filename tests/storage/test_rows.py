"""storage/rows.py: the measurements row layout (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.reading import QC, Reading
from storage.rows import MEASUREMENT_COLUMNS, MEASUREMENT_KEY, MEASUREMENT_TYPES, reading_row, row_reading

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
                                   "raw_unit", "device_id", "received_at", "conditions_temp_c",
                                   "conditions_pressure_hpa", "conditions_source", "calibration_id",
                                   "calibration_rh_pct")
    assert len(MEASUREMENT_TYPES) == len(MEASUREMENT_COLUMNS)
    assert set(MEASUREMENT_KEY) <= set(MEASUREMENT_COLUMNS) and "time" in MEASUREMENT_KEY


def test_row_follows_column_order() -> None:
    r = _reading(flags=QC.SPIKE | QC.CALIBRATED)
    row = dict(zip(MEASUREMENT_COLUMNS, reading_row(r), strict=True))
    assert row == {"time": T0, "sensor_id": "USQ", "variable": "pm25", "value": 12.5, "unit": "µg/m³",
                   "flags": 4 | 256, "raw_value": 12.5, "raw_unit": "ug/m3", "device_id": "USQ-pm",
                   "received_at": T0 + timedelta(seconds=2), "conditions_temp_c": None,
                   "conditions_pressure_hpa": None, "conditions_source": None, "calibration_id": None,
                   "calibration_rh_pct": None}
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


def test_provenance_columns_filled_from_the_reading() -> None:
    r = _reading(flags=QC.CALIBRATED, conditions_temp_c=14.0, conditions_pressure_hpa=752.0,
                 conditions_source="nearest:USQ", calibration_id=42, calibration_rh_pct=math.nan)
    row = dict(zip(MEASUREMENT_COLUMNS, reading_row(r), strict=True))
    assert (row["conditions_temp_c"], row["conditions_pressure_hpa"], row["conditions_source"]) == \
        (14.0, 752.0, "nearest:USQ")
    assert row["calibration_id"] == 42 and row["calibration_rh_pct"] is None
    assert dict(zip(MEASUREMENT_COLUMNS, MEASUREMENT_TYPES, strict=True))["calibration_id"] == "int8"


@given(value=st.floats(allow_nan=False), flags=st.integers(min_value=0, max_value=(1 << 10) - 1),
       temp=st.none() | st.floats(min_value=-40, max_value=50), cal=st.none() | st.integers(1, 2**62),
       source=st.none() | st.sampled_from(["own", "site-default", "reported-reference"]))
def test_row_reading_inverts_reading_row(value: float, flags: int, temp: float | None, cal: int | None,
                                         source: str | None) -> None:
    r = _reading(value=value, flags=QC(flags), conditions_temp_c=temp,
                 conditions_pressure_hpa=None if temp is None else 750.0, conditions_source=source,
                 calibration_id=cal, calibration_rh_pct=None if cal is None else 55.0)
    assert row_reading(reading_row(r)) == r


def test_row_reading_null_values_are_nan_and_wrong_width_refused() -> None:
    back = row_reading(reading_row(_reading(value=math.nan, raw_value=math.nan)))
    assert math.isnan(back.value) and math.isnan(back.raw_value)
    with pytest.raises(ValueError, match="expected 15 columns"):
        row_reading(reading_row(_reading())[:10])
