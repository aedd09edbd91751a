"""alerts.averaging.indices: US EPA AQI (2024) and IBOCA against the tables of indices.json, exhaustively on every
concentration step of every table, plus the special rules, the daily AQI and the properties of the issue."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.averaging.indices import (
    AQI_POLLUTANTS,
    DAILY_INPUTS,
    DailyInputs,
    IndexValue,
    daily_us_aqi,
    dominant,
    iboca,
    to_table_units,
    truncate_to_table,
    us_aqi,
)
from ingest.units import convert
from sensors.domain import load

INDICES = load("indices")
US = INDICES["us_epa_aqi"]
BREAKPOINTS = US["breakpoints"]

#: (code, averaging, indices.json table, table unit, precision step, where the table is defined)
TABLES = [
    ("pm25", "24h", "PM2.5_24h_ugm3", "µg/m³", Fraction(1, 10)),
    ("pm25", "nowcast", "PM2.5_24h_ugm3", "µg/m³", Fraction(1, 10)),
    ("pm10", "24h", "PM10_24h_ugm3", "µg/m³", Fraction(1)),
    ("pm10", "nowcast", "PM10_24h_ugm3", "µg/m³", Fraction(1)),
    ("o3", "8h", "O3_8h_ppm", "ppm", Fraction(1, 1000)),
    ("o3", "1h", "O3_1h_ppm", "ppm", Fraction(1, 1000)),
    ("co", "8h", "CO_8h_ppm", "ppm", Fraction(1, 10)),
    ("so2", "1h", "SO2_1h_ppb", "ppb", Fraction(1)),
    ("so2", "24h", "SO2_24h_ppb", "ppb", Fraction(1)),
    ("no2", "1h", "NO2_1h_ppb", "ppb", Fraction(1)),
]
TABLE_IDS = [f"{code}-{avg}" for code, avg, *_ in TABLES]


def _ugm3(code: str, c: float, unit: str) -> float:
    """A table-unit concentration as aqnet stores it (µg/m³ at 24.45 L/mol)."""
    return c if unit == "µg/m³" else convert(c, unit, code)


def _oracle(c: Fraction, table: str) -> int | None:
    """Independent reference: exact fractions, half-up as floor(x + 1/2) (indices.json formula)."""
    for seg in BREAKPOINTS[table]:
        lo, hi = Fraction(str(seg["c_lo"])), Fraction(str(seg["c_hi"]))
        if lo <= c <= hi:
            x = Fraction(seg["i_hi"] - seg["i_lo"]) / (hi - lo) * (c - lo) + seg["i_lo"]
            return math.floor(x + Fraction(1, 2))
    return None


def _category_of(value: int) -> str:
    return next(c["name"] for c in US["categories"] if c["i_lo"] <= value <= c["i_hi"])


# ------------------------------------------------------------------ exhaustive tables

@pytest.mark.parametrize(("code", "averaging", "table", "unit", "step"), TABLES, ids=TABLE_IDS)
def test_every_step_of_every_table_from_stored_ugm3(code, averaging, table, unit, step):
    """Each concentration step of the table, stored in µg/m³ and converted back (VARIABLES.md: round to 9
    decimals then truncate), gives back exactly that concentration and the oracle's index and category."""
    segs = BREAKPOINTS[table]
    lo, hi = Fraction(str(segs[0]["c_lo"])), Fraction(str(segs[-1]["c_hi"]))
    n = int((hi - lo) / step)
    previous = -1
    for k in range(n + 1):
        c = lo + k * step
        got = us_aqi(code, _ugm3(code, float(c), unit), averaging)
        assert got is not None, f"{code} {averaging} {float(c)} {unit}"
        assert got.concentration == float(c), f"{float(c)} came back as {got.concentration}"
        assert got.value == _oracle(c, table), f"{code} {averaging} {float(c)} {unit}"
        assert got.category == _category_of(got.value)
        assert got.unit == unit and got.index == "us_aqi" and got.averaging == averaging
        assert not got.beyond_index and not got.indicative and got.action is None
        assert got.value >= previous  # monotonic over the whole table
        previous = got.value


@pytest.mark.parametrize(("code", "averaging", "table", "unit", "step"), TABLES, ids=TABLE_IDS)
def test_each_breakpoint_gives_its_band_ends(code, averaging, table, unit, step):
    # the norm's own table (EPA-454/B-24-002 Table 6 via indices.json): C_lo → I_lo, C_hi → I_hi
    for seg in BREAKPOINTS[table]:
        for c, i in ((seg["c_lo"], seg["i_lo"]), (seg["c_hi"], seg["i_hi"])):
            got = us_aqi(code, _ugm3(code, c, unit), averaging)
            assert got is not None and got.value == i, (table, c)


def test_categories_and_colours_come_from_indices_json():
    expected = [(1, "Good", "#00E400"), (2, "Moderate", "#FFFF00"), (3, "Unhealthy for Sensitive Groups", "#FF7E00"),
                (4, "Unhealthy", "#FF0000"), (5, "Very Unhealthy", "#8F3F97"), (6, "Hazardous", "#7E0023")]
    for (level, name, colour), cat, seg in zip(expected, US["categories"], BREAKPOINTS["PM2.5_24h_ugm3"], strict=True):
        assert (cat["name"], cat["color_hex"]) == (name, colour)
        got = us_aqi("pm25", seg["c_lo"], "24h")  # the first concentration of the band
        assert got is not None and (got.level, got.category, got.colour) == (level, name, colour)


# ------------------------------------------------------------------ truncation and conversion

def test_ozone_071_ppm_is_not_lost_to_floating_point_noise():
    # VARIABLES.md: "Without the rounding, 0.071 ppm O3 comes back as 0.07099999999999998 and falls one band low"
    stored = convert(0.071, "ppm", "o3")
    assert to_table_units("o3", stored) == 0.071
    got = us_aqi("o3", stored, "8h")
    assert got is not None and got.value == 101 and got.category == "Unhealthy for Sensitive Groups"


def test_to_table_units_per_pollutant():
    assert to_table_units("pm25", 12.34) == 12.34
    assert to_table_units("no2", convert(40, "ppb", "no2")) == 40.0  # VARIABLES.md: 40 ppb = 75.2646 µg/m³
    assert to_table_units("co", 1145.6) == pytest.approx(1.0, abs=1e-4)  # examples.json EX064: 1 ppm = 1145.6
    assert to_table_units("so2", convert(10, "ppb", "so2")) == 10.0
    with pytest.raises(ValueError, match="has no US AQI table"):
        to_table_units("temperature", 20.0)
    with pytest.raises(ValueError, match="finite"):
        to_table_units("o3", math.nan)


def test_truncation_before_lookup_per_pollutant():
    # indices.json us_epa_aqi.truncation
    assert truncate_to_table("pm25", 9.09) == 9.0
    assert truncate_to_table("pm10", 54.9) == 54.0
    assert truncate_to_table("o3", convert(0.0709, "ppm", "o3")) == 0.070
    assert truncate_to_table("co", convert(4.45, "ppm", "co")) == 4.4
    assert truncate_to_table("no2", convert(100.9, "ppb", "no2")) == 100.0
    assert truncate_to_table("so2", convert(75.99, "ppb", "so2")) == 75.0


def test_negative_concentration_is_zero():
    # indices.json us_epa_aqi.negative_concentrations
    got = us_aqi("pm25", -3.0, "24h")
    assert got is not None and (got.value, got.concentration) == (0, 0.0)


def test_round_half_up_not_bankers():
    # examples.json EX028: O3 8-h 0.080 ppm → exactly 132.5 → 133 (round() would give 132)
    got = us_aqi("o3", convert(0.080, "ppm", "o3"), "8h")
    assert got is not None and got.value == 133


def test_exact_halves_are_not_lost_to_decimal_division():
    # CO 8-h 3.3 ppm: 50/4.4 · 3.3 = 37.5 exactly → 38 (a rounded Decimal quotient gives 37.4999… → 37)
    got = us_aqi("co", convert(3.3, "ppm", "co"), "8h")
    assert got is not None and got.value == 38


# ------------------------------------------------------------------ special rules

def test_ozone_8h_does_not_define_301_and_above():
    # indices.json us_epa_aqi.rules[1]: 8-h O3 > 0.200 ppm does not define AQI >= 301 - use 1-h O3
    assert us_aqi("o3", convert(0.200, "ppm", "o3"), "8h").value == 300
    assert us_aqi("o3", convert(0.201, "ppm", "o3"), "8h") is None
    assert us_aqi("o3", convert(0.405, "ppm", "o3"), "1h").value == 301


def test_ozone_1h_defines_only_101_and_above():
    # INDICES.md: the 1-h O3 column has no values below 0.125 ppm (AQI 101)
    assert us_aqi("o3", convert(0.124, "ppm", "o3"), "1h") is None
    assert us_aqi("o3", convert(0.125, "ppm", "o3"), "1h").value == 101


def test_so2_1h_only_up_to_200_and_24h_only_from_201():
    # indices.json us_epa_aqi.rules[2]
    assert us_aqi("so2", convert(304, "ppb", "so2"), "1h").value == 200
    assert us_aqi("so2", convert(304, "ppb", "so2"), "24h") is None
    assert us_aqi("so2", convert(305, "ppb", "so2"), "24h").value == 201


@pytest.mark.parametrize(("code", "averaging", "c", "unit"), [
    ("pm25", "24h", 400.0, "µg/m³"), ("pm10", "24h", 700, "µg/m³"), ("co", "8h", 60.0, "ppm"),
    ("no2", "1h", 2500, "ppb"), ("o3", "1h", 0.700, "ppm"), ("so2", "24h", 1100, "ppb"),
])
def test_above_the_top_breakpoint_extrapolates_and_flags(code, averaging, c, unit):
    # indices.json rules[3] / 40 CFR 58 App. G 12(ii): extrapolate with the last band, flag beyond_index
    got = us_aqi(code, _ugm3(code, c, unit), averaging)
    table = next(t for cc, a, t, *_ in TABLES if (cc, a) == (code, averaging))
    last = BREAKPOINTS[table][-1]
    lo, hi = Fraction(str(last["c_lo"])), Fraction(str(last["c_hi"]))
    exact = Fraction(last["i_hi"] - last["i_lo"]) / (hi - lo) * (Fraction(str(c)) - lo) + last["i_lo"]
    assert got is not None and got.beyond_index and got.value == math.floor(exact + Fraction(1, 2)) > 500
    assert (got.category, got.level) == ("Hazardous", 6)


def test_pm25_400_is_649_beyond_the_index():
    got = us_aqi("pm25", 400.0, "24h")  # examples.json EX019, AirMonitor's test
    assert got is not None and (got.value, got.beyond_index) == (649, True)


def test_variables_without_a_table_and_bad_averaging():
    assert us_aqi("temperature", 20.0, "1h") is None
    assert us_aqi("no", 20.0, "1h") is None
    with pytest.raises(ValueError, match=r"pm25 averaging '8h': expected one of \['24h', 'nowcast'\]"):
        us_aqi("pm25", 10.0, "8h")
    with pytest.raises(ValueError, match="expected a vocabulary code"):
        us_aqi("PM2.5", 10.0, "24h")
    with pytest.raises(ValueError, match="finite"):
        us_aqi("pm25", math.inf, "24h")


def test_indicative_is_carried():
    assert us_aqi("pm25", 10.0, "nowcast", indicative=True).indicative
    assert iboca("pm25", 10.0, indicative=True).indicative


# ------------------------------------------------------------------ IBOCA

IBOCA_CATS = INDICES["iboca"]["categories"]


def test_iboca_every_tenth_from_0_to_500_4():
    previous = -1
    for k in range(5005):
        c = Fraction(k, 10)
        got = iboca("pm25", float(c))
        assert got is not None and got.concentration == float(c)
        cat, seg = next((cat, seg) for cat in IBOCA_CATS for seg in cat["pm25_segments"]
                        if Fraction(str(seg["c_lo"])) <= c <= Fraction(str(seg["c_hi"])))
        lo, hi = Fraction(str(seg["c_lo"])), Fraction(str(seg["c_hi"]))
        exact = Fraction(seg["i_hi"] - seg["i_lo"]) / (hi - lo) * (c - lo) + seg["i_lo"]
        assert got.value == math.floor(exact + Fraction(1, 2))
        assert (got.level, got.category, got.colour, got.action) == (
            cat["level"], cat["name_es"], cat["color_hex"], cat["action_level_es"])
        assert cat["i_lo"] <= got.value <= cat["i_hi"] and not got.beyond_index
        assert got.value >= previous
        previous = got.value


def test_iboca_levels_are_the_resolution_table():
    # INDICES.md IBOCA table (Res. Conjunta 2840/2023 Tabla 1, secondary_single)
    rows = [(c["level"], c["name_es"], c["color_hex"], c["action_level_es"]) for c in IBOCA_CATS]
    assert rows == [(1, "Bajo", "#00E400", "Prevención"), (2, "Moderado", "#FFFF00", "Prevención"),
                    (3, "Regular", "#FF7E00", "Alerta fase 1"), (4, "Alto", "#FF0000", "Alerta fase 2"),
                    (5, "Peligroso", "#8F3F97", "Emergencia")]


def test_iboca_above_the_table_is_capped_at_500():
    # indices.json iboca.categories[4].above_top: level 5, index capped at 500 (aqnet choice)
    got = iboca("pm25", 600.0)
    assert got is not None and (got.value, got.level, got.concentration, got.beyond_index) == (500, 5, 600.0, True)


def test_iboca_is_not_the_2024_us_aqi():
    # INDICES.md: IBOCA's "Bajo" ends at 12.0, the 2024 US AQI's "Good" at 9.0
    assert iboca("pm25", 12.0).value == 50
    assert us_aqi("pm25", 12.0, "nowcast").value == 56


def test_iboca_other_pollutants_and_averaging():
    assert iboca("pm10", 50.0) is None  # indices.json iboca.pollutants: PM10 … unverified
    assert iboca("o3", 50.0) is None
    with pytest.raises(ValueError, match="expected 'nowcast'"):
        iboca("pm25", 10.0, "24h")
    with pytest.raises(ValueError, match="vocabulary code"):
        iboca("PM2.5", 10.0)
    got = iboca("pm25", -1.0)
    assert got is not None and got.value == 0


# ------------------------------------------------------------------ dominant

def _iv(pollutant: str, value: int, index: str = "us_aqi") -> IndexValue:
    return IndexValue(index=index, pollutant=pollutant, averaging="1h", value=value, category="x", colour="#000000",
                      concentration=1.0, unit="ppb", level=1)


def test_dominant_is_the_highest_and_ties_follow_the_fixed_order():
    assert dominant([]) is None
    assert dominant([_iv("no2", 38), _iv("pm25", 90), _iv("o3", 74)]).pollutant == "pm25"  # examples.json EX038
    assert dominant([_iv("no2", 90), _iv("o3", 90)]).pollutant == "o3"
    assert dominant([_iv("o3", 90), _iv("no2", 90)]).pollutant == "o3"
    assert dominant([_iv("so2", 90), _iv("co", 90), _iv("pm10", 90)]).pollutant == "pm10"


def test_dominant_refuses_mixed_indices():
    with pytest.raises(ValueError, match="several indices"):
        dominant([_iv("pm25", 10), _iv("pm25", 12, "iboca")])


@given(st.permutations([_iv(p, v) for p, v in zip(AQI_POLLUTANTS, [5, 90, 90, 7, 90, 1], strict=True)]))
def test_dominant_does_not_depend_on_input_order(values):
    assert dominant(values).pollutant == "pm10"


def test_index_value_checks():
    with pytest.raises(ValueError, match="IndexValue.index"):
        _iv("pm25", 1, "aqi")
    with pytest.raises(ValueError, match="IndexValue.value"):
        _iv("pm25", -1)


# ------------------------------------------------------------------ daily AQI

def test_daily_aqi_uses_the_epa_averaging_per_pollutant():
    # indices.json us_epa_aqi.rules[0]: PM 24-h mean; O3, CO day's max 8-h; NO2, SO2 day's max 1-h
    day = {
        "pm25": DailyInputs(mean_24h=30.0, max_8h=500.0, max_1h=500.0),
        "co": DailyInputs(mean_24h=99999.0, max_8h=convert(9.5, "ppm", "co"), max_1h=99999.0),
        "no2": DailyInputs(mean_24h=9999.0, max_8h=9999.0, max_1h=convert(54, "ppb", "no2")),
    }
    got = {v.pollutant: v for v in daily_us_aqi(day)}
    assert (got["pm25"].value, got["pm25"].averaging) == (90, "day_24h")
    assert (got["co"].value, got["co"].averaging) == (101, "day_max_8h")
    assert (got["no2"].value, got["no2"].averaging) == (51, "day_max_1h")
    assert dominant(got.values()).pollutant == "co"


_input_st = st.one_of(st.none(), st.floats(0, 5000, allow_nan=False))


@given(st.dictionaries(st.sampled_from(AQI_POLLUTANTS), st.tuples(_input_st, _input_st, _input_st)), st.booleans())
def test_daily_aqi_reads_only_its_daily_inputs(day, indicative):
    # the index job reads from the database only the inputs DAILY_INPUTS names: the others change nothing
    full = {v: DailyInputs(mean_24h=a, max_8h=b, max_1h=c) for v, (a, b, c) in day.items()}
    read = {v: DailyInputs(**{f: getattr(d, f) if a in DAILY_INPUTS[v] else None for f, a in
                              (("mean_24h", "24h"), ("max_8h", "8h"), ("max_1h", "1h"))}) for v, d in full.items()}
    assert daily_us_aqi(read, indicative=indicative) == daily_us_aqi(full, indicative=indicative)
    assert DAILY_INPUTS["pm25"] == ("24h",) and set(DAILY_INPUTS["o3"]) == {"8h", "1h"}


def test_daily_ozone_reports_the_larger_of_8h_and_1h():
    # indices.json rules[1]: "the larger of the 1-h and 8-h indices may be reported"
    (only_8h,) = daily_us_aqi({"o3": DailyInputs(max_8h=convert(0.080, "ppm", "o3"),
                                                 max_1h=convert(0.100, "ppm", "o3"))})
    assert (only_8h.value, only_8h.averaging) == (133, "day_max_8h")  # 1-h below 0.125 defines nothing
    (by_1h,) = daily_us_aqi({"o3": DailyInputs(max_8h=convert(0.080, "ppm", "o3"),
                                               max_1h=convert(0.200, "ppm", "o3"))})
    assert (by_1h.value, by_1h.averaging) == (195, "day_max_1h")  # 49/0.039 · 0.035 + 151 = 194.97 > 133
    (above,) = daily_us_aqi({"o3": DailyInputs(max_8h=convert(0.250, "ppm", "o3"),
                                               max_1h=convert(0.450, "ppm", "o3"))})
    # 8-h 0.250 > 0.200 defines nothing; 1-h 0.450: 199/0.199 · (0.450 − 0.405) + 301 = 346
    assert above.value == 346 and above.averaging == "day_max_1h"


def test_daily_so2_switches_to_24h_above_200():
    low = daily_us_aqi({"so2": DailyInputs(mean_24h=convert(400, "ppb", "so2"), max_1h=convert(100, "ppb", "so2"))})
    # 1-h 100 ppb: 49/109 · (100 − 76) + 101 = 111.8 → 112
    assert [(v.value, v.averaging) for v in low] == [(112, "day_max_1h")]
    high = daily_us_aqi({"so2": DailyInputs(mean_24h=convert(400, "ppb", "so2"), max_1h=convert(500, "ppb", "so2"))})
    # 1-h 500 ppb > 304 defines nothing; 24-h 400 ppb: 99/299 · (400 − 305) + 201 = 232.45 → 232
    assert [(v.value, v.averaging) for v in high] == [(232, "day_24h")]


@pytest.mark.parametrize("ppb", [305, 306, 500, 604, 605, 1004, 2000])
def test_so2_1h_at_or_above_305_ppb_is_200(ppb):
    """EPA-454/B-24-002 p.16 (indices.json `us_epa_aqi.rules[2]`, INDICES.md): "when the daily maximum 1-h SO2 is
    >= 305 ppb and the 24-h average is < 305 ppb, use 200 for the lower and upper AQI breakpoints, i.e. the SO2 AQI
    is 200". An hourly value has no 24-h average beside it: it gets 200, never no index."""
    got = us_aqi("so2", convert(ppb, "ppb", "so2"), "1h")
    assert got is not None
    assert (got.value, got.category, got.level, got.concentration, got.beyond_index) == (
        200, "Unhealthy", 4, float(ppb), False)


@pytest.mark.parametrize(("max_1h", "mean_24h", "expected"), [
    (305, 100, (200, "day_max_1h")),  # 1-h >= 305, 24-h < 305: 200
    (500, 304, (200, "day_max_1h")),
    (900, None, (200, "day_max_1h")),  # no valid 24-h mean: the 1-h rule alone still gives 200
    (500, 305, (201, "day_24h")),  # 24-h >= 305: the 24-h table (305 ppb → 201)
    (500, 400, (232, "day_24h")),  # 99/299 · (400 − 305) + 201 = 232.45 → 232
    (304, 100, (200, "day_max_1h")),  # 1-h table's top band
])
def test_daily_so2_at_or_above_305_ppb(max_1h, mean_24h, expected):
    """EPA-454/B-24-002 p.16 (indices.json `us_epa_aqi.rules[2]`): "when the daily maximum 1-h SO2 is >= 305 ppb
    and the 24-h average is < 305 ppb, use 200 for the lower and upper AQI breakpoints, i.e. the SO2 AQI is 200
    (when the 24-h average is >= 305 ppb, the 24-h table gives the AQI)"."""
    day = {"so2": DailyInputs(mean_24h=None if mean_24h is None else convert(mean_24h, "ppb", "so2"),
                              max_1h=convert(max_1h, "ppb", "so2"))}
    assert [(v.value, v.averaging) for v in daily_us_aqi(day)] == [expected]


def test_daily_missing_inputs_and_order_and_unknown():
    assert daily_us_aqi({"pm10": DailyInputs(), "o3": DailyInputs()}) == ()
    day = {p: DailyInputs(mean_24h=1.0, max_8h=1.0, max_1h=1.0) for p in reversed(AQI_POLLUTANTS)}
    out = daily_us_aqi(day, indicative=True)
    assert [v.pollutant for v in out] == ["pm25", "pm10", "o3", "co", "so2", "no2"]
    assert all(v.indicative for v in out)
    with pytest.raises(ValueError, match=r"\['temperature'\]"):
        daily_us_aqi({"temperature": DailyInputs(mean_24h=1.0)})


# ------------------------------------------------------------------ properties

@pytest.mark.parametrize(("code", "averaging", "table", "unit", "step"), TABLES, ids=TABLE_IDS)
@given(data=st.data())
def test_aqi_is_monotonic_in_concentration(code, averaging, table, unit, step, data):
    top = float(Fraction(str(BREAKPOINTS[table][-1]["c_hi"])) * 2)
    a = data.draw(st.floats(-1.0, top, allow_nan=False))
    b = data.draw(st.floats(a, top, allow_nan=False))
    lo, hi = us_aqi(code, _ugm3(code, a, unit), averaging), us_aqi(code, _ugm3(code, b, unit), averaging)
    if lo is not None and hi is not None:
        assert lo.value <= hi.value
        assert lo.level <= hi.level
    # an undefined region is only at the bottom (O3 1-h, SO2 24-h) or at the top (O3 8-h; SO2 1-h ≥ 305 ppb is
    # 200, EPA-454/B-24-002 p.16)
    if lo is None and hi is not None:
        assert (code, averaging) in {("o3", "1h"), ("so2", "24h")}
    if hi is None and lo is not None:
        assert (code, averaging) == ("o3", "8h")


@given(st.floats(-10, 1000, allow_nan=False), st.floats(-10, 1000, allow_nan=False))
def test_iboca_is_monotonic_in_concentration(a, b):
    a, b = sorted((a, b))
    assert iboca("pm25", a).value <= iboca("pm25", b).value
