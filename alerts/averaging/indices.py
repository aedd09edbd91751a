"""Air quality indices: the US EPA AQI (2024 PM2.5 revision) for six pollutants and Bogotá's IBOCA for PM2.5.
Pure: no I/O (the tables come from the bundled indices.json, `sensors.domain.load("indices")`), no clock.

Every breakpoint, category name, colour and action text is read from indices.json; nothing here invents one.

Inputs are concentrations in the canonical unit, µg/m³ at reference conditions (VARIABLES.md), named by
vocabulary code: pm25, pm10, o3, co, no2, so2. The US AQI tables for the gases are in ppm / ppb:
`to_table_units` converts back at the reference molar volume 24.45 L/mol (`ingest.units`) and rounds to 9
decimals (VARIABLES.md "The US AQI from stored values"); then the concentration is truncated to the pollutant's
precision (indices.json `us_epa_aqi.truncation`: O3 ppm 3 dp, PM2.5 1 dp, PM10 integer, CO ppm 1 dp, SO2 and NO2
ppb integer) on its decimal string (examples.json `conventions.truncation`), a negative one taken as 0
(indices.json `negative_concentrations`). The index is I = (I_hi − I_lo)/(C_hi − C_lo)·(C − C_lo) + I_lo in
exact integer arithmetic on quanta of the truncation precision (CO 3.3 ppm is exactly 37.5, which a Decimal
quotient would make 37.4999…), rounded half-up (indices.json `formula` / `rounding`; never Python's round()).

Averaging names (the `averaging` argument and `IndexValue.averaging`; JOBS stores them in `indices.averaging`):
- 'nowcast': the hourly NowCast (`alerts.averaging.nowcast`) of PM2.5 / PM10, looked up in the PM 24-h tables (US AQI)
  and in IBOCA's table (Res. Conjunta 2840/2023 art. 5: IBOCA's input is the PM2.5 NowCast). IBOCA takes only
  'nowcast'.
- '24h': a 24-hour mean: PM2.5, PM10 (PM tables), SO2 (24-h table, AQI ≥ 201 only).
- '8h': an 8-hour mean: O3 (8-h table), CO.
- '1h': a 1-hour value: O3 (1-h table, AQI ≥ 101 only), NO2, SO2 (1-h table, AQI ≤ 200 only).
- the daily US AQI (`daily_us_aqi`, indices.json `us_epa_aqi.rules[0]`) stamps its values 'day_24h' (from the
  day's 24-hour mean: PM2.5, PM10, SO2 above 200), 'day_max_8h' (from the day's maximum 8-hour mean: O3, CO) and
  'day_max_1h' (from the day's maximum 1-hour value: NO2, SO2, O3's 1-h table), so a daily row never collides
  with an hourly one ending at the same midnight.

Special rules (indices.json `us_epa_aqi.rules`), where `us_aqi` returns None:
- O3 '8h' above 0.200 ppm: "8-h O3 > 0.200 ppm does not define AQI >= 301 - use 1-h O3".
- O3 '1h' below 0.125 ppm: the 1-h table starts at AQI 101 (INDICES.md table: "–" below 0.125).
- SO2 '24h' below 305 ppb: "for AQI >= 201 use 24-h SO2": the 24-h table starts at 305 ppb.
SO2 '1h' at or above 305 ppb is not None but 200 (category 'Unhealthy', not `beyond_index`): EPA-454/B-24-002 p.16
(indices.json `us_epa_aqi.rules[2]`): "when the daily maximum 1-h SO2 is >= 305 ppb and the 24-h average is
< 305 ppb, use 200 for the lower and upper AQI breakpoints, i.e. the SO2 AQI is 200 (when the 24-h average is
>= 305 ppb, the 24-h table gives the AQI)". An hourly value stands alone (no 24-h average beside it), so it gets
200; `daily_us_aqi` applies the 24-h half of the sentence.
Above the top breakpoint of any other table (PM2.5 > 325.4, PM10 > 604, CO > 50.4, NO2 > 2049, O3 1-h > 0.604,
SO2 24-h > 1004) aqnet extrapolates with the last band and sets `beyond_index` (indices.json rules[3]:
"RECOMMENDED extrapolate and flag beyond_index=true", 40 CFR 58 App. G 12(ii); examples.json EX019: 400 µg/m³
PM2.5 → 649). IBOCA above 500.4 µg/m³ stays level 5 with the index capped at 500 (indices.json
`iboca.categories[4].above_top`, an aqnet choice; `beyond_index` set too).

Dominant pollutant (`dominant`): the highest value (indices.json `formula`: "the reported AQI is the maximum
sub-index over pollutants"). The domain files give no tie rule: aqnet breaks ties by the fixed pollutant order
of indices.json's breakpoint tables, pm25, pm10, o3, co, so2, no2 (then any other code alphabetically), so the
result does not depend on the order of the input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache, lru_cache
from typing import Any, Literal

from alerts.averaging.nowcast import denoise, truncated_quanta
from ingest.units import from_canonical
from sensors.domain import load
from sensors.variables import VARIABLES

__all__ = [
    "AQI_POLLUTANTS",
    "DAILY_AVERAGING",
    "DAILY_INPUTS",
    "DailyInputs",
    "IndexValue",
    "daily_us_aqi",
    "dominant",
    "iboca",
    "to_table_units",
    "truncate_to_table",
    "us_aqi",
]

IndexName = Literal["iboca", "us_aqi"]

#: vocabulary code → (indices.json pollutant name, table unit, decimals kept by the truncation); the unit and
#: precision are indices.json `us_epa_aqi.truncation` ("O3": "ppm, 3 decimals", "PM2.5": "ug/m3, 1 decimal",
#: "PM10": "ug/m3, integer", "CO": "ppm, 1 decimal", "SO2": "ppb, integer", "NO2": "ppb, integer")
_POLLUTANTS: dict[str, tuple[str, str, int]] = {
    "pm25": ("PM2.5", "µg/m³", 1),
    "pm10": ("PM10", "µg/m³", 0),
    "o3": ("O3", "ppm", 3),
    "co": ("CO", "ppm", 1),
    "so2": ("SO2", "ppb", 0),
    "no2": ("NO2", "ppb", 0),
}
#: the pollutants with a US AQI table, in the tie-break order of `dominant` (indices.json breakpoint tables)
AQI_POLLUTANTS: tuple[str, ...] = tuple(_POLLUTANTS)

#: (code, averaging) → indices.json `us_epa_aqi.breakpoints` key
_US_TABLES: dict[tuple[str, str], str] = {
    ("pm25", "24h"): "PM2.5_24h_ugm3",
    ("pm25", "nowcast"): "PM2.5_24h_ugm3",
    ("pm10", "24h"): "PM10_24h_ugm3",
    ("pm10", "nowcast"): "PM10_24h_ugm3",
    ("o3", "8h"): "O3_8h_ppm",
    ("o3", "1h"): "O3_1h_ppm",
    ("co", "8h"): "CO_8h_ppm",
    ("so2", "1h"): "SO2_1h_ppb",
    ("so2", "24h"): "SO2_24h_ppb",
    ("no2", "1h"): "NO2_1h_ppb",
}
#: tables that end where another averaging takes over: no extrapolation above their top (indices.json rules[1]:
#: 8-h O3 stops at AQI 300)
_NO_EXTRAPOLATION = frozenset({"O3_8h_ppm"})
#: tables whose values above their top get one fixed index, not an extrapolation: 1-h SO2 ≥ 305 ppb → 200
#: (EPA-454/B-24-002 p.16, indices.json `us_epa_aqi.rules[2]`: "use 200 for the lower and upper AQI breakpoints")
_ABOVE_TOP_FIXED: dict[str, int] = {"SO2_1h_ppb": 200}

#: IBOCA's input is truncated to 0.1 µg/m³ (indices.json `iboca.concentration_input`: "truncation to 0.1 ug/m3 is
#: an assumption (the resolution reportedly does not state rounding)")
IBOCA_DECIMALS = 1

#: the daily averaging names (module docstring; indices.json `us_epa_aqi.rules[0]`)
DAILY_AVERAGING = {"24h": "day_24h", "8h": "day_max_8h", "1h": "day_max_1h"}
#: code → the `DailyInputs` that `daily_us_aqi` reads for it ('24h' mean_24h, '8h' max_8h, '1h' max_1h): the daily
#: averagings that have a US AQI table (the others are never looked up, so the index job does not read them)
DAILY_INPUTS: dict[str, tuple[str, ...]] = {
    code: tuple(a for a in DAILY_AVERAGING if (code, a) in _US_TABLES) for code in AQI_POLLUTANTS}


@dataclass(frozen=True, slots=True)
class IndexValue:
    """One sub-index of one pollutant: the value, its band's category and colour, and the concentration used."""

    index: IndexName  #: 'iboca' or 'us_aqi'
    pollutant: str  #: vocabulary code, e.g. 'pm25'
    averaging: str  #: 'nowcast', '24h', '8h', '1h', 'day_24h', 'day_max_8h', 'day_max_1h' (module docstring)
    value: int  #: the index, rounded half-up (> 500 only when `beyond_index` for the US AQI)
    category: str  #: category name from indices.json (US: 'Good' …; IBOCA: name_es, 'Bajo' …)
    colour: str  #: '#RRGGBB' from indices.json
    concentration: float  #: truncated concentration looked up, in `unit`
    unit: str  #: the table's unit: 'µg/m³', 'ppm' or 'ppb'
    level: int  #: 1-based category number (US AQI 1–6, IBOCA 1–5 as indices.json numbers them)
    action: str | None = None  #: IBOCA action level (indices.json action_level_es, e.g. 'Alerta fase 1')
    indicative: bool = False  #: True for microsensor values (indicative, not reference measurements)
    beyond_index: bool = False  #: concentration above the table's top breakpoint (module docstring)

    def __post_init__(self) -> None:
        if self.index not in ("iboca", "us_aqi"):
            raise ValueError(f"IndexValue.index: expected 'iboca' or 'us_aqi', got {self.index!r}")
        if self.value < 0:
            raise ValueError(f"IndexValue.value: expected >= 0, got {self.value}")
        if not (math.isfinite(self.concentration) and self.concentration >= 0):
            raise ValueError(f"IndexValue.concentration: expected a finite number >= 0, got {self.concentration}")


@dataclass(frozen=True, slots=True)
class DailyInputs:
    """One pollutant's day, in µg/m³ (canonical unit), each None when not valid or not available.

    - `mean_24h`: the day's valid 'day' average (calendar day, network time zone): PM2.5, PM10, SO2 ≥ 201.
    - `max_8h`: the largest valid '8h' rolling average of the day: O3, CO (which 8-h windows belong to a day is
      the caller's choice; aqnet stamps them by their end, EPA by their start: norms.json
      `averaging_conventions.8h_rolling`).
    - `max_1h`: the largest valid '1h' average of the day: NO2, SO2, O3 (1-h table).
    """

    mean_24h: float | None = None
    max_8h: float | None = None
    max_1h: float | None = None


@cache
def _indices() -> Any:
    return load("indices")


def _pollutant(variable: str, caller: str) -> tuple[str, str, int] | None:
    if variable not in VARIABLES:
        raise ValueError(f"{caller}: variable {variable!r}: expected a vocabulary code, one of "
                         f"{', '.join(sorted(VARIABLES))}")
    return _POLLUTANTS.get(variable)


def to_table_units(variable: str, ugm3: float) -> float:
    """µg/m³ (canonical, reference conditions) → the US AQI table unit of `variable`: ppm for O3 and CO, ppb for
    NO2 and SO2 at 24.45 L/mol (`ingest.units.from_canonical`), rounded half-up to 9 decimals to remove
    floating-point noise (VARIABLES.md "The US AQI from stored values"); PM is returned unchanged (µg/m³).
    The truncation to the pollutant's precision is `truncate_to_table`."""
    spec = _pollutant(variable, "to_table_units")
    if spec is None:
        raise ValueError(f"to_table_units: variable {variable!r} has no US AQI table: expected one of "
                         f"{', '.join(AQI_POLLUTANTS)}")
    if not math.isfinite(ugm3):
        raise ValueError(f"to_table_units: {variable}: expected a finite concentration, got {ugm3}")
    _, unit, _ = spec
    if unit == "µg/m³":
        return ugm3
    converted = from_canonical(ugm3, unit, variable)
    return float(denoise(converted))


def truncate_to_table(variable: str, ugm3: float) -> float:
    """The concentration the US AQI looks up: `to_table_units`, negative → 0 (indices.json
    `negative_concentrations`), truncated to the pollutant's precision (indices.json `us_epa_aqi.truncation`)."""
    decimals = _POLLUTANTS[variable][2] if variable in _POLLUTANTS else 0
    scale: int = 10**decimals
    return truncated_quanta(max(to_table_units(variable, ugm3), 0.0), decimals) / scale


@dataclass(frozen=True, slots=True)
class _Segment:
    """One band of a table, parsed once, its bounds in integer quanta of the table's truncation precision
    (e.g. tenths of µg/m³ for PM2.5): every breakpoint is a whole number of quanta, so lookups and the
    interpolation are exact integer arithmetic (no float, and no rounded Decimal quotient: CO 3.3 ppm is
    exactly 37.5 → 38, where 50/4.4 in Decimal gives 37.4999… → 37)."""

    q_lo: int
    q_hi: int
    i_lo: int
    i_hi: int
    category: int  #: 0-based category of the band (IBOCA; US AQI categories follow from the value)

    def index(self, q: int) -> int:
        """indices.json formula I = (I_hi − I_lo)/(C_hi − C_lo)·(C − C_lo) + I_lo, rounded half-up:
        I_lo + floor((2·num + den) / (2·den)) with num = (I_hi − I_lo)(q − q_lo) ≥ 0, den = q_hi − q_lo."""
        num, den = (self.i_hi - self.i_lo) * (q - self.q_lo), self.q_hi - self.q_lo
        return self.i_lo + (2 * num + den) // (2 * den)


def _parse(seg: Mapping[str, Any], decimals: int, where: str, category: int = 0) -> _Segment:
    bounds = []
    for key in ("c_lo", "c_hi"):
        q = Fraction(str(seg[key])) * 10**decimals
        if q.denominator != 1:
            raise ValueError(f"indices.json {where}: {key} {seg[key]} is finer than the table's truncation "
                             f"({decimals} decimals)")
        bounds.append(int(q))
    return _Segment(bounds[0], bounds[1], int(seg["i_lo"]), int(seg["i_hi"]), category)


@cache
def _us_table(variable: str, key: str) -> tuple[_Segment, ...]:
    decimals = _POLLUTANTS[variable][2]
    segments = _indices()["us_epa_aqi"]["breakpoints"][key]
    return tuple(_parse(seg, decimals, f"us_epa_aqi.breakpoints.{key}[{n}]") for n, seg in enumerate(segments))


@cache
def _iboca_table() -> tuple[_Segment, ...]:
    return tuple(_parse(seg, IBOCA_DECIMALS, f"iboca.categories[{n}].pm25_segments", n)
                 for n, cat in enumerate(_indices()["iboca"]["categories"]) for seg in cat["pm25_segments"])


def _segment(q: int, segments: tuple[_Segment, ...]) -> _Segment | None:
    for seg in segments:
        if seg.q_lo <= q <= seg.q_hi:
            return seg
    return None


def _us_category(value: int) -> tuple[int, dict[str, Any]]:
    cats = _indices()["us_epa_aqi"]["categories"]
    for level, cat in enumerate(cats, start=1):
        if cat["i_lo"] <= value <= cat["i_hi"]:
            return level, cat
    return len(cats), cats[-1]  # beyond the index (> 500): still the last category, 'Hazardous'


def us_aqi(variable: str, concentration_ugm3: float, averaging: str, *, indicative: bool = False
           ) -> IndexValue | None:
    """The US EPA AQI sub-index of `variable` for a concentration in µg/m³ over `averaging` ('nowcast', '24h',
    '8h', '1h'; module docstring), or None when the EPA's rules say that averaging defines no index at that
    level (O3 8-h > 0.200 ppm, O3 1-h < 0.125 ppm, SO2 24-h < 305 ppb) or `variable` has no AQI table (a
    vocabulary code other than pm25, pm10, o3, co, so2, no2). SO2 1-h ≥ 305 ppb is 200 (EPA-454/B-24-002 p.16;
    module docstring). A pollutant with a table but not for `averaging` (e.g. pm25 '8h') raises ValueError."""
    spec = _pollutant(variable, "us_aqi")
    if spec is None:
        return None
    table_key = _US_TABLES.get((variable, averaging))
    if table_key is None:
        accepted = sorted(a for v, a in _US_TABLES if v == variable)
        raise ValueError(f"us_aqi: {variable} averaging {averaging!r}: expected one of {accepted}")
    q = truncated_quanta(max(to_table_units(variable, concentration_ugm3), 0.0), spec[2])
    return _us_aqi_at(variable, table_key, averaging, q, indicative)


@lru_cache(maxsize=8192)
def _us_aqi_at(variable: str, table_key: str, averaging: str, q: int, indicative: bool) -> IndexValue | None:
    """`us_aqi` from the truncated concentration `q` (in quanta of the table's precision) on: a few thousand
    distinct values a run, so the averaging job's many series share the lookups."""
    _, unit, decimals = _POLLUTANTS[variable]
    segments = _us_table(variable, table_key)
    seg = _segment(q, segments)
    beyond = False
    if seg is None:
        if q < segments[0].q_lo:
            return None  # below a table that starts above 0: O3 1-h (< 0.125 ppm), SO2 24-h (< 305 ppb)
        if table_key in _NO_EXTRAPOLATION:
            return None  # O3 8-h > 0.200 ppm: the 1-h table defines these levels
        fixed = _ABOVE_TOP_FIXED.get(table_key)
        if fixed is not None:  # SO2 1-h ≥ 305 ppb: I_lo = I_hi = 200 (EPA-454/B-24-002 p.16), so I = 200
            seg = _Segment(q, q + 1, fixed, fixed, 0)
        else:
            seg, beyond = segments[-1], True  # 40 CFR 58 App. G 12(ii): extrapolate with the last band
    value = seg.index(q)
    level, cat = _us_category(value)
    return IndexValue(index="us_aqi", pollutant=variable, averaging=averaging, value=value, category=cat["name"],
                      colour=cat["color_hex"], concentration=q / 10**decimals, unit=unit, level=level,
                      indicative=indicative, beyond_index=beyond)


@lru_cache(maxsize=8192)
def _as_daily(value: IndexValue, averaging: str) -> IndexValue:
    """`value` under its daily averaging name (shared like `_us_aqi_at`)."""
    return replace(value, averaging=averaging)


def iboca(variable: str, concentration_ugm3: float, averaging: str = "nowcast", *, indicative: bool = False
          ) -> IndexValue | None:
    """Bogotá's IBOCA (Res. Conjunta 2840/2023, indices.json `iboca`, secondary_single) of the PM2.5 NowCast in
    µg/m³: truncated to 0.1 µg/m³ (indices.json `concentration_input`), negative → 0, clamped to [0, 500.4] for
    the lookup (indices.json `formula`), interpolated and rounded half-up (art. 6); above 500.4 the index is
    capped at 500, level 5 (`above_top`, an aqnet choice), with `beyond_index` set. None for any other
    vocabulary code: IBOCA's sub-indices for PM10, O3, NO2, SO2, CO are unverified (indices.json
    `iboca.pollutants`). `averaging` must be 'nowcast' (art. 5)."""
    if _pollutant(variable, "iboca") is None or variable != "pm25":
        return None
    if averaging != "nowcast":
        raise ValueError(f"iboca: averaging {averaging!r}: expected 'nowcast' (IBOCA's input is the PM2.5 NowCast, "
                         "Res. Conjunta 2840/2023 art. 5)")
    if not math.isfinite(concentration_ugm3):
        raise ValueError(f"iboca: pm25: expected a finite concentration, got {concentration_ugm3}")
    q = truncated_quanta(max(concentration_ugm3, 0.0), IBOCA_DECIMALS)
    segments = _iboca_table()
    beyond = q > segments[-1].q_hi
    seg = segments[-1] if beyond else _segment(q, segments)
    if seg is None:  # cannot happen: the table covers 0.0 … 500.4 at 0.1 µg/m³ without gaps
        raise ValueError(f"iboca: pm25 {q / 10**IBOCA_DECIMALS} µg/m³ falls between the bands of indices.json")
    cat = _indices()["iboca"]["categories"][seg.category]
    value = seg.i_hi if beyond else seg.index(q)
    return IndexValue(index="iboca", pollutant="pm25", averaging="nowcast", value=value, category=cat["name_es"],
                      colour=cat["color_hex"], concentration=q / 10**IBOCA_DECIMALS, unit="µg/m³",
                      level=int(cat["level"]), action=cat["action_level_es"], indicative=indicative,
                      beyond_index=beyond)


def _tie_rank(value: IndexValue) -> tuple[int, str]:
    order = AQI_POLLUTANTS.index(value.pollutant) if value.pollutant in AQI_POLLUTANTS else len(AQI_POLLUTANTS)
    return order, value.pollutant


def dominant(values: Iterable[IndexValue]) -> IndexValue | None:
    """The sub-index that sets the reported index: the highest value (indices.json `us_epa_aqi.formula`: "the
    reported AQI is the maximum sub-index over pollutants"); ties go to the first pollutant in the order pm25,
    pm10, o3, co, so2, no2 (an aqnet rule; module docstring). None for no values. All values must be of one
    index (IBOCA and US AQI are different scales)."""
    items = list(values)
    if not items:
        return None
    kinds = {v.index for v in items}
    if len(kinds) > 1:
        raise ValueError(f"dominant: values of several indices {sorted(kinds)}: expected one index")
    return min(items, key=lambda v: (-v.value, *_tie_rank(v)))


def daily_us_aqi(day: Mapping[str, DailyInputs], *, indicative: bool = False) -> tuple[IndexValue, ...]:
    """The daily US AQI sub-indices of one site's day (indices.json `us_epa_aqi.rules[0]`: "Daily AQI uses the
    24-h average for PM (not NowCast) and the daily maximum 8-h (O3, CO) or 1-h (NO2, SO2) value"):

    - pm25, pm10: `mean_24h` → 'day_24h'.
    - co: `max_8h` → 'day_max_8h'. no2: `max_1h` → 'day_max_1h'.
    - o3: `max_8h` (8-h table, up to AQI 300) and `max_1h` (1-h table, from AQI 101); when both define an index
      the larger is reported (rules[1]: "the larger of the 1-h and 8-h indices may be reported").
    - so2: `max_1h` while it is ≤ 304 ppb (1-h table, AQI ≤ 200). At or above 305 ppb, EPA-454/B-24-002 p.16
      (rules[2]): "when the daily maximum 1-h SO2 is >= 305 ppb and the 24-h average is < 305 ppb, use 200 for
      the lower and upper AQI breakpoints, i.e. the SO2 AQI is 200 (when the 24-h average is >= 305 ppb, the
      24-h table gives the AQI)": the 24-h table from `mean_24h` when it is ≥ 305 ppb ('day_24h'), otherwise 200
      ('day_max_1h'; also when the day has no valid 24-h mean, since the 1-h value alone reaches 200).

    `day` maps vocabulary codes to their inputs; a code without an AQI table raises ValueError. Returns the
    sub-indices in the order pm25, pm10, o3, co, so2, no2 (pass them to `dominant` for the day's AQI).
    """
    unknown = sorted(set(day) - set(AQI_POLLUTANTS))
    if unknown:
        raise ValueError(f"daily_us_aqi: {unknown}: expected pollutants with a US AQI table, "
                         f"{', '.join(AQI_POLLUTANTS)}")

    def one(variable: str, ugm3: float | None, averaging: str) -> IndexValue | None:
        if ugm3 is None:
            return None
        value = us_aqi(variable, ugm3, averaging, indicative=indicative)
        return None if value is None else _as_daily(value, DAILY_AVERAGING[averaging])

    out: list[IndexValue] = []
    for variable in AQI_POLLUTANTS:
        if variable not in day:
            continue
        d = day[variable]
        chosen: IndexValue | None
        if variable in ("pm25", "pm10"):
            chosen = one(variable, d.mean_24h, "24h")
        elif variable == "co":
            chosen = one(variable, d.max_8h, "8h")
        elif variable == "no2":
            chosen = one(variable, d.max_1h, "1h")
        elif variable == "o3":
            both = [v for v in (one(variable, d.max_8h, "8h"), one(variable, d.max_1h, "1h")) if v is not None]
            chosen = max(both, key=lambda v: v.value) if both else None
        else:  # so2
            chosen = one(variable, d.max_1h, "1h")
            if chosen is None or chosen.concentration > _us_table("so2", "SO2_1h_ppb")[-1].q_hi:
                # 1-h ≥ 305 ppb (or none): the 24-h table when the 24-h mean is ≥ 305 ppb (it starts there)
                chosen = one(variable, d.mean_24h, "24h") or chosen
        if chosen is not None:
            out.append(chosen)
    return tuple(out)
