"""Every worked example of the bundled examples.json, checked against aqnet's own code, one test per id.

Each case is dispatched on its `kind` to a checker; a kind without a checker fails, and the number of cases is
asserted so that an example added to (or lost from) the domain file is noticed. Every key of each `expected`
must be read by its checker (`Expected` records them), so a new expected field cannot be silently skipped.
Sources: examples.json `source` of each case (EPA-454/B-24-002 via indices.json, Res. Conjunta 2840/2023 via
indices.json, the AirNow NowCast forum example, Res. 2254/2017 via norms.json, CONVERSIONS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date
from typing import Any

import numpy as np
import pytest

from alerts.averaging.averages import (
    Average,
    annual_average,
    daily_average,
    local_day_bounds,
    local_year_bounds,
    min_valid_days,
    rolling_average,
)
from alerts.averaging.indices import dominant, iboca, truncate_to_table, us_aqi
from alerts.averaging.nowcast import nowcast, nowcast_detail
from alerts.rules.model import Rule, default_rules
from ingest.units import (
    convert,
    molar_mass,
    ppb_to_ugm3,
    reference_factor,
    to_reference_conditions,
    ugm3_to_ppb,
)
from sensors.domain import load

EXAMPLES: list[dict[str, Any]] = load("examples")["examples"]
CONVENTIONS = load("examples")["conventions"]
#: examples.json holds 83 cases today; change this number together with the domain file
EXPECTED_COUNT = 83

#: examples.json / indices.json pollutant names → vocabulary codes (VARIABLES.md)
CODE = {"PM2.5": "pm25", "PM10": "pm10", "O3": "o3", "CO": "co", "NO2": "no2", "SO2": "so2", "NO": "no"}
UNIT = {"ug/m3": "µg/m³", "ppm": "ppm", "ppb": "ppb"}


class Expected(dict):
    """The `expected` mapping of a case, recording which keys its checker read."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def _ugm3(code: str, c: float, unit: str) -> float:
    return c if unit == "ug/m3" else convert(c, unit, code)


# ---------------------------------------------------------------- aqi_us_epa (EPA-454/B-24-002 via indices.json)

def _check_aqi_single(inp: dict[str, Any], exp: Expected) -> None:
    code = CODE[inp["pollutant"]]
    ugm3 = _ugm3(code, inp["c"], inp["unit"])
    value = us_aqi(code, ugm3, inp["averaging"])
    assert value is not None
    assert value.value == exp["aqi"]
    assert value.category == exp["category"]
    assert value.unit == UNIT[inp["unit"]]
    for key in ("truncated_ugm3", "truncated_ppm", "truncated_ppb"):
        if key in exp:
            assert value.concentration == exp[key]
            assert truncate_to_table(code, ugm3) == exp[key]
    assert value.beyond_index is exp.get("beyond_index", False)
    if exp.get("tie_half_up"):
        # the exact index is x.5: half-up gives the upper integer, Python's round() would give the even one
        assert value.value % 2 == 1 and round(value.value - 0.5) == value.value - 1


def _check_aqi_combined(inp: dict[str, Any], exp: Expected) -> None:
    subs = []
    for key, c in inp.items():  # e.g. "PM2.5_24h_ugm3": 30.0
        name, averaging, unit = key.split("_")
        code = CODE[name]
        unit = {"ugm3": "ug/m3"}.get(unit, unit)
        sub = us_aqi(code, _ugm3(code, c, unit), averaging)
        assert sub is not None
        subs.append(sub)
    assert [s.value for s in subs] == list(exp["sub_indices"].values())
    top = dominant(subs)
    assert top is not None
    assert top.value == exp["aqi"]
    assert top.pollutant == CODE[exp["critical_pollutant"]]
    assert top.category == exp["category"]


def check_aqi_us_epa(inp: dict[str, Any], exp: Expected) -> None:
    if "pollutant" in inp:
        _check_aqi_single(inp, exp)
    else:
        _check_aqi_combined(inp, exp)


# ---------------------------------------------------------------- iboca (Res. Conjunta 2840/2023 via indices.json)

def check_iboca(inp: dict[str, Any], exp: Expected) -> None:
    value = iboca("pm25", inp["pm25_nowcast_ugm3"], "nowcast")
    assert value is not None
    assert value.concentration == exp["truncated_ugm3"]
    assert value.value == exp["iboca"]
    assert value.level == exp["level"]
    assert value.category == exp["category"]
    assert value.colour == exp["color_hex"]
    assert value.action == exp["action_level"]


# ---------------------------------------------------------------- nowcast (EPA-454/B-24-002 sec. IV, AirNow forum)

def check_nowcast(inp: dict[str, Any], exp: Expected) -> None:
    code = CODE[inp.get("pollutant", "PM2.5")]
    hourly = inp["hourly_oldest_to_newest_ugm3"]
    detail = nowcast_detail(hourly, code)
    assert nowcast(hourly, code) == exp["nowcast"]
    if exp["nowcast"] is None:
        assert detail is None
        return
    assert detail is not None
    assert detail.value == exp["nowcast"]
    assert detail.weight == pytest.approx(exp["w"], abs=1e-6)
    if "nowcast_raw" in exp:
        assert detail.raw == pytest.approx(exp["nowcast_raw"], abs=1e-6)
    if "aqi_2024" in exp:
        aqi = us_aqi(code, detail.value, "nowcast")
        assert aqi is not None and aqi.value == exp["aqi_2024"]
        if "category" in exp:
            assert aqi.category == exp["category"]
    if "iboca" in exp:
        ib = iboca(code, detail.value, "nowcast")
        assert ib is not None and ib.value == exp["iboca"]


# ---------------------------------------------------------------- averaging (norms.json data_completeness)

def _hourly_averages(hourly: list[float | None]) -> list[Average]:
    return [Average(value=None, coverage=0.0, samples=0, valid=False) if x is None
            else Average(value=float(x), coverage=1.0, samples=60, valid=True) for x in hourly]


def check_averaging(inp: dict[str, Any], exp: Expected) -> None:
    if "hourly_ugm3" in inp:
        hourly = inp["hourly_ugm3"]
        v = np.array([np.nan if x is None else float(x) for x in hourly])
        avg = rolling_average(v, np.isfinite(v), hours=len(hourly))
        if len(hourly) == 24:  # the same rule for the calendar day (18 of 24)
            day = daily_average(_hourly_averages(hourly), *local_day_bounds(date(2026, 3, 1), UTC))
            assert (day.valid, day.samples, day.valid_value) == (avg.valid, avg.samples, avg.valid_value)
        assert avg.valid is exp["valid"]
        assert avg.samples == exp["n_valid"]
        if exp["mean"] is None:
            assert avg.valid_value is None
        else:
            assert avg.valid_value == pytest.approx(exp["mean"])
    elif "hourly_ugm3_hours_1_to_9" in inp:
        v = np.array(inp["hourly_ugm3_hours_1_to_9"], dtype=float)
        ok = np.ones(v.size, bool)
        assert rolling_average(v[:8], ok[:8], hours=8).valid_value == exp["avg_ending_hour_8"]
        assert rolling_average(v, ok, hours=8).valid_value == exp["avg_ending_hour_9"]
    elif "valid_days" in inp:
        days = inp["days_in_year"]
        assert min_valid_days(days) == exp["min_days"]
        year = 2026 if days == 365 else 2028
        start, end = local_year_bounds(year, UTC)
        got = []
        for n in inp["valid_days"]:
            daily = [Average(value=10.0, coverage=1.0, samples=24, valid=i < n) for i in range(days)]
            got.append(annual_average(daily, start, end).valid)
        assert got == exp["valid"]
    else:
        raise AssertionError(f"averaging example with unknown input keys {sorted(inp)}")


# ---------------------------------------------------------------- conversion (CONVERSIONS.md, ingest.units)

def _molar_volume(t_c: float, p_hpa: float) -> float:
    return CONVENTIONS["constants"]["R_L_kPa_per_mol_K"] * (t_c + 273.15) / (p_hpa / 10)


def check_conversion(inp: dict[str, Any], exp: Expected) -> None:
    code = CODE[inp["species"]]
    if "M_g_per_mol" in inp:
        assert molar_mass(code) == inp["M_g_per_mol"] == CONVENTIONS["constants"]["M_g_per_mol"][inp["species"]]
    if "ppb" in inp:
        ref = convert(inp["ppb"], "ppb", code)  # aqnet: 24.45 L/mol (VARIABLES.md)
        assert ref == pytest.approx(exp["ref_24.45L"], abs=1e-3)
        exact = ref * 24.45 / 24.4654  # the exact molar volume at 25 °C, 1 atm (CONVERSIONS.md)
        assert exact == pytest.approx(exp["ref_exact_24.4654L"], abs=1e-3)
        # the mass per actual m³ at Bogotá's 752 hPa, 14 °C: the reference value taken back to local conditions
        local = exact / reference_factor(14, 752)
        assert local == pytest.approx(exp["bogota_752hPa_14C"], abs=1e-3)
        assert inp["ppb"] * molar_mass(code) / _molar_volume(14, 752) == pytest.approx(local, abs=1e-3)
    elif "ppm" in inp:
        assert ppb_to_ugm3(inp["ppm"], molar_mass(code)) == pytest.approx(exp["mg_per_m3_24.45L"], abs=1e-4)
        assert convert(inp["ppm"], "ppm", code) == pytest.approx(exp["ug_per_m3_24.45L"], abs=0.05)
    else:
        assert ugm3_to_ppb(inp["ugm3"], molar_mass(code)) == pytest.approx(exp["ppb_24.45L"], abs=1e-3)


def check_reference_correction(inp: dict[str, Any], exp: Expected) -> None:
    p_hpa = inp["P_hPa"] if "P_hPa" in inp else convert(inp["P_mmHg"], "mmHg", "pressure")
    if "c_local_ugm3" in inp:
        assert reference_factor(inp["T_C"], p_hpa) == pytest.approx(exp["factor"], abs=1e-4)
        got = to_reference_conditions(inp["c_local_ugm3"], inp["T_C"], p_hpa)
        assert got == pytest.approx(exp["c_ref_ugm3"], abs=1e-3)
        if "exceeds_24h_level_37" in exp:
            limit = default_rules()[0].levels[0]  # PM2.5 24 h limit, 37 µg/m³ (Res. 2254/2017 Tabla 1)
            assert (limit.threshold, limit.met_by(got)) == (37, exp["exceeds_24h_level_37"])
    else:
        code = CODE[inp["species"]]
        local = inp["ppb"] * molar_mass(code) / _molar_volume(inp["T_C"], p_hpa)
        assert local == pytest.approx(exp["local_ugm3"], abs=1e-3)
        corrected = to_reference_conditions(local, inp["T_C"], p_hpa)
        assert corrected == pytest.approx(exp["corrected_to_ref_ugm3"], abs=1e-3)
        direct = convert(inp["ppb"], "ppb", code) * 24.45 / 24.4654
        assert direct == pytest.approx(exp["direct_ref_exact_ugm3"], abs=1e-3)


# ---------------------------------------------------------------- norm_check, prevention_alert_emergency
# (Res. 2254/2017 via norms.json; alerts.rules)

_NORM_PERIOD = {"24h": "day", "8h": "8h", "1h": "1h"}  # the norm's 24 h limit is evaluated on the calendar day


def _limit_rule(pollutant: str, averaging: str) -> Rule:
    """The bundled limit rule (Res. 2254/2017 Tabla 1) of `pollutant` over the norm's `averaging`."""
    code = CODE[pollutant]
    (rule,) = [r for r in default_rules() if r.id == f"{code}-{_NORM_PERIOD[averaging]}-limit"]
    return rule


def _levels_rule(pollutant: str) -> Rule:
    """The bundled prevention/alert/emergency rule of `pollutant` (Res. 2254/2017, norms.json)."""
    code = CODE[pollutant]
    (rule,) = [r for r in default_rules() if r.id.startswith(f"{code}-") and r.id.endswith("-levels")]
    return rule


def check_norm_check(inp: dict[str, Any], exp: Expected) -> None:
    (limit,) = _limit_rule(inp["pollutant"], inp["averaging"]).levels
    assert limit.name == "limit" and limit.comparison == ">"
    assert limit.met_by(inp["c_ref_ugm3"]) is exp["exceeds"]


def check_prevention_alert_emergency(inp: dict[str, Any], exp: Expected) -> None:
    rule = _levels_rule(inp["pollutant"])
    idx = rule.level_index(inp["c_ref_ugm3"])
    assert (None if idx is None else rule.levels[idx].name) == exp["level"]


CHECKERS: dict[str, Callable[[dict[str, Any], Expected], None]] = {
    "aqi_us_epa": check_aqi_us_epa,
    "iboca": check_iboca,
    "nowcast": check_nowcast,
    "averaging": check_averaging,
    "conversion": check_conversion,
    "reference_correction": check_reference_correction,
    "norm_check": check_norm_check,
    "prevention_alert_emergency": check_prevention_alert_emergency,
}


def test_the_count_of_examples_is_asserted():
    assert len(EXAMPLES) == EXPECTED_COUNT
    assert len({e["id"] for e in EXAMPLES}) == EXPECTED_COUNT


def test_every_kind_has_a_checker():
    kinds = {e["kind"] for e in EXAMPLES}
    assert kinds <= set(CHECKERS), f"no checker for {sorted(kinds - set(CHECKERS))}"


def test_an_unknown_kind_fails():
    with pytest.raises(pytest.fail.Exception, match="no checker for kind 'made_up'"):
        run_case({"id": "X", "kind": "made_up", "input": {}, "expected": {}})


def run_case(case: dict[str, Any]) -> None:
    checker = CHECKERS.get(case["kind"])
    if checker is None:
        pytest.fail(f"{case['id']}: no checker for kind {case['kind']!r}; expected one of {sorted(CHECKERS)}")
    expected = Expected(case["expected"])
    checker(case["input"], expected)
    unread = set(expected) - expected.read
    assert not unread, f"{case['id']}: expected keys not checked: {sorted(unread)}"


@pytest.mark.parametrize("case", EXAMPLES, ids=[e["id"] for e in EXAMPLES])
def test_domain_example(case: dict[str, Any]) -> None:
    assert case["source"].strip(), f"{case['id']}: every case cites its source"
    run_case(case)
