"""Alert evaluation: every rule on the stored data at `now`, through the pure state machine (`alerts.rules.state`), the
alerts and their transitions persisted. I/O glue (psycopg 3, sync), ONE transaction (`conn.transaction()`: a
savepoint when the caller already opened one, so `aqnet alerts test-rule` can roll everything back).
The queries are `storage.alert_episodes` (the episodes) and `storage.rule_inputs` (the replayed values).

What each rule reads, and when a value is suppressed: `alerts.rules.observations`.
Scope 'sensor' keeps one alert per sensor, 'locality' per `sensors.locality` (sensors without one are left out),
'network' one; the scope's value is the MAX over its sensors' usable values (the reported sensor is that one),
stepped at the latest period end among them (equipment: at `now`). When a suppressed value would raise or
escalate the scope's alert, one `alert_suppressions` row per rule, scope and period end records it (equipment: per
hour end).

Persistence: `alerts` holds each episode (columns + `details.state`: updated_at, streak, candidate, level_since;
`details.manual` written by `storage.alerts_store` on a manual resolution, `details.manual_cleared` here once a
value below the clear threshold forgets it); `alert_events` one row per transition with `kind`, `from_level`,
`severity` and a `note` (`alerts.rules.notes.note_for`). Active alerts are locked FOR UPDATE while evaluated, so an
officer's acknowledgement is never overwritten. A raise or escalation stores `level_since` = `now` (the wall time
it was announced): the acknowledgement deadline runs from then, not from the period's end. A pending streak (before
`min_duration`) is not stored: it is re-derived by replaying the scope's last `min_duration` values since its last
resolution (equipment rules are stepped with min_duration 1: their thresholds are durations already). After
stepping, every firing alert of the rule is checked with `alerts.rules.state.overdue` (per-rule
`escalate_unacknowledged_after_min`, else the argument): an 'unacknowledged' event and `alerts.escalated_at`.
Re-running for the same `now` changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from typing import Any

import psycopg

from alerts.averaging.averages import HOUR
from alerts.averaging.job import network_timezone
from alerts.averaging.windows import hour_end_at_or_before
from alerts.rules.model import Rule
from alerts.rules.notes import note_for, pct
from alerts.rules.observations import (
    MaintenanceWindow,
    Observation,
    equipment_observations,
    index_observations,
    maintenance_windows,
    scope_key,
    threshold_observations,
    zero_span_observations,
)
from alerts.rules.state import AlertEvent, AlertState, AlertUnacknowledged, mark_unacknowledged, overdue, step
from storage import alert_episodes, rule_inputs

__all__ = ["evaluate_alerts"]

log = logging.getLogger(__name__)

_COLUMNS = ("rule_id", "sensor_id", "variable", "status", "level", "threshold", "unit", "source", "value",
            "started_at", "resolved_at", "severity", "acknowledged_at", "acknowledged_by", "escalated_at",
            "resolved_by", "manual")


# ------------------------------------------------------------------------------------------- persistence

def _from_row(rule: Rule, row: tuple[Any, ...]) -> tuple[int, AlertState]:
    (alert_id, key, variable, status, level, value, threshold, unit, source, started_at, updated_at, resolved_at,
     severity, acknowledged_at, acknowledged_by, escalated_at, resolved_by, details) = row
    saved = details.get("state", {})
    names = {f.name: f for f in dataclasses.fields(AlertState)}

    def parse(name: str, raw: Any) -> Any:
        return datetime.fromisoformat(raw) if raw is not None and "datetime" in str(names[name].type) else raw

    extra = {k: parse(k, v) for k, v in saved.items() if k in names and k not in _COLUMNS}
    extra.setdefault("updated_at", updated_at)
    manual = status == "resolved" and bool(details.get("manual"))
    state = AlertState(rule_id=rule.id, sensor_id=key, variable=variable, status=status, level=level,
                       threshold=threshold, unit=unit or rule.unit, source=source or "", value=value,
                       started_at=started_at, resolved_at=resolved_at, severity=severity,
                       acknowledged_at=(acknowledged_at or updated_at) if status == "acknowledged" else None,
                       acknowledged_by=acknowledged_by if status == "acknowledged" else None,
                       escalated_at=escalated_at, resolved_by=resolved_by, manual=manual, **extra)
    return alert_id, state


def _details(rule: Rule, state: AlertState, obs: Observation | None) -> dict[str, Any]:
    saved = {f.name: getattr(state, f.name) for f in dataclasses.fields(AlertState) if f.name not in _COLUMNS}
    level = rule.levels[rule.level_named(state.level)]
    out: dict[str, Any] = {
        "state": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in saved.items()},
        "rule_description": rule.description, "comparison": level.comparison, "action": level.action,
        "clear_threshold": rule.clear_threshold, "level_status": level.status}
    if obs is not None:
        out |= {"evidence": obs.detail, "action": obs.action or level.action}
    return out


def _insert(conn: psycopg.Connection, rule: Rule, state: AlertState, obs: Observation, now: datetime) -> int:
    return alert_episodes.insert_alert(
        conn, rule=rule.id, scope=rule.scope, scope_key=state.sensor_id, sensor_id=obs.sensor_id,
        locality=obs.locality or None, variable=obs.variable, kind=rule.kind, audience=rule.audience,
        indicative=rule.indicative, level=state.level, severity=state.severity, state=state.status, value=state.value,
        threshold=state.threshold, unit=state.unit, source=state.source, period=rule.period,
        period_start=obs.period_start, period_end=obs.period_end, coverage=obs.coverage, started_at=state.started_at,
        updated_at=now, details=_details(rule, state, obs))


def _update(conn: psycopg.Connection, alert_id: int, rule: Rule, state: AlertState, obs: Observation | None,
            now: datetime, *, cleared: bool = False) -> None:
    details = _details(rule, state, obs) | ({"manual_cleared": now.isoformat()} if cleared else {})
    alert_episodes.update_alert(
        conn, alert_id, level=state.level, severity=state.severity, state=state.status, value=state.value,
        threshold=state.threshold, source=state.source, resolved_at=state.resolved_at,
        escalated_at=state.escalated_at, updated_at=now, details=details)
    if obs is not None:
        alert_episodes.update_evidence(conn, alert_id, sensor_id=obs.sensor_id, locality=obs.locality or None,
                                       variable=obs.variable, period_start=obs.period_start,
                                       period_end=obs.period_end, coverage=obs.coverage)


def _record(conn: psycopg.Connection, alert_id: int, before: str | None, events: Sequence[AlertEvent],
            rule: Rule, obs: Observation | None, tz: tzinfo) -> None:
    state = before
    for event in events:
        after = "resolved" if event.kind == "resolved" else "firing"
        alert_episodes.insert_event(conn, alert_id, time=event.time, kind=event.kind, from_state=state, to_state=after,
                                    level=event.level, from_level=getattr(event, "from_level", None),
                                    severity=event.severity, value=event.value, note=note_for(event, rule, obs, tz))
        state = after


def _suppress(conn: psycopg.Connection, rule: Rule, key: str, obs: Observation, level: str, period_end: datetime
              ) -> None:
    what = {"maintenance": "a maintenance window covers the period",
            "invalid": f"the average is invalid (coverage {pct(obs.coverage)})",
            "device_invalid": "the period holds readings the analyser flagged invalid (QC.DEVICE_INVALID), "
                              f"coverage {pct(obs.coverage)}"}[obs.suppressed or "invalid"]
    detail = f"{obs.value:g} {rule.unit} at {obs.sensor_id} would reach {level}, but {what}"
    alert_episodes.insert_suppression(conn, rule=rule.id, scope=rule.scope, scope_key=key, sensor_id=obs.sensor_id,
                                      variable=obs.variable, period_end=period_end, value=obs.value, level=level,
                                      reason=obs.suppressed, detail=detail)


# ------------------------------------------------------------------------------------------- evaluation

def _replay(conn: psycopg.Connection, rule: Rule, key: str, sensors: list[str], until: datetime,
            lookback_h: float) -> tuple[AlertState | None, tuple[AlertEvent, ...]]:
    """Run the state machine from no alert over the scope's last `min_duration` values ending at `until`."""
    bound = alert_episodes.replay_bound(conn, since=until - lookback_h * HOUR, rule=rule.id, scope=rule.scope,
                                        scope_key=key)
    rows = rule_inputs.recent_values(conn, from_indices=rule.kind == "index", sensors=sensors, index=rule.index,
                                     variable=rule.variable, period=rule.period, since=bound, until=until,
                                     n=rule.min_duration)
    state: AlertState | None = None
    events: tuple[AlertEvent, ...] = ()
    for period_end, value in reversed(rows):
        state, events = step(state, value, valid=True, now=period_end, rule=rule, sensor_id=key)
    if state is None or state.updated_at != until:
        return None, ()
    return state, events


def _would_raise(rule: Rule, state: AlertState | None, value: float | None) -> str | None:
    """The level a suppressed value would have raised or escalated to, if any."""
    if value is None or not math.isfinite(value):
        return None
    reached = rule.level_index(value)
    if reached is None or (state is not None and state.status == "resolved" and state.manual):
        return None
    if state is not None and state.status in ("firing", "acknowledged") and reached <= rule.level_named(state.level):
        return None
    return rule.levels[reached].name


def _evaluate_rule(conn: psycopg.Connection, rule: Rule, now: datetime, *, tz: tzinfo, last_end: datetime,
                   max_age_h: float, lookback_h: float, after_min: float, windows: Sequence[MaintenanceWindow]
                   ) -> list[AlertEvent]:
    if rule.kind == "zero_span":
        observations = zero_span_observations(conn, rule, now, tz)
        rule = rule.model_copy(update={"min_duration": 1})  # one check is one evaluation
    elif rule.equipment:
        observations = equipment_observations(conn, rule, now, windows, tz)
        rule = rule.model_copy(update={"min_duration": 1})  # equipment thresholds are durations already
    elif rule.kind == "index":
        observations = index_observations(conn, rule, last_end, max_age_h, windows)
    else:
        observations = threshold_observations(conn, rule, last_end, max_age_h, windows)
    groups: dict[str, list[Observation]] = defaultdict(list)
    for obs in observations:
        key = scope_key(rule, obs)
        if key is not None:
            groups[key].append(obs)
    ids: dict[str, int] = {}
    states: dict[str, AlertState] = {}
    for row in alert_episodes.open_alerts(conn, rule.id, rule.scope):
        alert_id, state = _from_row(rule, row)
        if state.sensor_id not in states or states[state.sensor_id].status == "resolved":
            ids[state.sensor_id], states[state.sensor_id] = alert_id, state
    events: list[AlertEvent] = []
    for key in sorted(groups):
        obs_list = groups[key]
        usable = [o for o in obs_list if o.suppressed is None and o.value is not None and math.isfinite(o.value)]
        best = max(usable, key=lambda o: (o.value, o.sensor_id)) if usable else None
        before = states.get(key)
        blocked = [o for o in obs_list if o.suppressed is not None and o.value is not None
                   and (best is None or o.value > (best.value or 0.0))]
        if blocked:
            worst = max(blocked, key=lambda o: (o.value, o.sensor_id))
            level = _would_raise(rule, before, worst.value)
            if level is not None:
                period_end = hour_end_at_or_before(now, tz) if rule.equipment else worst.period_end
                _suppress(conn, rule, key, worst, level, period_end)
        if best is None:
            continue  # nothing usable: no alert from invalid data; the state is unchanged
        when = now if rule.equipment else max(o.period_end for o in usable)
        if before is not None:
            after, new = step(before, best.value, valid=True, now=when, rule=rule, sensor_id=key)
        elif rule.min_duration > 1:
            after, new = _replay(conn, rule, key, [o.sensor_id for o in obs_list], when, lookback_h)
        else:
            after, new = step(None, best.value, valid=True, now=when, rule=rule, sensor_id=key)
        if before is not None and before.manual and (after is None or not after.manual):
            _update(conn, ids[key], rule, before, None, now, cleared=True)  # forgotten: next episode is new
            states.pop(key)
            before = None
            if after is None:
                continue
        if after is None or after.status == "pending" or after == before:
            continue
        if any(e.kind in ("raised", "escalated") for e in new):
            # the acknowledgement deadline runs from when the level was announced, not from the period's end
            after = replace(after, level_since=now)
        if before is None:
            ids[key] = _insert(conn, rule, after, best, now)
        else:
            _update(conn, ids[key], rule, after, best, now)
        _record(conn, ids[key], None if before is None else before.status, new, rule, best, tz)
        states[key] = after
        events.extend(new)
    for key, state in sorted(states.items()):
        late = overdue(state, now, after_min)
        if late is None:
            continue
        marked = mark_unacknowledged(state, late)
        alert_episodes.mark_unacknowledged(conn, ids[key], time=late.time, updated_at=now, level=late.level,
                                           severity=late.severity, value=late.value,
                                           note=note_for(late, rule, None, tz))
        states[key] = marked
        events.append(late)
    return events


def evaluate_alerts(conn: psycopg.Connection, now: datetime, rules: Sequence[Rule], *, tz: tzinfo | None = None,
                    max_age_h: float = 2, lookback_h: float = 48, escalate_after_min: float = 60.0
                    ) -> list[AlertEvent]:
    """Evaluate every rule at `now` (module docstring), persist alerts, events and suppressions in one
    transaction (a savepoint inside the caller's), and return the events in order."""
    if now.tzinfo is None:
        raise ValueError(f"evaluate_alerts: now: expected an aware datetime, got {now.isoformat()}")
    tz = tz or network_timezone()
    last_end = hour_end_at_or_before(now, tz)
    events: list[AlertEvent] = []
    with conn.transaction():
        horizon = now - max(lookback_h, 48, max_age_h + 24) * HOUR
        windows = maintenance_windows(conn, horizon, now)
        for rule in rules:
            after_min = rule.escalate_unacknowledged_after_min
            try:
                with conn.transaction():  # a savepoint: one broken rule does not stop the others
                    events.extend(_evaluate_rule(
                        conn, rule, now, tz=tz, last_end=last_end, max_age_h=max_age_h, lookback_h=lookback_h,
                        windows=windows, after_min=escalate_after_min if after_min is None else after_min))
            except ValueError as exc:  # e.g. a stored alert at a level the edited rules file no longer has
                log.error("alert rule %s not evaluated at %s: %s; its alerts are left as they are, fix the rules "
                          "file or resolve them", rule.id, now.isoformat(), exc)
    for event in events:
        level = logging.INFO if not isinstance(event, AlertUnacknowledged) else logging.WARNING
        log.log(level, "alert %s %s at %s: %s %s %s", event.rule_id, event.kind, event.sensor_id, event.level,
                event.value, event.unit)
    return events

