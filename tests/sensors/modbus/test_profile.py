"""Device profiles: every shipped profile loads and matches the network; bad files name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensors.modbus.decode import decode_value
from sensors.modbus.profile import ProfileError, list_profiles, load_profile
from sensors.network import ANALYSERS
from sensors.variables import VARIABLES, Kind

GOOD = """
model: T-TEST
manufacturer: Test
firmware: "1"
source: a test
address_base: 1
conditions: required
variables:
  "no": {table: input, address: 1, data_type: float32, order: CDAB, unit: ppb, range: [-5, 2000]}
  no2: {table: holding, address: 1, data_type: float32, unit: ppb, range: [-5, 2000]}
status:
  table: discrete_input
  address: 20
  bits:
    0: {name: invalid concentration, flag: device_invalid}
    1: {name: zero calibration, flag: maintenance}
    5: {name: system OK, flag: device_invalid, when: clear}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def errors_of(tmp_path: Path, text: str, name: str = "bad") -> list[str]:
    write(tmp_path, name, text)
    with pytest.raises(ProfileError) as info:
        load_profile(name, tmp_path)
    return list(info.value.errors)


def test_every_shipped_profile_loads() -> None:
    names = list_profiles()
    assert set(ANALYSERS) <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.path == f"sensors/profiles/{name}.yaml"


@pytest.mark.parametrize("name", sorted(ANALYSERS))
def test_sim_profile_defines_exactly_the_network_variables(name: str) -> None:
    profile = load_profile(name)
    assert profile.variable_names == ANALYSERS[name]
    assert profile.source == "simulated analyser of aqnet's simulators"


@pytest.mark.parametrize("name", sorted(ANALYSERS))
def test_sim_profile_status_bit0_invalid_bit1_maintenance(name: str) -> None:
    status = load_profile(name).status
    assert status is not None
    assert status.table in ("input", "holding") and status.data_type == "uint16"
    assert status.bits[0].flag == "device_invalid"
    assert status.bits[1].flag == "maintenance"


def test_sim_profiles_report_the_agreed_units() -> None:
    units = {v.name: v.unit for name in ANALYSERS for v in load_profile(name).variables}
    assert units == {
        "pm10": "µg/m³", "pm25": "µg/m³", "no": "ppb", "no2": "ppb", "nox": "ppb", "o3": "ppb", "so2": "ppb",
        "co": "ppm", "temperature": "°C", "temperature_8m": "°C", "temperature_20m": "°C",
        "relativehumidity": "%", "pressure": "mmHg", "wind_speed": "m/s", "wind_direction": "°",
        "precipitation": "mm", "solar_radiation": "W/m²", "bc": "µg/m³", "bbp": "%", "co2": "ppm",
    }


def test_mass_concentration_profiles_declare_conditions() -> None:
    for name in list_profiles():
        profile = load_profile(name)
        if any(VARIABLES[v].kind is Kind.MASS for v in profile.variable_names):
            assert profile.conditions in ("local", "reference", "required"), name
    assert load_profile("sim-pm").conditions == "local"


def test_sim_profiles_mix_types_and_orders() -> None:
    encodings = {(v.data_type, v.order) for name in ANALYSERS for v in load_profile(name).variables}
    assert {("float32", "ABCD"), ("float32", "CDAB"), ("int16", "AB"), ("uint32", "ABCD")} <= encodings
    assert len(encodings) >= 6


def test_every_profile_golden_vector_decodes() -> None:
    seen = 0
    for name in list_profiles():
        profile = load_profile(name)
        for vec in profile.vectors:
            assert decode_value(vec.registers, profile.variable(vec.variable)) == pytest.approx(vec.value)
            seen += 1
    assert seen >= 2


def test_one_based_addresses_become_pdu_addresses(tmp_path: Path) -> None:
    profile = load_profile("good", write(tmp_path, "good", GOOD))
    no = profile.variable("no")
    assert (no.address, no.pdu_address, no.order) == (1, 0, "CDAB")
    assert profile.variable("no2").order == "ABCD"  # default: big-endian
    assert profile.conditions == "required"
    assert profile.status is not None
    assert profile.status.pdu_address == 19 and profile.status.count == 6
    assert profile.status.bits[5].when == "clear"
    assert profile.path == str(tmp_path / "good.yaml")


def test_bad_order_names_file_and_key(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, GOOD.replace("order: CDAB", "order: CADB"))
    expected = f'{tmp_path / "bad.yaml"}: variables.no.order: expected ABCD|CDAB|BADC|DCBA, got "CADB"'
    assert errors == [expected]


def test_shipped_profile_error_uses_the_package_path(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"^sensors/profiles/sim-nope\.yaml: no such profile file"):
        load_profile("sim-nope")


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("order: CDAB", "order: DCBA2")
    text = text.replace("data_type: float32, unit", "data_type: real, unit")
    text = text.replace("range: [-5, 2000]}\n  no2", "range: [10, 1]}\n  no2")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 3, errors
    assert any("variables.no.order: expected ABCD|CDAB|BADC|DCBA" in e for e in errors)
    assert any("variables.no2.data_type: expected bool|int16|" in e and 'got "real"' in e for e in errors)
    assert any("variables.no.range: expected [min, max] with min < max, got [10.0, 1.0]" in e for e in errors)


@pytest.mark.parametrize(("change", "expected"), [
    (("table: input", "table: inputs"),
     'variables.no.table: expected coil|discrete_input|input|holding, got "inputs"'),
    (("address_base: 1", "address_base: 2"), "address_base: expected 0|1, got 2"),
    (('firmware: "1"\n', ""), "firmware: required key missing"),
    (("source: a test", "source: a test\nsauce: x"), "sauce: unknown key"),
    (("unit: ppb, range: [-5, 2000]}\n  no2", "unit: ppb, rnage: [1, 2]}\n  no2"),
     "variables.no.rnage: unknown key"),
    (("address: 1, data_type: float32, order", "address: 0, data_type: float32, order"),
     "variables.no.address: expected 1..65535 (address_base 1, 2 register(s)), got 0"),
    (("address: 1, data_type: float32, unit", "address: x, data_type: float32, unit"),
     'variables.no2.address: a valid integer, unable to parse string as an integer, got "x"'),
    (("flag: maintenance", "flag: maintainance"),
     'status.bits.1.flag: expected device_invalid|maintenance, got "maintainance"'),
    (("5: {name: system OK", "16: {name: system OK"), None),  # discrete inputs: bits beyond 15 are fine
])
def test_schema_errors_name_the_key(tmp_path: Path, change: tuple[str, str], expected: str | None) -> None:
    old, new = change
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if expected is None:  # a valid variant
        write(tmp_path, "ok", text)
        load_profile("ok", tmp_path)
        return
    errors = errors_of(tmp_path, text)
    assert f"{tmp_path / 'bad.yaml'}: {expected}" in errors, errors


def test_register_status_bits_limited_to_16(tmp_path: Path) -> None:
    text = GOOD.replace("table: discrete_input", "table: holding")
    text = text.replace("5: {name: system OK", "16: {name: x")
    errors = errors_of(tmp_path, text)
    assert any(e.endswith("status.bits.16: expected a bit number 0..15, got 16") for e in errors), errors


def test_overlapping_registers_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("no2: {table: holding, address: 1", "no2: {table: input, address: 2")
    errors = errors_of(tmp_path, text)
    assert any("variables.no2.address: input register 1 (0-based) is also used by variables.no" in e
               for e in errors), errors


def test_bool_only_in_bit_tables(tmp_path: Path) -> None:
    text = GOOD.replace("data_type: float32, unit", "data_type: bool, unit")
    errors = errors_of(tmp_path, text)
    assert any("variables.no2.data_type: holding registers are 16-bit" in e for e in errors), errors
    text = GOOD.replace("no2: {table: holding", "no2: {table: coil")
    assert any('variables.no2.data_type: a coil holds single bits: expected bool, got "float32"' in e
               for e in errors_of(tmp_path, text))


def test_unknown_variable_is_refused(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, GOOD.replace("no2:", "n02:"))
    assert any('variables.n02: unknown variable "n02": expected one of' in e for e in errors)


def test_pm_profile_without_conditions_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("conditions: required\n", "").replace("no2:", "pm25:")
    errors = errors_of(tmp_path, text)
    assert any("conditions: required for a profile with a mass concentration (pm*)" in e for e in errors)


def test_unquoted_no_key_gets_a_hint(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, GOOD.replace('"no":', "no:"))
    assert errors == [(f'{tmp_path / "bad.yaml"}: variables.no: YAML read this unquoted key as the boolean '
                      f'false: quote it (e.g. "no": for nitric oxide)')]


def test_wrong_golden_vector_is_refused(tmp_path: Path) -> None:
    text = GOOD + "vectors:\n  - {variable: 'no', registers: [0, 16968], value: 51.0, source: test}\n"
    errors = errors_of(tmp_path, text)
    assert errors == [f"{tmp_path / 'bad.yaml'}: vectors[0]: no decodes [0, 16968] to 50.0, expected 51.0"]
    text = GOOD + "vectors:\n  - {variable: 'no', registers: [0, 16968], value: 50.0, source: test}\n"
    write(tmp_path, "vec", text)
    assert load_profile("vec", tmp_path).vectors[0].value == 50.0


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in errors_of(tmp_path, "model: [unclosed\n")[0]
    expected = f"{tmp_path / 'bad.yaml'}: expected a mapping of profile keys, got list"
    assert errors_of(tmp_path, "- a\n- b\n") == [expected]


def test_list_profiles_of_a_directory(tmp_path: Path) -> None:
    write(tmp_path, "b", GOOD)
    write(tmp_path, "a", GOOD)
    assert list_profiles(tmp_path) == ["a", "b"]
    with pytest.raises(ProfileError, match=r"no such profile file \(available: a, b\)"):
        load_profile("c", tmp_path)
