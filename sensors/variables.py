"""The variable vocabulary: codes, canonical units and kinds (pure data, no I/O).

One code and one canonical unit per variable, as the project's VARIABLES.md says. Concentrations are stored in
µg/m³ at the reference conditions of Resolución 2254 de 2017 (25 °C, 760 mmHg), CO included; drivers report in
their own units and `ingest.units` converts. Unit strings are stored exactly as written here (UTF-8).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["VARIABLES", "Kind", "UnknownVariableError", "Variable", "canonical_unit", "variable"]

UGM3 = "µg/m³"


class Kind(StrEnum):
    """How a variable is converted: gases from mixing ratios, mass concentrations by conditions, the rest as is."""

    GAS = "gas"  #: reported as ppb/ppm, converted at the reference molar volume
    MASS = "mass"  #: reported in µg/m³ at local or reference conditions
    MET = "met"  #: meteorology and other physical quantities
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Variable:
    """One entry of the vocabulary."""

    code: str  #: the code stored in `measurements.variable`
    name: str  #: the name used in reference.json, or a description
    unit: str  #: canonical unit
    kind: Kind
    molecule: str | None = None  #: key into conversions.json molecular weights for gases


def _v(code: str, name: str, unit: str, kind: Kind, molecule: str | None = None) -> Variable:
    return Variable(code, name, unit, kind, molecule)


VARIABLES: dict[str, Variable] = {
    v.code: v
    for v in (
        _v("pm1", "PM1", UGM3, Kind.MASS),
        _v("pm25", "PM2.5", UGM3, Kind.MASS),
        _v("pm4", "PM4", UGM3, Kind.MASS),
        _v("pm10", "PM10", UGM3, Kind.MASS),
        _v("o3", "O3", UGM3, Kind.GAS, "O3"),
        _v("no2", "NO2", UGM3, Kind.GAS, "NO2"),
        _v("no", "NO", UGM3, Kind.GAS, "NO"),
        _v("nox", "NOx", UGM3, Kind.GAS, "NOx_as_NO2"),  # NOx as NO2: molar mass of NO2 (VARIABLES.md)
        _v("so2", "SO2", UGM3, Kind.GAS, "SO2"),
        _v("co", "CO", UGM3, Kind.GAS, "CO"),
        _v("co2", "CO2", "ppm", Kind.OTHER),
        _v("bc", "equivalent_black_carbon", UGM3, Kind.OTHER),
        _v("bbp", "BBP_percent", "%", Kind.OTHER),
        _v("temperature", "temperature", "°C", Kind.MET),
        _v("temperature_8m", "temperature_8m", "°C", Kind.MET),
        _v("temperature_20m", "temperature_20m", "°C", Kind.MET),
        _v("relativehumidity", "relative_humidity", "%", Kind.MET),
        _v("pressure", "pressure", "hPa", Kind.MET),
        _v("wind_speed", "wind_speed", "m/s", Kind.MET),
        _v("wind_direction", "wind_direction", "°", Kind.MET),
        _v("precipitation", "precipitation", "mm", Kind.MET),
        _v("solar_radiation", "solar_radiation", "W/m²", Kind.MET),
    )
}

#: names used in reference.json → variable codes
BY_REFERENCE_NAME: dict[str, str] = {v.name: v.code for v in VARIABLES.values()}


class UnknownVariableError(ValueError):
    """A variable code that is not in the vocabulary (permanent: dead-letter the reading)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown variable {code!r}: expected one of {', '.join(sorted(VARIABLES))}")
        self.code = code


def variable(code: str) -> Variable:
    """Return the vocabulary entry for `code`, or raise UnknownVariableError."""
    try:
        return VARIABLES[code]
    except KeyError:
        raise UnknownVariableError(code) from None


def canonical_unit(code: str) -> str:
    """Canonical unit of variable `code`."""
    return variable(code).unit
