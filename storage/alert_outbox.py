"""The delivery outbox's queries (`alert_outbox`, `alert_channels`, migration 0007), for `alerts.delivery.dispatch`. I/O
(psycopg 3 async, on the caller's `AsyncConnection`).

Contract: one row per alert transition (an `alert_events` row of a delivered kind) and channel. The dispatcher
finds events without a row for a channel (`unplanned_events`), inserts rows for those the channel's filter accepts
(`insert_deliveries`, ON CONFLICT DO NOTHING), claims due rows one transaction at a time (`claim_due`, FOR UPDATE
SKIP LOCKED: two dispatchers never send one row twice) and marks them delivered, failed (attempts,
next_attempt_at, last_error) or dead. Times given to these are the dispatcher's clock. A later event of an alert
waits while an earlier one is pending on the same channel, so a channel sees an alert's transitions in order.
`alert_channels(name, first_seen)` records when each channel was first seen (`ensure_channels`), so that a channel
configured later is not given old history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

__all__ = ["OUTBOX_KINDS", "ClaimedDelivery", "NoticeRow", "OutboxCount", "active_notice_rows", "claim_due",
           "ensure_channels", "insert_deliveries", "mark_dead", "mark_delivered", "mark_failed", "notice_rows",
           "outbox_counts", "unplanned_events"]

#: the event kinds that are delivered (a note is history, not a transition)
OUTBOX_KINDS: tuple[str, ...] = ("raised", "escalated", "unacknowledged", "acknowledged", "resolved")


@dataclass(frozen=True, slots=True)
class NoticeRow:
    """What a `Notice` is built from: one event joined with its alert and sensor."""

    event_id: int
    alert_id: int
    transition: str  #: the event's kind
    time: datetime
    to_state: str
    level: str | None
    from_level: str | None
    severity: str  #: the event's severity, else the alert's
    value: float | None  #: the event's value, else the alert's
    note: str | None
    actor: str | None
    via: str | None
    rule: str
    kind: str
    audience: str
    indicative: bool
    scope: str
    scope_key: str
    sensor_id: str | None
    sensor_name: str | None
    locality: str | None
    variable: str | None
    alert_state: str
    alert_level: str
    threshold: float | None
    unit: str | None
    source: str | None
    period: str | None
    period_start: datetime | None
    period_end: datetime | None
    coverage: float | None
    started_at: datetime
    resolved_at: datetime | None
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A due outbox row locked by this transaction (`claim_due`)."""

    id: int
    event_id: int
    alert_id: int
    channel: str
    attempts: int  #: failed attempts so far


@dataclass(frozen=True, slots=True)
class OutboxCount:
    channel: str
    state: str
    count: int


_NOTICE = """
SELECT e.id AS event_id, e.alert_id, e.kind AS transition, e.time, e.to_state, coalesce(e.level, a.level) AS level,
       e.from_level, coalesce(e.severity, a.severity) AS severity, coalesce(e.value, a.value) AS value, e.note,
       e.actor, e.via, a.rule, a.kind, a.audience, a.indicative, a.scope, a.scope_key, a.sensor_id,
       s.name AS sensor_name, coalesce(a.locality, nullif(s.locality, '')) AS locality, a.variable,
       a.state AS alert_state, a.level AS alert_level, a.threshold, a.unit, a.source, a.period, a.period_start,
       a.period_end, a.coverage, a.started_at, a.resolved_at, a.details
FROM alert_events e JOIN alerts a ON a.id = e.alert_id LEFT JOIN sensors s ON s.id = a.sensor_id
"""


async def ensure_channels(conn: AsyncConnection[Any], names: Collection[str], now: datetime) -> dict[str, datetime]:
    """Record channels not seen before as first seen `now`; every named channel's first_seen."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("INSERT INTO alert_channels (name, first_seen) SELECT unnest(%s::text[]), %s "
                          "ON CONFLICT (name) DO NOTHING", (list(names), now))
        await cur.execute("SELECT name, first_seen FROM alert_channels WHERE name = ANY(%s::text[])", (list(names),))
        return dict(await cur.fetchall())


async def unplanned_events(conn: AsyncConnection[Any], channel: str, *, since: datetime,
                           exclude: Collection[int] = (), limit: int = 1000) -> list[NoticeRow]:
    """Deliverable events at or after `since` with no outbox row for `channel` (oldest first), except `exclude`."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _NOTICE + " WHERE e.kind = ANY(%(kinds)s) AND e.time >= %(since)s "
            "AND NOT e.id = ANY(%(exclude)s::bigint[]) "
            "AND NOT EXISTS (SELECT 1 FROM alert_outbox o WHERE o.event_id = e.id AND o.channel = %(channel)s) "
            "ORDER BY e.id LIMIT %(limit)s",
            {"kinds": list(OUTBOX_KINDS), "since": since, "exclude": list(exclude), "channel": channel,
             "limit": limit})
        return [NoticeRow(**r) for r in await cur.fetchall()]


async def insert_deliveries(conn: AsyncConnection[Any], channel: str, events: Sequence[tuple[int, int]],
                            now: datetime) -> int:
    """Queue (event_id, alert_id) pairs for `channel`, due at `now`; how many rows were new."""
    if not events:
        return 0
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO alert_outbox (event_id, alert_id, channel, created_at, next_attempt_at) "
            "SELECT e, a, %s, %s, %s FROM unnest(%s::bigint[], %s::bigint[]) AS t (e, a) "
            "ON CONFLICT (event_id, channel) DO NOTHING",
            (channel, now, now, [e for e, _ in events], [a for _, a in events]))
        return cur.rowcount


_CLAIM = """
SELECT o.id, o.event_id, o.alert_id, o.channel, o.attempts FROM alert_outbox o
WHERE o.channel = %(channel)s AND o.state = 'pending' AND o.next_attempt_at <= %(now)s
  AND NOT EXISTS (SELECT 1 FROM alert_outbox p WHERE p.channel = o.channel AND p.alert_id = o.alert_id
                  AND p.state = 'pending' AND p.event_id < o.event_id)
ORDER BY o.event_id LIMIT %(limit)s
FOR UPDATE OF o SKIP LOCKED
"""


@asynccontextmanager
async def claim_due(conn: AsyncConnection[Any], channel: str, *, now: datetime, limit: int = 1
                    ) -> AsyncIterator[list[ClaimedDelivery]]:
    """Open a transaction and lock up to `limit` due pending rows of `channel` that no one else holds, oldest
    event first, none of an alert with an earlier pending row; mark them inside the block, commit at its end."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_CLAIM, {"channel": channel, "now": now, "limit": limit})
        yield [ClaimedDelivery(**r) for r in await cur.fetchall()]


async def mark_delivered(conn: AsyncConnection[Any], delivery_id: int, *, at: datetime) -> None:
    """The channel accepted the delivery."""
    await conn.execute("UPDATE alert_outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = %s, "
                       "last_error = NULL WHERE id = %s", (at, delivery_id))


async def mark_failed(conn: AsyncConnection[Any], delivery_id: int, *, error: str, next_attempt_at: datetime
                      ) -> None:
    """A transient failure: count it and retry at `next_attempt_at`."""
    await conn.execute("UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_at = %s, last_error = %s "
                       "WHERE id = %s", (next_attempt_at, error, delivery_id))


async def mark_dead(conn: AsyncConnection[Any], delivery_id: int, *, error: str) -> None:
    """A permanent failure, or the last attempt failed: the delivery goes to the dead letter."""
    await conn.execute("UPDATE alert_outbox SET state = 'dead', attempts = attempts + 1, last_error = %s "
                       "WHERE id = %s", (error, delivery_id))


async def notice_rows(conn: AsyncConnection[Any], event_ids: Collection[int]) -> dict[int, NoticeRow]:
    """The rows to build notices from, by event id."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_NOTICE + " WHERE e.id = ANY(%s::bigint[])", (list(event_ids),))
        return {r["event_id"]: NoticeRow(**r) for r in await cur.fetchall()}


async def active_notice_rows(conn: AsyncConnection[Any]) -> list[NoticeRow]:
    """Every firing or acknowledged alert with its latest transition (for Alertmanager's periodic re-post)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT DISTINCT ON (alert_id) * FROM (" + _NOTICE + " WHERE a.state <> 'resolved' "
            "AND e.kind = ANY(%s)) n ORDER BY alert_id, event_id DESC", (list(OUTBOX_KINDS),))
        return [NoticeRow(**r) for r in await cur.fetchall()]


async def outbox_counts(conn: AsyncConnection[Any]) -> list[OutboxCount]:
    """Outbox rows per channel and state (pending, delivered, dead), for the metrics."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT channel, state, count(*) FROM alert_outbox GROUP BY 1, 2 ORDER BY 1, 2")
        return [OutboxCount(c, s, int(n)) for c, s, n in await cur.fetchall()]
