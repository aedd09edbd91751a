"""The scheduled stage jobs: windows (averages and indices), then the alert rules on them. I/O glue (psycopg 3,
sync) over the pure `alerts.averages`, `alerts.rules` and `alerts.state`; the windows themselves are computed by
`alerts.averaging_job` (and its index step, `alerts.index_job`).

Every job is pure over an injected clock: it takes `now` and never reads the wall clock, and each runs in its own
transactions, so a crash leaves nothing half-written and a re-run for the same `now` changes nothing.

- `run_stage_jobs` = `compute_windows` (every average and index due up to `now`, and the windows late data
  touched; see `alerts.averaging_job`) then `evaluate_alerts`. Only the leader runs it (`alerts.leader`).
- `evaluate_alerts` runs each rule on the latest average of its (variable, period) per sensor (if it ended at
  most `max_age_h` before `now`) through `alerts.state.step`, persisting firing / acknowledged / resolved
  alerts in `alerts` (streak bookkeeping in `details`) and every transition in `alert_events`. A pending
  streak (before `min_duration` is reached) is not stored, since `alerts.state` allows no 'pending' value: it
  is re-derived from the stored averages by replaying the last `min_duration` valid ones since the sensor's
  last resolution of the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.averages import HOUR
from alerts.averaging_job import WindowRun, compute_windows, network_timezone
from alerts.rules import Rule
from alerts.state import AlertEscalated, AlertEvent, AlertRaised, AlertResolved, AlertState, step
from alerts.windows import hour_end_at_or_before

__all__ = ["StageRun", "compute_windows", "evaluate_alerts", "hour_end_at_or_before", "network_timezone",
           "run_stage_jobs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StageRun:
    """One run of the stage jobs: the windows computed and the alert events."""

    windows: WindowRun
    events: tuple[AlertEvent, ...]


def run_stage_jobs(conn: psycopg.Connection, now: datetime, rules: Sequence[Rule], *,
                   cadence_s: float | Mapping[str, float], default_cadence_s: float | None = None,
                   tz: tzinfo | None = None, lookback_h: int = 72, settle_s: float = 0.0) -> StageRun:
    """Compute the windows due up to `now` (and late ones), then evaluate the alert rules on them."""
    tz = tz or network_timezone()
    windows = compute_windows(conn, now, cadence_s=cadence_s, default_cadence_s=default_cadence_s, tz=tz,
                              lookback_h=lookback_h, settle_s=settle_s)
    events = evaluate_alerts(conn, now, rules, tz=tz, lookback_h=lookback_h)
    return StageRun(windows, tuple(events))


# ------------------------------------------------------------------------------------------------ alerts

_ACTIVE_ALERTS = """
SELECT DISTINCT ON (sensor_id) id, sensor_id, variable, state, level, value, threshold, unit, source,
       started_at, updated_at, details
FROM alerts WHERE rule = %s AND scope = %s AND state <> 'resolved'
ORDER BY sensor_id, started_at DESC, id DESC
"""

_LATEST_AVERAGES = """
SELECT DISTINCT ON (sensor_id) sensor_id, period_end, value, valid
FROM averages WHERE variable = %s AND period = %s AND period_end > %s AND period_end <= %s
ORDER BY sensor_id, period_end DESC
"""

# the last valid averages of one sensor since its previous episode of this rule resolved: a pending streak
_REPLAY = """
SELECT period_end, value FROM averages
WHERE sensor_id = %(sensor)s AND variable = %(variable)s AND period = %(period)s AND valid
  AND period_end > %(since)s AND period_end <= %(until)s
  AND period_end > coalesce((SELECT max(resolved_at) FROM alerts WHERE rule = %(rule)s
                             AND scope = 'sensor' AND sensor_id = %(sensor)s), '-infinity')
ORDER BY period_end DESC LIMIT %(limit)s
"""


def _state_from_row(rule: Rule, row: tuple[Any, ...]) -> tuple[int, AlertState]:
    (alert_id, sensor, variable, status, level, value, threshold, unit, source, started_at, updated_at,
     details) = row
    evaluated = details.get("evaluated_at")
    state = AlertState(
        rule_id=rule.id, sensor_id=sensor, variable=variable or rule.variable, status=status, level=level,
        threshold=threshold, unit=unit or rule.unit, source=source or "", value=value,
        started_at=started_at, updated_at=datetime.fromisoformat(evaluated) if evaluated else updated_at,
        streak=int(details.get("streak", 0)), candidate=details.get("candidate"))
    return alert_id, state


def _details(rule: Rule, state: AlertState) -> Jsonb:
    return Jsonb({"period": rule.period, "evaluated_at": state.updated_at.isoformat(),
                  "streak": state.streak, "candidate": state.candidate})


def _note(event: AlertEvent, rule: Rule) -> str:
    if isinstance(event, AlertRaised):
        comparison = rule.levels[rule.level_named(event.level)].comparison
        return (f"raised at {event.level}: {rule.period} mean {event.value:g} {event.unit} {comparison} "
                f"{event.threshold:g} ({event.source})")
    if isinstance(event, AlertEscalated):
        return (f"escalated from {event.from_level} to {event.level}: {rule.period} mean {event.value:g} "
                f"{event.unit} >= {event.threshold:g} ({event.source})")
    return f"resolved: {rule.period} mean {event.value:g} {event.unit} < clear threshold {event.threshold:g}"


def _record(conn: psycopg.Connection, alert_id: int, before: str | None, events: Sequence[AlertEvent],
            rule: Rule) -> None:
    state = before
    for event in events:
        after = "resolved" if isinstance(event, AlertResolved) else "firing"
        conn.execute("INSERT INTO alert_events (alert_id, time, from_state, to_state, level, value, note) "
                     "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                     (alert_id, event.time, state, after, event.level, event.value, _note(event, rule)))
        state = after


def evaluate_alerts(conn: psycopg.Connection, now: datetime, rules: Sequence[Rule], *, max_age_h: int = 2,
                    lookback_h: int = 48, tz: tzinfo | None = None) -> list[AlertEvent]:
    """Evaluate each rule on every sensor's latest average; persist alerts and history; return the events."""
    tz = tz or network_timezone()
    last_end = hour_end_at_or_before(now, tz)
    events: list[AlertEvent] = []
    with conn.transaction():
        for rule in rules:
            ids: dict[str, int] = {}
            states: dict[str, AlertState] = {}
            for row in conn.execute(_ACTIVE_ALERTS, (rule.id, rule.scope)).fetchall():
                alert_id, state = _state_from_row(rule, row)
                ids[state.sensor_id], states[state.sensor_id] = alert_id, state
            latest = conn.execute(_LATEST_AVERAGES, (rule.variable, rule.period,
                                                     last_end - max_age_h * HOUR, last_end)).fetchall()
            for sensor, period_end, value, valid in latest:
                before = states.get(sensor)
                if before is not None:
                    after, new = step(before, value, valid, period_end, rule, sensor_id=sensor)
                elif valid:
                    after, new = _replay(conn, rule, sensor, period_end, lookback_h)
                else:
                    continue  # invalid data never raises an alert
                if after is None or after.status == "pending":
                    continue  # nothing announced yet: a pending streak is re-derived from the averages
                if before is None:
                    alert_id = _insert(conn, rule, after, now)
                else:
                    alert_id = ids[sensor]
                    if after == before:
                        continue
                    _update(conn, alert_id, rule, after, now)
                _record(conn, alert_id, None if before is None else before.status, new, rule)
                events.extend(new)
    for event in events:
        log.info("alert %s %s at sensor %s: %s %s %s", event.rule_id, event.kind, event.sensor_id,
                 event.level, event.value, event.unit)
    return events


def _replay(conn: psycopg.Connection, rule: Rule, sensor: str, until: datetime, lookback_h: int
            ) -> tuple[AlertState | None, tuple[AlertEvent, ...]]:
    """Run the state machine from no alert over the last `min_duration` valid averages ending at `until`."""
    rows = conn.execute(_REPLAY, {"sensor": sensor, "variable": rule.variable, "period": rule.period,
                                  "since": until - lookback_h * HOUR, "until": until, "rule": rule.id,
                                  "limit": rule.min_duration}).fetchall()
    state: AlertState | None = None
    events: tuple[AlertEvent, ...] = ()
    for period_end, value in reversed(rows):
        state, events = step(state, value, True, period_end, rule, sensor_id=sensor)
    if state is None or state.updated_at != until:
        return None, ()
    return state, events


def _insert(conn: psycopg.Connection, rule: Rule, state: AlertState, now: datetime) -> int:
    row = conn.execute(
        "INSERT INTO alerts (rule, scope, sensor_id, variable, level, state, value, threshold, unit, source, "
        "started_at, updated_at, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (rule.id, rule.scope, state.sensor_id, state.variable, state.level, state.status, state.value,
         state.threshold, state.unit, state.source, state.started_at, now, _details(rule, state))).fetchone()
    assert row is not None
    return int(row[0])


def _update(conn: psycopg.Connection, alert_id: int, rule: Rule, state: AlertState, now: datetime) -> None:
    conn.execute(
        "UPDATE alerts SET level = %s, state = %s, value = %s, threshold = %s, source = %s, updated_at = %s, "
        "resolved_at = %s, details = %s WHERE id = %s",
        (state.level, state.status, state.value, state.threshold, state.source, now, state.resolved_at,
         _details(rule, state), alert_id))
