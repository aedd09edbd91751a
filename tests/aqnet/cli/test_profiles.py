"""`aqnet profiles check|list` through click's CliRunner: verdicts, errors naming file/variable/key, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from aqnet.cli.profiles import profiles
from sensors.modbus.profile import default_profiles_dir, list_profiles

GOOD = """\
model: T-TEST
manufacturer: Test
firmware: "1"
source: a test
address_base: 1
variables:
  no2: {table: input, address: 1, data_type: float32, order: ABCD, unit: ppb, range: [-5, 2000]}
vectors:
  - {variable: no2, registers: [0x47F1, 0x2000], value: 123456.0, source: libmodbus UT_IREAL_ABCD}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(profiles, list(args))
    return result.exit_code, result.output


def test_good_file_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, "good.yaml", GOOD)
    code, out = run("check", path)
    assert code == 0, out
    assert f"{path}: OK (Test T-TEST, firmware 1; 1 golden vector(s) passed)" in out
    assert f"pass: {path}: vectors[0] no2 [18417, 8192] -> 123456.0 (expected 123456.0)" in out


def test_bad_file_exits_1_naming_file_variable_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "my.yaml", GOOD.replace("order: ABCD", "order: CADB"))
    code, out = run("check", path)
    assert code == 1
    assert f"{path}: INVALID (1 error(s))" in out
    assert f'error: {path}: variables.no2.order: expected ABCD|CDAB|BADC|DCBA, got "CADB"' in out


def test_failing_vector_exits_1_with_expected_and_decoded(tmp_path: Path) -> None:
    path = write(tmp_path, "vec.yaml", GOOD.replace("value: 123456.0", "value: 123457.0"))
    code, out = run("check", path)
    assert code == 1
    assert f"{path}: INVALID (1 of 1 golden vector(s) failed)" in out
    assert f"FAIL: {path}: vectors[0] no2 [18417, 8192]: expected 123457.0, decoded 123456.0" in out


def test_several_files_one_bad(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", GOOD.replace("table: input", "table: inputs"))
    code, out = run("check", good, bad, str(tmp_path / "missing.yaml"))
    assert code == 1
    assert f"{good}: OK" in out
    assert f'error: {bad}: variables.no2.table: expected coil|discrete_input|input|holding, got "inputs"' in out
    assert f"error: {tmp_path / 'missing.yaml'}: no such file" in out
    assert "1 of 3 profile(s) OK" in out


def test_check_json(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "vec.yaml", GOOD.replace("value: 123456.0", "value: 1.0"))
    code, out = run("check", "--json", good, bad)
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    first, second = doc["files"]
    assert (first["file"], first["ok"], first["errors"]) == (good, True, [])
    assert first["profile"]["model"] == "T-TEST"
    assert first["profile"]["variables"][0] == {"name": "no2", "table": "input", "address": 1,
                                                "data_type": "float32", "order": "ABCD", "unit": "ppb"}
    assert second["ok"] is False
    assert second["vectors"] == [{"index": 0, "variable": "no2", "registers": [18417, 8192], "expected": 1.0,
                                  "decoded": 123456.0, "status": "fail", "source": "libmodbus UT_IREAL_ABCD"}]


def test_check_json_nan_is_valid_json(tmp_path: Path) -> None:
    path = write(tmp_path, "nan.yaml", GOOD.replace("[0x47F1, 0x2000]", "[0x7FC0, 0x0000]"))
    code, out = run("check", "--json", path)
    assert code == 1
    assert json.loads(out)["files"][0]["vectors"][0]["decoded"] == "nan"


def test_check_needs_a_file() -> None:
    code, out = run("check")
    assert code == 2
    assert "Missing argument 'FILES...'" in out


def test_every_shipped_profile_checks_ok() -> None:
    paths = [str(default_profiles_dir() / f"{n}.yaml") for n in list_profiles()]
    code, out = run("check", *paths)
    assert code == 0, out
    assert f"{len(paths)} of {len(paths)} profile(s) OK" in out


def test_list_shows_shipped_profiles() -> None:
    code, out = run("list")
    assert code == 0, out
    assert "teledyne-t400: Teledyne API T400, firmware manual P/N 04402F (DCN6340)" in out
    assert "  variables: o3 (ppb)" in out
    assert "thermo-49iq: Thermo Fisher Scientific 49iQ" in out
    assert "  conditions: required" in out
    for name in list_profiles():
        assert f"{name}: " in out


def test_list_json() -> None:
    code, out = run("list", "--json")
    assert code == 0
    doc = json.loads(out)
    rows = {row["name"]: row for row in doc["profiles"]}
    assert set(rows) == set(list_profiles())
    t640 = rows["teledyne-t640"]
    assert (t640["model"], t640["manufacturer"], t640["conditions"]) == ("T640", "Teledyne API", "required")
    assert [v["name"] for v in t640["variables"]] == ["pm10", "pm25"]
    assert rows["thermo-49iq"]["variables"][0]["order"] == "CDAB"
    assert all(row["vectors"] >= 1 for row in rows.values())
