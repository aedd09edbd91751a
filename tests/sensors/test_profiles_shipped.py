"""The shipped device profiles: each loads, its golden vectors pass, and the real analysers' maps match their
documents (/work/shared/samples/modbus/*.md, transcribed here as constants: tests do not read /work/shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensors.modbus.decode import Codec, decode_value, encode_value, status_flags
from sensors.modbus.profile import default_profiles_dir, list_profiles, load_profile
from sensors.modbus.profile_check import check_profile_file
from sensors.network import ANALYSERS

REAL = {
    "teledyne-t400": "teledyne_T400.md",
    "teledyne-t640": "teledyne_T640.md",
    "teledyne-t640-pm1": "teledyne_T640.md",
    "teledyne-n500": "teledyne_N500.md",
    "thermo-49iq": "thermo_49iQ.md",
}

# (profile, variable) -> (table, address as documented, data type, order, unit), from the documents' tables
DOCUMENTED = {
    ("teledyne-t400", "o3"): ("input", 18, "float32", "ABCD", "ppb"),  # "Concentration for range #1", PPB
    ("teledyne-t640", "pm10"): ("input", 6, "float32", "ABCD", "µg/m³"),
    ("teledyne-t640", "pm25"): ("input", 8, "float32", "ABCD", "µg/m³"),
    ("teledyne-t640-pm1", "pm10"): ("input", 6, "float32", "ABCD", "µg/m³"),
    ("teledyne-t640-pm1", "pm25"): ("input", 8, "float32", "ABCD", "µg/m³"),
    ("teledyne-t640-pm1", "pm1"): ("input", 64, "float32", "ABCD", "µg/m³"),
    ("teledyne-n500", "no2"): ("input", 12, "float32", "ABCD", "ppb"),
    ("teledyne-n500", "no"): ("input", 56, "float32", "ABCD", "ppb"),
    ("teledyne-n500", "nox"): ("input", 76, "float32", "ABCD", "ppb"),
    ("thermo-49iq", "o3"): ("holding", 2100, "float32", "CDAB", "ppb"),
}


def test_the_real_analysers_are_shipped() -> None:
    assert set(REAL) <= set(list_profiles())
    assert set(ANALYSERS) <= set(list_profiles())


@pytest.mark.parametrize("name", list_profiles())
def test_shipped_profile_loads_and_its_vectors_pass(name: str) -> None:
    profile = load_profile(name)
    assert profile.vectors, f"{name} has no golden vectors"
    for vec in profile.vectors:
        assert decode_value(vec.registers, profile.variable(vec.variable)) == pytest.approx(vec.value, rel=1e-6)
        assert vec.source.strip()
    report = check_profile_file(default_profiles_dir() / f"{name}.yaml")
    assert report.ok, report.errors
    assert len(report.vectors) == len(profile.vectors)
    assert all(v.status == "pass" for v in report.vectors)


@pytest.mark.parametrize("name", list_profiles())
def test_every_variable_of_a_shipped_profile_has_a_vector(name: str) -> None:
    profile = load_profile(name)
    assert set(profile.variable_names) == {v.variable for v in profile.vectors}


@pytest.mark.parametrize(("key", "expected"), sorted(DOCUMENTED.items()))
def test_real_analyser_register_matches_its_document(key: tuple[str, str], expected: tuple) -> None:
    name, variable = key
    profile = load_profile(name)
    spec = profile.variable(variable)
    assert (spec.table, spec.address, spec.data_type, spec.order, spec.unit) == expected
    assert profile.address_base == 0  # every document: 0-based PDU addresses
    assert spec.pdu_address == spec.address
    assert (spec.scale, spec.offset) == (1.0, 0.0)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_analyser_maps_only_documented_variables(name: str) -> None:
    documented = {v for (n, v) in DOCUMENTED if n == name}
    assert set(load_profile(name).variable_names) == documented


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_analyser_cites_its_document(name: str) -> None:
    profile = load_profile(name)
    assert REAL[name] in profile.source
    assert profile.manufacturer in ("Teledyne API", "Thermo Fisher Scientific")
    text = (default_profiles_dir() / f"{name}.yaml").read_text(encoding="utf-8")
    assert "address_base: 0" in text  # written explicitly, never defaulted


def test_vendor_word_orders() -> None:
    for (name, _), (_, _, _, order, _) in DOCUMENTED.items():
        profile = load_profile(name)
        assert profile.manufacturer.startswith("Teledyne") == (order == "ABCD")
        assert profile.manufacturer.startswith("Thermo") == (order == "CDAB")


def test_thermo_worked_example_and_the_word_order_symptom() -> None:
    # thermo_49iQ.md: [0x0000, 0x4248] is 50.0 as CDAB, a tiny denormal if read as ABCD
    profile = load_profile("thermo-49iq")
    assert any(v.registers == (0x0000, 0x4248) and v.value == 50.0 for v in profile.vectors)
    assert decode_value([0x0000, 0x4248], profile.variable("o3")) == 50.0
    assert 0 < decode_value([0x0000, 0x4248], Codec("float32", "ABCD")) < 1e-40
    assert profile.status is None  # alarms are 13 "non-zero" registers: not mapped (see the profile's comment)


def test_pm_monitor_conditions_are_required() -> None:
    for name in ("teledyne-t640", "teledyne-t640-pm1"):
        assert load_profile(name).conditions == "required"
    for name in ("teledyne-t400", "teledyne-n500", "thermo-49iq"):
        assert load_profile(name).conditions is None  # mixing ratios: no T/P correction


def test_pm_ranges_keep_slightly_negative_values() -> None:
    # teledyne_T640.md: PM10 >= -100 at start-up, PM1 within -20 .. 1e5; never clipped
    t640 = load_profile("teledyne-t640-pm1")
    assert t640.variable("pm10").range == (-100.0, 100000.0)
    assert t640.variable("pm1").range == (-20.0, 100000.0)
    assert load_profile("teledyne-n500").variable("no2").range == (-100.0, 100000.0)  # driver's NO2 rule


def test_t400_status_discrete_inputs() -> None:
    profile = load_profile("teledyne-t400")
    status = profile.status
    assert status is not None
    assert (status.table, status.address, status.pdu_address, status.count) == ("discrete_input", 0, 0, 27)
    assert sorted(status.bits) == list(range(27))
    assert status.bits[19].flag == "device_invalid"
    assert [status.bits[b].flag for b in (20, 21, 22, 23)] == ["maintenance"] * 4
    assert (status.bits[24].flag, status.bits[24].when) == ("device_invalid", "clear")
    assert all(status.bits[b].flag is None for b in [*range(19), 25, 26])
    ok = 1 << 24  # system OK, nothing else
    assert status_flags(ok, status) == frozenset()
    assert status_flags(ok | (1 << 20), status) == {"maintenance"}  # zero calibration
    assert status_flags(ok | (1 << 19), status) == {"device_invalid"}
    assert status_flags(0, status) == {"device_invalid"}  # SYSTEM_OK off
    assert status_flags(ok | (1 << 9) | (1 << 25), status) == frozenset()  # a warning, an alarm limit


@pytest.mark.parametrize(("name", "bits"), [
    ("teledyne-t640", [0, 1, 2, 3, 5, 6, 7]),  # bit 4 not read by the driver
    ("teledyne-t640-pm1", [0, 1, 2, 3, 5, 6, 7]),
    ("teledyne-n500", [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12]),  # 9 undocumented
])
def test_forge_profiles_status_bits_are_informative(name: str, bits: list[int]) -> None:
    status = load_profile(name).status
    assert status is not None
    assert (status.table, status.pdu_address) == ("discrete_input", 0)
    assert sorted(status.bits) == bits
    assert status.count == max(bits) + 1
    assert all(bit.flag is None for bit in status.bits.values())
    assert status_flags(sum(1 << b for b in bits), status) == frozenset()


@pytest.mark.parametrize(("name", "variable"), sorted(DOCUMENTED))
def test_real_analyser_encodes_what_it_decodes(name: str, variable: str) -> None:
    spec = load_profile(name).variable(variable)
    for value in (0.0, -3.5, 42.25, 1234.5):
        assert decode_value(encode_value(value, spec), spec) == value


def test_shipped_profiles_directory_has_only_yaml_profiles() -> None:
    # a .yml or a stray file would be silently ignored by list_profiles
    files = {p.name for p in Path(default_profiles_dir()).iterdir() if p.is_file()}
    assert files == {f"{n}.yaml" for n in list_profiles()}
