"""ingest.units: the bundled conversion examples, every accepted spelling, misfits, and round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import units
from ingest.units import (
    MOLAR_VOLUME_L,
    UnitError,
    accepted_units,
    convert,
    from_canonical,
    molar_mass,
    parse_unit,
    ppb_to_ugm3,
    reference_factor,
    to_reference_conditions,
    ugm3_to_ppb,
)
from sensors.domain import load
from sensors.variables import VARIABLES, Kind, UnknownVariableError

SPECIES_TO_CODE = {"NO2": "no2", "O3": "o3", "SO2": "so2", "CO": "co", "NO": "no"}


def _examples(kind: str) -> list[dict]:
    cases = [e for e in load("examples")["examples"] if e["kind"] == kind]
    assert cases, kind
    return cases


def _ids(cases: list[dict]) -> list[str]:
    return [c["id"] for c in cases]


CONVERSIONS = _examples("conversion")
CORRECTIONS = _examples("reference_correction")


def test_constants_match_bundled_data() -> None:
    constants = load("conversions")["constants"]
    assert constants["molar_volume_25C_1atm_L"]["conventional"] == MOLAR_VOLUME_L
    assert constants["mmHg_to_hPa"] == units.MMHG_TO_HPA
    assert constants["standard_atmosphere"]["hPa"] == units.P_REF_HPA
    ref = load("norms")["reference_conditions"]
    assert ref["temperature_K"] == units.T_REF_K
    assert ref["pressure_hPa"] == units.P_REF_HPA


@pytest.mark.parametrize("case", CONVERSIONS, ids=_ids(CONVERSIONS))
def test_conversion_examples(case: dict) -> None:
    inp, exp = case["input"], case["expected"]
    code = SPECIES_TO_CODE[inp["species"]]
    if "M_g_per_mol" in inp:
        assert molar_mass(code) == inp["M_g_per_mol"]
    if "ppb" in inp:
        assert convert(inp["ppb"], "ppb", code) == pytest.approx(exp["ref_24.45L"], abs=1e-3)
        assert ppb_to_ugm3(inp["ppb"], molar_mass(code)) == pytest.approx(exp["ref_24.45L"], abs=1e-3)
    if "ppm" in inp:
        assert convert(inp["ppm"], "ppm", code) == pytest.approx(exp["ug_per_m3_24.45L"], abs=0.05)
        # ppm → mg/m³ is the same formula
        assert ppb_to_ugm3(inp["ppm"], molar_mass(code)) == pytest.approx(exp["mg_per_m3_24.45L"], abs=1e-4)
    if "ugm3" in inp:
        assert ugm3_to_ppb(inp["ugm3"], molar_mass(code)) == pytest.approx(exp["ppb_24.45L"], abs=1e-3)
        assert from_canonical(inp["ugm3"], "ppb", code) == pytest.approx(exp["ppb_24.45L"], abs=1e-3)


@pytest.mark.parametrize("case", CORRECTIONS, ids=_ids(CORRECTIONS))
def test_reference_correction_examples(case: dict) -> None:
    inp, exp = case["input"], case["expected"]
    pressure_hpa = inp["P_hPa"] if "P_hPa" in inp else convert(inp["P_mmHg"], "mmHg", "pressure")
    if "c_local_ugm3" in inp:
        assert reference_factor(inp["T_C"], pressure_hpa) == pytest.approx(exp["factor"], abs=1e-4)
        got = to_reference_conditions(inp["c_local_ugm3"], inp["T_C"], pressure_hpa)
        assert got == pytest.approx(exp["c_ref_ugm3"], abs=1e-3)
    else:  # EX068: local conversion then correction equals the direct reference conversion (exact Vm)
        code = SPECIES_TO_CODE[inp["species"]]
        r = load("conversions")["constants"]["R"]["value"]
        vm_local = r * (inp["T_C"] + 273.15) / (pressure_hpa / 10)
        local = inp["ppb"] * molar_mass(code) / vm_local
        assert local == pytest.approx(exp["local_ugm3"], abs=1e-3)
        corrected = to_reference_conditions(local, inp["T_C"], pressure_hpa)
        assert corrected == pytest.approx(exp["corrected_to_ref_ugm3"], abs=1e-3)
        # aqnet converts directly at 24.45 L/mol instead: 0.06 % above the exact-Vm value
        assert convert(inp["ppb"], "ppb", code) == pytest.approx(corrected * 24.4654 / 24.45, rel=1e-4)


def test_worked_examples_of_variables_md() -> None:
    assert convert(40, "ppb", "no2") == pytest.approx(75.2646, abs=1e-4)
    assert to_reference_conditions(30.0, 14, 752) == pytest.approx(38.93, abs=5e-3)
    assert convert(1.0, "ppm", "co") == pytest.approx(1145.6, abs=0.05)
    # NOx is expressed as NO2
    assert convert(40, "ppb", "nox") == convert(40, "ppb", "no2")


def test_factor_table_of_conversions_json() -> None:
    for species, row in load("conversions")["factors_ugm3_per_ppb"].items():
        assert convert(1, "ppb", SPECIES_TO_CODE[species]) == pytest.approx(row["ref_24.45L"], abs=1e-4)


@pytest.mark.parametrize(("spelling", "canonical"), [
    ("µg/m³", "µg/m³"), ("μg/m³", "µg/m³"), ("ug/m3", "µg/m³"), ("UG/M3", "µg/m³"), ("µg/m3", "µg/m³"),
    ("ug m-3", "µg/m³"), ("mg/m3", "mg/m³"), ("ng/m³", "ng/m³"), ("PPB", "ppb"), ("ppm", "ppm"),
    ("°C", "°C"), ("degC", "°C"), ("deg C", "°C"), ("℃", "°C"), ("°F", "°F"), ("degF", "°F"), ("K", "K"),
    ("hPa", "hPa"), ("mbar", "hPa"), ("Pa", "Pa"), ("kPa", "kPa"), ("mmHg", "mmHg"), ("mm Hg", "mmHg"),
    ("inHg", "inHg"), ("%", "%"), ("m/s", "m/s"), ("m s-1", "m/s"), ("km/h", "km/h"), ("°", "°"),
    ("deg", "°"), ("degrees", "°"), ("mm", "mm"), ("W/m²", "W/m²"), ("W/m2", "W/m²"), (" W m-2 ", "W/m²"),
])
def test_parse_unit_spellings(spelling: str, canonical: str) -> None:
    assert parse_unit(spelling) == canonical


@pytest.mark.parametrize("spelling", ["", "furlong", "ug", "m3", "ppt", "°K", "C"])
def test_parse_unit_rejects_unknown(spelling: str) -> None:
    with pytest.raises(UnitError) as err:
        parse_unit(spelling)
    assert repr(spelling) in str(err.value)


def test_canonical_units_parse_to_themselves() -> None:
    for var in VARIABLES.values():
        assert parse_unit(var.unit) == var.unit
        assert convert(12.5, var.unit, var.code) == pytest.approx(12.5)


@pytest.mark.parametrize(("value", "unit", "code", "expected"), [
    (59.0, "°F", "temperature", 15.0),
    (288.15, "K", "temperature_8m", 15.0),
    (14.0, "degC", "temperature_20m", 14.0),
    (75200.0, "Pa", "pressure", 752.0),
    (75.2, "kPa", "pressure", 752.0),
    (760.0, "mmHg", "pressure", 1013.25),
    (29.92, "inHg", "pressure", 1013.21),
    (36.0, "km/h", "wind_speed", 10.0),
    (1.5, "mg/m3", "pm25", 1500.0),
    (2500.0, "ng/m3", "bc", 2.5),
    (0.42, "ppm", "co2", 0.42),
    (420_000.0, "ppb", "co2", 420.0),
    (75.2646, "ug/m3", "no2", 75.2646),
    (0.0752646, "mg/m3", "no2", 75.2646),
])
def test_convert_cases(value: float, unit: str, code: str, expected: float) -> None:
    assert convert(value, unit, code) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("unit", "code"), [
    ("hPa", "no2"), ("ppb", "pm25"), ("°C", "pressure"), ("%", "temperature"), ("deg", "temperature"),
    ("ppb", "bc"), ("µg/m³", "co2"), ("mm", "wind_speed"), ("furlong", "pm10"),
])
def test_unit_that_does_not_fit_names_variable_and_unit(unit: str, code: str) -> None:
    with pytest.raises(UnitError) as err:
        convert(1.0, unit, code)
    assert code in str(err.value)
    assert repr(unit) in str(err.value)
    assert err.value.variable == code
    assert err.value.unit == unit
    assert isinstance(err.value, ValueError)


def test_unknown_variable() -> None:
    with pytest.raises(UnknownVariableError):
        convert(1.0, "ppb", "h2s")


def test_molar_mass_only_for_gases() -> None:
    assert molar_mass("nox") == 46.0055
    with pytest.raises(ValueError, match="pm25"):
        molar_mass("pm25")


def test_gases_accept_mixing_ratios_and_masses() -> None:
    for var in VARIABLES.values():
        accepted = accepted_units(var.code)
        assert var.unit in accepted
        assert ("ppb" in accepted) == (var.kind is Kind.GAS or var.code == "co2")


@pytest.mark.parametrize(("temp_c", "pressure_hpa"), [(-273.15, 750), (14, 0), (14, -1), (math.nan, 750)])
def test_reference_correction_rejects_impossible_conditions(temp_c: float, pressure_hpa: float) -> None:
    with pytest.raises(ValueError):
        to_reference_conditions(30.0, temp_c, pressure_hpa)


def test_reference_conditions_are_identity() -> None:
    assert to_reference_conditions(30.0, 25.0, 1013.25) == pytest.approx(30.0)


_FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
_UNIT_CASES = [(code, unit) for code in VARIABLES for unit in accepted_units(code)]


@given(value=_FINITE, case=st.sampled_from(_UNIT_CASES))
def test_round_trip_every_accepted_unit(value: float, case: tuple[str, str]) -> None:
    code, unit = case
    there = convert(value, unit, code)
    assert math.isfinite(there)
    assert from_canonical(there, unit, code) == pytest.approx(value, rel=1e-9, abs=1e-6)


@given(ppb=st.floats(min_value=0, max_value=1e5), code=st.sampled_from(sorted(SPECIES_TO_CODE.values())))
def test_ppb_round_trip_and_monotone(ppb: float, code: str) -> None:
    m = molar_mass(code)
    assert ugm3_to_ppb(ppb_to_ugm3(ppb, m), m) == pytest.approx(ppb, rel=1e-12, abs=1e-12)
    assert convert(ppb, "ppb", code) * 1000 == pytest.approx(convert(ppb, "ppm", code), rel=1e-12)


@given(c=st.floats(min_value=0, max_value=1e4), temp_c=st.floats(min_value=-40, max_value=50),
       pressure_hpa=st.floats(min_value=500, max_value=1100))
def test_reference_correction_is_linear_and_ideal_gas(c: float, temp_c: float, pressure_hpa: float) -> None:
    got = to_reference_conditions(c, temp_c, pressure_hpa)
    expected = c * (1013.25 / pressure_hpa) * ((temp_c + 273.15) / 298.15)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # thinner, warmer air than the reference holds less mass per m³: the correction raises the value
    if pressure_hpa < 1013.25 and temp_c > 25:
        assert got >= c
