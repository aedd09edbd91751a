"""Quality-control checks on a normalised Reading (ingest stage). Pure: the caller passes `now` and the state.

Contract: `check(reading, state, now)` returns the reading with the flags it earned added (never removed,
the value never changed: flagged readings are stored, VARIABLES.md) and the series' new `QCState`. The caller
keeps one state per (sensor, device, variable) series; `None` starts a series. A clock-skewed reading does not
advance the state (its future time would hide the readings that follow).

Implemented here:
- CLOCK_SKEW: the measurement time is more than `skew_tolerance_s` ahead of its receive time or of `now`,
  whichever is earlier (a device clock running fast; the reading is excluded from averages).
- STALE: the measurement time is more than `stale_after_s` older than its receive time (a device replaying a
  backlog, or a clock running slow).
- SPIKE: the absolute rate of change from the series' previous reading, |Δvalue| / max(Δt, 60 s) in the
  canonical unit per minute, is above the variable's limit. Floor on Δt: two readings seconds apart are judged
  on their step, not on a rate blown up by a tiny interval. Both edges of an isolated outlier are flagged.
- FLATLINE: the device has reported the identical value (the reported `raw_value`, since a stuck sensor
  repeats its output while the conversion of it may vary with T and P) for longer than the variable's
  duration, measured from the first reading of the run. Readings before that point are not flagged afterwards.
SPIKE and FLATLINE are suspect, never excluding (VARIABLES.md, "Which readings count"); they compare a reading
with the newest earlier one, so a late (older) reading is not checked for them and does not change the state.
An exact repeat of the newest reading (same time and values: a redelivery) gets the same SPIKE/FLATLINE bits
as the first delivery, so the writer sees a duplicate, not a conflict.

Default limits — **aqnet conventions, not norm values**: no norm or domain file gives them (VARIABLES.md only
says spike and flatline are suspect). They are deliberately loose, to flag the implausible (a glitching
low-cost sensor, a stuck register) rather than real episodes; override them per variable with `spike_limits`
and `flatline_after_s` (a variable absent from the mapping is not checked):

| variable | spike limit (canonical unit per minute) | flatline after |
|---|---|---|
| pm1, pm25, pm4 | 500 µg/m³ | 6 h |
| pm10 | 1000 µg/m³ | 6 h |
| no2, o3 | 500 µg/m³ | 12 h |
| no, nox, so2 | 1000 µg/m³ | 12 h |
| co | 20000 µg/m³ | 12 h |
| co2 | 500 ppm | 6 h |
| bc | 200 µg/m³ | 12 h |
| temperature, temperature_8m, temperature_20m | 5 °C | 6 h |
| relativehumidity | 30 % | 12 h (fog holds 100 % for hours) |
| pressure | 5 hPa | 12 h |
| wind_speed, wind_direction, precipitation, solar_radiation, bbp | not checked | not checked (calm, dry, night) |

Range, negative and device-invalid flags are set by `ingest.normalise`, which sees the reported unit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from ingest.reading import QC, Reading

__all__ = [
    "DEFAULT_FLATLINE_AFTER_S",
    "DEFAULT_SKEW_TOLERANCE_S",
    "DEFAULT_SPIKE_LIMITS",
    "DEFAULT_SPIKE_MIN_INTERVAL_S",
    "DEFAULT_STALE_AFTER_S",
    "STATEFUL",
    "QCState",
    "check",
]

#: aqnet convention (no norm sets it): 5 min covers an unsynchronised logger clock without accepting hours
DEFAULT_SKEW_TOLERANCE_S = 300.0
#: aqnet convention (no norm sets it): a reading received more than 1 h after it was measured is stale
DEFAULT_STALE_AFTER_S = 3600.0
#: aqnet convention: rates over shorter intervals are taken over this one (see the module docstring)
DEFAULT_SPIKE_MIN_INTERVAL_S = 60.0

_HOUR = 3600.0
_NO_FLAGS = QC(0)
#: aqnet conventions, NOT norm values (module docstring table): canonical unit per minute
DEFAULT_SPIKE_LIMITS: Mapping[str, float] = MappingProxyType({
    "pm1": 500.0, "pm25": 500.0, "pm4": 500.0, "pm10": 1000.0,
    "no2": 500.0, "o3": 500.0, "no": 1000.0, "nox": 1000.0, "so2": 1000.0, "co": 20000.0,
    "co2": 500.0, "bc": 200.0,
    "temperature": 5.0, "temperature_8m": 5.0, "temperature_20m": 5.0,
    "relativehumidity": 30.0, "pressure": 5.0,
})
#: aqnet conventions, NOT norm values (module docstring table): seconds of identical reported values
DEFAULT_FLATLINE_AFTER_S: Mapping[str, float] = MappingProxyType({
    "pm1": 6 * _HOUR, "pm25": 6 * _HOUR, "pm4": 6 * _HOUR, "pm10": 6 * _HOUR,
    "no2": 12 * _HOUR, "o3": 12 * _HOUR, "no": 12 * _HOUR, "nox": 12 * _HOUR, "so2": 12 * _HOUR,
    "co": 12 * _HOUR, "co2": 6 * _HOUR, "bc": 12 * _HOUR,
    "temperature": 6 * _HOUR, "temperature_8m": 6 * _HOUR, "temperature_20m": 6 * _HOUR,
    "relativehumidity": 12 * _HOUR, "pressure": 12 * _HOUR,
})
#: the bits that depend on the series' history (and so on arrival order): the writer may ignore them when
#: it compares a repeated reading with the stored one
STATEFUL = QC.SPIKE | QC.FLATLINE


@dataclass(frozen=True, slots=True)
class QCState:
    """What the stateful checks remember about one (sensor, device, variable) series."""

    last_time: datetime | None = None  #: measurement time of the newest reading seen (None: none yet)
    last_value: float | None = None  #: its value, canonical unit
    last_raw_value: float | None = None  #: its value as reported (flatline compares these)
    run_start: datetime | None = None  #: time of the first reading of the current run of identical raw values
    last_flags: QC = _NO_FLAGS  #: the SPIKE/FLATLINE bits the newest reading got (repeated for an exact repeat)


def _positive(name: str, x: float) -> float:
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"qc.check: {name} must be a positive number, got {x}")
    return x


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a == b  # NaN never equals itself: a NaN run is no run


def _stateful_flags(reading: Reading, state: QCState, spike_limits: Mapping[str, float],
                    flatline_after_s: Mapping[str, float], min_interval_s: float) -> tuple[QC, datetime]:
    # → (SPIKE/FLATLINE bits earned, start of the run of identical raw values this reading belongs to)
    assert state.last_time is not None
    flags = QC(0)
    limit = spike_limits.get(reading.variable)
    if limit is not None and state.last_value is not None and math.isfinite(reading.value) \
            and math.isfinite(state.last_value):
        interval_s = max((reading.time - state.last_time).total_seconds(), min_interval_s)
        if abs(reading.value - state.last_value) / interval_s * 60.0 > _positive(f"spike limit of {reading.variable}",
                                                                                 limit):
            flags |= QC.SPIKE
    same_run = _same(reading.raw_value, state.last_raw_value) and state.run_start is not None
    run_start = state.run_start if same_run and state.run_start is not None else reading.time
    after = flatline_after_s.get(reading.variable)
    if after is not None and same_run and (reading.time - run_start).total_seconds() > _positive(
            f"flatline duration of {reading.variable}", after):
        flags |= QC.FLATLINE
    return flags, run_start


def check(reading: Reading, state: QCState | None, now: datetime, *,
          skew_tolerance_s: float = DEFAULT_SKEW_TOLERANCE_S,
          stale_after_s: float = DEFAULT_STALE_AFTER_S,
          spike_limits: Mapping[str, float] | None = None,
          flatline_after_s: Mapping[str, float] | None = None,
          spike_min_interval_s: float = DEFAULT_SPIKE_MIN_INTERVAL_S) -> tuple[Reading, QCState]:
    """Add CLOCK_SKEW, STALE, SPIKE and FLATLINE to `reading` as earned; return it with the series' new state.

    `spike_limits` (canonical unit per minute) and `flatline_after_s` (seconds) map variable codes to limits;
    None uses the defaults of the module docstring, and a variable missing from a mapping is not checked.
    """
    if now.tzinfo is None:
        raise ValueError("qc.check: `now` must be timezone-aware")
    if not (math.isfinite(skew_tolerance_s) and skew_tolerance_s >= 0):
        raise ValueError(f"qc.check: skew_tolerance_s must be >= 0, got {skew_tolerance_s}")
    if not (math.isfinite(stale_after_s) and stale_after_s >= 0):
        raise ValueError(f"qc.check: stale_after_s must be >= 0, got {stale_after_s}")
    if not (math.isfinite(spike_min_interval_s) and spike_min_interval_s > 0):
        raise ValueError(f"qc.check: spike_min_interval_s must be > 0, got {spike_min_interval_s}")
    flags = reading.flags
    reference = min(now, reading.received_at)
    if (reading.time - reference).total_seconds() > skew_tolerance_s:
        flags |= QC.CLOCK_SKEW
    if (reading.received_at - reading.time).total_seconds() > stale_after_s:
        flags |= QC.STALE
    state = QCState() if state is None else state
    if not flags & QC.CLOCK_SKEW:
        if state.last_time is None:
            state = QCState(reading.time, reading.value, reading.raw_value, reading.time)
        elif reading.time > state.last_time:
            earned, run_start = _stateful_flags(
                reading, state, DEFAULT_SPIKE_LIMITS if spike_limits is None else spike_limits,
                DEFAULT_FLATLINE_AFTER_S if flatline_after_s is None else flatline_after_s, spike_min_interval_s)
            flags |= earned
            state = QCState(reading.time, reading.value, reading.raw_value, run_start, earned)
        elif reading.time == state.last_time and _same(reading.value, state.last_value) \
                and _same(reading.raw_value, state.last_raw_value):
            flags |= state.last_flags  # a redelivery: the same bits as the first time
    checked = reading if flags == reading.flags else dataclasses.replace(reading, flags=flags)
    return checked, state
