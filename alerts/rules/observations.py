"""Stage 4, alert rules' inputs — I/O (psycopg 3, sync, read only): what each rule reads at one evaluation, one
`Observation` per sensor of the rule's selection with its evidence and whether it is usable, and the maintenance
windows that suppress; called by `alerts.rules.evaluate` once per rule.

Data per rule kind (sensors of the rule's selection: `sensors.kind` 'station' = reference / 'microsensor', and
`sensors.lifecycle` 'active' only):
- threshold: each sensor's latest `averages` row of the rule's variable and period ending at most `max_age_h`
  before the last hour end at or before `now` (period 'day' ends at local midnight: the latest day that ended
  within max(`max_age_h`, 24) h);
- index: each sensor's latest `indices` row (averaging 'nowcast', the rule's pollutant, or the dominant row when
  the rule names none), same age limit;
- equipment (no_data, flatline, device_fault): `alerts.rules.equipment` at `now` itself (value in minutes);
  zero_span: each device's latest judged zero/span check that ended within `ZERO_SPAN_HORIZON` of `now`
  (`zero_span_checks`), its `percent_of_limit` (a sensor's value is its worst device and variable).

Suppression: a sensor's value is NOT usable (`Observation.suppressed`) when its average is invalid (reason
'invalid', or 'device_invalid' when the period holds readings flagged QC.DEVICE_INVALID) or a
`maintenance_windows` row overlaps the evaluated period for the sensor and variable (reason 'maintenance'; index
rules: the NowCast's last hour; equipment: a window covering `now`, and no_data counts silence from the end of the
latest window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

import psycopg

from alerts.averaging.averages import HOUR
from alerts.rules.equipment import db_kinds, equipment_values, window_start
from alerts.rules.model import Rule
from ingest.reading import QC
from storage import rule_inputs, zero_span_store

__all__ = ["NOWCAST_HOURS", "ZERO_SPAN_HORIZON", "MaintenanceWindow", "Observation", "equipment_observations",
           "index_observations", "local_stamp", "maintenance_windows", "scope_key", "threshold_observations",
           "zero_span_observations"]

NOWCAST_HOURS = 12  #: the NowCast's window (alerts.averaging.nowcast.WINDOW_HOURS)
#: a zero/span check older than this no longer keeps (or raises) an alert: an aqnet operational choice, a week
#: (checks run nightly or every few days); the alert's state is left as it is
ZERO_SPAN_HORIZON = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Observation:
    """One sensor's value for one rule at one evaluation, with its evidence."""

    sensor_id: str
    locality: str
    variable: str | None
    value: float | None
    period_end: datetime  #: the evaluated period's end (equipment: `now`)
    period_start: datetime | None = None
    coverage: float | None = None
    suppressed: str | None = None  #: None (usable) | maintenance | invalid | device_invalid
    detail: str = ""  #: extra evidence (equipment: the last reading; index: the category)
    action: str | None = None  #: IBOCA action level of the category (information)


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    sensor_id: str
    variable: str | None
    device_variables: tuple[str, ...] | None  #: None: the whole sensor
    starts_at: datetime
    ends_at: datetime

    def covers(self, sensor: str, variable: str | None, start: datetime, end: datetime) -> bool:
        if sensor != self.sensor_id or not (self.starts_at < end and self.ends_at > start):
            return False
        if variable is None:  # a rule on any variable: only a whole-sensor window
            return self.variable is None and self.device_variables is None
        return (self.variable in (None, variable)
                and (not self.device_variables or variable in self.device_variables))


# ------------------------------------------------------------------------------------------------- reads

def maintenance_windows(conn: psycopg.Connection, since: datetime, now: datetime) -> list[MaintenanceWindow]:
    """The maintenance windows ending after `since` that started by `now`."""
    return [MaintenanceWindow(s, v, tuple(d) if d is not None else None, a, b)
            for s, v, d, a, b in rule_inputs.maintenance_windows(conn, since, now)]


def _age(rule: Rule, max_age_h: float) -> timedelta:
    return max(max_age_h, 24) * HOUR if rule.period == "day" else max_age_h * HOUR


def threshold_observations(conn: psycopg.Connection, rule: Rule, until: datetime, max_age_h: float,
                           windows: Sequence[MaintenanceWindow]) -> list[Observation]:
    """Each sensor's latest average of the rule's variable and period ending within the age limit of `until`."""
    rows = rule_inputs.latest_averages(conn, variable=rule.variable, period=rule.period, kinds=db_kinds(rule),
                                       since=until - _age(rule, max_age_h), until=until,
                                       invalid=int(QC.DEVICE_INVALID))
    out = []
    for sensor, locality, start, end, value, valid, coverage, device_invalid in rows:
        reason = None
        if not valid:
            reason = "device_invalid" if device_invalid else "invalid"
        elif any(w.covers(sensor, rule.variable, start, end) for w in windows):
            reason = "maintenance"
        out.append(Observation(sensor, locality, rule.variable, value, end, start, coverage, reason))
    return out


def index_observations(conn: psycopg.Connection, rule: Rule, until: datetime, max_age_h: float,
                       windows: Sequence[MaintenanceWindow]) -> list[Observation]:
    """Each sensor's latest NowCast index row of the rule ending within `max_age_h` of `until`."""
    rows = rule_inputs.latest_indices(conn, index=rule.index, variable=rule.variable, kinds=db_kinds(rule),
                                      since=until - max_age_h * HOUR, until=until)
    out = []
    for sensor, locality, pollutant, end, value, category, action in rows:
        # the NowCast weighs its last hour most: maintenance in that hour suppresses
        reason = "maintenance" if any(w.covers(sensor, pollutant, end - HOUR, end) for w in windows) else None
        out.append(Observation(sensor, locality, pollutant, float(value), end, end - NOWCAST_HOURS * HOUR, None,
                               reason, f"category {category}", action))
    return out


def equipment_observations(conn: psycopg.Connection, rule: Rule, now: datetime,
                           windows: Sequence[MaintenanceWindow], tz: tzinfo) -> list[Observation]:
    """Each sensor's equipment value at `now` (`alerts.rules.equipment`), with its evidence."""
    out = []
    for v in equipment_values(conn, rule, now):
        minutes, detail = v.minutes, ""
        if rule.kind == "no_data":
            ends = [w.ends_at for w in windows if w.ends_at <= now and (v.last_reading is None or
                    w.ends_at > v.last_reading) and w.covers(v.sensor_id, rule.variable, w.starts_at, w.ends_at)]
            if ends:  # silent in maintenance is expected: count from the window's end
                minutes = min(minutes or 0.0, (now - max(ends)).total_seconds() / 60.0)
            detail = (f"last reading {local_stamp(v.last_reading, tz)}" if v.last_reading is not None
                      else f"no reading since {local_stamp(window_start(rule, now), tz)}")
            if v.device_id is not None:
                detail = f"device {v.device_id}: {detail}"
        elif v.since is not None:
            detail = f"since {local_stamp(v.since, tz)}, last reading {local_stamp(v.last_reading, tz)}"
        reason = "maintenance" if any(w.covers(v.sensor_id, v.variable, now, now + timedelta(microseconds=1))
                                      for w in windows) else None
        out.append(Observation(v.sensor_id, v.locality, v.variable, minutes, now, None, None, reason, detail))
    return out


def zero_span_observations(conn: psycopg.Connection, rule: Rule, now: datetime, tz: tzinfo) -> list[Observation]:
    """Each sensor's worst latest zero/span check (percent of its acceptance limit), with its evidence."""
    rows = zero_span_store.latest_checks(conn, kinds=db_kinds(rule), variable=rule.variable,
                                         since=now - ZERO_SPAN_HORIZON, until=now)
    worst: dict[str, Observation] = {}
    for (sensor, locality, device, variable, started, _ended, pct, zero_error, span_error, unit, source,
         status) in rows:
        zero = "-" if zero_error is None else f"{zero_error:+.2f} {unit}"
        span = "-" if span_error is None else f"{span_error:+.1f} %"
        detail = (f"check of {device} at {local_stamp(started, tz)}: zero error {zero}, span error {span} "
                  f"(limits: {source}, {status})")
        obs = Observation(sensor, locality, variable, pct, now, started, None, None, detail)
        held = worst.get(sensor)
        if held is None or (pct or 0.0) > (held.value or 0.0):
            worst[sensor] = obs
    return [worst[k] for k in sorted(worst)]


def scope_key(rule: Rule, obs: Observation) -> str | None:
    if rule.scope == "sensor":
        return obs.sensor_id
    if rule.scope == "locality":
        return obs.locality or None
    return "network"


def local_stamp(t: datetime | None, tz: tzinfo) -> str:
    return "-" if t is None else t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
