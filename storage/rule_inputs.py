"""Stage 3 — what the alert rules read from the stored data: each sensor's latest average or NowCast index of a
rule, the maintenance windows, the equipment checks (silence, flat runs, analyser faults) over `measurements`, and
a scope's recent values for replaying a pending streak. I/O (psycopg 3, sync, read only), for `alerts.rules`
(`observations`, `equipment`, `evaluate`), in the caller's transaction.

Every query is bounded in time and selects the active sensors of the given `sensors.kind` values
(`kinds`); the equipment checks use the `measurements_sensor_variable_time_idx` index (silence) or read each
series back from its latest reading through `measurements_key` (flat and fault runs: `storage.trailing_runs`), and
the hypertable's time partitioning.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from storage import trailing_runs

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
SELECT s.id, s.locality, d.id
FROM sensors s
LEFT JOIN devices d ON d.sensor_id = s.id AND d.active
     AND (%(variable)s::text IS NULL OR %(variable)s::text = ANY(d.variables))
WHERE s.kind = ANY(%(kinds)s) AND s.lifecycle = 'active'
ORDER BY s.id, d.id
"""

_ACTIVE = "SELECT id, locality FROM sensors WHERE kind = ANY(%(kinds)s) AND lifecycle = 'active' ORDER BY id"



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
    (since, now], None without one: sensor, locality, device, last time (each series' latest reading found by
    `storage.trailing_runs.series`, not by reading the window)."""
    rows = conn.execute(_NO_DATA, {"kinds": list(kinds), "variable": variable}).fetchall()
    by_device: dict[tuple[str, str], datetime] = {}
    by_sensor: dict[str, datetime] = {}
    for sensor, device, var, time in trailing_runs.series(conn, sorted({r[0] for r in rows}), since=since, now=now):
        if variable is None or var == variable:
            by_device[sensor, device] = max(time, by_device.get((sensor, device), time))
            by_sensor[sensor] = max(time, by_sensor.get(sensor, time))
    return [(sensor, locality, device, by_sensor.get(sensor) if device is None else by_device.get((sensor, device)))
            for sensor, locality, device in rows]


def flat_runs(conn: psycopg.Connection, *, kinds: Sequence[str], variable: str | None, since: datetime,
              now: datetime, excluded: int, tolerance: float) -> list[tuple[Any, ...]]:
    """Per sensor, device and variable, the run of latest readings (not flagged `excluded`) in (since, now] whose
    max − min stays within `tolerance`: sensor, locality, variable, last time, run start, run length
    (`storage.trailing_runs`: read back from the latest reading only as far as the run goes)."""
    localities: dict[str, str | None] = dict(conn.execute(_ACTIVE, {"kinds": list(kinds)}).fetchall())
    return [(r.sensor_id, localities[r.sensor_id], r.variable, r.last, r.since, r.n)
            for r in trailing_runs.flat_runs(conn, list(localities), since=since, now=now, excluded=excluded,
                                             tolerance=tolerance, variable=variable)]


def device_fault_runs(conn: psycopg.Connection, *, kinds: Sequence[str], variable: str | None, since: datetime,
                      now: datetime, invalid: int, maintenance: int) -> list[tuple[Any, ...]]:
    """Per sensor, device and variable, the trailing run of readings in (since, now] flagged `invalid` (readings
    flagged `maintenance` ignored): sensor, locality, variable, last time, run start (None: last reading fine)."""
    localities: dict[str, str | None] = dict(conn.execute(_ACTIVE, {"kinds": list(kinds)}).fetchall())
    return [(r.sensor_id, localities[r.sensor_id], r.variable, r.last, r.since)
            for r in trailing_runs.fault_runs(conn, list(localities), since=since, now=now, invalid=invalid,
                                              maintenance=maintenance, variable=variable)]
