"""Stage 3 — the alert rule engine's reads and writes of its episodes: the alerts a rule may step (locked FOR
UPDATE), new and updated `alerts` rows, their transitions (`alert_events`), the suppressed raises
(`alert_suppressions`) and the bound of a pending streak's replay. I/O (psycopg 3, sync), for
`alerts.rules.evaluate` (and `alerts.jobs`' dry run), in the caller's transaction.

The officers' side of the same tables (acknowledge, resolve, notes; async) is `storage.alerts_store`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

__all__ = ["insert_alert", "insert_event", "insert_suppression", "last_suppression_id", "mark_unacknowledged",
           "open_alerts", "replay_bound", "suppressions_after", "update_alert", "update_evidence"]

_LOAD = """
SELECT id, scope_key, variable, state, level, value, threshold, unit, source, started_at, updated_at,
       resolved_at, severity, acknowledged_at, acknowledged_by, escalated_at, resolved_by, details
FROM alerts WHERE rule = %s AND scope = %s
  AND (state <> 'resolved' OR (details->>'manual' = 'true' AND details->>'manual_cleared' IS NULL))
ORDER BY scope_key, started_at, id FOR UPDATE
"""

_SUPPRESSIONS_BEFORE = "SELECT coalesce(max(id), 0) FROM alert_suppressions"
_SUPPRESSED = ("SELECT scope_key, sensor_id, period_end, value, level, reason, detail FROM alert_suppressions "
               "WHERE id > %s ORDER BY id")


def open_alerts(conn: psycopg.Connection, rule: str, scope: str) -> list[tuple[Any, ...]]:
    """The rule's alerts on `scope` that are not resolved, or resolved by hand and not yet cleared, locked FOR
    UPDATE (an officer's acknowledgement is never overwritten): id, scope_key, variable, state, level, value,
    threshold, unit, source, started_at, updated_at, resolved_at, severity, acknowledged_at, acknowledged_by,
    escalated_at, resolved_by, details."""
    return conn.execute(_LOAD, (rule, scope)).fetchall()


def insert_alert(conn: psycopg.Connection, *, rule: str, scope: str, scope_key: str, sensor_id: str,
                 locality: str | None, variable: str | None, kind: str, audience: str, indicative: bool, level: str,
                 severity: str, state: str, value: float | None, threshold: float | None, unit: str, source: str,
                 period: str | None, period_start: datetime | None, period_end: datetime | None,
                 coverage: float | None, started_at: datetime, updated_at: datetime,
                 details: Mapping[str, Any]) -> int:
    """A new episode; returns its id."""
    row = conn.execute(
        "INSERT INTO alerts (rule, scope, scope_key, sensor_id, locality, variable, kind, audience, indicative, "
        "level, severity, state, value, threshold, unit, source, period, period_start, period_end, coverage, "
        "started_at, updated_at, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (rule, scope, scope_key, sensor_id, locality, variable, kind, audience, indicative, level, severity, state,
         value, threshold, unit, source, period, period_start, period_end, coverage, started_at, updated_at,
         Jsonb(dict(details)))).fetchone()
    assert row is not None
    return int(row[0])


def update_alert(conn: psycopg.Connection, alert_id: int, *, level: str, severity: str, state: str,
                 value: float | None, threshold: float | None, source: str, resolved_at: datetime | None,
                 escalated_at: datetime | None, updated_at: datetime, details: Mapping[str, Any]) -> None:
    """An episode's new state; `details` is merged into the stored ones."""
    conn.execute(
        "UPDATE alerts SET level = %s, severity = %s, state = %s, value = %s, threshold = %s, source = %s, "
        "resolved_at = %s, escalated_at = %s, updated_at = %s, details = details || %s WHERE id = %s",
        (level, severity, state, value, threshold, source, resolved_at, escalated_at, updated_at,
         Jsonb(dict(details)), alert_id))


def update_evidence(conn: psycopg.Connection, alert_id: int, *, sensor_id: str, locality: str | None,
                    variable: str | None, period_start: datetime | None, period_end: datetime | None,
                    coverage: float | None) -> None:
    """The sensor, variable and period an episode's value now comes from."""
    conn.execute("UPDATE alerts SET sensor_id = %s, locality = %s, variable = %s, period_start = %s, "
                 "period_end = %s, coverage = %s WHERE id = %s",
                 (sensor_id, locality, variable, period_start, period_end, coverage, alert_id))


def insert_event(conn: psycopg.Connection, alert_id: int, *, time: datetime, kind: str, from_state: str | None,
                 to_state: str, level: str, from_level: str | None, severity: str, value: float | None,
                 note: str) -> None:
    """One transition of an episode."""
    conn.execute("INSERT INTO alert_events (alert_id, time, kind, from_state, to_state, level, from_level, "
                 "severity, value, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (alert_id, time, kind, from_state, to_state, level, from_level, severity, value, note))


def mark_unacknowledged(conn: psycopg.Connection, alert_id: int, *, time: datetime, updated_at: datetime,
                        level: str, severity: str, value: float | None, note: str) -> None:
    """A firing episode nobody acknowledged in time: `escalated_at` and its 'unacknowledged' event."""
    conn.execute("UPDATE alerts SET escalated_at = %s, updated_at = %s WHERE id = %s", (time, updated_at, alert_id))
    conn.execute("INSERT INTO alert_events (alert_id, time, kind, from_state, to_state, level, severity, value, "
                 "note) VALUES (%s, %s, 'unacknowledged', 'firing', 'firing', %s, %s, %s, %s)",
                 (alert_id, time, level, severity, value, note))


def insert_suppression(conn: psycopg.Connection, *, rule: str, scope: str, scope_key: str, sensor_id: str,
                       variable: str | None, period_end: datetime, value: float | None, level: str,
                       reason: str | None, detail: str) -> None:
    """A raise or escalation that invalid or maintenance data did not make; once per rule, scope and period end."""
    conn.execute("INSERT INTO alert_suppressions (rule, scope, scope_key, sensor_id, variable, period_end, value, "
                 "level, reason, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                 "ON CONFLICT ON CONSTRAINT alert_suppressions_key DO NOTHING",
                 (rule, scope, scope_key, sensor_id, variable, period_end, value, level, reason, detail))


def replay_bound(conn: psycopg.Connection, *, since: datetime, rule: str, scope: str, scope_key: str) -> datetime:
    """Where a replay of the scope's values starts: `since`, or the scope's last resolution if later."""
    row = conn.execute("SELECT greatest(%s::timestamptz, max(resolved_at)) FROM alerts WHERE rule = %s AND "
                       "scope = %s AND scope_key = %s",
                       (since, rule, scope, scope_key)).fetchone()
    assert row is not None
    bound: datetime = row[0]
    return bound


def last_suppression_id(conn: psycopg.Connection) -> int:
    """The highest `alert_suppressions.id` so far (0: none)."""
    row = conn.execute(_SUPPRESSIONS_BEFORE).fetchone()
    return int(row[0]) if row else 0


def suppressions_after(conn: psycopg.Connection, after_id: int) -> list[dict[str, Any]]:
    """The suppressions recorded after `after_id`, in order, as column → value."""
    cur = conn.execute(_SUPPRESSED, (after_id,))
    cols = [c.name for c in cur.description or ()]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
