"""Reading → `measurements` row. Pure: the column list and the row layout are defined here and nowhere else.

`MEASUREMENT_COLUMNS` names the columns in the order `reading_row` fills them; `MEASUREMENT_TYPES` gives their
PostgreSQL types, which binary COPY needs (`copy.set_types`). A NaN value is stored as NULL ("no value"):
PostgreSQL would treat NaN as a number that sorts above every other, which breaks max() and thresholds.
The provenance columns (migration 0002) follow the core ones: the T (°C) and P (hPa) a local mass concentration
was corrected with and their source, the calibration applied and the RH a humidity calibration used; NULL where
they do not apply. `row_reading` is the inverse of `reading_row` (reprocess reads rows back into Readings).
"""

from __future__ import annotations

import math
from typing import Any

from ingest.reading import QC, Reading

__all__ = ["MEASUREMENT_COLUMNS", "MEASUREMENT_KEY", "MEASUREMENT_TYPES", "Row", "reading_row", "row_reading"]

#: (column, PostgreSQL type), in table order (storage/migrations/0001_initial.sql, then 0002)
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("time", "timestamptz"),
    ("sensor_id", "text"),
    ("variable", "text"),
    ("value", "float8"),
    ("unit", "text"),
    ("flags", "int4"),
    ("raw_value", "float8"),
    ("raw_unit", "text"),
    ("device_id", "text"),
    ("received_at", "timestamptz"),
    ("conditions_temp_c", "float8"),
    ("conditions_pressure_hpa", "float8"),
    ("conditions_source", "text"),
    ("calibration_id", "int8"),
    ("calibration_rh_pct", "float8"),
)
MEASUREMENT_COLUMNS: tuple[str, ...] = tuple(c for c, _ in _COLUMNS)
MEASUREMENT_TYPES: tuple[str, ...] = tuple(t for _, t in _COLUMNS)
#: the unique key of a measurement (constraint measurements_key)
MEASUREMENT_KEY: tuple[str, ...] = ("sensor_id", "device_id", "variable", "time")

#: one measurements row, in `MEASUREMENT_COLUMNS` order
Row = tuple[object, ...]


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def reading_row(reading: Reading) -> Row:
    """The measurements row of a reading, in `MEASUREMENT_COLUMNS` order (value in the canonical unit)."""
    if reading.time.tzinfo is None or reading.received_at.tzinfo is None:
        raise ValueError(f"reading {reading.sensor_id}/{reading.device_id}/{reading.variable}: "
                         "times must be timezone-aware")
    return (
        reading.time,
        reading.sensor_id,
        reading.variable,
        _finite_or_none(reading.value),
        reading.unit,
        int(reading.flags),
        _finite_or_none(reading.raw_value),
        reading.raw_unit or None,
        reading.device_id,
        reading.received_at,
        _finite_or_none(reading.conditions_temp_c),
        _finite_or_none(reading.conditions_pressure_hpa),
        reading.conditions_source,
        reading.calibration_id,
        _finite_or_none(reading.calibration_rh_pct),
    )


def row_reading(row: Row) -> Reading:
    """The Reading of a measurements row in `MEASUREMENT_COLUMNS` order (NULL value/raw_value → NaN)."""
    if len(row) != len(MEASUREMENT_COLUMNS):
        raise ValueError(f"measurements row: expected {len(MEASUREMENT_COLUMNS)} columns "
                         f"({', '.join(MEASUREMENT_COLUMNS)}), got {len(row)}")
    f: dict[str, Any] = dict(zip(MEASUREMENT_COLUMNS, row, strict=True))
    return Reading(
        sensor_id=f["sensor_id"], device_id=f["device_id"], variable=f["variable"], time=f["time"],
        value=math.nan if f["value"] is None else float(f["value"]), unit=f["unit"], flags=QC(int(f["flags"])),
        raw_value=math.nan if f["raw_value"] is None else float(f["raw_value"]), raw_unit=f["raw_unit"] or "",
        received_at=f["received_at"], conditions_temp_c=f["conditions_temp_c"],
        conditions_pressure_hpa=f["conditions_pressure_hpa"], conditions_source=f["conditions_source"],
        calibration_id=f["calibration_id"], calibration_rh_pct=f["calibration_rh_pct"])
