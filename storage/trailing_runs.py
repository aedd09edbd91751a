"""Stage 3 — trailing runs of readings for the equipment checks (flat line, analyser fault), read backwards from
each series' latest reading only as far as the run goes. I/O (psycopg 3, sync, read only) around two pure walks.

A series is one (sensor, device, variable). The flat run of a series is its latest readings in (since, now] whose
max − min stays within a tolerance; its fault run is its latest readings flagged invalid. Both are trailing: they
end at the series' latest reading in the window, and the first reading (going back) that breaks them ends them.

The obvious query, a window function over every reading of the window (kept as the reference in the tests), reads
every row of the window on every run: at the 10,000-sensor rate (8,000 readings/s) a flat-line rule's 4-hour
window holds ~115 million rows and the alert job, due every minute, took longer than a minute. Here the work is
per series, through the `measurements_key` index (sensor_id, device_id, variable, time):

1. `series`: the series of the given sensors with a reading in the window, by a skip scan — each step one
   backward index probe for the next (device, variable) of a sensor below the last one found.
2. `_walk`: each series' latest `n` readings (newest first; n = 4, then 32, then 256 for the series whose run
   has not ended within them), as long as the run goes on and the series has readings in the window.
3. A run longer than that (a stuck sensor, an analyser in fault for an hour) is finished in SQL, one row per
   series: the window function over its series alone (flat), or an index probe back to its latest fine reading
   (fault).

A flowing series costs a few rows; a long flat run costs what the window function cost, for that series only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = ["FaultRun", "FlatRun", "Series", "fault_prefix", "fault_runs", "flat_prefix", "flat_runs", "series"]

Series = tuple[str, str, str]  #: sensor_id, device_id, variable

#: readings fetched per series in the first round, the factor between rounds, and the rounds read into Python; a
#: run longer than that (4 + 32 + 256 readings) is finished in SQL, one row per series
FIRST_ROUND, GROWTH, ROUNDS = 4, 8, 3


@dataclass(frozen=True, slots=True)
class FlatRun:
    """A series' latest reading and its trailing flat run (`since` its oldest reading, `n` readings)."""

    sensor_id: str
    device_id: str
    variable: str
    last: datetime
    since: datetime | None  #: None when even the latest reading is not flat (a NaN)
    n: int


@dataclass(frozen=True, slots=True)
class FaultRun:
    """A series' latest reading and the start of its trailing run of invalid readings (None: the last is fine)."""

    sensor_id: str
    device_id: str
    variable: str
    last: datetime
    since: datetime | None


# ----------------------------------------------------------------------------------------------- pure walks

def flat_prefix(values: Sequence[float], tolerance: float) -> int | None:
    """How many of `values` (newest first) form the flat run: max − min within `tolerance`, as PostgreSQL
    computes it in float8 (a NaN ends the run). None when all of them do (the run may go on further back)."""
    if not values:
        return None
    hi = lo = values[0]
    for i, v in enumerate(values):
        if math.isnan(v):
            return i
        if v > hi:
            hi = v
        elif v < lo:
            lo = v
        if not hi - lo <= tolerance:
            return i
    return None


def fault_prefix(bad: Sequence[bool]) -> int | None:
    """How many of `bad` (newest first) form the fault run; None when all of them do."""
    for i, b in enumerate(bad):
        if not b:
            return i
    return None


# ---------------------------------------------------------------------------------------------------- I/O

# the rows a check reads of a series (`{m}` its alias): in the window, and its own filter
_IN_WINDOW = "{m}.time > %(since)s AND {m}.time <= %(now)s AND {extra}"

# step 1: a skip scan per sensor over measurements_key, backwards; each step is the next (device, variable) below
# the last one with a row in the window, and that row is its latest (a series without one is passed over within the
# chunks of the window)
_SERIES = """
WITH RECURSIVE k(sensor_id, device_id, variable, time) AS (
    SELECT s.id, f.device_id, f.variable, f.time
    FROM unnest(%(sensors)s::text[]) AS s(id),
    LATERAL (SELECT m.device_id, m.variable, m.time FROM measurements m
             WHERE m.sensor_id = s.id AND {first}
             ORDER BY m.device_id DESC, m.variable DESC, m.time DESC LIMIT 1) f
  UNION ALL
    SELECT k.sensor_id, n.device_id, n.variable, n.time
    FROM k, LATERAL (SELECT m.device_id, m.variable, m.time FROM measurements m
                     WHERE m.sensor_id = k.sensor_id AND (m.device_id, m.variable) < (k.device_id, k.variable)
                       AND {next}
                     ORDER BY m.device_id DESC, m.variable DESC, m.time DESC LIMIT 1) n
)
SELECT sensor_id, device_id, variable, time FROM k
"""

# step 2: the latest `n` rows of each series, newest first
_LATEST = """
SELECT k.i, r.time, r.x
FROM unnest(%(s)s::text[], %(d)s::text[], %(v)s::text[]) WITH ORDINALITY AS k(sensor_id, device_id, variable, i),
LATERAL (SELECT m.time, {column} AS x FROM measurements m
         WHERE m.sensor_id = k.sensor_id AND m.device_id = k.device_id AND m.variable = k.variable AND {where}
         ORDER BY m.time DESC LIMIT %(n)s) r
ORDER BY k.i, r.time DESC
"""


# step 3: a flat run longer than the rounds: the window function over the rest of its series' window
_FLAT_REST = """
SELECT k.i, r.last, r.since, r.n
FROM unnest(%(s)s::text[], %(d)s::text[], %(v)s::text[]) WITH ORDINALITY AS k(sensor_id, device_id, variable, i),
LATERAL (SELECT max(x.time) AS last, min(x.time) FILTER (WHERE x.spread <= %(tolerance)s) AS since,
                count(*) FILTER (WHERE x.spread <= %(tolerance)s) AS n
         FROM (SELECT m.time, max(m.value) OVER w - min(m.value) OVER w AS spread FROM measurements m
               WHERE m.sensor_id = k.sensor_id AND m.device_id = k.device_id AND m.variable = k.variable AND {where}
               WINDOW w AS (ORDER BY m.time DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) x) r
"""

# step 3: a fault run longer than the rounds: its series' latest fine reading, then the oldest reading after it
_FAULT_REST = """
SELECT k.i, bad.since
FROM unnest(%(s)s::text[], %(d)s::text[], %(v)s::text[]) WITH ORDINALITY AS k(sensor_id, device_id, variable, i)
LEFT JOIN LATERAL (SELECT m.time FROM measurements m
                   WHERE m.sensor_id = k.sensor_id AND m.device_id = k.device_id AND m.variable = k.variable
                     AND {where} AND m.flags & %(invalid)s = 0
                   ORDER BY m.time DESC LIMIT 1) ok ON true
CROSS JOIN LATERAL (SELECT min(m.time) AS since FROM measurements m
                    WHERE m.sensor_id = k.sensor_id AND m.device_id = k.device_id AND m.variable = k.variable
                      AND {where} AND m.time > coalesce(ok.time, '-infinity')) bad
"""


def series(conn: psycopg.Connection, sensors: Sequence[str], *, since: datetime, now: datetime, extra: str = "true",
           params: dict[str, Any] | None = None) -> list[tuple[str, str, str, datetime]]:
    """The series of `sensors` with a reading in (since, now] that passes `extra` (SQL on alias `m`), each with
    the time of its latest such reading: (sensor, device, variable, time)."""
    if not sensors:
        return []
    where = _IN_WINDOW.format(m="m", extra=extra)
    query = _SERIES.format(first=where, next=where)
    return conn.execute(query, {"sensors": list(sensors), "since": since, "now": now, **(params or {})}).fetchall()


def _walk(conn: psycopg.Connection, keys: Sequence[Series], *, since: datetime, now: datetime, extra: str,
          params: dict[str, Any], column: str, prefix: Callable[[list[Any]], int | None]
          ) -> tuple[dict[Series, tuple[datetime, datetime | None, int]], dict[Series, datetime]]:
    """Up to `ROUNDS` rounds of latest readings: per series whose run ended within them (or whose window did),
    (latest time, run start or None, run length); and per series whose run goes on further back, its latest time."""
    query = _LATEST.format(column=column, where=_IN_WINDOW.format(m="m", extra=extra))
    done: dict[Series, tuple[datetime, datetime | None, int]] = {}
    todo, n, last = list(keys), FIRST_ROUND, {}
    for _ in range(ROUNDS):
        if not todo:
            break
        rows = conn.execute(query, {**_keyed(todo), "n": n, "since": since, "now": now, **params}).fetchall()
        got: dict[int, tuple[list[datetime], list[Any]]] = {}
        for i, t, x in rows:
            times, xs = got.setdefault(i, ([], []))
            times.append(t)
            xs.append(x)
        later = []
        for i, key in enumerate(todo, start=1):
            times, xs = got.get(i, ([], []))
            run = prefix(xs)
            if run is not None or len(xs) < n:  # the run ended, or the series' window did
                if times:
                    run = len(xs) if run is None else run
                    done[key] = (times[0], times[run - 1] if run else None, run)
            else:
                later.append(key)
                last[key] = times[0]
        todo, n = later, n * GROWTH
    return done, {key: last[key] for key in todo}


def _keyed(keys: Sequence[Series]) -> dict[str, Any]:
    """`keys` as the three arrays the per-series statements unnest."""
    return {"s": [k[0] for k in keys], "d": [k[1] for k in keys], "v": [k[2] for k in keys]}


def flat_runs(conn: psycopg.Connection, sensors: Sequence[str], *, since: datetime, now: datetime, excluded: int,
              tolerance: float, variable: str | None = None) -> list[FlatRun]:
    """Every series of `sensors` (of `variable`, or all) with a reading in (since, now] not flagged `excluded`,
    with its trailing flat run over those readings (max − min within `tolerance`)."""
    extra, params = "m.value IS NOT NULL AND m.flags & %(excluded)s = 0", {"excluded": excluded}
    keys = [k[:3] for k in series(conn, sensors, since=since, now=now, extra=extra, params=params)
            if variable is None or k[2] == variable]
    done, pending = _walk(conn, keys, since=since, now=now, extra=extra, params=params, column="m.value",
                          prefix=lambda xs: flat_prefix(xs, tolerance))
    if pending:  # long flat runs: the rest of each such series in the window, by its window function
        keyed = list(pending)
        rows = conn.execute(_FLAT_REST.format(where=_IN_WINDOW.format(m="m", extra=extra)),
                            {**_keyed(keyed), "since": since, "now": now, "tolerance": tolerance, **params}).fetchall()
        for i, last, start, run in rows:
            done[keyed[i - 1]] = (last, start, run)
    return [FlatRun(*key, *found) for key, found in done.items()]


def fault_runs(conn: psycopg.Connection, sensors: Sequence[str], *, since: datetime, now: datetime, invalid: int,
               maintenance: int, variable: str | None = None) -> list[FaultRun]:
    """Every series of `sensors` (of `variable`, or all) with a reading in (since, now] not flagged `maintenance`,
    with the start of its trailing run of readings flagged `invalid` over those readings."""
    extra, params = "m.flags & %(maintenance)s = 0", {"maintenance": maintenance, "invalid": invalid}
    keys = [k[:3] for k in series(conn, sensors, since=since, now=now, extra=extra, params=params)
            if variable is None or k[2] == variable]
    done, pending = _walk(conn, keys, since=since, now=now, extra=extra, params=params,
                          column="m.flags & %(invalid)s <> 0", prefix=fault_prefix)
    out = [FaultRun(*key, last, start) for key, (last, start, _) in done.items()]
    if pending:  # long fault runs: back to the latest fine reading, then the oldest reading after it
        keyed = list(pending)
        rows = conn.execute(_FAULT_REST.format(where=_IN_WINDOW.format(m="m", extra=extra)),
                            {**_keyed(keyed), "since": since, "now": now, **params}).fetchall()
        for i, start in rows:
            key = keyed[i - 1]
            out.append(FaultRun(key[0], key[1], key[2], pending[key], start))
    return out
