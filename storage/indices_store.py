"""Stage 3 — the `indices` table as the averaging job's index step writes it: which sensors are reference stations,
the daily US AQI inputs from the stored averages, and the whole-window rewrite of index rows. I/O (psycopg 3,
sync), for `alerts.averaging.index_job`, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["INDEX_COLUMNS", "daily_inputs", "replace_indices", "stations"]

INDEX_COLUMNS = ("sensor_id", "index", "pollutant", "averaging", "period_end", "value", "level", "category",
                 "colour", "action", "concentration", "unit", "indicative", "beyond_index", "dominant", "computed_at")
_TYPES = ("text", "text", "text", "text", "timestamptz", "int4", "int4", "text", "text", "text", "float8", "text",
          "bool", "bool", "bool", "timestamptz")

# only the (period, variable) pairs the daily index reads: 'day' for the 24-h means, '8h' and '1h' for the maxima
_WANTED = """((a.period = 'day' AND a.variable = ANY(%(day)s)) OR (a.period = '8h' AND a.variable = ANY(%(h8)s))
      OR (a.period = '1h' AND a.variable = ANY(%(h1)s)))"""

_DAILY_RANGE = f"""
SELECT a.sensor_id, %(end)s::timestamptz, a.variable,
       max(a.value) FILTER (WHERE a.period = 'day' AND a.period_end = %(end)s AND a.valid),
       max(a.value) FILTER (WHERE a.period = '8h' AND a.valid),
       max(a.value) FILTER (WHERE a.period = '1h' AND a.valid)
FROM averages a WHERE {_WANTED} AND a.period_end > %(start)s AND a.period_end <= %(end)s
GROUP BY 1, 3
"""

#: sensors sharing one window above which one range scan beats per-sensor index lookups
_RANGE_SCAN_MIN = 50

_DAILY = f"""
SELECT w.sensor_id, w.day_end, a.variable,
       max(a.value) FILTER (WHERE a.period = 'day' AND a.period_end = w.day_end AND a.valid),
       max(a.value) FILTER (WHERE a.period = '8h' AND a.valid),
       max(a.value) FILTER (WHERE a.period = '1h' AND a.valid)
FROM unnest(%(sensors)s::text[], %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS w(sensor_id, day_start, day_end)
JOIN averages a ON a.sensor_id = w.sensor_id AND {_WANTED}
               AND a.period_end > w.day_start AND a.period_end <= w.day_end
GROUP BY 1, 2, 3
"""

# the keys of the windows rewritten, COPY'd (binary) rather than sent as arrays: thousands a run
_KEYS = """
CREATE TEMPORARY TABLE IF NOT EXISTS _aqnet_index_keys (sensor_id text, period_end timestamptz) ON COMMIT DELETE ROWS
"""
_DELETE = """
DELETE FROM indices i USING _aqnet_index_keys k
WHERE i.sensor_id = k.sensor_id AND i.period_end = k.period_end AND i.averaging = ANY(%(averagings)s)
  AND i.period_end BETWEEN %(first)s AND %(last)s
"""


def stations(conn: psycopg.Connection, sensors: AbstractSet[str]) -> set[str]:
    """Which of `sensors` are reference stations (`sensors.kind` = 'station'): their indices are not indicative."""
    rows = conn.execute("SELECT id FROM sensors WHERE kind = 'station' AND id = ANY(%s)", (sorted(sensors),))
    return {r[0] for r in rows}


def daily_inputs(conn: psycopg.Connection, windows: Sequence[tuple[str, datetime, datetime]],
                 inputs: Mapping[str, Sequence[str]]) -> Iterable[tuple[Any, ...]]:
    """Per (sensor, day start, day end) window and variable of `inputs`: (sensor, day end, variable, the valid
    'day' average ending at the day's end, the largest valid '8h' and '1h' averages ending in the day), each read
    only for the variables whose `inputs` ('24h', '8h', '1h') name it (None otherwise). One range scan when many
    sensors share one day, one indexed lookup per sensor otherwise."""
    wanted = {k: sorted(v for v, used in inputs.items() if a in used) for k, a in
              (("day", "24h"), ("h8", "8h"), ("h1", "1h"))}
    bounds = [(w[1], w[2]) for w in windows]
    if len(windows) >= _RANGE_SCAN_MIN and len(set(bounds)) == 1:
        return conn.execute(_DAILY_RANGE, {"start": bounds[0][0], "end": bounds[0][1], **wanted})
    return conn.execute(_DAILY, {
        "sensors": [w[0] for w in windows], "starts": [b[0] for b in bounds], "ends": [b[1] for b in bounds],
        **wanted})


def replace_indices(conn: psycopg.Connection, keys: list[tuple[str, datetime]], averagings: list[str],
                    rows: list[tuple[Any, ...]]) -> None:
    """Delete the `averagings` rows of each (sensor, period_end) in `keys` (the ends' range bounds the scan to the
    chunks and index range holding them), then COPY `rows` (`INDEX_COLUMNS`)."""
    if not keys:
        return
    ends = [k[1] for k in keys]
    with conn.cursor() as cur:
        cur.execute(_KEYS)
        with cur.copy("COPY _aqnet_index_keys (sensor_id, period_end) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "timestamptz"])
            for key in keys:
                copy.write_row(key)
        cur.execute(_DELETE, {"averagings": averagings, "first": min(ends), "last": max(ends)})
        cur.execute("TRUNCATE _aqnet_index_keys")
    if not rows:
        return
    cols = sql.SQL(", ").join(map(sql.Identifier, INDEX_COLUMNS))
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY indices ({}) FROM STDIN (FORMAT BINARY)").format(cols)) as cp:
        cp.set_types(list(_TYPES))
        for row in rows:
            cp.write_row(row)
