"""The scheduled alerting jobs: compute hourly and rolling averages, evaluate alert rules. I/O glue
(psycopg 3, sync) over the pure `alerts.averages`, `alerts.rules` and `alerts.state`.

Both jobs are pure over an injected clock: they take `now` and never read the wall clock, and each runs in one
transaction, so a crash leaves nothing half-written and a re-run for the same `now` changes nothing.

- `compute_averages` writes the '1h' average of every hour that has ended by `now` (hours end on the network
  time zone's hour boundaries; see `alerts.averages` for the time convention) and is missing, or has received
  new measurements since it was computed (`measurements.received_at > averages.computed_at`), within the last
  `lookback_h` hours, so it catches up after downtime and after late data. It then rewrites the '8h' and
  '24h' rolling averages whose window contains a rewritten hour. Only the primary device's readings count
  (`primary_devices`); a (sensor, variable) without a primary uses every device, with the expected sample
  count summed over them. Every hour of a (sensor, variable), from its first hour with data in the window
  on, gets a row, with coverage 0 when no valid sample came: an average without enough data is stored as
  invalid with its coverage.
- `evaluate_alerts` runs each rule on the latest average of its (variable, period) per sensor (if it ended at
  most `max_age_h` before `now`) through `alerts.state.step`, persisting firing / acknowledged / resolved
  alerts in `alerts` (streak bookkeeping in `details`) and every transition in `alert_events`. A pending
  streak (before `min_duration` is reached) is not stored, since `alerts.state` allows no 'pending' value: it
  is re-derived from the stored averages by replaying the last `min_duration` valid ones since the sensor's
  last resolution of the rule.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from alerts.averages import HOUR, ROLLING_PERIODS, Average, hourly_average, rolling_average, sample_validity
from alerts.rules import Rule
from alerts.state import AlertEscalated, AlertEvent, AlertRaised, AlertResolved, AlertState, step
from sensors.domain import load
from sensors.variables import VARIABLES

__all__ = ["compute_averages", "evaluate_alerts", "hour_end_at_or_before", "network_timezone"]

log = logging.getLogger(__name__)

Pair = tuple[str, str]  # (sensor_id, variable)

# Readings of the primary device only; every device when none is registered. primary_devices has
# PRIMARY KEY (sensor_id, variable), so the LEFT JOIN adds at most one row.
_PRIMARY_FILTER = """
    FROM measurements m
    LEFT JOIN primary_devices p ON p.sensor_id = m.sensor_id AND p.variable = m.variable
    WHERE m.time >= %(start)s AND m.time < %(end)s AND (p.device_id IS NULL OR p.device_id = m.device_id)
"""

_HOUR_STATS = """
SELECT m.sensor_id, m.variable, date_bin('1 hour', m.time, %(start)s) + interval '1 hour' AS period_end,
       max(m.received_at), array_agg(DISTINCT m.device_id), min(m.unit)
""" + _PRIMARY_FILTER + " GROUP BY 1, 2, 3"

_SAMPLES = """
SELECT m.sensor_id, m.variable, m.time, m.value, m.flags
""" + _PRIMARY_FILTER + """
      AND (m.sensor_id, m.variable) IN (SELECT * FROM unnest(%(sensors)s::text[], %(variables)s::text[]))
    ORDER BY m.sensor_id, m.variable, m.time
"""

_UPSERT_AVERAGE = """
INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, coverage, samples,
                      valid, computed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (sensor_id, variable, period, period_end) DO UPDATE SET
    period_start = EXCLUDED.period_start, value = EXCLUDED.value, unit = EXCLUDED.unit,
    coverage = EXCLUDED.coverage, samples = EXCLUDED.samples, valid = EXCLUDED.valid,
    computed_at = EXCLUDED.computed_at
"""


def network_timezone() -> ZoneInfo:
    """The bundled network's time zone (reference.json `site.timezone`, America/Bogota)."""
    return ZoneInfo(load("reference")["site"]["timezone"])


def hour_end_at_or_before(now: datetime, tz: tzinfo) -> datetime:
    """The latest end of a whole hour of `tz` at or before `now`, in UTC."""
    if now.tzinfo is None:
        raise ValueError(f"now: expected an aware datetime, got naive {now.isoformat()}")
    local = now.astimezone(tz)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def _ends(first: datetime, last: datetime) -> list[datetime]:
    n = int((last - first) / HOUR)
    return [first + i * HOUR for i in range(n + 1)]


def _cadence_for(devices: Iterable[str], cadence_s: float | Mapping[str, float],
                 default_cadence_s: float | None) -> float | None:
    """Effective cadence of the devices pooled for a (sensor, variable): 1 / Σ 1/cadence; None if unknown."""
    rate = 0.0
    for device in devices:
        c = cadence_s if isinstance(cadence_s, int | float) else cadence_s.get(device, default_cadence_s)
        if c is None or not c > 0:
            return None
        rate += 1.0 / c
    return 1.0 / rate if rate else None


def _unit(variable: str, seen: str | None) -> str:
    known = VARIABLES.get(variable)
    return known.unit if known is not None else (seen or "")


def _average_row(pair: Pair, period: str, hours: int, end: datetime, unit: str, avg: Average,
                 now: datetime) -> tuple[Any, ...]:
    return (pair[0], pair[1], period, end - hours * HOUR, end, avg.value, unit, avg.coverage, avg.samples,
            avg.valid, now)


def compute_averages(conn: psycopg.Connection, now: datetime, *, cadence_s: float | Mapping[str, float],
                     default_cadence_s: float | None = None, lookback_h: int = 48,
                     tz: tzinfo | None = None) -> int:
    """Write each due '1h' average up to `now` and the '8h'/'24h' ones it affects; return rows written.

    `cadence_s` is the configured seconds between samples, one number for every device or a mapping
    device_id → seconds (falling back to `default_cadence_s`); a (sensor, variable) whose device has no
    cadence is skipped with an error in the log. `tz` defaults to the network's time zone.
    """
    if lookback_h < 1:
        raise ValueError(f"compute_averages: lookback_h: expected >= 1, got {lookback_h}")
    tz = tz or network_timezone()
    last_end = hour_end_at_or_before(now, tz)
    first_end = last_end - (lookback_h - 1) * HOUR
    window = {"start": first_end - HOUR, "end": last_end}
    ends = _ends(first_end, last_end)
    written = 0
    with conn.transaction():
        # 1. which hours are due: missing, or new measurements received since they were computed
        received: dict[Pair, dict[datetime, datetime]] = defaultdict(dict)
        devices: dict[Pair, set[str]] = defaultdict(set)
        units: dict[Pair, str] = {}
        for sensor, variable, end, last_received, devs, unit in conn.execute(_HOUR_STATS, window):
            received[(sensor, variable)][end] = last_received
            devices[(sensor, variable)].update(devs)
            units[(sensor, variable)] = unit
        computed: dict[Pair, dict[datetime, datetime]] = defaultdict(dict)
        for sensor, variable, end, computed_at in conn.execute(
                "SELECT sensor_id, variable, period_end, computed_at FROM averages "
                "WHERE period = '1h' AND period_end >= %s AND period_end <= %s", (first_end, last_end)):
            computed[(sensor, variable)][end] = computed_at
        due: dict[Pair, list[datetime]] = {}
        cadences: dict[Pair, float] = {}
        for pair in sorted(received):
            cadence = _cadence_for(sorted(devices[pair]), cadence_s, default_cadence_s)
            if cadence is None:
                log.error("averages for sensor %s %s skipped: no cadence_s configured for device(s) %s; "
                          "retried next run", pair[0], pair[1], sorted(devices[pair]))
                continue
            done = computed.get(pair, {})
            late = received[pair]
            since = min(late)  # no rows are made up before the pair's first hour with data in the window
            hours = [e for e in ends if e >= since and (e not in done or (e in late and late[e] > done[e]))]
            if hours:
                due[pair] = hours
                cadences[pair] = cadence
        if not due:
            return 0

        # 2. the hourly averages, from the samples of the due pairs
        pairs = sorted(due)
        start = min(min(h) for h in due.values()) - HOUR
        samples: dict[Pair, list[tuple[datetime, float | None, int]]] = defaultdict(list)
        for sensor, variable, t, value, flags in conn.execute(_SAMPLES, {
                "start": start, "end": last_end,
                "sensors": [p[0] for p in pairs], "variables": [p[1] for p in pairs]}):
            samples[(sensor, variable)].append((t, value, flags))
        rows = []
        for pair in pairs:
            got = samples.get(pair, [])
            times = np.array([t.timestamp() for t, _, _ in got], dtype=float)
            values = np.array([math.nan if v is None else v for _, v, _ in got], dtype=float)
            valid = sample_validity(values, np.array([f for _, _, f in got], dtype=np.int64))
            unit = _unit(pair[1], units.get(pair))
            for end in due[pair]:
                avg = hourly_average(times, values, valid, end, cadences[pair])
                rows.append(_average_row(pair, "1h", 1, end, unit, avg, now))
        with conn.cursor() as cur:
            cur.executemany(_UPSERT_AVERAGE, rows)
        written += len(rows)

        # 3. rolling averages whose window holds a rewritten hour, from the stored hourlies
        longest = max(hours for hours, _ in ROLLING_PERIODS.values())
        oldest = min(min(h) for h in due.values()) - (longest - 1) * HOUR
        hourly: dict[Pair, dict[datetime, tuple[float | None, bool]]] = defaultdict(dict)
        for sensor, variable, end, value, ok in conn.execute(
                "SELECT sensor_id, variable, period_end, value, valid FROM averages WHERE period = '1h' "
                "AND period_end >= %(start)s AND period_end <= %(end)s AND (sensor_id, variable) IN "
                "(SELECT * FROM unnest(%(sensors)s::text[], %(variables)s::text[]))",
                {"start": oldest, "end": last_end,
                 "sensors": [p[0] for p in pairs], "variables": [p[1] for p in pairs]}):
            hourly[(sensor, variable)][end] = (value, ok)
        rows = []
        for pair in pairs:
            unit = _unit(pair[1], units.get(pair))
            for period, (hours, min_valid) in ROLLING_PERIODS.items():
                affected = sorted({e + k * HOUR for e in due[pair] for k in range(hours)
                                   if e + k * HOUR <= last_end})
                for end in affected:
                    span = [hourly[pair].get(end - k * HOUR, (None, False)) for k in range(hours - 1, -1, -1)]
                    values = np.array([math.nan if v is None else v for v, _ in span], dtype=float)
                    oks = np.array([ok for _, ok in span], dtype=bool)
                    avg = rolling_average(values, oks, hours, min_valid)
                    rows.append(_average_row(pair, period, hours, end, unit, avg, now))
        with conn.cursor() as cur:
            cur.executemany(_UPSERT_AVERAGE, rows)
        written += len(rows)
    log.info("averages: %d rows written for %d sensor-variables up to %s", written, len(due), last_end)
    return written


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
