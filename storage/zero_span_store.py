"""Stage 3 — the `zero_span_checks` table (migration 0014): the readings of a check's run, the checks already
recorded, the insert of a new one, the latest check per device for the technicians' alert rule, and the list for
`aqnet checks list`. I/O (psycopg 3, sync), in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

__all__ = ["CHECK_COLUMNS", "insert_check", "latest_checks", "list_checks", "recent_errors", "recorded_starts",
           "run_readings"]

#: the columns `insert_check` writes and `list_checks` returns, in order
CHECK_COLUMNS = ("sensor_id", "device_id", "variable", "source", "started_at", "span_at", "ended_at",
                 "purge_ends_at", "unit", "zero_expected", "zero_response", "zero_n", "span_expected",
                 "span_response", "span_n", "zero_error", "span_error_pct", "zero_limit", "span_limit_pct",
                 "limits_source", "limits_status", "percent_of_limit", "passed", "zero_drift_per_day",
                 "span_drift_pct_per_day", "recorded_at")


def run_readings(conn: psycopg.Connection, *, sensor_id: str, device_id: str, variable: str, start: datetime,
                 end: datetime) -> list[tuple[datetime, float, str]]:
    """(time, raw value, raw unit) of one device's variable in [start, end): what the analyser itself reported."""
    rows = conn.execute(
        "SELECT time, raw_value, raw_unit FROM measurements WHERE sensor_id = %s AND device_id = %s "
        "AND variable = %s AND time >= %s AND time < %s AND raw_value IS NOT NULL ORDER BY time",
        (sensor_id, device_id, variable, start, end)).fetchall()
    return [(t, float(v), u) for t, v, u in rows]


def recorded_starts(conn: psycopg.Connection, *, device_id: str, variable: str, since: datetime) -> set[datetime]:
    """The start times of the checks of (device, variable) recorded since `since`."""
    rows = conn.execute("SELECT started_at FROM zero_span_checks WHERE device_id = %s AND variable = %s "
                        "AND started_at >= %s", (device_id, variable, since)).fetchall()
    return {r[0] for r in rows}


def recent_errors(conn: psycopg.Connection, *, device_id: str, variable: str, before: datetime, n: int
                  ) -> list[tuple[datetime, float | None, float | None]]:
    """(start, zero error, span error %) of the `n` checks of (device, variable) that started before `before`."""
    rows = conn.execute("SELECT started_at, zero_error, span_error_pct FROM zero_span_checks WHERE device_id = %s "
                        "AND variable = %s AND started_at < %s ORDER BY started_at DESC LIMIT %s",
                        (device_id, variable, before, n)).fetchall()
    return [(t, z, s) for t, z, s in rows]


def insert_check(conn: psycopg.Connection, row: Sequence[Any]) -> bool:
    """Insert one check (`CHECK_COLUMNS` order); False when that run is recorded already (nothing written)."""
    if len(row) != len(CHECK_COLUMNS):
        raise ValueError(f"insert_check: expected {len(CHECK_COLUMNS)} values ({', '.join(CHECK_COLUMNS)}), "
                         f"got {len(row)}")
    cur = conn.execute(
        f"INSERT INTO zero_span_checks ({', '.join(CHECK_COLUMNS)}) VALUES ({', '.join(['%s'] * len(row))}) "
        "ON CONFLICT ON CONSTRAINT zero_span_checks_once DO NOTHING", tuple(row))
    return cur.rowcount == 1


def latest_checks(conn: psycopg.Connection, *, kinds: Sequence[str], variable: str | None, since: datetime,
                  until: datetime) -> list[tuple[Any, ...]]:
    """The latest judged check (passed not NULL) per active sensor of `kinds`, device and variable, ended in
    (since, until]: (sensor, locality, device, variable, started_at, ended_at, percent_of_limit, zero_error,
    span_error_pct, unit, limits_source, limits_status)."""
    return conn.execute(
        """SELECT DISTINCT ON (c.sensor_id, c.device_id, c.variable)
                  c.sensor_id, coalesce(s.locality, ''), c.device_id, c.variable, c.started_at, c.ended_at,
                  c.percent_of_limit, c.zero_error, c.span_error_pct, c.unit, c.limits_source, c.limits_status
           FROM zero_span_checks c JOIN sensors s ON s.id = c.sensor_id
           WHERE s.kind = ANY(%(kinds)s) AND s.lifecycle = 'active' AND c.passed IS NOT NULL
             AND c.ended_at > %(since)s AND c.ended_at <= %(until)s
             AND (%(variable)s::text IS NULL OR c.variable = %(variable)s)
           ORDER BY c.sensor_id, c.device_id, c.variable, c.started_at DESC""",
        {"kinds": list(kinds), "variable": variable, "since": since, "until": until}).fetchall()


def list_checks(conn: psycopg.Connection, *, sensor_id: str | None = None, since: datetime | None = None,
                failed_only: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    """The recorded checks, newest first, as dicts of `CHECK_COLUMNS` (and `id`)."""
    rows = conn.execute(
        f"""SELECT id, {', '.join(CHECK_COLUMNS)} FROM zero_span_checks
            WHERE (%(sensor)s::text IS NULL OR sensor_id = %(sensor)s)
              AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s)
              AND (NOT %(failed)s OR passed IS DISTINCT FROM true)
            ORDER BY started_at DESC, sensor_id, device_id, variable LIMIT %(limit)s""",
        {"sensor": sensor_id, "since": since, "failed": failed_only, "limit": limit}).fetchall()
    return [dict(zip(("id", *CHECK_COLUMNS), r, strict=True)) for r in rows]
