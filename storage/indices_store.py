"""Stage 3 — the `indices` table as the averaging job's index step writes it: which sensors are reference stations,
the daily US AQI inputs from the stored averages, and the whole-window rewrite of index rows. I/O (psycopg 3,
sync), for `alerts.averaging.index_job`, in the caller's transaction. Reads return a `storage.windows_store.Pending`
(sent; its result waited for when asked), so that in pipeline mode the server works while the caller computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from storage import pgarrays, side_reader
from storage.windows_store import AverageColumns, Pending

__all__ = ["INDEX_COLUMNS", "TEMPLATE_COLUMNS", "BesideRead", "IndexWindows", "daily_inputs", "replace_indices",
           "stations"]

INDEX_COLUMNS = ("sensor_id", "index", "pollutant", "averaging", "period_end", "value", "level", "category",
                 "colour", "action", "concentration", "unit", "indicative", "beyond_index", "dominant", "computed_at")

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

# `_DAILY_RANGE` over the averages as the job's transaction sees them once it has written its windows, read on a
# second connection in the snapshot the transaction exported before writing (`storage.side_reader`): the stored rows
# whose keys it rewrites left out, the rows it writes (`written`, stored as `windows_store.write_averages` stores
# them: no value without samples) put in
_DAILY_RANGE_MERGED = f"""
WITH written AS MATERIALIZED (
    SELECT w.sensor_id, w.variable, w.period, to_timestamp(w.t1) AS period_end,
           CASE WHEN w.samples > 0 THEN w.value END AS value, w.valid
    FROM unnest(%(w_sensors)b, %(w_variables)b, %(w_periods)b, %(w_t1)b, %(w_value)b, %(w_samples)b, %(w_valid)b)
         AS w(sensor_id, variable, period, t1, value, samples, valid)
), merged AS (
    SELECT a.sensor_id, a.variable, a.period, a.period_end, a.value, a.valid FROM averages a
    WHERE {_WANTED} AND a.period_end > %(start)s AND a.period_end <= %(end)s
      AND NOT EXISTS (SELECT FROM written w WHERE w.sensor_id = a.sensor_id AND w.variable = a.variable
                                              AND w.period = a.period AND w.period_end = a.period_end)
    UNION ALL
    SELECT a.sensor_id, a.variable, a.period, a.period_end, a.value, a.valid FROM written a
    WHERE {_WANTED} AND a.period_end > %(start)s AND a.period_end <= %(end)s
)
SELECT a.sensor_id, %(end)s::timestamptz, a.variable,
       max(a.value) FILTER (WHERE a.period = 'day' AND a.period_end = %(end)s AND a.valid),
       max(a.value) FILTER (WHERE a.period = '8h' AND a.valid),
       max(a.value) FILTER (WHERE a.period = '1h' AND a.valid)
FROM merged a
GROUP BY 1, 3
"""

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

def stations(conn: psycopg.Connection) -> Pending[set[str]]:
    """The reference stations (`sensors.kind` = 'station'): their indices are not indicative."""
    return Pending([conn.execute("SELECT id FROM sensors WHERE kind = 'station'")], lambda rows: {r[0] for r in rows})


def daily_inputs(conn: psycopg.Connection, windows: Sequence[tuple[str, datetime, datetime]],
                 inputs: Mapping[str, Sequence[str]], *, snapshot: str | None = None,
                 written: Sequence[AverageColumns] = ()) -> Pending[list[tuple[Any, ...]]] | BesideRead:
    """Per (sensor, day start, day end) window and variable of `inputs`: (sensor, day end, variable, the valid
    'day' average ending at the day's end, the largest valid '8h' and '1h' averages ending in the day), each read
    only for the variables whose `inputs` ('24h', '8h', '1h') name it (None otherwise). One range scan when many
    sensors share one day, one indexed lookup per sensor otherwise.

    `snapshot` (`storage.side_reader.export_snapshot` of `conn`'s transaction, taken before it wrote `written`,
    every average it writes): the range scan goes on a second connection in that snapshot, merged with `written`
    (`_DAILY_RANGE_MERGED`), so `conn` does not wait for its writes to read; the same rows as read on `conn` once
    they are written (where the second connection fails, they are read there, when `result` is asked for)."""
    wanted = {k: sorted(v for v, used in inputs.items() if a in used) for k, a in
              (("day", "24h"), ("h8", "8h"), ("h1", "1h"))}
    bounds = [(w[1], w[2]) for w in windows]
    if len(windows) >= _RANGE_SCAN_MIN and len(set(bounds)) == 1:
        params = {"start": bounds[0][0], "end": bounds[0][1], **wanted}
        if snapshot is not None:
            merged = {**params, **_written_params(written, wanted, *bounds[0])}
            return BesideRead(side_reader.SideRead(conn, snapshot, lambda c: _merged_read(c, merged),
                                                name="the daily index inputs read"), conn, params)
        return Pending([conn.execute(_DAILY_RANGE, params)], list)
    return Pending([conn.execute(_DAILY, {
        "sensors": [w[0] for w in windows], "starts": [b[0] for b in bounds], "ends": [b[1] for b in bounds],
        **wanted})], list)


class BesideRead:
    """`daily_inputs` read on a second connection (`_DAILY_RANGE_MERGED`), or on `conn` if that fails."""

    def __init__(self, side: side_reader.SideRead[list[tuple[Any, ...]]], conn: psycopg.Connection,
                 params: dict[str, Any]) -> None:
        self._side, self._conn, self._params = side, conn, params

    def result(self) -> list[tuple[Any, ...]]:
        """The rows (`daily_inputs`)."""
        rows = self._side.result()
        return rows if rows is not None else self._conn.execute(_DAILY_RANGE, self._params).fetchall()


def _merged_read(conn: psycopg.Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    pgarrays.register(cur)
    return cur.execute(_DAILY_RANGE_MERGED, params).fetchall()


def _written_params(written: Sequence[AverageColumns], wanted: Mapping[str, Sequence[str]], start: datetime,
                    end: datetime) -> dict[str, Any]:
    """The rows of `written` the daily index of the day (start, end] reads, as `_DAILY_RANGE_MERGED`'s arrays."""
    of_period = {"day": wanted["day"], "8h": wanted["h8"], "1h": wanted["h1"]}
    lo, hi = start.timestamp(), end.timestamp()
    sensors: list[bytes] = []
    variables: list[bytes] = []
    periods: list[bytes] = []
    picks: dict[str, list[np.ndarray]] = {k: [] for k in ("s", "p", "t1", "value", "samples", "valid")}
    for cols in written:
        keep = np.zeros(cols.series.size, dtype=bool)
        for k, name in enumerate(cols.period_names):
            names = set(pgarrays.text_elements(of_period.get(name[4:].decode(), ())))
            if names:
                is_wanted = np.array([v in names for v in cols.variables] or [False], dtype=bool)
                keep |= (cols.period == k) & is_wanted[cols.series]
        keep &= (cols.end > lo) & (cols.end <= hi)
        picks["s"].append(cols.series[keep] + len(sensors))
        picks["p"].append(cols.period[keep] + len(periods))
        for key, column in (("t1", cols.end), ("value", cols.value), ("samples", cols.samples),
                            ("valid", cols.valid)):
            picks[key].append(column[keep])
        sensors.extend(cols.sensors)
        variables.extend(cols.variables)
        periods.extend(cols.period_names)
    joined = {k: np.concatenate(v) if v else np.empty(0) for k, v in picks.items()}
    return {"w_sensors": pgarrays.text_array(sensors, joined["s"]),
            "w_variables": pgarrays.text_array(variables, joined["s"]),
            "w_periods": pgarrays.text_array(periods, joined["p"]), "w_t1": pgarrays.float8_array(joined["t1"]),
            "w_value": pgarrays.float8_array(joined["value"]), "w_samples": pgarrays.int4_array(joined["samples"]),
            "w_valid": pgarrays.bool_array(joined["valid"])}


@dataclass(frozen=True, slots=True)
class IndexWindows:
    """Index windows (sensor, period end) and their rows, as columns: a row is a window's sensor and end with one
    of a few distinct templates (the other `INDEX_COLUMNS` but computed_at), so no row is built in Python."""

    sensors: list[str]  #: sensor ids, numbered
    sensor: np.ndarray  #: per window, an index into `sensors`
    end: np.ndarray  #: per window, its period_end in epoch seconds
    templates: list[tuple[Any, ...]]  #: TEMPLATE_COLUMNS values
    window: np.ndarray  #: per row, its window
    template: np.ndarray  #: per row, its template

    def __len__(self) -> int:
        return int(self.window.size)


#: the columns of an `IndexWindows` template
TEMPLATE_COLUMNS = ("index", "pollutant", "averaging", "value", "level", "category", "colour", "action",
                    "concentration", "unit", "indicative", "beyond_index", "dominant")

# the windows rewritten lose their rows of the given averagings (bounded by the ends' range), then get their new
# rows, in one statement: the INSERT reads the DELETE's count, so the keys are gone before the first row goes in. A
# row is sent as two numbers, its window (k) and its template (t, the few distinct rows but sensor and end), joined
# here: the server parses a few thousand array elements instead of 15 per row (the NowCast write of a
# 10,000-sensor tick: ~25 % less server time, `bench averages`)
_REPLACE = """
WITH k AS MATERIALIZED (
    SELECT k.s AS sensor_id, to_timestamp(k.e) AS period_end, k.n
    FROM unnest(%(sensors)b, %(ends)b) WITH ORDINALITY AS k(s, e, n)
), gone AS (
    DELETE FROM indices i USING k
    WHERE i.sensor_id = k.sensor_id AND i.period_end = k.period_end AND i.averaging = ANY(%(averagings)s)
      AND i.period_end BETWEEN %(first)s AND %(last)s
    RETURNING 1
), t AS MATERIALIZED (
    SELECT * FROM unnest(%(index)b, %(pollutant)b, %(averaging)b, %(value)b, %(level)b, %(category)b, %(colour)b,
                         %(action)b, %(concentration)b, %(unit)b, %(indicative)b, %(beyond_index)b, %(dominant)b)
                  WITH ORDINALITY AS t(index, pollutant, averaging, value, level, category, colour, action,
                                       concentration, unit, indicative, beyond_index, dominant, n)
)
INSERT INTO indices (sensor_id, index, pollutant, averaging, period_end, value, level, category, colour, action,
                     concentration, unit, indicative, beyond_index, dominant, computed_at)
SELECT k.sensor_id, t.index, t.pollutant, t.averaging, k.period_end, t.value, t.level, t.category, t.colour,
       t.action, t.concentration, t.unit, t.indicative, t.beyond_index, t.dominant, %(now)s
FROM unnest(%(window)b, %(template)b) AS r(w, t)
     JOIN k ON k.n = r.w
     JOIN t ON t.n = r.t,
     (SELECT count(*) FROM gone) AS deleted
"""
_KINDS = {"index": "text", "pollutant": "text", "averaging": "text", "value": "int4", "level": "int4",
          "category": "text", "colour": "text", "action": "text", "concentration": "float8", "unit": "text",
          "indicative": "bool", "beyond_index": "bool", "dominant": "bool"}


def replace_indices(conn: psycopg.Connection, windows: IndexWindows, averagings: list[str], now: datetime) -> None:
    """Delete the `averagings` rows of each window of `windows` (the ends' range bounds the scan to the chunks and
    index range holding them), then insert its rows, computed at `now`: one statement (`_REPLACE`) from binary
    arrays (`storage.pgarrays`)."""
    if not windows.sensor.size:
        return
    names = pgarrays.text_elements(windows.sensors)
    params: dict[str, Any] = {
        "now": now, "averagings": averagings, "sensors": pgarrays.text_array(names, windows.sensor),
        "ends": pgarrays.float8_array(windows.end), "first": datetime.fromtimestamp(float(windows.end.min()), UTC),
        "last": datetime.fromtimestamp(float(windows.end.max()), UTC),
        "window": pgarrays.int4_array(windows.window + 1), "template": pgarrays.int4_array(windows.template + 1)}
    for k, (name, kind) in enumerate(_KINDS.items()):  # the templates, numbered from 1 (WITH ORDINALITY)
        column = [t[k] for t in windows.templates]
        if kind == "text":
            params[name] = pgarrays.text_array(pgarrays.text_elements(column))
        elif kind == "int4":
            params[name] = pgarrays.int4_array(np.array(column, dtype=np.int64))
        elif kind == "float8":
            params[name] = pgarrays.float8_array(np.array(column, dtype=float))
        else:
            params[name] = pgarrays.bool_array(np.array(column, dtype=bool))
    cur = conn.cursor()
    pgarrays.register(cur)
    cur.execute(_REPLACE, params)
