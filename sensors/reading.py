"""What a driver emits: `RawReading` (a value as the device reported it) and `Gap` (a failed read). Pure.

A RawReading keeps the value and unit exactly as reported; `ingest.normalise` converts it. A failed read is a
`Gap` with its reason, never a zero or a repeated value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sensors.delivery import Delivery

__all__ = ["Conditions", "Gap", "RawReading", "TimeSource"]

#: For mass concentrations: measured per actual m³ (local) or already at the norm's reference conditions.
Conditions = Literal["local", "reference"]
#: Where `RawReading.time` came from: the device's own clock, or aqnet's receive time.
TimeSource = Literal["device", "received"]


@dataclass(frozen=True, slots=True)
class RawReading:
    """One value of one variable from one device, as reported."""

    sensor_id: str  #: logical measuring point (reference.json station code or microsensor id)
    device_id: str  #: the hardware behind it (analyser, microsensor board)
    variable: str  #: vocabulary code (sensors.variables)
    value: float  #: as reported, in `unit`
    unit: str  #: as reported ("ppb", "ppm", "ug/m3", "µg/m³", "mmHg", ...)
    time: datetime  #: measurement time, timezone-aware
    received_at: datetime  #: when aqnet received it, timezone-aware
    conditions: Conditions | None = None  #: for mass concentrations (device profile field)
    device_status: int = 0  #: ingest.reading.QC bits the device itself reported (invalid, maintenance)
    time_source: TimeSource = "device"
    #: for a receive-time reading: the identity of its message, so a redelivery is not a new reading
    delivery: Delivery | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.received_at.tzinfo is None:
            raise ValueError(f"RawReading {self.sensor_id}/{self.variable}: times must be timezone-aware")
        if not self.sensor_id or not self.device_id or not self.variable:
            raise ValueError("RawReading: sensor_id, device_id and variable are required")


@dataclass(frozen=True, slots=True)
class Gap:
    """A read that produced no value: the sensor, the device, when, and why."""

    sensor_id: str
    device_id: str
    time: datetime
    reason: str  #: short machine-readable reason (timeout, exception, connection_refused, ...)
    detail: str = ""  #: human-readable detail for the log line
