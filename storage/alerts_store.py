"""The stored alerts as officers and the dispatcher see them: read, acknowledge, resolve and annotate alerts, count
exceedances and open alerts. I/O (psycopg 3 async, on the caller's `AsyncConnection`).

Contract:
- Every write (`acknowledge`, `resolve`, `add_note`) runs in ONE transaction (a savepoint when the caller already
  has one) together with its `alert_events` row (kind acknowledged | resolved | note, actor, via), so a change and
  its history commit or vanish together. The alert row is locked (FOR UPDATE) first, so an officer and the rule
  engine never interleave on one alert. Legal transitions (the same as `alerts.rules.state`, which storage may not
  import): firing → acknowledged; firing | acknowledged → resolved (manual: `details.manual = true`,
  `resolved_by`); a note on any alert. Anything else raises `AlertError(code, message)`, code not_found |
  illegal_transition | invalid | superseded, and leaves nothing behind.
- `acknowledge(as_of_event=E)` (the signed link) acknowledges only while E is a transition of that alert and no
  escalation was recorded after it (checked under the row lock): an escalation needs a new acknowledgement, so a
  link issued before one raises `AlertError("superseded", …)` naming the level and time it escalated to.
- The delivery outbox's queries are `storage.alert_outbox`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.rows import dict_row

__all__ = ["AlertDetail", "AlertError", "AlertEventRecord", "AlertRecord", "DeliveryRecord", "Exceedance",
           "acknowledge", "active_alert_counts", "add_note", "exceedances", "get_alert", "list_alerts", "resolve"]

AlertStateName = Literal["firing", "acknowledged", "resolved"]


class AlertError(Exception):
    """An alert operation was refused; `code` is not_found | illegal_transition | invalid | superseded (a link
    issued before an escalation), `message` says which alert, what it is and what was asked."""

    def __init__(self, code: Literal["not_found", "illegal_transition", "invalid", "superseded"],
                 message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert (one episode of one rule on one scope) as stored. Values in `unit`; times aware."""

    id: int
    rule: str
    kind: str  #: threshold, index, no_data, flatline, device_fault
    audience: str  #: officers or technicians
    scope: str  #: sensor, locality or network
    scope_key: str
    sensor_id: str | None
    sensor_name: str | None
    locality: str | None  #: the alert's locality, else its sensor's
    variable: str | None
    indicative: bool
    severity: str
    level: str
    state: AlertStateName
    value: float | None
    threshold: float | None
    unit: str | None
    source: str | None
    period: str | None
    period_start: datetime | None
    period_end: datetime | None
    coverage: float | None
    started_at: datetime
    updated_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    escalated_at: datetime | None
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AlertEventRecord:
    """One entry of an alert's history: a transition (raised … resolved) or an officer's note."""

    id: int
    alert_id: int
    time: datetime
    kind: str
    from_state: str | None
    to_state: str
    level: str | None
    from_level: str | None
    severity: str | None
    value: float | None
    note: str | None
    actor: str | None  #: who (officers); None for the rule engine
    via: str | None  #: cli, api or link; None for the rule engine


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One outbox row: the delivery of one event to one channel."""

    id: int
    event_id: int
    alert_id: int
    channel: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class AlertDetail:
    """An alert with its history (oldest first) and its deliveries."""

    alert: AlertRecord
    events: tuple[AlertEventRecord, ...]
    deliveries: tuple[DeliveryRecord, ...]


@dataclass(frozen=True, slots=True)
class Exceedance:
    """Exceedances of one norm limit by one sensor in one calendar year (`exceedances(tz)`, migration 0007)."""

    sensor_id: str
    variable: str
    period: str  #: day (valid calendar-day averages), 1h, 8h (rolling), year (the valid annual mean; 0019)
    year: int
    exceedances: int  #: valid periods with value > limit
    valid_periods: int
    limit_ugm3: float
    source: str


_ALERT = """
SELECT a.id, a.rule, a.kind, a.audience, a.scope, a.scope_key, a.sensor_id, s.name AS sensor_name,
       coalesce(a.locality, nullif(s.locality, '')) AS locality, a.variable, a.indicative, a.severity, a.level,
       a.state, a.value, a.threshold, a.unit, a.source, a.period, a.period_start, a.period_end, a.coverage,
       a.started_at, a.updated_at, a.acknowledged_by, a.acknowledged_at, a.resolved_at, a.resolved_by,
       a.escalated_at, a.details
FROM alerts a LEFT JOIN sensors s ON s.id = a.sensor_id
"""
_EVENT_COLUMNS = "id, alert_id, time, kind, from_state, to_state, level, from_level, severity, value, note, actor, via"
_DELIVERY_COLUMNS = ("id, event_id, alert_id, channel, state, attempts, created_at, next_attempt_at, last_error, "
                     "delivered_at")


# ------------------------------------------------------------------------------------------------- reads


async def list_alerts(conn: AsyncConnection[Any], *, state: str | None = None, audience: str | None = None,
                      sensor_id: str | None = None, locality: str | None = None, rule: str | None = None,
                      limit: int = 200) -> list[AlertRecord]:
    """Alerts matching every given filter, newest first (at most `limit`, 1..10000)."""
    if not 1 <= limit <= 10000:
        raise AlertError("invalid", f"list alerts: limit expected 1..10000, got {limit}")
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit}
    for column, value in (("a.state", state), ("a.audience", audience), ("a.sensor_id", sensor_id),
                          ("a.rule", rule)):
        if value is not None:
            key = column.removeprefix("a.")
            where.append(sql.SQL("{} = {}").format(sql.SQL(column), sql.Placeholder(key)))
            params[key] = value
    if locality is not None:
        where.append(sql.SQL("coalesce(a.locality, nullif(s.locality, '')) = %(locality)s"))
        params["locality"] = locality
    query: sql.Composable = sql.SQL(_ALERT)
    if where:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    query += sql.SQL(" ORDER BY a.started_at DESC, a.id DESC LIMIT %(limit)s")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [AlertRecord(**r) for r in await cur.fetchall()]


async def get_alert(conn: AsyncConnection[Any], alert_id: int) -> AlertDetail:
    """One alert with its events (oldest first) and deliveries; AlertError(not_found) if there is none."""
    async with conn.cursor(row_factory=dict_row) as cur:
        alert = await _alert(cur, alert_id)
        await cur.execute(f"SELECT {_EVENT_COLUMNS} FROM alert_events WHERE alert_id = %s ORDER BY time, id",
                          (alert_id,))
        events = tuple(AlertEventRecord(**r) for r in await cur.fetchall())
        await cur.execute(f"SELECT {_DELIVERY_COLUMNS} FROM alert_outbox WHERE alert_id = %s ORDER BY event_id, "
                          "channel", (alert_id,))
        deliveries = tuple(DeliveryRecord(**r) for r in await cur.fetchall())
    return AlertDetail(alert, events, deliveries)


async def _alert(cur: AsyncCursor[Any], alert_id: int, *, lock: bool = False) -> AlertRecord:
    await cur.execute(_ALERT + " WHERE a.id = %s" + (" FOR UPDATE OF a" if lock else ""), (alert_id,))
    row = await cur.fetchone()
    if row is None:
        raise AlertError("not_found", f"alert {alert_id}: no such alert (see `aqnet alerts list`)")
    return AlertRecord(**row)


async def exceedances(conn: AsyncConnection[Any], *, tz: str | tzinfo, year: int | None = None,
                      sensor_id: str | None = None, variable: str | None = None) -> list[Exceedance]:
    """Exceedance counts per sensor, variable, period and calendar year in `tz` (an IANA name or a ZoneInfo):
    days whose valid calendar-day average is above the 24-hour limit, hours whose valid 1-h (or rolling 8-h)
    average is above that limit, and whether the valid annual mean is above the annual limit (`exceedances(tz)`,
    migration 0007; annual limits from 0019; Res. 2254/2017 Tabla 1)."""
    zone = tz if isinstance(tz, str) else getattr(tz, "key", None)
    if not zone:
        raise AlertError("invalid", f"exceedances: time zone {tz!r} has no IANA name")
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"tz": zone}
    for column, value in (("year", year), ("sensor_id", sensor_id), ("variable", variable)):
        if value is not None:
            where.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)))
            params[column] = value
    query: sql.Composable = sql.SQL("SELECT sensor_id, variable, period, year, exceedances, valid_periods, "
                                    "limit_ugm3, source FROM exceedances(%(tz)s)")
    if where:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    query += sql.SQL(" ORDER BY year, sensor_id, variable, period")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [Exceedance(**r) for r in await cur.fetchall()]


# ------------------------------------------------------------------------------------------------ writes


def _who(actor: str, via: str, what: str) -> tuple[str, str]:
    if not actor.strip() or not via.strip():
        raise AlertError("invalid", f"{what}: actor and via must name who acted and where, got {actor!r}, {via!r}")
    return actor.strip(), via.strip()


def _state_text(alert: AlertRecord) -> str:
    if alert.state == "acknowledged":
        return f"acknowledged by {alert.acknowledged_by} at {_iso(alert.acknowledged_at)}"
    if alert.state == "resolved":
        return f"resolved by {alert.resolved_by or 'the rule'} at {_iso(alert.resolved_at)}"
    return alert.state


def _iso(t: datetime | None) -> str:
    return t.isoformat() if t is not None else "?"


_INSERT_EVENT = f"""
INSERT INTO alert_events (alert_id, time, from_state, to_state, level, value, note, kind, actor, via, severity)
VALUES (%(id)s, %(at)s, %(from_state)s, %(to_state)s, %(level)s, %(value)s, %(note)s, %(kind)s, %(actor)s, %(via)s,
        %(severity)s)
RETURNING {_EVENT_COLUMNS}
"""


async def _event(cur: AsyncCursor[Any], alert: AlertRecord, *, kind: str, to_state: str, at: datetime,
                 actor: str, via: str, note: str | None) -> AlertEventRecord:
    await cur.execute(_INSERT_EVENT, {"id": alert.id, "at": at, "from_state": alert.state, "to_state": to_state,
                                      "level": alert.level, "value": alert.value, "note": note, "kind": kind,
                                      "actor": actor, "via": via, "severity": alert.severity})
    row = await cur.fetchone()
    assert row is not None
    return AlertEventRecord(**row)


async def _now(cur: AsyncCursor[Any], at: datetime | None) -> datetime:
    if at is not None:
        return at
    await cur.execute("SELECT now() AS now")
    row = await cur.fetchone()
    assert row is not None
    return row["now"]


async def acknowledge(conn: AsyncConnection[Any], alert_id: int, *, actor: str, via: str, note: str | None = None,
                      at: datetime | None = None, as_of_event: int | None = None) -> AlertRecord:
    """Acknowledge a firing alert (who, where, an optional note); the alert after it. Only firing → acknowledged.
    `as_of_event`: the transition the acknowledger saw (a signed link's); refused (superseded) when the alert
    escalated after it."""
    actor, via = _who(actor, via, f"acknowledge alert {alert_id}")
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        alert = await _alert(cur, alert_id, lock=True)
        if alert.state != "firing":
            raise AlertError("illegal_transition", f"alert {alert_id} ({alert.rule}, {alert.scope_key}): cannot "
                                                   f"acknowledge, it is already {_state_text(alert)}")
        if as_of_event is not None:
            await _check_current(cur, alert, as_of_event)
        when = await _now(cur, at)
        await cur.execute("UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s, acknowledged_at = %s, "
                          "updated_at = %s WHERE id = %s", (actor, when, when, alert_id))
        await _event(cur, alert, kind="acknowledged", to_state="acknowledged", at=when, actor=actor, via=via,
                     note=note)
        return await _alert(cur, alert_id)


async def _check_current(cur: AsyncCursor[Any], alert: AlertRecord, event_id: int) -> None:
    """AlertError unless `event_id` is a transition of `alert` with no escalation recorded after it."""
    where = f"alert {alert.id} ({alert.rule}, {alert.scope_key})"
    await cur.execute("SELECT id FROM alert_events WHERE id = %s AND alert_id = %s", (event_id, alert.id))
    if await cur.fetchone() is None:
        raise AlertError("invalid", f"{where}: event {event_id} is not one of its transitions")
    await cur.execute("SELECT level, time FROM alert_events WHERE alert_id = %s AND kind = 'escalated' AND id > %s "
                      "ORDER BY id DESC LIMIT 1", (alert.id, event_id))
    later = await cur.fetchone()
    if later is not None:
        raise AlertError("superseded", f"{where}: escalated to {later['level']} at {later['time'].isoformat()} "
                                       f"after event {event_id}; an escalation needs a new acknowledgement")


async def resolve(conn: AsyncConnection[Any], alert_id: int, *, actor: str, via: str, note: str | None = None,
                  at: datetime | None = None) -> AlertRecord:
    """Resolve a firing or acknowledged alert by hand (details.manual = true, resolved_by); the alert after it.
    The rule engine keeps a manually resolved episode closed until the value falls below its clear level."""
    actor, via = _who(actor, via, f"resolve alert {alert_id}")
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        alert = await _alert(cur, alert_id, lock=True)
        if alert.state == "resolved":
            raise AlertError("illegal_transition", f"alert {alert_id} ({alert.rule}, {alert.scope_key}): cannot "
                                                   f"resolve, it is already {_state_text(alert)}")
        when = await _now(cur, at)
        await cur.execute("UPDATE alerts SET state = 'resolved', resolved_by = %s, resolved_at = %s, updated_at = %s,"
                          " details = details || '{\"manual\": true}'::jsonb WHERE id = %s",
                          (actor, when, when, alert_id))
        await _event(cur, alert, kind="resolved", to_state="resolved", at=when, actor=actor, via=via, note=note)
        return await _alert(cur, alert_id)


async def add_note(conn: AsyncConnection[Any], alert_id: int, *, actor: str, via: str, text: str,
                   at: datetime | None = None) -> AlertEventRecord:
    """Add an officer's note to an alert's history (any state); the note event. Notes are not delivered."""
    actor, via = _who(actor, via, f"note on alert {alert_id}")
    if not text.strip():
        raise AlertError("invalid", f"note on alert {alert_id}: expected some text, got {text!r}")
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        alert = await _alert(cur, alert_id, lock=True)
        when = await _now(cur, at)
        return await _event(cur, alert, kind="note", to_state=alert.state, at=when, actor=actor, via=via,
                            note=text.strip())


async def active_alert_counts(conn: AsyncConnection[Any]) -> dict[tuple[str, str], int]:
    """Firing or acknowledged alerts per (audience, severity), for the metrics."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT audience, severity, count(*) FROM alerts WHERE state <> 'resolved' "
                          "GROUP BY 1, 2")
        return {(a, s): int(n) for a, s, n in await cur.fetchall()}
