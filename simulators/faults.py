"""Fault injection for the simulated network: what can go wrong, for which sensors, when. Pure (no I/O).

A scenario lists `FaultSpec`s; a `FaultPlan` answers, for a sensor at a simulated time, which faults are in
force. Value faults (flatline, spike, negative, dropout) are applied to a signal by `FaultPlan.value`; message
faults (garbage, truncated, duplicate, out-of-order, clock skew) by the microsensor publishers; Modbus faults
(exception, hang, word order) by the station servers; broker disconnects by the microsensor fleet. Every kind
has a test showing it reaches the drivers and is handled as the drivers' issues say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["FaultKind", "FaultPlan", "FaultSpec"]


class FaultKind(StrEnum):
    """Every fault the simulators can inject (scenario files use these names)."""

    DROPOUT = "dropout"  #: the device says nothing (station offline / microsensor silent)
    FLATLINE = "flatline"  #: the value is stuck at the one it had when the fault began
    SPIKE = "spike"  #: isolated large excursions (params: factor, every_s)
    NEGATIVE = "negative"  #: values below zero (params: value)
    GARBAGE = "garbage"  #: a payload that is not the format at all
    TRUNCATED = "truncated"  #: a payload cut short
    DUPLICATE = "duplicate"  #: every message sent twice
    OUT_OF_ORDER = "out_of_order"  #: messages delivered late, after newer ones (params: delay_s)
    CLOCK_SKEW = "clock_skew"  #: device time offset from true time (params: skew_s, + ahead / − behind)
    MODBUS_EXCEPTION = "modbus_exception"  #: the analyser answers with an exception code (params: code)
    MODBUS_HANG = "modbus_hang"  #: the analyser accepts the request and never answers
    WORD_ORDER = "word_order"  #: 32-bit values served with their 16-bit words swapped
    BROKER_DISCONNECT = "broker_disconnect"  #: the device's MQTT connection is dropped and re-made


#: the kinds that only make sense for a transport
MODBUS_ONLY = frozenset({FaultKind.MODBUS_EXCEPTION, FaultKind.MODBUS_HANG, FaultKind.WORD_ORDER})
MESSAGE_ONLY = frozenset({FaultKind.GARBAGE, FaultKind.TRUNCATED, FaultKind.DUPLICATE, FaultKind.OUT_OF_ORDER,
                          FaultKind.CLOCK_SKEW, FaultKind.BROKER_DISCONNECT})


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault: `kind` on `sensors` (ids; empty = every sensor) in [start, end), optionally one variable."""

    kind: FaultKind
    start: datetime
    end: datetime
    sensors: frozenset[str] = frozenset()
    variable: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"fault {self.kind}: start and end need a UTC offset")
        if not self.start < self.end:
            raise ValueError(f"fault {self.kind}: start {self.start} is not before end {self.end}")

    def applies(self, sensor_id: str, t: datetime, variable: str | None = None) -> bool:
        """Whether this fault is in force for `sensor_id` (and `variable`, if given) at `t`."""
        if not self.start <= t < self.end:
            return False
        if self.sensors and sensor_id not in self.sensors:
            return False
        return not (variable is not None and self.variable is not None and variable != self.variable)


class FaultPlan:
    """The faults of a scenario, queried by sensor and simulated time."""

    def __init__(self, faults: Iterable[FaultSpec] = ()) -> None:
        self.faults = tuple(faults)

    def active(self, sensor_id: str, t: datetime, variable: str | None = None) -> tuple[FaultSpec, ...]:
        """The faults in force for the sensor (and variable) at `t`, in scenario order."""
        return tuple(f for f in self.faults if f.applies(sensor_id, t, variable))

    def has(self, kind: FaultKind, sensor_id: str, t: datetime, variable: str | None = None) -> FaultSpec | None:
        """The first fault of `kind` in force, or None."""
        return next((f for f in self.active(sensor_id, t, variable) if f.kind is kind), None)

    def value(self, sensor_id: str, variable: str, t: datetime, signal: Any) -> float | None:
        """`signal(t)` with the value faults in force applied; None when the device drops out.

        `signal` is a callable time → value (so a flatline can read the value at the fault's start).
        """
        value: float | None = signal(t)
        for f in self.active(sensor_id, t, variable):
            if f.kind is FaultKind.DROPOUT:
                return None
            if f.kind is FaultKind.FLATLINE:
                value = signal(f.start)
            elif f.kind is FaultKind.NEGATIVE:
                value = float(f.params.get("value", -5.0))
            elif f.kind is FaultKind.SPIKE and value is not None:
                # a spike during the first `width_s` of every `every_s` since the fault began: one sample per
                # spike at a 60 s cadence
                every_s = float(f.params.get("every_s", 600))
                if (t - f.start).total_seconds() % every_s < float(f.params.get("width_s", 60)):
                    value = value * float(f.params.get("factor", 10.0))
        return value
