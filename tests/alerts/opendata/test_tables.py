"""alerts.opendata.tables (pure): every table's schema is well formed and on the data dictionary page, QC flag
names spell the bits, and rows become CSV cells and JSON objects with a decimal point, ISO times with offsets and
empty/null for missing; bad rows are refused naming the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.opendata.tables import (
    HOURLY,
    MEASUREMENTS,
    SENSORS,
    TABLES,
    Field,
    Table,
    csv_cells,
    flag_names,
    header,
    json_object,
)
from ingest.reading import QC

TZ = ZoneInfo("America/Bogota")
T = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def hourly_row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {"sensor_id": "KEN", "variable": "pm25", "period_start": T, "period_end": T,
                              "value": 12.5, "unit": "µg/m³", "coverage": 0.75, "samples": 9, "valid": True,
                              "verification": 3, "reference_grade": True}
    row.update(over)
    return row


def test_every_table_has_unique_fields_keys_among_them_and_a_description() -> None:
    names = {t.name for t in TABLES}
    assert names == {"sensors", "variables", "measurements", "hourly", "daily"}
    for t in TABLES:
        schema = t.schema()
        assert schema["missingValues"] == [""]
        assert all(f["description"] for f in schema["fields"])
        for fk in schema.get("foreignKeys", []):
            assert fk["reference"]["resource"] in names
    assert MEASUREMENTS.schema()["primaryKey"] == ["sensor_id", "device_id", "variable", "time"]
    assert {f.name: f.unit for f in HOURLY.fields}["coverage"] == "1"


def test_table_refuses_duplicate_fields_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="duplicate field names"):
        Table("t", "T", "d", (Field("a", "string", "x"), Field("a", "string", "y")))
    with pytest.raises(ValueError, match="key field 'b' is not one of its fields"):
        Table("t", "T", "d", (Field("a", "string", "x"),), primary_key=("b",))
    with pytest.raises(ValueError, match="field a: type expected one of"):
        Field("a", "float", "x")


@given(st.integers(min_value=0, max_value=(1 << 16) - 1))
def test_flag_names_spell_every_bit_once(flags: int) -> None:
    names = flag_names(flags).split(";") if flags else []
    bits = 0
    for n in names:
        bits |= QC[n.upper()] if not n.startswith("bit") else 1 << int(n[3:])
    assert bits == flags and len(names) == (flags).bit_count()


def test_flag_names_examples() -> None:
    assert flag_names(0) == ""
    assert flag_names(QC.SPIKE | QC.MAINTENANCE) == "spike;maintenance"
    assert flag_names(1 << 12) == "bit12"


def test_csv_cells_and_json_object() -> None:
    row = hourly_row(value=1 / 3)
    assert header(HOURLY)[0] == "sensor_id"
    cells = csv_cells(HOURLY, row, TZ)
    assert cells == ["KEN", "pm25", "2026-03-02T08:00:00-05:00", "2026-03-02T08:00:00-05:00", repr(1 / 3), "µg/m³",
                     "0.75", "9", "true", "3", "true"]
    assert json_object(HOURLY, row, TZ)["value"] == 1 / 3
    assert json_object(HOURLY, row, TZ)["period_end"] == "2026-03-02T08:00:00-05:00"


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_missing_and_non_finite_numbers_are_empty_and_null(value: float | None) -> None:
    assert csv_cells(HOURLY, hourly_row(value=value), TZ)[4] == ""
    assert json_object(HOURLY, hourly_row(value=value), TZ)["value"] is None


@pytest.mark.parametrize(("over", "message"), [
    ({"period_end": datetime(2026, 3, 2, 8)}, "field period_end: expected an aware datetime"),
    ({"value": "12"}, "field value: expected a number"),
    ({"value": True}, "field value: expected a number"),
    ({"samples": 9.0}, "field samples: expected an integer"),
    ({"valid": 1}, "field valid: expected a boolean"),
    ({"unit": 3}, "field unit: expected a string"),
])
def test_bad_rows_are_refused_naming_the_field(over: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        csv_cells(HOURLY, hourly_row(**over), TZ)
    with pytest.raises(ValueError, match=message):
        json_object(HOURLY, hourly_row(**over), TZ)


def test_a_row_lacking_fields_is_refused_naming_them() -> None:
    row = hourly_row()
    del row["coverage"]
    with pytest.raises(ValueError, match=r"table hourly: row lacks \['coverage'\]"):
        csv_cells(HOURLY, row, TZ)
    with pytest.raises(ValueError, match="row lacks"):
        json_object(SENSORS, {"id": "KEN"}, TZ)


def test_the_data_dictionary_page_lists_every_field_with_its_type_and_unit() -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "operators" / "open-data-exports.md").read_text(
        encoding="utf-8")
    dictionary = page[page.index("## Data dictionary"):page.index("## The DCAT catalogue")]
    for t in TABLES:
        section = dictionary[dictionary.index(f"### `{t.name}`"):]
        section = section[:section.find("\n### ", 1) if "\n### " in section[1:] else len(section)]
        for f in t.fields:
            assert f"| `{f.name}` | {f.type} | {f.unit or ''} | {f.description} |" in section, (t.name, f.name)
