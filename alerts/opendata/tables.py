"""The open-data export's tables: their fields (Table Schema types, units, descriptions) and how one row becomes
CSV cells and a JSON object. Pure: no I/O, no clock.

Contract: every table is a `Table` (name, title, fields, primary and foreign keys); `csv_cells(table, row)` and
`json_object(table, row)` take a row as a mapping keyed by field name (as `storage.exports_store` yields it) and
give the CSV cells (strings: numbers with a decimal point and full precision, booleans `true`/`false`, times ISO
8601 with their UTC offset in the network's time zone, empty for a missing or non-finite value) and the JSON
object (numbers, booleans, null, the same time strings). Times are stated with their offset in every value, so no
reader needs to guess a zone; the descriptor also names the zone.

Time convention (alerts.averaging.averages): an average is stamped with the END of its period; `period_start` and
`period_end` are both given, the period being [period_start, period_end).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from ingest.reading import QC

__all__ = ["DAILY", "HOURLY", "MEASUREMENTS", "SENSORS", "TABLES", "VARIABLES_TABLE", "Field", "Table", "cells_of",
           "csv_cells", "flag_names", "header", "json_object", "typed_values"]

#: Table Schema types used here (https://specs.frictionlessdata.io/table-schema/#types-and-formats)
_TYPES = frozenset({"string", "number", "integer", "boolean", "datetime"})


@dataclass(frozen=True, slots=True)
class Field:
    """One column: its Table Schema name and type, what it holds, and its unit when the column has one."""

    name: str
    type: str  #: string | number | integer | boolean | datetime
    description: str
    unit: str | None = None  #: the column's unit; None: no unit, or per row in the `unit` column
    required: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"field {self.name}: type expected one of {sorted(_TYPES)}, got {self.type!r}")

    def descriptor(self) -> dict[str, Any]:
        """The Table Schema field descriptor (`unit` is an aqnet property the spec allows as a custom one)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "description": self.description}
        if self.unit is not None:
            out["unit"] = self.unit
        if self.required:
            out["constraints"] = {"required": True}
        return out


@dataclass(frozen=True, slots=True)
class Table:
    """One exported table (written as `<name>.csv` and `<name>.json`)."""

    name: str
    title: str
    description: str
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[tuple[str, str, str], ...] = ()  #: (field, resource, field of that resource)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate field names in {names}")
        for key in (*self.primary_key, *(fk[0] for fk in self.foreign_keys)):
            if key not in names:
                raise ValueError(f"table {self.name}: key field {key!r} is not one of its fields {names}")

    @property
    def field_names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(f.name for f in self.fields)

    def schema(self) -> dict[str, Any]:
        """The Table Schema of this table (missing values: the empty string)."""
        out: dict[str, Any] = {"fields": [f.descriptor() for f in self.fields], "missingValues": [""]}
        if self.primary_key:
            out["primaryKey"] = list(self.primary_key)
        if self.foreign_keys:
            out["foreignKeys"] = [{"fields": field, "reference": {"resource": resource, "fields": other}}
                                  for field, resource, other in self.foreign_keys]
        return out


_TIME = "ISO 8601 with the UTC offset of the network's time zone"
_UNIT_PER_ROW = "the canonical unit of the variable, in column unit (concentrations: µg/m³ at 25 °C, 760 mmHg)"

SENSORS = Table("sensors", "Sensors", (
    "The network's sensors: reference stations and indicative microsensors, with the location they may be "
    "published at (exact, or rounded to 0.01° without the address when coarse) and the institution operating them."),
    (Field("id", "string", "sensor id (stable across hardware swaps)", required=True),
     Field("name", "string", "the sensor's name"),
     Field("kind", "string", "station (reference) or microsensor (indicative)"),
     Field("reference_grade", "boolean", "true for a reference station; false: indicative values, never "
           "compliance data"),
     Field("latitude", "number", "WGS 84 latitude, as published", unit="°"),
     Field("longitude", "number", "WGS 84 longitude, as published", unit="°"),
     Field("location_publication", "string", "exact, or coarse (rounded to 0.01°, an aqnet convention)"),
     Field("locality", "string", "the locality (district) the sensor stands in"),
     Field("operator", "string", "the institution responsible for the sensor")),
    primary_key=("id",))

VARIABLES_TABLE = Table("variables", "Variables", (
    "The variable vocabulary: each code with its canonical unit (the unit every value of it is in)."),
    (Field("code", "string", "variable code as used in the other tables", required=True),
     Field("name", "string", "the variable's name"),
     Field("unit", "string", "canonical unit"),
     Field("kind", "string", "gas, mass, met or other")),
    primary_key=("code",))

MEASUREMENTS = Table("measurements", "Measurements", (
    "Every stored reading of the day, raw and normalised, with its automatic quality-control flags and its "
    "validation by people (e-Reporting verification and validity flags)."),
    (Field("time", "datetime", f"measurement time, {_TIME}", required=True),
     Field("sensor_id", "string", "the sensor (sensors.id)", required=True),
     Field("device_id", "string", "the instrument that produced the reading", required=True),
     Field("variable", "string", "variable code (variables.code)", required=True),
     Field("value", "number", f"normalised value, in {_UNIT_PER_ROW}"),
     Field("unit", "string", "unit of value"),
     Field("raw_value", "number", "the value as the device reported it, in raw_unit"),
     Field("raw_unit", "string", "the unit the device reported"),
     Field("qc_flags", "integer", "automatic QC bitmask (0: no flag; bits in qc_flag_names)"),
     Field("qc_flag_names", "string", "the QC flags set, lower case, separated by ';'"),
     Field("qc_valid", "boolean", "false when a QC flag excludes the reading from averages"),
     Field("verification", "integer", "e-Reporting observationverification: 1 verified by a person, 3 not "
           "verified"),
     Field("validity", "integer", "e-Reporting observationvalidity: 1 valid, -1 not valid, -99 not valid "
           "(maintenance or calibration)"),
     Field("reference_grade", "boolean", "true for a reference station; false: indicative")),
    primary_key=("sensor_id", "device_id", "variable", "time"),
    foreign_keys=(("sensor_id", "sensors", "id"), ("variable", "variables", "code")))

_AVERAGE_FIELDS = (
    Field("sensor_id", "string", "the sensor (sensors.id)", required=True),
    Field("variable", "string", "variable code (variables.code)", required=True),
    Field("period_start", "datetime", f"start of the period (inclusive), {_TIME}", required=True),
    Field("period_end", "datetime", f"end of the period (exclusive; the average's time stamp), {_TIME}",
          required=True),
    Field("value", "number", f"mean of the valid readings, in {_UNIT_PER_ROW}; reported even when not valid"),
    Field("unit", "string", "unit of value"),
    Field("coverage", "number", "fraction of the period covered by valid data, 0..1", unit="1"),
    Field("samples", "integer", "valid readings (or valid hours, for a day) behind the mean", unit="count"),
    Field("valid", "boolean", "true when the completeness rule is met (hour: 75 % of the expected readings; "
          "day: 18 of 24 valid hours)"),
    Field("verification", "integer", "e-Reporting observationverification of the period: 1 when a person's "
          "decision covers any of it, else 3"),
    Field("reference_grade", "boolean", "true for a reference station; false: indicative"),
)

HOURLY = Table("hourly", "Hourly averages", (
    "Hourly averages of the day: the hours ending 01:00 … 24:00 local time (stamped by their end)."),
    _AVERAGE_FIELDS, primary_key=("sensor_id", "variable", "period_end"),
    foreign_keys=(("sensor_id", "sensors", "id"), ("variable", "variables", "code")))

DAILY = Table("daily", "Daily averages", (
    "The calendar-day averages (00:00–24:00 local time) of the day: the mean of the valid hours."),
    _AVERAGE_FIELDS, primary_key=("sensor_id", "variable", "period_end"),
    foreign_keys=(("sensor_id", "sensors", "id"), ("variable", "variables", "code")))

#: the tables of one day's export, in the order of the data package's resources
TABLES: tuple[Table, ...] = (SENSORS, VARIABLES_TABLE, MEASUREMENTS, HOURLY, DAILY)


_KNOWN_BITS = 0
for _flag in QC:
    _KNOWN_BITS |= int(_flag)  # plain ints: ~ of an IntFlag stays inside the flag's own bits


@lru_cache(maxsize=1024)
def flag_names(flags: int) -> str:
    """The QC flags set in `flags`, lower case, separated by ';' (ingest.reading.QC; unknown bits as bitN)."""
    flags = int(flags)
    names = [f.name.lower() for f in QC if f.name and flags & int(f)]
    rest = flags & ~_KNOWN_BITS
    names += [f"bit{i}" for i in range(32) if rest >> i & 1]
    return ";".join(names)


def _missing(table: Table, row: Mapping[str, Any]) -> ValueError:
    missing = [n for n in table.field_names if n not in row]
    return ValueError(f"table {table.name}: row lacks {missing} (has {sorted(row)})")


def _time(value: Any, field: str, tz: tzinfo) -> str:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"field {field}: expected an aware datetime, got {value!r}")
    return value.astimezone(tz).isoformat()


def _number(value: Any, field: str, tz: tzinfo) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field {field}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        return None  # Table Schema has no portable non-finite number in JSON: missing
    return value


def _integer(value: Any, field: str, tz: tzinfo) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {field}: expected an integer, got {value!r}")
    return value


def _boolean(value: Any, field: str, tz: tzinfo) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"field {field}: expected a boolean, got {value!r}")
    return value


def _string(value: Any, field: str, tz: tzinfo) -> str:
    if not isinstance(value, str):
        raise ValueError(f"field {field}: expected a string, got {value!r}")
    return value


_CONVERT: dict[str, Callable[[Any, str, tzinfo], Any]] = {
    "datetime": _time, "number": _number, "integer": _integer, "boolean": _boolean, "string": _string}


def typed_values(table: Table, row: Mapping[str, Any], tz: tzinfo) -> list[Any]:
    """The row's values in field order, checked against each field's type: times as ISO 8601 strings with their
    offset in `tz`, non-finite numbers as None; ValueError naming the field (or the fields the row lacks)."""
    try:
        return [None if (v := row[f.name]) is None else _CONVERT[f.type](v, f.name, tz) for f in table.fields]
    except KeyError:
        raise _missing(table, row) from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def cells_of(values: list[Any]) -> list[str]:
    """`typed_values` as CSV cells: decimal point, full precision (repr), `true`/`false`, empty for missing."""
    return [_cell(v) for v in values]


def json_object(table: Table, row: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
    """The row as a JSON object (field order kept); times as ISO 8601 strings with their offset in `tz`."""
    return dict(zip(table.field_names, typed_values(table, row, tz), strict=True))


def csv_cells(table: Table, row: Mapping[str, Any], tz: tzinfo) -> list[str]:
    """The row as CSV cells: decimal point, full precision (repr), `true`/`false`, empty for missing."""
    return cells_of(typed_values(table, row, tz))


def header(table: Table) -> Sequence[str]:
    """The CSV header row: the field names."""
    return table.field_names
