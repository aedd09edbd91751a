"""Per-device calibrations and the book that finds the one valid at a reading's time (ingest stage). Pure.

Where a calibration applies — an aqnet decision: to the value **as the device reported it, in the device's
reported unit**, before the unit conversion and before the local → reference-conditions correction of
`ingest.normalise`. Why: calibration coefficients come from comparing the device's own output (a zero/span
check of an analyser in ppb, a co-location of a low-cost PM sensor against a reference monitor at the same
site) with a reference, so they are expressed in the device's unit and at the conditions it measured; and
particle growth with humidity happens in the air the sensor sampled, i.e. at local conditions. Each
calibration therefore names its `unit`; a reading reported in another unit is an error, never guessed.
The plausible-range check (OUT_OF_RANGE) stays on the value as reported, before calibration.

Forms (`kind`; `coefficients` in this order; x is the reported value):

| kind | coefficients | calibrated value |
|---|---|---|
| linear | (a, b) | a·x + b |
| polynomial | (c0, c1, …, cn), n ≥ 1 | Σ cᵢ·xⁱ |
| humidity | (κ,) | x / C, C = 1 + (κ / 1.65) · a_w / (1 − a_w), a_w = RH / 100 |
| linear_rh | (a, b, c) | a·x + b·RH + c, RH in % |

`humidity` is the κ-Köhler hygroscopic-growth correction for low-cost optical PM sensors of Crilley et al.
(2018), "Evaluation of a low-cost optical particle counter (Alphasense OPC-N2) for ambient air monitoring",
Atmos. Meas. Tech. 11, 709–720, doi:10.5194/amt-11-709-2018, written there as C = 1 + (κ/1.65)/(−1 + 1/a_w)
(algebraically the same as above; 1.65 is the ratio of the assumed dry particle density, 1.65 g/cm³, to that
of water). κ (the bulk hygroscopicity) is per device and site: aqnet ships no value, every coefficient of
every form is configured per device with its source. The form is undefined at RH ≥ 100 % (C → ∞): there, or
without a humidity reading, the calibration is not applied (`apply` returns None) and the reading is stored
uncalibrated, without the CALIBRATED bit, so `aqnet reprocess` can apply it later.

`linear_rh` is a multiple linear regression on the reported value with the relative humidity (%) as covariate,
the form of co-location fits (`ingest.colocation_fit`) and of the US-wide PurpleAir correction of Barkjohn et
al. (2021), Atmos. Meas. Tech. 14, 4617–4637, doi:10.5194/amt-14-4617-2021. It needs the RH at the reading's
time like the humidity form; it is defined for 0 ≤ RH ≤ 100 %, and without a usable RH it is not applied
(stored uncalibrated, reprocess can apply it later).

Validity: `[valid_from, valid_to)`, `valid_to = None` open-ended. At most one calibration per
(device, variable) at any time: `CalibrationBook` refuses overlapping periods (the `calibrations` table
enforces the same with an exclusion constraint).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from ingest import units
from sensors.variables import variable

__all__ = [
    "KAPPA_DENSITY_RATIO",
    "Calibration",
    "CalibrationBook",
    "CalibrationError",
    "CalibrationKind",
    "check_calibration",
    "humidity_corrected",
    "humidity_growth_factor",
    "linear",
    "linear_rh",
    "polynomial",
    "rh_usable",
]

CalibrationKind = Literal["linear", "polynomial", "humidity", "linear_rh"]
KINDS: tuple[str, ...] = get_args(CalibrationKind)

#: dry particle density 1.65 g/cm³ over water's 1 g/cm³, as in the correction factor of Crilley et al. 2018
#: (Atmos. Meas. Tech. 11, 709–720, doi:10.5194/amt-11-709-2018)
KAPPA_DENSITY_RATIO = 1.65


class CalibrationError(ValueError):
    """A calibration that is malformed, or overlaps another (permanent: fix the calibration)."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where  #: "calibration 12 (device USQ-pm pm25)" or similar
        self.detail = detail


def linear(x: float, a: float, b: float) -> float:
    """a·x + b, in the device's reported unit."""
    return a * x + b


def linear_rh(x: float, rh_pct: float, a: float, b: float, c: float) -> float:
    """a·x + b·RH + c, in the device's reported unit (RH in %)."""
    return a * x + b * rh_pct + c


def rh_usable(kind: str, rh_pct: float | None) -> bool:
    """Whether a calibration of `kind` that needs the RH can use `rh_pct`: finite, 0 ≤ RH < 100 % for the
    humidity form (undefined at saturation), 0 ≤ RH ≤ 100 % for linear_rh."""
    if rh_pct is None or not math.isfinite(rh_pct) or rh_pct < 0.0:
        return False
    return rh_pct < 100.0 if kind == "humidity" else rh_pct <= 100.0


def polynomial(x: float, coefficients: Sequence[float]) -> float:
    """Σ cᵢ·xⁱ with `coefficients` = (c0, c1, …, cn), by Horner's rule."""
    result = 0.0
    for c in reversed(coefficients):
        result = result * x + c
    return result


def humidity_growth_factor(rh_pct: float, kappa: float) -> float | None:
    """C = 1 + (κ/1.65)·a_w/(1 − a_w), a_w = RH/100 (Crilley et al. 2018); None where undefined (RH ≥ 100 %)."""
    if not (math.isfinite(rh_pct) and 0.0 <= rh_pct < 100.0):
        return None
    a_w = rh_pct / 100.0
    return 1.0 + (kappa / KAPPA_DENSITY_RATIO) * a_w / (1.0 - a_w)


def humidity_corrected(x: float, rh_pct: float, kappa: float) -> float | None:
    """x / C, the dry-particle mass concentration (κ-Köhler, Crilley et al. 2018); None where undefined."""
    factor = humidity_growth_factor(rh_pct, kappa)
    return None if factor is None else x / factor


def check_calibration(where: str, variable_code: str, kind: str, coefficients: Sequence[float], unit: str,
                      valid_from: datetime, valid_to: datetime | None) -> None:
    """Raise CalibrationError naming `where` unless the calibration is well formed."""
    try:
        variable(variable_code)
        if units.parse_unit(unit) not in units.accepted_units(variable_code):
            raise CalibrationError(where, f"unit {unit!r} is not a unit of {variable_code}; expected one of "  # noqa: TRY301
                                          f"{', '.join(units.accepted_units(variable_code))}")
    except CalibrationError:
        raise
    except ValueError as exc:  # unknown variable or unit
        raise CalibrationError(where, str(exc)) from None
    if kind not in KINDS:
        raise CalibrationError(where, f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if not all(isinstance(c, int | float) and math.isfinite(c) for c in coefficients):
        raise CalibrationError(where, f"coefficients must be finite numbers, got {list(coefficients)}")
    n = len(coefficients)
    if kind == "linear" and (n != 2 or coefficients[0] == 0):
        raise CalibrationError(where, f"linear: expected coefficients (a, b) with a ≠ 0, got {list(coefficients)}")
    if kind == "polynomial" and (n < 2 or not any(coefficients[1:])):
        raise CalibrationError(where, "polynomial: expected coefficients (c0, c1, …, cn) with n ≥ 1 and some "
                                      f"cᵢ ≠ 0 for i ≥ 1, got {list(coefficients)}")
    if kind == "humidity" and (n != 1 or coefficients[0] < 0):
        raise CalibrationError(where, f"humidity: expected coefficients (κ,) with κ ≥ 0, got {list(coefficients)}")
    if kind == "linear_rh" and (n != 3 or coefficients[0] == 0):
        raise CalibrationError(where, f"linear_rh: expected coefficients (a, b, c) with a ≠ 0, got "
                                      f"{list(coefficients)}")
    if valid_from.tzinfo is None or (valid_to is not None and valid_to.tzinfo is None):
        raise CalibrationError(where, "valid_from and valid_to must be timezone-aware")
    if valid_to is not None and valid_to <= valid_from:
        raise CalibrationError(where, f"valid_to {valid_to.isoformat()} must be after valid_from "
                                      f"{valid_from.isoformat()}")


@dataclass(frozen=True, slots=True)
class Calibration:
    """One calibration of one variable of one device over a validity period (see the module docstring)."""

    id: int  #: calibrations.id; stored with every reading it calibrated
    device_id: str
    variable: str
    kind: CalibrationKind
    coefficients: tuple[float, ...]  #: in the order of the module docstring's table
    unit: str  #: the reported unit the coefficients apply in (any accepted spelling)
    valid_from: datetime  #: inclusive
    valid_to: datetime | None = None  #: exclusive; None: still valid
    source: str = ""  #: where the coefficients come from (co-location report, datasheet, paper)

    def __post_init__(self) -> None:
        check_calibration(self.where, self.variable, self.kind, self.coefficients, self.unit, self.valid_from,
                          self.valid_to)

    @property
    def where(self) -> str:
        """How error messages name this calibration."""
        return f"calibration {self.id} (device {self.device_id} {self.variable})"

    @property
    def needs_humidity(self) -> bool:
        """True for the forms that need the relative humidity at the reading's time (humidity, linear_rh)."""
        return self.kind in ("humidity", "linear_rh")

    def covers(self, time: datetime) -> bool:
        """True when `time` is inside [valid_from, valid_to)."""
        return self.valid_from <= time and (self.valid_to is None or time < self.valid_to)

    def applies_to_unit(self, unit: str) -> bool:
        """True when `unit` is the unit the coefficients are in (spellings compared canonically)."""
        try:
            return units.parse_unit(unit) == units.parse_unit(self.unit)
        except units.UnitError:
            return False

    def apply(self, value: float, *, rh_pct: float | None = None) -> float | None:
        """The calibrated value in the same unit; None when a form needing the RH cannot apply (`rh_usable`)."""
        if self.kind == "linear":
            return linear(value, self.coefficients[0], self.coefficients[1])
        if self.kind == "polynomial":
            return polynomial(value, self.coefficients)
        if rh_pct is None or not rh_usable(self.kind, rh_pct):
            return None
        if self.kind == "linear_rh":
            a, b, c = self.coefficients
            return linear_rh(value, rh_pct, a, b, c)
        return humidity_corrected(value, rh_pct, self.coefficients[0])


class CalibrationBook:
    """The calibrations in force, indexed by (device, variable) and validity; immutable once built.

    The daemon builds a new book from the database at start and on each refresh and hands it to the
    pipeline; `aqnet reprocess` builds one for the sensor's devices.
    """

    def __init__(self, calibrations: Iterable[Calibration] = ()) -> None:
        by_key: dict[tuple[str, str], list[Calibration]] = {}
        for cal in calibrations:
            by_key.setdefault((cal.device_id, cal.variable), []).append(cal)
        self._index: dict[tuple[str, str], tuple[tuple[datetime, ...], tuple[Calibration, ...]]] = {}
        for key, cals in by_key.items():
            cals.sort(key=lambda c: (c.valid_from, c.id))
            for prev, cur in itertools.pairwise(cals):
                if prev.valid_to is None or prev.valid_to > cur.valid_from:
                    raise CalibrationError(cur.where, f"validity overlaps calibration {prev.id} "
                                                      f"(from {prev.valid_from.isoformat()} to "
                                                      f"{prev.valid_to.isoformat() if prev.valid_to else 'open'})")
            self._index[key] = (tuple(c.valid_from for c in cals), tuple(cals))

    def find(self, device_id: str, variable_code: str, time: datetime) -> Calibration | None:
        """The calibration of (device, variable) valid at `time`, or None."""
        entry = self._index.get((device_id, variable_code))
        if entry is None:
            return None
        starts, cals = entry
        i = bisect.bisect_right(starts, time) - 1
        if i >= 0 and cals[i].covers(time):
            return cals[i]
        return None

    def periods(self, device_id: str, variable_code: str) -> tuple[tuple[datetime, ...], tuple[Calibration, ...]]:
        """The calibrations of (device, variable) sorted by start, with their starts (for a batch's bisect)."""
        return self._index.get((device_id, variable_code), ((), ()))

    def __iter__(self) -> Iterator[Calibration]:
        for _, cals in self._index.values():
            yield from cals

    def __len__(self) -> int:
        return sum(len(cals) for _, cals in self._index.values())
