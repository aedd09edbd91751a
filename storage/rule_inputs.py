"""Stage 3 — what the alert rules read from the stored data: each sensor's latest average or NowCast index of a
rule, the maintenance windows, the equipment checks (silence, flat runs, analyser faults) over `measurements`, and
a scope's recent values for replaying a pending streak. I/O (psycopg 3, sync, read only), for `alerts.rules`
(`observations`, `equipment`, `evaluate`), in the caller's transaction.

Every query is bounded in time and selects the active sensors of the given `sensors.kind` values
(`kinds`); the equipment checks use the `measurements_sensor_variable_time_idx` index and the hypertable's time
partitioning.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

__all__ = ["device_fault_runs", "flat_runs", "last_readings", "latest_averages", "latest_indices",
           "maintenance_windows", "recent_values"]

_AVERAGES = """
SELECT l.sensor_id, l.locality, l.period_start, l.period_end, l.value, l.valid, l.coverage,
       CASE WHEN l.valid THEN false ELSE EXISTS (
           SELECT 1 FROM measurements m WHERE m.sensor_id = l.sensor_id AND m.variable = %(variable)s
             AND m.time >= l.period_start AND m.time < l.period_end AND m.flags & %(invalid)s <> 0) END
FROM (SELECT DISTINCT ON (a.sensor_id) a.sensor_id, s.locality, a.period_start, a.period_end, a.value, a.valid,
             a.coverage
      FROM averages a JOIN sensors s ON s.id = a.sensor_id
      WHERE a.variable = %(variable)s AND a.period = %(period)s AND a.period_end > %(since)s
        AND a.period_end <= %(until)s AND s.kind = ANY(%(kinds)s) AND s.lifecycle = 'active'
      ORDER BY a.sensor_id, a.period_end DESC) l
"""

_INDICES = """
SELECT DISTINCT ON (i.sensor_id) i.sensor_id, s.locality, i.pollutant, i.period_end, i.value, i.category, i.action
FROM indices i JOIN sensors s ON s.id = i.sensor_id
WHERE i.index = %(index)s AND i.averaging = 'nowcast'
  AND (i.pollutant = %(variable)s::text OR (%(variable)s::text IS NULL AND i.dominant))
  AND i.period_end > %(since)s AND i.period_end <= %(until)s AND s.kind = ANY(%(kinds)s) AND s.lifecycle = 'active'
ORDER BY i.sensor_id, i.period_end DESC
"""

_WINDOWS = """
SELECT mw.sensor_id, mw.variable, CASE WHEN mw.device_id IS NULL THEN NULL ELSE d.variables END,
       mw.starts_at, mw.ends_at
FROM maintenance_windows mw LEFT JOIN devices d ON d.id = mw.device_id
WHERE mw.ends_at > %s AND mw.starts_at <= %s
"""

# per active device of the sensor that measures the rule's variable (any, when the rule names none); a sensor with no
# such device registered is judged as a whole (one row, device NULL)
_NO_DATA = """
SELECT s.id, s.locality, d.id,
       (SELECT max(m.time) FROM measurements m
        WHERE m.sensor_id = s.id AND (d.id IS NULL OR m.device_id = d.id)
          AND (%(variable)s::text IS NULL OR m.variable = %(variable)s::text)
          AND m.time > %(since)s AND m.time <= %(now)s) AS last_time
FROM sensors s
LEFT JOIN devices d ON d.sensor_id = s.id AND d.active
     AND (%(variable)s::text IS NULL OR %(variable)s::text = ANY(d.variables))
WHERE s.kind = ANY(%(kinds)s) AND s.lifecycle = 'active'
ORDER BY s.id, d.id
"""

# spread = max - min over the readings from this one to the latest of its (sensor, device, variable), so the rows
# with spread <= tolerance are exactly the flat run ending at the latest reading
_FLATLINE = """
WITH r AS (
    SELECT m.sensor_id, m.device_id, m.variable, m.time,
           max(m.value) OVER w - min(m.value) OVER w AS spread
    FROM measurements m JOIN sensors s ON s.id = m.sensor_id
    WHERE s.kind = ANY(%(kinds)s) AND s.lifecycle = 'active'
      AND (%(variable)s::text IS NULL OR m.variable = %(variable)s::text)
      AND m.time > %(since)s AND m.time <= %(now)s AND m.value IS NOT NULL AND m.flags & %(excluded)s = 0
    WINDOW w AS (PARTITION BY m.sensor_id, m.device_id, m.variable ORDER BY m.time DESC
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT r.sensor_id, s.locality, r.variable, max(r.time) AS last_time,
       min(r.time) FILTER (WHERE r.spread <= %(tolerance)s) AS flat_since,
       count(*) FILTER (WHERE r.spread <= %(tolerance)s) AS flat_n
FROM r JOIN sensors s ON s.id = r.sensor_id
GROUP BY r.sensor_id, s.locality, r.device_id, r.variable
"""

_DEVICE_FAULT = """
WITH r AS (
    SELECT m.sensor_id, m.device_id, m.variable, m.time, m.flags & %(invalid)s <> 0 AS bad,
           max(m.time) FILTER (WHERE m.flags & %(invalid)s = 0)
               OVER (PARTITION BY m.sensor_id, m.device_id, m.variable) AS last_ok
    FROM measurements m JOIN sensors s ON s.id = m.sensor_id
    WHERE s.kind = ANY(%(kinds)s) AND s.lifecycle = 'active'
      AND (%(variable)s::text IS NULL OR m.variable = %(variable)s::text)
      AND m.time > %(since)s AND m.time <= %(now)s AND m.flags & %(maintenance)s = 0
)
SELECT r.sensor_id, s.locality, r.variable, max(r.time) AS last_time,
       min(r.time) FILTER (WHERE r.bad AND r.time > coalesce(r.last_ok, '-infinity')) AS bad_since
FROM r JOIN sensors s ON s.id = r.sensor_id
GROUP BY r.sensor_id, s.locality, r.device_id, r.variable
"""


# ------------------------------------------------------------------------------------ averages, indices

def latest_averages(conn: psycopg.Connection, *, variable: str | None, period: str | None, kinds: Sequence[str],
                    since: datetime, until: datetime, invalid: int) -> list[tuple[Any, ...]]:
    """Each active sensor's latest `period` average of `variable` ending in (since, until]: sensor, locality,
    period start and end, value, valid, coverage, and whether an invalid average's period holds readings flagged
    `invalid` (the analyser's QC bit)."""
    return conn.execute(_AVERAGES, {"variable": variable, "period": period, "kinds": list(kinds),
                                    "since": since, "until": until, "invalid": invalid}).fetchall()


def latest_indices(conn: psycopg.Connection, *, index: str | None, variable: str | None, kinds: Sequence[str],
                   since: datetime, until: datetime) -> list[tuple[Any, ...]]:
    """Each active sensor's latest NowCast `index` row of `variable` (None: the dominant one) ending in
    (since, until]: sensor, locality, pollutant, period end, value, category, action."""
    return conn.execute(_INDICES, {"index": index, "variable": variable, "kinds": list(kinds),
                                   "since": since, "until": until}).fetchall()


def maintenance_windows(conn: psycopg.Connection, since: datetime, now: datetime) -> list[tuple[Any, ...]]:
    """The maintenance windows ending after `since` that started by `now`: sensor, variable, the device's
    variables (None: the whole sensor), starts_at, ends_at."""
    return conn.execute(_WINDOWS, (since, now)).fetchall()


def recent_values(conn: psycopg.Connection, *, from_indices: bool, sensors: Sequence[str], index: str | None,
                  variable: str | None, period: str | None, since: datetime, until: datetime,
                  n: int) -> list[tuple[Any, ...]]:
    """The scope's latest `n` values ending in (since, until], newest first, as (period_end, max over `sensors`):
    the NowCast `index` of `variable` (None: the dominant one) when `from_indices`, else the valid `period`
    averages of `variable`."""
    if from_indices:
        query = ("SELECT period_end, max(value)::float8 FROM indices WHERE sensor_id = ANY(%(s)s) AND index = "
                 "%(i)s AND averaging = 'nowcast' AND (pollutant = %(v)s::text OR (%(v)s::text IS NULL AND "
                 "dominant)) AND period_end > %(since)s AND period_end <= %(until)s GROUP BY 1 "
                 "ORDER BY 1 DESC LIMIT %(n)s")
    else:
        query = ("SELECT period_end, max(value) FROM averages WHERE sensor_id = ANY(%(s)s) AND variable = %(v)s "
                 "AND period = %(p)s AND valid AND period_end > %(since)s AND period_end <= %(until)s "
                 "GROUP BY 1 ORDER BY 1 DESC LIMIT %(n)s")
    return conn.execute(query, {"s": list(sensors), "i": index, "v": variable, "p": period,
                                "since": since, "until": until, "n": n}).fetchall()


# ------------------------------------------------------------------------------------ equipment checks

def last_readings(conn: psycopg.Connection, *, kinds: Sequence[str], variable: str | None, since: datetime,
                  now: datetime) -> list[tuple[Any, ...]]:
    """Every active device of every active sensor (a sensor with no active device measuring `variable`
    registered: the sensor as a whole, device None) with its last reading (of `variable`, or of any) in
    (since, now], None without one: sensor, locality, device, last time."""
    return conn.execute(_NO_DATA, {"kinds": list(kinds), "variable": variable, "since": since,
                                   "now": now}).fetchall()


def flat_runs(conn: psycopg.Connection, *, kinds: Sequence[str], variable: str | None, since: datetime,
              now: datetime, excluded: int, tolerance: float) -> list[tuple[Any, ...]]:
    """Per sensor, device and variable, the run of latest readings (not flagged `excluded`) in (since, now] whose
    max − min stays within `tolerance`: sensor, locality, variable, last time, run start, run length."""
    return conn.execute(_FLATLINE, {"kinds": list(kinds), "variable": variable, "since": since, "now": now,
                                    "excluded": excluded, "tolerance": tolerance}).fetchall()


def device_fault_runs(conn: psycopg.Connection, *, kinds: Sequence[str], variable: str | None, since: datetime,
                      now: datetime, invalid: int, maintenance: int) -> list[tuple[Any, ...]]:
    """Per sensor, device and variable, the trailing run of readings in (since, now] flagged `invalid` (readings
    flagged `maintenance` ignored): sensor, locality, variable, last time, run start (None: last reading fine)."""
    return conn.execute(_DEVICE_FAULT, {"kinds": list(kinds), "variable": variable, "since": since, "now": now,
                                        "invalid": invalid, "maintenance": maintenance}).fetchall()
