"""Unit parsing and conversion to each variable's canonical unit (ingest stage). Pure.

Contract:
- `parse_unit` maps an accepted spelling ("ug/m3", "µg/m³", "μg/m3", "degC", "deg", "mm Hg", ...) to one
  canonical spelling, or raises `UnitError`.
- `convert(value, from_unit, variable_code)` returns the value in the variable's canonical unit
  (`sensors.variables`). Gases reported as mixing ratios (ppb, ppm) are converted directly at the
  reference molar volume, 24.45 L/mol (25 °C, 1 atm), in both directions: a mixing ratio does not depend
  on T or P, so no T/P correction is ever applied to it (VARIABLES.md, CONVERSIONS.md). Mass
  concentrations are only rescaled (mg/ng → µg); their local → reference correction is
  `to_reference_conditions`, applied by `ingest.normalise`.
- A unit that is unknown, or does not fit the variable, raises `UnitError` naming both.

Molecular weights come from the bundled `conversions.json` (CRC atomic weights), keyed by `Variable.molecule`.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from dataclasses import dataclass

from sensors.domain import load
from sensors.variables import Kind, variable

__all__ = [
    "MMHG_TO_HPA",
    "MOLAR_VOLUME_L",
    "P_REF_HPA",
    "T_REF_K",
    "Conversion",
    "UnitError",
    "accepted_units",
    "conversion",
    "convert",
    "from_canonical",
    "molar_mass",
    "parse_unit",
    "ppb_to_ugm3",
    "reference_factor",
    "to_reference_conditions",
    "ugm3_to_ppb",
]

#: Molar volume of an ideal gas at 25 °C, 1 atm, L/mol: the conventional rounded value (US EPA;
#: conversions.json constants.molar_volume_25C_1atm_L.conventional). The exact 24.4654 differs by 0.06 %;
#: aqnet uses 24.45 in both directions (VARIABLES.md: NO2 40 ppb = 75.2646 µg/m³).
MOLAR_VOLUME_L = 24.45
#: Reference pressure of Resolución 2254 de 2017: 760 mmHg = 1013.25 hPa (norms.json reference_conditions).
P_REF_HPA = 1013.25
#: Reference temperature of Resolución 2254 de 2017: 25 °C = 298.15 K (norms.json reference_conditions).
T_REF_K = 298.15
#: 0 °C in kelvin (SI definition; conversions.json constants.zero_C_in_K).
ZERO_C_IN_K = 273.15
#: 1 mmHg (conventional millimetre of mercury, 133.322387415 Pa) in hPa (NIST SP 811 appendix B.8;
#: conversions.json constants.mmHg_to_hPa). CONVERSIONS.md rounds it to 1.33322.
MMHG_TO_HPA = 1.33322387415
#: 1 inHg (conventional, 0 °C) in hPa: 3386.389 Pa (NIST SP 811, appendix B.8).
INHG_TO_HPA = 33.86389


class UnitError(ValueError):
    """A unit aqnet does not know, or that does not fit the variable (permanent: dead-letter the reading)."""

    def __init__(self, unit: str, variable_code: str | None = None, expected: tuple[str, ...] = (),
                 *, known: bool = False) -> None:
        what = f"unit {unit!r} is not a unit of this variable" if known else f"unknown unit {unit!r}"
        where = f"variable {variable_code}: " if variable_code else ""
        hint = f"; expected one of {', '.join(expected)}" if expected else ""
        super().__init__(f"{where}{what}{hint}")
        self.unit = unit
        self.known = known  #: True when the unit exists but measures something else
        self.variable = variable_code
        self.expected = expected


@dataclass(frozen=True, slots=True)
class _Unit:
    dimension: str  #: what it measures; a variable accepts the units of its dimension(s)
    scale: float  #: multiply by this to get the dimension's base unit (temperature is handled apart)


#: canonical spelling → dimension and scale to the dimension's base unit (the first one listed per dimension)
_UNITS: dict[str, _Unit] = {
    "µg/m³": _Unit("mass_concentration", 1.0),
    "mg/m³": _Unit("mass_concentration", 1e3),
    "ng/m³": _Unit("mass_concentration", 1e-3),
    "ppb": _Unit("mixing_ratio", 1.0),
    "ppm": _Unit("mixing_ratio", 1e3),
    "°C": _Unit("temperature", 1.0),
    "°F": _Unit("temperature", 1.0),
    "K": _Unit("temperature", 1.0),
    "hPa": _Unit("pressure", 1.0),
    "Pa": _Unit("pressure", 1e-2),
    "kPa": _Unit("pressure", 10.0),
    "mmHg": _Unit("pressure", MMHG_TO_HPA),
    "inHg": _Unit("pressure", INHG_TO_HPA),
    "%": _Unit("fraction", 1.0),
    "m/s": _Unit("speed", 1.0),
    "km/h": _Unit("speed", 1 / 3.6),
    "°": _Unit("angle", 1.0),
    "mm": _Unit("length", 1.0),
    "W/m²": _Unit("irradiance", 1.0),
}

#: accepted spellings, compared after `_key()` (NFKC, lower case, no spaces, µ/μ → u) → canonical spelling
_ALIASES: dict[str, str] = {
    **dict.fromkeys(("ug/m3", "ugm-3", "ug/m^3", "ugm3", "microgram/m3", "micrograms/m3"), "µg/m³"),
    **dict.fromkeys(("mg/m3", "mgm-3", "mg/m^3"), "mg/m³"),
    **dict.fromkeys(("ng/m3", "ngm-3", "ng/m^3"), "ng/m³"),
    "ppb": "ppb", "ppbv": "ppb",
    "ppm": "ppm", "ppmv": "ppm",
    **dict.fromkeys(("°c", "degc", "deg_c", "degreesc", "celsius"), "°C"),
    **dict.fromkeys(("°f", "degf", "deg_f", "degreesf", "fahrenheit"), "°F"),
    **dict.fromkeys(("k", "kelvin"), "K"),
    **dict.fromkeys(("hpa", "mbar", "mb"), "hPa"),
    "pa": "Pa",
    "kpa": "kPa",
    **dict.fromkeys(("mmhg", "mm_hg"), "mmHg"),
    **dict.fromkeys(("inhg", "in_hg"), "inHg"),
    **dict.fromkeys(("%", "percent", "%rh", "pct"), "%"),
    **dict.fromkeys(("m/s", "ms-1", "m/sec", "mps"), "m/s"),
    **dict.fromkeys(("km/h", "kmh", "kph", "kmh-1"), "km/h"),
    **dict.fromkeys(("°", "deg", "degree", "degrees"), "°"),
    "mm": "mm",
    **dict.fromkeys(("w/m2", "wm-2", "w/m^2"), "W/m²"),
}

#: which dimensions each kind of variable accepts; special variables are listed by code
_DIMENSIONS_BY_CODE: dict[str, tuple[str, ...]] = {
    "co2": ("mixing_ratio",),
    "bc": ("mass_concentration",),
    "bbp": ("fraction",),
    "temperature": ("temperature",),
    "temperature_8m": ("temperature",),
    "temperature_20m": ("temperature",),
    "relativehumidity": ("fraction",),
    "pressure": ("pressure",),
    "wind_speed": ("speed",),
    "wind_direction": ("angle",),
    "precipitation": ("length",),
    "solar_radiation": ("irradiance",),
}
_DIMENSIONS_BY_KIND: dict[Kind, tuple[str, ...]] = {
    Kind.GAS: ("mass_concentration", "mixing_ratio"),
    Kind.MASS: ("mass_concentration",),
}


def _key(unit: str) -> str:
    # NFKC folds "³" → "3", "²" → "2", "℃" → "°C", and the micro sign into Greek mu; then drop case and spaces
    text = unicodedata.normalize("NFKC", unit).strip().lower().replace("μ", "u")
    return "".join(text.split()).replace("·", "").replace("*", "")


# memoised: a pure function of a handful of distinct strings, called for every reading (an unknown unit raises
# and is not cached); bounded, since the strings come from devices
@functools.lru_cache(maxsize=1024)
def parse_unit(unit: str) -> str:
    """Return the canonical spelling of an accepted unit string ("ug/m3" → "µg/m³"), or raise UnitError."""
    canonical = _ALIASES.get(_key(unit))
    if canonical is None:
        raise UnitError(unit)
    return canonical


def _accepted_dimensions(variable_code: str) -> tuple[str, ...]:
    var = variable(variable_code)  # raises UnknownVariableError (a ValueError) for an unknown code
    return _DIMENSIONS_BY_CODE.get(var.code) or _DIMENSIONS_BY_KIND.get(var.kind, ())


@functools.lru_cache(maxsize=256)
def accepted_units(variable_code: str) -> tuple[str, ...]:
    """Canonical spellings of every unit `variable_code` may be reported in."""
    dims = _accepted_dimensions(variable_code)
    return tuple(u for u, spec in _UNITS.items() if spec.dimension in dims)


def _fitting_unit(unit: str, variable_code: str) -> tuple[str, _Unit]:
    expected = accepted_units(variable_code)
    try:
        canonical = parse_unit(unit)
    except UnitError:
        raise UnitError(unit, variable_code, expected) from None
    if canonical not in expected:
        raise UnitError(unit, variable_code, expected, known=True)
    return canonical, _UNITS[canonical]


def molar_mass(variable_code: str) -> float:
    """Molar mass in g/mol of gas `variable_code` (conversions.json, CRC atomic weights); NOx as NO2."""
    var = variable(variable_code)
    if var.molecule is None:
        raise ValueError(f"variable {variable_code}: not a gas, it has no molar mass for ppb ↔ µg/m³")
    return float(load("conversions")["molecular_weights_g_per_mol"][var.molecule])


def ppb_to_ugm3(ppb: float, molar_mass_g_mol: float) -> float:
    """ppb → µg/m³ at 25 °C, 1 atm: ppb · M / 24.45 (also ppm → mg/m³). CONVERSIONS.md."""
    return ppb * molar_mass_g_mol / MOLAR_VOLUME_L


def ugm3_to_ppb(ugm3: float, molar_mass_g_mol: float) -> float:
    """µg/m³ at 25 °C, 1 atm → ppb: µg/m³ · 24.45 / M (also mg/m³ → ppm). CONVERSIONS.md."""
    return ugm3 * MOLAR_VOLUME_L / molar_mass_g_mol


def reference_factor(temp_c: float, pressure_hpa: float) -> float:
    """Factor taking a mass concentration per actual m³ at (T °C, P hPa) to Res. 2254/2017 conditions."""
    temp_k = temp_c + ZERO_C_IN_K
    if not (math.isfinite(temp_k) and temp_k > 0):
        raise ValueError(f"reference correction: temperature must be above -273.15 °C, got {temp_c}")
    if not (math.isfinite(pressure_hpa) and pressure_hpa > 0):
        raise ValueError(f"reference correction: pressure must be positive hPa, got {pressure_hpa}")
    # C_ref = C · (P_ref / P) · (T / T_ref), reference 25 °C and 760 mmHg (Res. 2254/2017; conversions.json)
    return (P_REF_HPA / pressure_hpa) * (temp_k / T_REF_K)


def to_reference_conditions(ugm3: float, temp_c: float, pressure_hpa: float) -> float:
    """µg/m³ at local T (°C), P (hPa) → µg/m³ at 25 °C, 760 mmHg (Res. 2254/2017); 30 at 752/14 → 38.93."""
    return ugm3 * reference_factor(temp_c, pressure_hpa)


def _temperature_to_c(value: float, unit: str) -> float:
    if unit == "°F":
        return (value - 32.0) * 5.0 / 9.0
    if unit == "K":
        return value - ZERO_C_IN_K
    return value


def _temperature_from_c(value: float, unit: str) -> float:
    if unit == "°F":
        return value * 9.0 / 5.0 + 32.0
    if unit == "K":
        return value + ZERO_C_IN_K
    return value


def convert(value: float, from_unit: str, variable_code: str) -> float:
    """`value` in `from_unit` → canonical unit of `variable_code`; no local → reference correction."""
    canonical, spec = _fitting_unit(from_unit, variable_code)
    if spec.dimension == "temperature":
        return _temperature_to_c(value, canonical)
    if spec.dimension == "mixing_ratio" and variable(variable_code).kind is Kind.GAS:
        return ppb_to_ugm3(value * spec.scale, molar_mass(variable_code))
    if variable_code == "co2":  # canonical ppm, base of the mixing-ratio dimension is ppb
        return value * spec.scale / 1e3
    return value * spec.scale


@dataclass(frozen=True, slots=True)
class Conversion:
    """`convert` of one (reported unit, variable) as arithmetic a batch can apply: ((x + add) · mul1 · mul2) / div.

    The operations are those of `convert`, in its order, so a float64 array gives the same values bit for bit
    (a -0.0 may come out as 0.0, which compares equal); identity steps (+ 0, · 1, / 1) are exact.
    """

    add: float
    mul1: float
    mul2: float
    div: float


def conversion(from_unit: str, variable_code: str) -> Conversion:
    """The `Conversion` equal to `convert(·, from_unit, variable_code)`; raises as `convert` does."""
    canonical, spec = _fitting_unit(from_unit, variable_code)
    if spec.dimension == "temperature":
        if canonical == "°F":  # (x - 32) · 5 / 9
            return Conversion(-32.0, 5.0, 1.0, 9.0)
        return Conversion(-ZERO_C_IN_K if canonical == "K" else 0.0, 1.0, 1.0, 1.0)
    if spec.dimension == "mixing_ratio" and variable(variable_code).kind is Kind.GAS:
        return Conversion(0.0, spec.scale, molar_mass(variable_code), MOLAR_VOLUME_L)  # x·scale·M / 24.45
    if variable_code == "co2":
        return Conversion(0.0, spec.scale, 1.0, 1e3)
    return Conversion(0.0, spec.scale, 1.0, 1.0)


def from_canonical(value: float, to_unit: str, variable_code: str) -> float:
    """Inverse of `convert`: canonical unit of `variable_code` → `to_unit` (e.g. µg/m³ → ppm for US AQI)."""
    canonical, spec = _fitting_unit(to_unit, variable_code)
    if spec.dimension == "temperature":
        return _temperature_from_c(value, canonical)
    if spec.dimension == "mixing_ratio" and variable(variable_code).kind is Kind.GAS:
        return ugm3_to_ppb(value, molar_mass(variable_code)) / spec.scale
    if variable_code == "co2":
        return value * 1e3 / spec.scale
    return value / spec.scale
