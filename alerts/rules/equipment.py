"""The technicians' equipment checks: how many minutes each sensor has been silent (no_data), flat (flatline) or
reporting readings its analyser flags invalid (device_fault), measured at `now` from the stored `measurements`.
I/O (psycopg 3, sync, read only; the queries are `storage.rule_inputs`), called by `alerts.rules.evaluate` once per
equipment rule.

Every check is ONE query over all the active sensors of the rule's selection (`sensors.kind` 'station' and/or
'microsensor', `sensors.lifecycle` = 'active'), bounded to a window ending at `now` that is one hour longer than
the rule's highest level (so every level can be reached and no query reads more than that), using the
`measurements_sensor_variable_time_idx` index and the hypertable's time partitioning:
- no_data: per active device of the sensor (measuring the rule's variable, when it names one), minutes from its
  last reading (of the variable) to `now`, so one silent analyser of a station is noticed while the others
  report; a sensor with no such device registered is judged as a whole; no reading in the window counts as
  silent since the window's start (the value is then "at least" that);
- flatline: per device and variable, the longest run of the latest readings (not excluded by QC: flags in
  `ingest.reading.EXCLUDED`) whose max − min stays within the rule's `flatline_tolerance` (default 0, the
  variable's unit); the value is the minutes from that run's first to its last reading when it holds at least
  3 readings, else 0; no reading in the window: no value;
- device_fault: per device and variable, the minutes from the first of the trailing run of readings flagged
  `QC.DEVICE_INVALID` (the analyser's status bits) to the last reading, 0 when the last reading is not flagged;
  readings in maintenance (`QC.MAINTENANCE`) are ignored; no reading in the window: no value.
A sensor's value is the worst (largest) over its devices and variables; the variable reported is that one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from alerts.rules.model import Rule
from ingest.reading import EXCLUDED, QC
from storage import rule_inputs

__all__ = ["EquipmentValue", "db_kinds", "equipment_values", "window_start"]

#: the window is this much longer than the rule's highest level, so a run that started before it still
#: measures at least the highest threshold with readings up to an hour apart
_MARGIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class EquipmentValue:
    """One sensor's equipment value at `now`: minutes silent / flat / flagged; None when there is no data."""

    sensor_id: str
    locality: str
    variable: str | None  #: the variable measured (the worst one when the rule names none)
    minutes: float | None  #: None: no reading in the window, nothing to judge (flatline, device_fault)
    last_reading: datetime | None  #: the last reading in the window (of the variable, or of any)
    since: datetime | None  #: no_data: the last reading; flatline / device_fault: when the run started
    device_id: str | None = None  #: no_data: the device that has been silent longest (None: the sensor as a whole)


def db_kinds(rule: Rule) -> list[str]:
    """The `sensors.kind` values a rule's `sensors` selection covers."""
    return {"reference": ["station"], "microsensor": ["microsensor"]}.get(rule.sensors, ["station", "microsensor"])


def window_start(rule: Rule, now: datetime) -> datetime:
    """The start of the bounded window an equipment rule reads: its highest level plus one hour before `now`."""
    return now - timedelta(minutes=max(lv.threshold for lv in rule.levels)) - _MARGIN


def _minutes(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds() / 60.0, 0.0)


def _worst(values: Sequence[EquipmentValue]) -> list[EquipmentValue]:
    """One value per sensor: the largest minutes over its devices and variables (ties: the first variable, then
    the first device)."""
    best: dict[str, EquipmentValue] = {}
    for v in sorted(values, key=lambda v: (v.sensor_id, v.variable or "", v.device_id or "")):
        held = best.get(v.sensor_id)
        if held is None or (v.minutes or 0.0) > (held.minutes or 0.0):
            best[v.sensor_id] = v
    return [best[k] for k in sorted(best)]


def equipment_values(conn: psycopg.Connection, rule: Rule, now: datetime) -> list[EquipmentValue]:
    """The rule's equipment value for every active sensor of its selection at `now` (see the module docstring)."""
    since = window_start(rule, now)
    params: dict[str, Any] = {"kinds": db_kinds(rule), "variable": rule.variable, "since": since, "now": now}
    if rule.kind == "no_data":
        return _worst([EquipmentValue(sensor, locality, rule.variable, _minutes(now, last or since), last, last,
                                      device)
                       for sensor, locality, device, last in rule_inputs.last_readings(conn, **params)])
    if rule.kind == "flatline":
        rows = rule_inputs.flat_runs(conn, **params, excluded=int(EXCLUDED), tolerance=rule.flatline_tolerance or 0.0)
        return _worst([EquipmentValue(sensor, locality, variable,
                                      _minutes(last, flat_since) if flat_n >= 3 else 0.0, last,
                                      flat_since if flat_n >= 3 else None)
                       for sensor, locality, variable, last, flat_since, flat_n in rows])
    if rule.kind == "device_fault":
        rows = rule_inputs.device_fault_runs(conn, **params, invalid=int(QC.DEVICE_INVALID),
                                             maintenance=int(QC.MAINTENANCE))
        return _worst([EquipmentValue(sensor, locality, variable,
                                      _minutes(last, bad_since) if bad_since is not None else 0.0, last, bad_since)
                       for sensor, locality, variable, last, bad_since in rows])
    raise ValueError(f"rule {rule.id!r}: kind {rule.kind!r} is not an equipment check "
                     "(expected no_data, flatline or device_fault)")
