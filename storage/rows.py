"""Reading → `measurements` row. Pure: the column list and the row layout are defined here and nowhere else.

`MEASUREMENT_COLUMNS` names the columns in the order `reading_row` fills them; `MEASUREMENT_TYPES` gives their
PostgreSQL types, which binary COPY needs (`copy.set_types`). A NaN value is stored as NULL ("no value"):
PostgreSQL would treat NaN as a number that sorts above every other, which breaks max() and thresholds.
"""

from __future__ import annotations

import math

from ingest.reading import Reading

__all__ = ["MEASUREMENT_COLUMNS", "MEASUREMENT_KEY", "MEASUREMENT_TYPES", "reading_row"]

#: (column, PostgreSQL type), in table order (storage/migrations/0001_initial.sql)
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
)
MEASUREMENT_COLUMNS: tuple[str, ...] = tuple(c for c, _ in _COLUMNS)
MEASUREMENT_TYPES: tuple[str, ...] = tuple(t for _, t in _COLUMNS)
#: the unique key of a measurement (constraint measurements_key)
MEASUREMENT_KEY: tuple[str, ...] = ("sensor_id", "device_id", "variable", "time")

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
    )
