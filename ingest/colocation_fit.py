"""A proposed calibration of a microsensor from paired hourly data beside a reference, and its figures against
the EPA 2021 performance targets for PM2.5 air sensors. Pure (ingest stage; numpy's least squares).

Fit. Each pair is one hour: x, the microsensor's mean reported value (its raw value, in its reported unit, at
the conditions it measured); y, the reference's 1-h average brought to the same unit and conditions; RH, the
microsensor's own mean relative humidity (the RH the calibration will be given when applied). The sensor's
response to the reference is fitted by ordinary least squares (`numpy.linalg.lstsq`) — x = s·y + β
(`linear`) or x = s·y + γ·RH + β (`linear_rh`) — with the noise on the sensor, where it is, and inverted into
the calibration aqnet applies (`ingest.calibration`): y = a·x + b (a = 1/s, b = −β/s) or y = a·x + b·RH + c
(a = 1/s, b = −γ/s, c = −β/s). A sensor that does not respond (s ≤ 0) gets no proposal.

Figures (EPA/600/R-20/280, 2021, the base-testing metrics: the sensor against the reference): OLS of the
(corrected) sensor on the reference, y_sensor = slope · reference + intercept, with R² of that regression;
RMSE = √(mean((sensor − reference)²)); NRMSE = RMSE / mean(reference) × 100 %.

Targets: `EPA_PM25_TARGETS`, each with its source and verification status. The values were read in the U.S.
EPA's own evaluation library, sensortoolkit (USEPA/sensortoolkit: sensortoolkit/param/_targets.py, "U.S. EPA's
recommended performance metrics and target values" for PM2.5), not in the report's text: status
`verified_secondary`. Two points we could not read in the report are marked `unverified` and are configurable:
that the error target is met when EITHER RMSE ≤ 7 µg/m³ OR NRMSE ≤ 30 % holds, and that the targets apply to
24-hour averages (`TARGET_INTERVAL`).

`BARKJOHN_2021`: the US-wide PurpleAir correction, PM2.5 = 0.524·PA_cf1 − 0.0862·RH + 5.75 (Barkjohn, Gantt and
Clements 2021, "Development and application of a United States-wide correction for PM2.5 data collected with
the PurpleAir sensor", Atmos. Meas. Tech. 14, 4617–4637, doi:10.5194/amt-14-4617-2021), for PurpleAir's cf_1
PM2.5 (mean of channels A and B) in µg/m³ and its own RH in %. The coefficients were read as quoted by
PurpleAir's community forum (community.purpleair.com/t/new-epa-correction/10372), not in the paper's text:
`verified_secondary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

__all__ = [
    "BARKJOHN_2021",
    "EPA_PM25_TARGETS",
    "TARGET_INTERVAL",
    "Correction",
    "Figures",
    "FitError",
    "Pairs",
    "Target",
    "TargetResult",
    "build_report",
    "daily_means",
    "evaluate",
    "figures",
    "fit",
    "predict",
]

FitKind = Literal["linear", "linear_rh"]
#: the averaging interval the EPA targets are evaluated on (unverified: recalled from EPA/600/R-20/280)
TARGET_INTERVAL = "24h"
#: a day's mean needs this many hourly pairs: 18 of 24, the 75 % completeness of the 24-h average in Res.
#: 2254/2017 as sensors/domain/norms.json records it (averaging_conventions."24h"); the EPA report's own rule
#: was not read
MIN_HOURS_PER_DAY = 18


class FitError(ValueError):
    """Pairs that give no usable fit (too few, no spread, the sensor not responding)."""


@dataclass(frozen=True, slots=True)
class Pairs:
    """Paired hourly values (module docstring), equal lengths, finite."""

    hour_ends: tuple[datetime, ...]
    sensor: tuple[float, ...]  #: x, the microsensor's reported value
    reference: tuple[float, ...]  #: y, the reference in the same unit and conditions
    rh: tuple[float, ...]  #: the microsensor's RH, % (NaN: none that hour; linear_rh uses `with_rh()`)

    def __post_init__(self) -> None:
        n = len(self.hour_ends)
        if not (len(self.sensor) == len(self.reference) == len(self.rh) == n):
            raise ValueError(f"pairs: {n} hours, {len(self.sensor)} sensor, {len(self.reference)} reference and "
                             f"{len(self.rh)} RH values: expected as many of each")
        bad = [i for i in range(n) if not (math.isfinite(self.sensor[i]) and math.isfinite(self.reference[i]))]
        if bad:
            raise ValueError(f"pairs: hour {self.hour_ends[bad[0]].isoformat()} is not finite")

    def with_rh(self) -> Pairs:
        """The pairs whose RH is known (NaN: the microsensor reported none that hour)."""
        keep = [i for i, rh in enumerate(self.rh) if math.isfinite(rh)]
        return Pairs(tuple(self.hour_ends[i] for i in keep), tuple(self.sensor[i] for i in keep),
                     tuple(self.reference[i] for i in keep), tuple(self.rh[i] for i in keep))


@dataclass(frozen=True, slots=True)
class Correction:
    """A calibration in `ingest.calibration`'s form: linear (a, b) or linear_rh (a, b, c)."""

    kind: FitKind
    coefficients: tuple[float, ...]
    source: str = ""


#: Barkjohn et al. 2021's US-wide PurpleAir correction (module docstring), coefficients as (a, b, c) of linear_rh
BARKJOHN_2021 = Correction("linear_rh", (0.524, -0.0862, 5.75),
                           "Barkjohn, Gantt & Clements 2021, Atmos. Meas. Tech. 14, 4617-4637, "
                           "doi:10.5194/amt-14-4617-2021: PM2.5 = 0.524 PA_cf1 - 0.0862 RH + 5.75 "
                           "(coefficients as quoted on community.purpleair.com/t/new-epa-correction/10372)")


def fit(pairs: Pairs, kind: FitKind) -> Correction:
    """The calibration fitted from `pairs` (module docstring); FitError when the pairs cannot give one."""
    need = 2 if kind == "linear" else 3
    if kind == "linear_rh":
        pairs = pairs.with_rh()
    n = len(pairs.hour_ends)
    if n < need + 1:
        raise FitError(f"{kind}: {n} paired hours, at least {need + 1} needed for a fit with a residual")
    x = np.asarray(pairs.sensor, np.float64)
    y = np.asarray(pairs.reference, np.float64)
    columns = [y] if kind == "linear" else [y, np.asarray(pairs.rh, np.float64)]
    design = np.column_stack([*columns, np.ones(n)])
    coef, _, rank, _ = np.linalg.lstsq(design, x, rcond=None)
    if rank < design.shape[1]:
        raise FitError(f"{kind}: the reference{'' if kind == 'linear' else ' and RH'} do not vary independently "
                       f"over the {n} hours: no unique fit")
    s = float(coef[0])
    if not (math.isfinite(s) and s > 0):
        raise FitError(f"{kind}: the sensor does not respond to the reference (slope {s:.3g})")
    if kind == "linear":
        beta = float(coef[1])
        return Correction("linear", (1.0 / s, -beta / s))
    gamma, beta = float(coef[1]), float(coef[2])
    return Correction("linear_rh", (1.0 / s, -gamma / s, -beta / s))


def predict(correction: Correction, sensor: Sequence[float], rh: Sequence[float]) -> np.ndarray:
    """The corrected sensor values, as `ingest.calibration.Calibration.apply` computes them."""
    x = np.asarray(sensor, np.float64)
    c = correction.coefficients
    if correction.kind == "linear":
        return c[0] * x + c[1]
    return c[0] * x + c[1] * np.asarray(rh, np.float64) + c[2]


@dataclass(frozen=True, slots=True)
class Figures:
    """The EPA base-testing figures of sensor values against the reference (module docstring)."""

    n: int
    r2: float
    slope: float
    intercept: float
    rmse: float
    nrmse_pct: float  #: NaN when the reference's mean is 0
    mean_reference: float


def figures(sensor: Sequence[float], reference: Sequence[float]) -> Figures:
    """R², slope, intercept (OLS of sensor on reference), RMSE and NRMSE; FitError with fewer than 3 values."""
    s = np.asarray(sensor, np.float64)
    r = np.asarray(reference, np.float64)
    if len(s) != len(r):
        raise ValueError(f"figures: {len(s)} sensor and {len(r)} reference values: expected as many of each")
    if len(s) < 3:
        raise FitError(f"figures: {len(s)} values, at least 3 needed")
    design = np.column_stack([r, np.ones(len(r))])
    coef, _, rank, _ = np.linalg.lstsq(design, s, rcond=None)
    if rank < 2:
        raise FitError("figures: the reference does not vary: no regression")
    predicted = design @ coef
    ss_res = float(np.sum((s - predicted) ** 2))
    ss_tot = float(np.sum((s - s.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    rmse = float(np.sqrt(np.mean((s - r) ** 2)))
    mean_ref = float(r.mean())
    return Figures(len(s), r2, float(coef[0]), float(coef[1]), rmse,
                   rmse / mean_ref * 100.0 if mean_ref != 0 else math.nan, mean_ref)


def daily_means(hour_ends: Sequence[datetime], sensor: Sequence[float], reference: Sequence[float],
                min_hours: int = MIN_HOURS_PER_DAY) -> tuple[list[float], list[float]]:
    """Per UTC day with at least `min_hours` paired hours (hour labelled by its end, so 00:00 closes the day
    before), the means of the sensor's and the reference's values."""
    days: dict[object, list[int]] = {}
    for i, end in enumerate(hour_ends):
        start = end.timestamp() - 3600.0
        days.setdefault(math.floor(start / 86400.0), []).append(i)
    out_s: list[float] = []
    out_r: list[float] = []
    for key in sorted(days):  # type: ignore[type-var]
        idx = days[key]
        if len(idx) >= min_hours:
            out_s.append(float(np.mean([sensor[i] for i in idx])))
            out_r.append(float(np.mean([reference[i] for i in idx])))
    return out_s, out_r


@dataclass(frozen=True, slots=True)
class Target:
    """One performance target: `low` ≤ value ≤ `high` (None: unbounded), with its source and status."""

    metric: Literal["r2", "slope", "intercept", "rmse", "nrmse_pct"]
    low: float | None
    high: float | None
    unit: str
    source: str
    status: Literal["verified_primary", "verified_secondary", "unverified"]

    def passes(self, value: float) -> bool:
        """Whether `value` meets the target (NaN never does)."""
        if not math.isfinite(value):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


_EPA = ("EPA/600/R-20/280 (2021), PM2.5 air sensor base-testing targets, as coded in USEPA/sensortoolkit "
        "sensortoolkit/param/_targets.py")
#: EPA 2021 targets for PM2.5 sensors (module docstring)
EPA_PM25_TARGETS: tuple[Target, ...] = (
    Target("r2", 0.70, None, "", _EPA + " (R² ≥ 0.70)", "verified_secondary"),
    Target("slope", 0.65, 1.35, "", _EPA + " (slope 1.0 ± 0.35)", "verified_secondary"),
    Target("intercept", -5.0, 5.0, "µg/m³", _EPA + " (−5 ≤ b ≤ 5 µg/m³)", "verified_secondary"),
    Target("rmse", None, 7.0, "µg/m³", _EPA + " (RMSE ≤ 7 µg/m³; met with NRMSE: unverified)", "verified_secondary"),
    Target("nrmse_pct", None, 30.0, "%", _EPA + " (NRMSE ≤ 30 %; met with RMSE: unverified)", "verified_secondary"),
)


@dataclass(frozen=True, slots=True)
class TargetResult:
    """A target, the figure's value and whether it passes."""

    target: Target
    value: float
    passed: bool


def evaluate(fig: Figures, targets: Sequence[Target] = EPA_PM25_TARGETS) -> list[TargetResult]:
    """Each target with the figure's value and pass/fail."""
    return [TargetResult(t, float(getattr(fig, t.metric)), t.passes(float(getattr(fig, t.metric))))
            for t in targets]


def _figures_dict(fig: Figures, targets: Sequence[Target]) -> dict[str, object]:
    return {"n": fig.n, "r2": fig.r2, "slope": fig.slope, "intercept": fig.intercept, "rmse": fig.rmse,
            "nrmse_pct": None if math.isnan(fig.nrmse_pct) else fig.nrmse_pct, "mean_reference": fig.mean_reference,
            "targets": [{"metric": r.target.metric, "value": None if math.isnan(r.value) else r.value,
                         "low": r.target.low, "high": r.target.high, "unit": r.target.unit, "passed": r.passed,
                         "source": r.target.source, "status": r.target.status} for r in evaluate(fig, targets)]}


def _judged(hour_ends: Sequence[datetime], sensor: Sequence[float], reference: Sequence[float], interval: str,
            targets: Sequence[Target]) -> dict[str, object]:
    if interval == "24h":
        sensor, reference = daily_means(hour_ends, sensor, reference)
    try:
        return _figures_dict(figures(sensor, reference), targets)
    except FitError as exc:
        return {"error": str(exc)}


def build_report(pairs: Pairs, proposed: Correction, *, method: str, interval: str = TARGET_INTERVAL,
                 targets: Sequence[Target] = EPA_PM25_TARGETS) -> dict[str, object]:
    """The proposal's report: both fits, and the figures of the raw and the corrected sensor against the
    reference at `interval` ("1h" or "24h" means of the hours), each target with pass/fail."""
    if interval not in ("1h", "24h"):
        raise ValueError(f"interval: expected 1h or 24h, got {interval!r}")
    fits: dict[str, object] = {}
    kinds: tuple[FitKind, ...] = ("linear", "linear_rh")
    for kind in kinds:
        try:
            fits[kind] = {"coefficients": list(fit(pairs, kind).coefficients)}
        except FitError as exc:
            fits[kind] = {"error": str(exc)}
    used = pairs.with_rh() if proposed.kind == "linear_rh" else pairs
    corrected = predict(proposed, used.sensor, used.rh).tolist()
    return {"hours": len(used.hour_ends), "interval": interval,
            "interval_status": "unverified" if interval == TARGET_INTERVAL else "chosen",
            "fits": fits,
            "proposed": {"method": method, "kind": proposed.kind, "coefficients": list(proposed.coefficients),
                         "source": proposed.source},
            "before": _judged(used.hour_ends, used.sensor, used.reference, interval, targets),
            "after": _judged(used.hour_ends, corrected, used.reference, interval, targets)}
