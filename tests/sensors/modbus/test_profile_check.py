"""`check_profile_file`: every error names file, variable and key; each golden vector reports expected vs decoded."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sensors.modbus.profile import ProfileError, load_profile
from sensors.modbus.profile_check import check_profile_data, check_profile_file

GOOD = """\
model: T-TEST
manufacturer: Test
firmware: "1"
source: a test
address_base: 0
variables:
  no2: {table: input, address: 0, data_type: float32, order: ABCD, unit: ppb, range: [-5, 2000]}
  o3: {table: holding, address: 10, data_type: float32, order: CDAB, unit: ppb, range: [-5, 2000]}
vectors:
  - {variable: no2, registers: [0x47F1, 0x2000], value: 123456.0, source: libmodbus UT_IREAL_ABCD}
  - {variable: o3, registers: [0x0000, 0x4248], value: 50.0, source: thermo_49iQ.md worked example}
"""


def write(tmp_path: Path, text: str, name: str = "my.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_profile_passes_with_decoded_values(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    report = check_profile_file(path)
    assert report.ok
    assert report.errors == ()
    assert report.path == str(path)
    assert report.profile is not None and report.profile.model == "T-TEST"
    assert [(v.index, v.variable, v.registers, v.expected, v.decoded, v.status) for v in report.vectors] == [
        (0, "no2", (0x47F1, 0x2000), 123456.0, 123456.0, "pass"),
        (1, "o3", (0x0000, 0x4248), 50.0, 50.0, "pass"),
    ]
    assert report.notes == ()


def test_bad_order_names_file_variable_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("order: ABCD", "order: CADB"))
    report = check_profile_file(path)
    assert not report.ok
    assert report.profile is None
    assert report.errors == (f'{path}: variables.no2.order: expected ABCD|CDAB|BADC|DCBA, got "CADB"',)
    assert [v.status for v in report.vectors] == ["not run", "not run"]
    assert all(v.decoded is None for v in report.vectors)


def test_relative_path_is_shown_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, GOOD.replace("order: ABCD", "order: CADB"))
    monkeypatch.chdir(tmp_path)
    report = check_profile_file(Path("my.yaml"))
    assert report.errors == ('my.yaml: variables.no2.order: expected ABCD|CDAB|BADC|DCBA, got "CADB"',)


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("order: ABCD", "order: CADB").replace("address_base: 0", "address_base: 2")
    text = text.replace("unit: ppb, range: [-5, 2000]}\n  o3", "unit: ppb, range: [9, 1]}\n  o3")
    text = text.replace("value: 50.0", "value: fifty")
    path = write(tmp_path, text)
    errors = check_profile_file(path).errors
    assert f"{path}: address_base: expected 0|1, got 2" in errors
    assert (f"{path}: vectors[1].value: expected a number (the value the registers must decode to), "
            f'got "fifty"') in errors
    assert len(errors) == 2, errors  # pydantic stops at the schema; the cross-checks follow once it passes
    text = GOOD.replace("order: ABCD", "order: CADB").replace("range: [-5, 2000]}\n  o3", "range: [9, 1]}\n  o3")
    errors = check_profile_file(write(tmp_path, text)).errors
    assert len(errors) == 2, errors
    assert any("variables.no2.order" in e for e in errors)
    assert any("variables.no2.range: expected [min, max] with min < max" in e for e in errors)


def test_failing_vector_shows_expected_and_decoded(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("value: 50.0", "value: 51.0"))
    report = check_profile_file(path)
    assert not report.ok
    assert report.errors == ()  # the file is valid; its vector is wrong
    failed = [v for v in report.vectors if not v.passed]
    assert [(v.index, v.variable, v.expected, v.decoded, v.status) for v in failed] == [
        (1, "o3", 51.0, 50.0, "fail")]
    assert report.vectors[0].passed


def test_word_order_mistake_is_caught_by_a_vector(tmp_path: Path) -> None:
    # the Thermo worked example read as ABCD: the classic tiny denormal
    path = write(tmp_path, GOOD.replace("order: CDAB", "order: ABCD"))
    vec = check_profile_file(path).vectors[1]
    assert vec.status == "fail"
    assert vec.decoded is not None and 0 < vec.decoded < 1e-40


def test_vector_tolerance_agrees_with_the_loader(tmp_path: Path) -> None:
    for value, passes in (("50.00001", True), ("50.001", False)):
        path = write(tmp_path, GOOD.replace("value: 50.0", f"value: {value}"), "agree.yaml")
        assert check_profile_file(path).ok is passes
        if passes:
            load_profile("agree", tmp_path)
        else:
            with pytest.raises(ProfileError):
                load_profile("agree", tmp_path)


@pytest.mark.parametrize(("vector", "expected"), [
    ("{variable: so2, registers: [0, 0], value: 0, source: s}",
     'vectors[2].variable: expected one of no2, o3, got "so2"'),
    ("{variable: o3, registers: [0], value: 0, source: s}",
     "vectors[2].registers: o3 is float32: float32: expected 2 register(s), got 1"),
    ("{variable: o3, registers: [0, 70000], value: 0, source: s}",
     "vectors[2].registers: expected a list of 16-bit registers 0..65535 as read, got [0, 70000]"),
    ("{variable: o3, registers: [0, 0], source: s}", "vectors[2].value: required key missing"),
    ("{variable: o3, registers: [0, 0], value: 0, source: s, note: x}", "vectors[2].note: unknown key"),
    ("{variable: o3, registers: [0, 0], value: 0, source: ''}",
     'vectors[2].source: expected where the vector comes from (a capture, a manual page), got ""'),
    ("{variable: no, registers: [0, 0], value: 0, source: s}",
     'vectors[2].variable: expected a variable code (quote "no"), got false'),
    ("[1, 2]", "vectors[2]: expected a mapping of variable, registers, value, source, got list"),
])
def test_bad_vector_names_file_and_key(tmp_path: Path, vector: str, expected: str) -> None:
    path = write(tmp_path, GOOD + f"  - {vector}\n")
    report = check_profile_file(path)
    assert report.errors == (f"{path}: {expected}",)
    assert [v.passed for v in report.vectors] == [True, True]
    assert not report.ok


def test_vectors_must_be_a_list(tmp_path: Path) -> None:
    text = GOOD.split("vectors:", maxsplit=1)[0] + "vectors: {variable: o3}\n"
    path = write(tmp_path, text)
    assert check_profile_file(path).errors == (
        f"{path}: vectors: expected a list of {{variable, registers, value, source}}, got dict",)
    assert check_profile_file(write(tmp_path, GOOD.split("vectors:", maxsplit=1)[0] + "vectors:\n")).errors == ()


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("  o3:", "  no2:")
    path = write(tmp_path, text)
    report = check_profile_file(path)
    assert report.errors == ((f'{path}: line 8: duplicate key "no2" (first written at line 7); '
                             "YAML would keep only the last one"),)
    assert not report.ok


def test_duplicate_status_bit_is_refused(tmp_path: Path) -> None:
    status = "status:\n  table: discrete_input\n  address: 20\n  bits:\n    0: {name: a}\n    0: {name: b}\n"
    report = check_profile_file(write(tmp_path, GOOD + status))
    assert len(report.errors) == 1 and "duplicate key 0" in report.errors[0]


@pytest.mark.parametrize(("setup", "expected"), [
    (lambda p: None, "{path}: no such file"),
    (lambda p: p.mkdir(), "{path}: is a directory, expected a profile file (.yaml)"),
    (lambda p: p.write_bytes(b"model: \xff\n"), "{path}: not UTF-8 text (byte 7): save the file as UTF-8"),
    (lambda p: p.write_text("- a\n- b\n"), "{path}: expected a mapping of profile keys, got list"),
    (lambda p: p.write_text(""), "{path}: expected a mapping of profile keys, got nothing"),
])
def test_unreadable_files(tmp_path: Path, setup: object, expected: str) -> None:
    path = tmp_path / "x.yaml"
    setup(path)  # type: ignore[operator]
    report = check_profile_file(path)
    assert report.errors == (expected.format(path=path),)
    assert not report.ok and report.vectors == ()


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "model: [unclosed\n")
    (error,) = check_profile_file(path).errors
    assert error.startswith(f"{path}: not valid YAML:")


def test_notes_for_required_conditions_and_missing_vectors(tmp_path: Path) -> None:
    text = GOOD.split("vectors:", maxsplit=1)[0].replace("no2:", "pm25:").replace("address_base: 0",
                                                                        "address_base: 0\nconditions: required")
    report = check_profile_file(write(tmp_path, text))
    assert report.ok
    assert report.notes == (
        ("conditions: required: every device registered with this profile must state whether it reports at local "
        "or reference conditions"),
        ("vectors: none: add at least one golden vector (registers read from the device and the value its display "
        "showed at that moment)"),
    )
    text = GOOD.replace("  - {variable: o3, registers: [0x0000, 0x4248], value: 50.0, source: thermo_49iQ.md "
                        "worked example}\n", "")
    assert check_profile_file(write(tmp_path, text)).notes == ("vectors: no golden vector for o3",)


def test_check_profile_data_is_pure() -> None:
    report = check_profile_data("inline", yaml.safe_load(GOOD), "inline.yaml")
    assert report.ok and report.path == "inline.yaml"
    assert check_profile_data("x", 3, "x.yaml").errors == ("x.yaml: expected a mapping of profile keys, got int",)
