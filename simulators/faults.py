"""Fault injection for the simulated network: what can go wrong, for which sensors, when. Pure (no I/O).

A scenario lists `FaultSpec`s; a `FaultPlan` answers, for a sensor at a simulated time, which faults are in
force. Value faults (flatline, spike, negative, dropout) are applied to a signal by `FaultPlan.value`; message
faults (garbage, truncated, duplicate, out-of-order, clock skew) by the microsensor publishers; Modbus faults
(exception, hang, word order) and a station's dropout (it goes offline) by the station servers through
`FaultPlan.station`; broker disconnects by the microsensor fleet. Every kind has a test showing it reaches the
drivers and is handled as the drivers' issues say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["MESSAGE_ONLY", "MODBUS_ONLY", "VALUE_KINDS", "FaultKind", "FaultPlan", "FaultSpec", "StationFaults"]


class FaultKind(StrEnum):
    """Every fault the simulators can inject (scenario files use these names)."""

    DROPOUT = "dropout"  #: the device says nothing (station offline / microsensor silent)
    FLATLINE = "flatline"  #: the value is stuck at the one it had when the fault began
    SPIKE = "spike"  #: isolated large excursions (params: factor, every_s, width_s)
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
#: the kinds applied to a value, whatever carries it
VALUE_KINDS = frozenset({FaultKind.DROPOUT, FaultKind.FLATLINE, FaultKind.SPIKE, FaultKind.NEGATIVE})
#: Modbus exception code a modbus_exception fault answers with by default: 4, server device failure
DEFAULT_EXCEPTION_CODE = 4


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault: `kind` on `sensors` (ids; empty = every sensor) in [start, end), optionally one variable.

    `devices` narrows a fault to some of the sensors' devices (device ids, e.g. "KEN-nox"; empty = every
    device); it matters for the Modbus faults, which hit one analyser behind a station's gateway.
    """

    kind: FaultKind
    start: datetime
    end: datetime
    sensors: frozenset[str] = frozenset()
    variable: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    devices: frozenset[str] = frozenset()

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


@dataclass(frozen=True, slots=True)
class StationFaults:
    """The Modbus-side faults of one station at one instant (what the station server must do)."""

    offline: bool = False  #: a dropout of the whole station: it stops listening
    hang: frozenset[str] = frozenset()  #: device ids that accept requests and never answer
    exception: Mapping[str, int] = field(default_factory=dict)  #: device id → exception code answered
    swapped: frozenset[str] = frozenset()  #: device ids serving 32-bit values with their words swapped


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

    def value(self, sensor_id: str, variable: str, t: datetime, signal: Any, *,
              station: bool = False) -> float | None:
        """`signal(t)` with the value faults in force applied; None when the device drops out.

        `signal` is a callable time → value (so a flatline can read the value at the fault's start). For a
        `station`, a dropout without a variable is its link going down (`station`), not its analysers: their
        values, and the logger history that backfills the outage, carry on.
        """
        value: float | None = signal(t)
        for f in self.active(sensor_id, t, variable):
            if f.kind is FaultKind.DROPOUT:
                if station and f.variable is None:
                    continue
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

    def station(self, sensor_id: str, device_ids: Iterable[str], t: datetime) -> StationFaults:
        """The Modbus-side faults of station `sensor_id` (with devices `device_ids`) at `t`.

        A dropout without a variable takes the whole station offline; one with a variable only silences that
        variable (through `value`). Hang wins over exception on the same device.
        """
        offline = False
        hang: set[str] = set()
        exception: dict[str, int] = {}
        swapped: set[str] = set()
        devices = tuple(device_ids)
        for f in self.faults:
            if not f.applies(sensor_id, t):
                continue
            if f.kind is FaultKind.DROPOUT and f.variable is None and not f.devices:
                offline = True
                continue
            hit = [d for d in devices if not f.devices or d in f.devices]
            if f.kind is FaultKind.DROPOUT and f.variable is None:
                hang.update(hit)  # one analyser of the station silent: its requests go unanswered
            elif f.kind is FaultKind.MODBUS_HANG:
                hang.update(hit)
            elif f.kind is FaultKind.MODBUS_EXCEPTION:
                for d in hit:
                    exception.setdefault(d, int(f.params.get("code", DEFAULT_EXCEPTION_CODE)))
            elif f.kind is FaultKind.WORD_ORDER:
                swapped.update(hit)
        return StationFaults(offline, frozenset(hang),
                             {d: c for d, c in exception.items() if d not in hang}, frozenset(swapped))

    def next_change(self, t: datetime) -> datetime | None:
        """The first start or end of a fault strictly after `t` (when the state may change), or None."""
        edges = [e for f in self.faults for e in (f.start, f.end) if e > t]
        return min(edges) if edges else None
