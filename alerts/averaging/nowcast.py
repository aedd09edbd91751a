"""The EPA NowCast for PM2.5 and PM10 from the last 12 hourly averages. Pure: no I/O, no clock.

Algorithm (indices.json `nowcast`, EPA-454/B-24-002 sec. IV "How the NowCast is calculated", AirNow forum
"The NowCast for PM2.5 and PM10"; INDICES.md "NowCast", verified_secondary):

1. Take the 12 most recent hourly values, oldest → newest: the LAST element is c₁, the current hour (the hour
   ending now); missing hours are None (or NaN) and stay missing. A shorter list counts the absent older hours
   as missing; a longer one is cut to its last 12 (indices.json `nowcast.window_hours`: 12).
2. At least 2 valid values among c₁, c₂, c₃, else the NowCast is None.
3. w* = min / max of the valid values in the window, w = max(w*, 0.5); all valid values 0 → w = 1 and the
   NowCast is 0 (indices.json `nowcast.edge_cases.max_is_zero`).
4. NowCast = Σ wⁱ⁻¹·cᵢ / Σ wⁱ⁻¹ over the valid i only; the exponent keeps the true hour offset even when c₁ is
   missing.
5. Truncate: PM2.5 to 0.1 µg/m³, PM10 to 1 µg/m³ (indices.json `nowcast.algorithm`, last step).

Negative hourly values count as 0 (indices.json `nowcast.edge_cases.negative_values`: "AirNow replaces negative
hourly values with 0 before computing", secondary). Before the truncation the raw NowCast is rounded to 9
decimals, the same floating-point noise removal VARIABLES.md prescribes for the US AQI ("round to 9 decimal
places, then truncate"), so a flat 0.3 series is 0.3 and not 0.2.

Which hours are valid is the caller's business: pass `Average.valid_value` of the stored '1h' averages (an
invalid hour is missing; VARIABLES.md "Which readings count"). Values are in µg/m³ (the canonical unit).
There is no ozone NowCast: indices.json `nowcast.ozone.status` is "unverified" ("do not implement without the
primary text").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

__all__ = [
    "MIN_RECENT_VALID",
    "NOWCAST_POLLUTANTS",
    "WINDOW_HOURS",
    "NowCast",
    "denoise",
    "nowcast",
    "nowcast_detail",
    "truncate_decimal",
    "truncated_quanta",
]

#: hours in the NowCast window (indices.json `nowcast.window_hours`)
WINDOW_HOURS = 12
#: valid values required among the 3 most recent hours (indices.json `nowcast.algorithm` step 2)
MIN_RECENT_VALID = 2
#: lower bound of the weight factor (indices.json `nowcast.algorithm`: "w = max(w*, 0.5)")
MIN_WEIGHT = 0.5
#: vocabulary code → decimal places the NowCast is truncated to (indices.json `nowcast.algorithm`: "truncate:
#: PM2.5 to 0.1 ug/m3, PM10 to 1 ug/m3")
NOWCAST_POLLUTANTS: dict[str, int] = {"pm25": 1, "pm10": 0}
#: decimals kept to remove floating-point noise before a truncation (VARIABLES.md "The US AQI from stored values")
NOISE_DECIMALS = 9
_NOISE = Decimal(1).scaleb(-NOISE_DECIMALS)


@dataclass(frozen=True, slots=True)
class NowCast:
    """A NowCast with its intermediate values (what examples.json checks)."""

    value: float  #: truncated NowCast in µg/m³ (what the index tables take)
    raw: float  #: Σ wⁱ⁻¹·cᵢ / Σ wⁱ⁻¹ before truncation
    weight: float  #: w, the weight factor used (0.5 … 1)
    hours: int  #: valid hours that entered the sum (2 … 12)


def denoise(value: float) -> Decimal:
    """`value` rounded half-up to 9 decimals, as a Decimal: removes floating-point noise before a truncation
    (VARIABLES.md "The US AQI from stored values")."""
    return Decimal(repr(value)).quantize(_NOISE, rounding=ROUND_HALF_UP)


def truncated_quanta(value: float, decimals: int) -> int:
    """`value` denoised, then truncated to `decimals` places on its decimal string, as an integer number of
    10^-decimals (examples.json `conventions.truncation`: Decimal(str(x)).quantize(q, ROUND_FLOOR); a binary
    floor(x·10)/10 fails on 0.29·100 = 28.999999999999996). Floors toward −∞ (callers clamp negatives first)."""
    return int(denoise(value).scaleb(decimals).to_integral_value(rounding=ROUND_FLOOR))


def truncate_decimal(value: float, decimals: int) -> float:
    """`value` denoised, then truncated to `decimals` places (`truncated_quanta`), as a float."""
    if not math.isfinite(value):
        raise ValueError(f"truncate_decimal: expected a finite number, got {value}")
    scale: int = 10**decimals
    return truncated_quanta(value, decimals) / scale


def _decimals(pollutant: str) -> int:
    try:
        return NOWCAST_POLLUTANTS[pollutant]
    except KeyError:
        raise ValueError(f"nowcast: pollutant {pollutant!r}: expected one of {sorted(NOWCAST_POLLUTANTS)} (the "
                         "ozone NowCast is unverified: indices.json nowcast.ozone)") from None


def nowcast_detail(hourly: Sequence[float | None], pollutant: str) -> NowCast | None:
    """The NowCast of `pollutant` ('pm25' or 'pm10') with its weight and raw value, or None when fewer than 2 of
    the 3 most recent hours are valid. `hourly` is oldest → newest, the last element is the current hour, None
    or NaN = missing (module docstring)."""
    decimals = _decimals(pollutant)
    window = list(hourly)[-WINDOW_HOURS:]
    # c[0] is c₁ (current hour), c[i] is i hours ago; None = missing
    c: list[float | None] = []
    for x in reversed(window):
        if x is None or not math.isfinite(x):
            c.append(None)
        else:
            c.append(max(float(x), 0.0))  # negative hours count as 0 (indices.json nowcast.edge_cases)
    recent = sum(x is not None for x in c[:3])
    if recent < MIN_RECENT_VALID:
        return None
    valid = [(i, x) for i, x in enumerate(c) if x is not None]
    values = [x for _, x in valid]
    top = max(values)
    if top == 0.0:
        return NowCast(value=0.0, raw=0.0, weight=1.0, hours=len(valid))  # max = 0 → w = 1, NowCast 0
    if min(values) == top:  # a flat series: w = 1 and the weighted mean is the value itself, exactly
        return NowCast(value=truncate_decimal(top, decimals), raw=top, weight=1.0, hours=len(valid))
    weight = max(min(values) / top, MIN_WEIGHT)
    raw = math.fsum(weight**i * x for i, x in valid) / math.fsum(weight**i for i, _ in valid)
    return NowCast(value=truncate_decimal(raw, decimals), raw=raw, weight=weight, hours=len(valid))


def nowcast(hourly: Sequence[float | None], pollutant: str) -> float | None:
    """The truncated NowCast of `pollutant` ('pm25' → 0.1 µg/m³, 'pm10' → 1 µg/m³) from up to 12 hourly values,
    oldest → newest (the last is the current hour; None = missing); None when fewer than 2 of the 3 most
    recent hours are valid (indices.json `nowcast`). See `nowcast_detail` for the weight and raw value."""
    result = nowcast_detail(hourly, pollutant)
    return None if result is None else result.value
