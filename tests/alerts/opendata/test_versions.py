"""alerts.opendata.versions (pure): the content digest depends on the data files' names and hashes only (not their
order), a version is published first, on a changed digest, never on the same one, and the change note says why."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.opendata.metadata import CSV, DayExport, ExportedFile
from alerts.opendata.versions import Changes, change_note, content_digest, plan_version

T = datetime(2026, 3, 3, 8, tzinfo=UTC)


def f(name: str, digit: str = "a") -> ExportedFile:
    stem = name.split(".", maxsplit=1)[0]
    return ExportedFile(name, stem, stem, CSV, 10, "sha256:" + digit * 64)


def export(digest: str, version: int = 1) -> DayExport:
    return DayExport(date(2026, 3, 2), version, datetime(2026, 3, 2, 5, tzinfo=UTC),
                     datetime(2026, 3, 3, 5, tzinfo=UTC), T, T, digest, "first export", f"2026/2026-03-02/v{version}")


@given(st.permutations([f("a.csv"), f("b.csv", "b"), f("c.csv", "c")]))
def test_digest_ignores_file_order(files: list[ExportedFile]) -> None:
    assert content_digest(files) == content_digest([f("a.csv"), f("b.csv", "b"), f("c.csv", "c")])


def test_digest_changes_with_a_hash_or_a_name() -> None:
    base = content_digest([f("a.csv"), f("b.csv")])
    assert content_digest([f("a.csv"), f("b.csv", "c")]) != base
    assert content_digest([f("a.csv"), f("x.csv")]) != base
    assert base.startswith("sha256:") and len(base) == 7 + 64
    with pytest.raises(ValueError, match="no file"):
        content_digest([])


def test_plan_version() -> None:
    d1 = content_digest([f("a.csv")])
    d2 = content_digest([f("a.csv", "b")])
    assert plan_version(None, d1) == 1
    assert plan_version(export(d1, 3), d1) is None
    assert plan_version(export(d1, 3), d2) == 4


def test_change_notes() -> None:
    assert change_note(1, Changes()) == "first export"
    assert change_note(2, Changes(decisions=(14, 9))) == (
        "version 2: content changed after validation decisions #9, #14 (values, flags or validity changed; row "
        "counts unchanged)")
    assert change_note(3, Changes(late_readings=1, rows_before={"measurements": 10}, rows_after={"measurements": 11,
                                                                                                "hourly": 0})) == \
        "version 3: content changed after 1 late reading (measurements 10 → 11 rows)"
    assert change_note(4, Changes(decisions=(5,), late_readings=3, rows_before={"hourly": 2},
                                  rows_after={"hourly": 3})) == \
        "version 4: content changed after validation decision #5 and 3 late readings (hourly 2 → 3 rows)"
    assert change_note(2, Changes()).startswith("version 2: content changed after recomputed averages")
    with pytest.raises(ValueError, match="late_readings"):
        Changes(late_readings=-1)
