"""TimescaleDB housekeeping: drop whole chunks of raw data, averages and indices past their retention, and, where
the extension runs the Timescale-licensed edition, compress chunks past an age. I/O (sync psycopg) at the edge of a
pure plan: `plan_housekeeping` decides what to do from the edition and the settings and is unit tested for both
editions (the Timescale-licensed one cannot be installed on the test machine); `run_housekeeping` asks the
database which edition it runs (`timescaledb.license`: 'apache' or 'timescale') and carries the plan out.

Retention drops only whole chunks (`drop_chunks(older_than => …)`): a chunk is dropped when ALL its rows are older
than the bound, so some rows up to one chunk interval older than the bound remain until the next run after their
chunk ages out (measurements: 1-day chunks; averages, indices: 30-day chunks; see migrations 0001 and 0006).
Compression (`compress_chunk`, Timescale-licensed edition only) segments by sensor and variable, the columns every
Grafana query filters on; the Apache edition has no compression and the switch stays off. Receipts of receive-time
messages (`delivery_receipts`, storage.deliveries) are deleted `delivery_receipts_s` after they were recorded: the
daemon sets it to cover the broker's session expiry, so a redelivered message still finds its receipt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import psycopg
from psycopg import sql

__all__ = ["Action", "Edition", "HousekeepingRun", "Policy", "edition", "plan_housekeeping", "run_housekeeping"]

log = logging.getLogger(__name__)

Edition = Literal["apache", "timescale"]

#: hypertable → its compress_segmentby columns (what every query filters on)
SEGMENT_BY: dict[str, str] = {
    "measurements": "sensor_id, variable",
    "averages": "sensor_id, variable, period",
    "indices": "sensor_id, index, pollutant",
}


@dataclass(frozen=True, slots=True)
class Policy:
    """How long each hypertable keeps its data (0 = forever) and when chunks are compressed (0 = never)."""

    measurements_days: int = 0
    averages_days: int = 0
    indices_days: int = 0
    compress_after_days: int = 7
    delivery_receipts_s: int = 0  #: receipts of receive-time messages (0 = forever; the daemon sets it)

    def __post_init__(self) -> None:
        for name in ("measurements_days", "averages_days", "indices_days", "compress_after_days",
                     "delivery_receipts_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"retention policy: {name}: expected >= 0 days, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class Action:
    """One housekeeping step: drop the chunks of `table` older than `older_than`, or compress them."""

    kind: Literal["drop", "enable_compression", "compress", "expire"]
    table: str
    older_than: timedelta | None = None


def plan_housekeeping(policy: Policy, edition: Edition) -> tuple[Action, ...]:
    """What to do: a drop per table with a retention, then — Timescale-licensed edition only — compression switched
    on and applied to chunks older than `compress_after_days` (never to chunks about to be dropped anyway)."""
    if edition not in ("apache", "timescale"):
        raise ValueError(f"timescaledb edition: expected 'apache' or 'timescale', got {edition!r}")
    keep = {"measurements": policy.measurements_days, "averages": policy.averages_days,
            "indices": policy.indices_days}
    actions = [Action("drop", table, timedelta(days=days)) for table, days in keep.items() if days > 0]
    if policy.delivery_receipts_s > 0:
        actions.append(Action("expire", "delivery_receipts", timedelta(seconds=policy.delivery_receipts_s)))
    if edition == "timescale" and policy.compress_after_days > 0:
        for table in SEGMENT_BY:
            if keep[table] and keep[table] <= policy.compress_after_days:
                continue  # dropped before it would be compressed
            actions.append(Action("enable_compression", table))
            actions.append(Action("compress", table, timedelta(days=policy.compress_after_days)))
    return tuple(actions)


@dataclass(frozen=True, slots=True)
class HousekeepingRun:
    """What one run did: the edition found, chunks dropped and compressed per table."""

    edition: Edition
    dropped: dict[str, int]
    compressed: dict[str, int]
    expired: dict[str, int] = field(default_factory=dict)  #: rows deleted per (plain) table


def edition(conn: psycopg.Connection) -> Edition:
    """The TimescaleDB edition the server runs ('apache' or 'timescale', from `timescaledb.license`)."""
    row = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
    value = (row[0] if row else None) or "apache"
    if value not in ("apache", "timescale"):
        raise ValueError(f"timescaledb.license: expected 'apache' or 'timescale', got {value!r}")
    return value  # type: ignore[return-value]


def _compression_enabled(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("SELECT compression_enabled FROM timescaledb_information.hypertables "
                       "WHERE hypertable_name = %s", (table,)).fetchone()
    return bool(row and row[0])


def run_housekeeping(conn: psycopg.Connection, policy: Policy) -> HousekeepingRun:
    """Carry out `plan_housekeeping` for the server's edition; each action in its own transaction."""
    ed = edition(conn)
    dropped: dict[str, int] = {}
    compressed: dict[str, int] = {}
    expired: dict[str, int] = {}
    for action in plan_housekeeping(policy, ed):
        table = sql.Identifier(action.table)
        with conn.transaction():
            if action.kind == "drop":
                rows = conn.execute(sql.SQL("SELECT drop_chunks({}, older_than => %s)").format(
                    sql.Literal(action.table)), (action.older_than,)).fetchall()
                dropped[action.table] = len(rows)
            elif action.kind == "expire":
                cur = conn.execute(sql.SQL("DELETE FROM {} WHERE recorded_at < now() - %s").format(table),
                                   (action.older_than,))
                expired[action.table] = cur.rowcount
            elif action.kind == "enable_compression":
                if not _compression_enabled(conn, action.table):
                    conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress, "
                                         "timescaledb.compress_segmentby = {})").format(
                        table, sql.Literal(SEGMENT_BY[action.table])))
            else:
                rows = conn.execute(sql.SQL(
                    "SELECT compress_chunk(c, if_not_compressed => true) "
                    "FROM show_chunks({}, older_than => %s) AS c").format(sql.Literal(action.table)),
                    (action.older_than,)).fetchall()
                compressed[action.table] = len(rows)
    if dropped or compressed:
        log.info("housekeeping (%s edition): dropped chunks %s, compressed chunks %s", ed, dropped, compressed)
    return HousekeepingRun(ed, dropped, compressed, expired)
