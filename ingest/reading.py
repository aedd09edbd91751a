"""`Reading` (a value in the canonical unit with its QC flags and provenance) and the `QC` bitmask. Pure.

The QC bitmask is defined here and only here. Bits are NEVER renumbered: later issues add bits at the end.
A reading keeps every flag it earns; flagged readings are stored, not dropped (VARIABLES.md, "Which readings
count"). `EXCLUDED` lists the bits that keep a reading out of averages, indices and alerts.

| bit | value | name | meaning |
|---|---|---|---|
| 0 | 1 | OUT_OF_RANGE | outside the physically possible range of the device profile (excluded) |
| 1 | 2 | NEGATIVE | negative value (kept, suspect: small negatives are instrument noise) |
| 2 | 4 | SPIKE | rate of change above the variable's limit (kept, suspect) |
| 3 | 8 | FLATLINE | identical values for too long (kept, suspect) |
| 4 | 16 | STALE | measurement time much older than its receive time |
| 5 | 32 | DEVICE_INVALID | the device reported the value invalid (status register / payload) (excluded) |
| 6 | 64 | MAINTENANCE | device in maintenance, or inside a maintenance window (excluded) |
| 7 | 128 | CLOCK_SKEW | device time ahead of receive time beyond the tolerance (excluded) |
| 8 | 256 | CALIBRATED | a calibration was applied |
| 9 | 512 | RECEIVE_TIME | no usable device time: receive time used |

Provenance fields of a `Reading` (all optional, `None` when they do not apply; stored in `measurements`):
`conditions_temp_c` / `conditions_pressure_hpa` are the temperature (°C) and pressure (hPa) a local mass
concentration was corrected with, `conditions_source` where they came from ("own", "nearest:<sensor>",
"site-default", …) or "reported-reference" for a mass concentration the device reported at the reference
conditions (no correction); `calibration_id` is the `calibrations.id` applied (with the CALIBRATED bit) and
`calibration_rh_pct` the relative humidity (%) a humidity-correction calibration used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntFlag

from sensors.delivery import Delivery
from sensors.reading import RawReading

__all__ = ["EXCLUDED", "QC", "Reading"]


class QC(IntFlag):
    """Quality-control flags; values are stored in `measurements.flags`. Never renumber."""

    OUT_OF_RANGE = 1 << 0
    NEGATIVE = 1 << 1
    SPIKE = 1 << 2
    FLATLINE = 1 << 3
    STALE = 1 << 4
    DEVICE_INVALID = 1 << 5
    MAINTENANCE = 1 << 6
    CLOCK_SKEW = 1 << 7
    CALIBRATED = 1 << 8
    RECEIVE_TIME = 1 << 9


#: Readings with any of these bits are excluded from averages, indices and alerts (VARIABLES.md).
EXCLUDED = QC.OUT_OF_RANGE | QC.DEVICE_INVALID | QC.MAINTENANCE | QC.CLOCK_SKEW


@dataclass(frozen=True, slots=True)
class Reading:
    """A normalised reading: value in the canonical unit, flags, and the raw value it came from."""

    sensor_id: str
    device_id: str
    variable: str
    time: datetime
    value: float  #: in `unit`, the variable's canonical unit
    unit: str
    flags: QC
    raw_value: float
    raw_unit: str
    received_at: datetime
    conditions_temp_c: float | None = None  #: °C used for the local → reference correction
    conditions_pressure_hpa: float | None = None  #: hPa used for the local → reference correction
    #: origin of the conditions ("own", "nearest:<sensor id>", "site-default", "reported-reference", …)
    conditions_source: str | None = None
    calibration_id: int | None = None  #: calibrations.id applied (flags has CALIBRATED)
    calibration_rh_pct: float | None = None  #: relative humidity (%) used by a humidity-correction calibration
    #: receive-time readings: the identity of the message (sensors.delivery); the writer keeps a redelivery's time
    delivery: Delivery | None = None

    @classmethod
    def from_raw(cls, raw: RawReading, value: float, unit: str, flags: QC, *,
                 conditions_temp_c: float | None = None, conditions_pressure_hpa: float | None = None,
                 conditions_source: str | None = None, calibration_id: int | None = None,
                 calibration_rh_pct: float | None = None) -> Reading:
        """Build a Reading from its RawReading, keeping the raw value and unit (and the provenance given)."""
        return cls(raw.sensor_id, raw.device_id, raw.variable, raw.time, value, unit, flags, raw.value, raw.unit,
                   raw.received_at, conditions_temp_c, conditions_pressure_hpa, conditions_source,
                   calibration_id, calibration_rh_pct, raw.delivery)

    @property
    def valid(self) -> bool:
        """True when no excluding flag is set."""
        return not (self.flags & EXCLUDED)
