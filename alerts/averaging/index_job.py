"""The index step of the averaging job: hourly NowCast indices (IBOCA and US AQI for PM2.5, US AQI for PM10) and
the daily US AQI, from the stored averages, into the `indices` table. I/O glue (psycopg 3, sync) over the pure
`alerts.averaging.nowcast` and `alerts.averaging.indices`; called by `alerts.averaging.job.compute_windows` inside
its transaction, with the hours and days it has just written. Its queries are `storage.indices_store`.

- Hourly (averaging 'nowcast', stamped at the hour's end E): the NowCast of the valid '1h' averages ending
  E-11h … E (`alerts.averaging.nowcast`; an invalid or missing hour is missing), looked up in the US AQI PM tables
  and, for PM2.5, in IBOCA's. A written hour e changes the NowCasts ending e … e+11h (up to the last hour end computed).
  Every NowCast pollutant of a sensor is recomputed together, so `dominant` (the highest US AQI, ties by
  `alerts.averaging.indices.dominant`'s rule) is right. No ozone NowCast (indices.json: unverified).
- Daily (the calendar day in the network time zone, stamped at its end), by indices.json `us_epa_aqi.rules[0]`
  through `alerts.averaging.indices.daily_us_aqi`: PM2.5, PM10 (and SO2 above AQI 200) from the valid 'day' average; O3
  and CO from the largest valid '8h' average ending in the day (aqnet stamps 8-h means by their end, EPA by their
  start: norms.json `averaging_conventions.8h_rolling`); NO2, SO2 (and O3's 1-h table) from the largest valid
  '1h' average of the day. Recomputed for every ended day holding a written hour (or, for O3 and CO, a changed
  8-h window).

A window recomputed is deleted and rewritten whole (a sub-index that no longer has its input disappears). Values
of sensors that are not reference stations (`sensors.kind` <> 'station', or unregistered) are indicative.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import numpy as np
import psycopg

from alerts.averaging.averages import HOUR
from alerts.averaging.indices import (
    AQI_POLLUTANTS,
    DAILY_AVERAGING,
    DAILY_INPUTS,
    DailyInputs,
    IndexValue,
    daily_us_aqi,
    dominant,
    iboca,
    us_aqi,
)
from alerts.averaging.nowcast import NOWCAST_POLLUTANTS, WINDOW_HOURS
from alerts.averaging.vectorised import HourTable, nowcast_values
from alerts.averaging.windows import day_bounds, day_of_hour_end
from storage import indices_store, windows_store

__all__ = ["write_indices"]

Pair = tuple[str, str]

def _row(v: IndexValue, sensor: str, end: datetime, is_dominant: bool, now: datetime) -> tuple[Any, ...]:
    return (sensor, v.index, v.pollutant, v.averaging, end, v.value, v.level, v.category, v.colour, v.action,
            v.concentration, v.unit, v.indicative, v.beyond_index, is_dominant, now)


def _rows_with_dominant(values: list[IndexValue], sensor: str, end: datetime, now: datetime) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for index in ("us_aqi", "iboca"):
        mine = [v for v in values if v.index == index]
        top = dominant(mine)
        out.extend(_row(v, sensor, end, v is top, now) for v in mine)
    return out


#: stands for the sensor-specific times that `_templates` slices away
_PLACEHOLDER = datetime(1970, 1, 1, tzinfo=UTC)


def _templates(values: list[IndexValue]) -> tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...]:
    """`_rows_with_dominant`'s rows without sensor, end and now: (columns before period_end, columns after)."""
    return tuple((r[1:4], r[5:15]) for r in _rows_with_dominant(values, "", _PLACEHOLDER, _PLACEHOLDER))


def _nowcast_rows(now: datetime, pairs: Sequence[Pair], hours: HourTable, sensors: list[str], ns: np.ndarray,
                  ne: np.ndarray, stations: set[str]) -> list[tuple[Any, ...]]:
    """The NowCast index rows of the windows (sensor number `ns`, end `ne`), from the stored hours."""
    index = {p: i for i, p in enumerate(pairs)}
    offsets = np.arange(WINDOW_HOURS - 1, -1, -1) * HOUR.total_seconds()
    concentrations = []
    for pollutant in NOWCAST_POLLUTANTS:
        ids = np.array([index.get((s, pollutant), -1) for s in sensors], dtype=np.int64)[ns]
        values, valid = hours.get(ids[:, None], ne[:, None] - offsets)
        c = nowcast_values(np.where(valid & (ids[:, None] >= 0), values, np.nan), pollutant)
        concentrations.append([None if math.isnan(x) else x for x in c.tolist()])
    templates: dict[tuple[Any, ...], tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...]] = {}
    stamps: dict[float, datetime] = {}
    rows: list[tuple[Any, ...]] = []
    for i, (s, e) in enumerate(zip(ns.tolist(), ne.tolist(), strict=True)):
        sensor = sensors[s]
        key: tuple[Any, ...] = (sensor not in stations, *(c[i] for c in concentrations))
        shape = templates.get(key)
        if shape is None:  # a NowCast is truncated (0.1 µg/m³ PM2.5, 1 µg/m³ PM10): few distinct keys a run
            values_: list[IndexValue] = []
            for pollutant, conc in zip(NOWCAST_POLLUTANTS, key[1:], strict=True):
                if conc is not None:
                    for fn in (us_aqi, iboca):
                        got = fn(pollutant, conc, "nowcast", indicative=key[0])
                        if got is not None:
                            values_.append(got)
            shape = templates[key] = _templates(values_)
        end = stamps.get(e) or stamps.setdefault(e, datetime.fromtimestamp(e, UTC))
        rows.extend((sensor, *head, end, *tail, now) for head, tail in shape)
    return rows


def _daily_rows(conn: psycopg.Connection, now: datetime, tz: tzinfo, days_by_sensor: Mapping[str, set[date]],
                stations: set[str]) -> tuple[list[tuple[Any, ...]], list[tuple[str, datetime]]]:
    keys = [(s, d) for s in sorted(days_by_sensor) for d in sorted(days_by_sensor[s])]
    of_day = {d: day_bounds(d, tz) for d in {d for _, d in keys}}
    bounds = [of_day[d] for _, d in keys]
    inputs: dict[tuple[str, datetime], list[tuple[str, DailyInputs]]] = defaultdict(list)
    result = indices_store.daily_inputs(conn, [(s, b[0], b[1]) for (s, _), b in zip(keys, bounds, strict=True)],
                                        DAILY_INPUTS)
    for sensor, day_end, variable, mean_24h, max_8h, max_1h in result:
        inputs[(sensor, day_end)].append((variable, DailyInputs(mean_24h=mean_24h, max_8h=max_8h, max_1h=max_1h)))
    rows: list[tuple[Any, ...]] = []
    ends = [(s, b[1]) for (s, _), b in zip(keys, bounds, strict=True)]
    # the sub-indices are looked up truncated: few distinct days a run, each looked up once
    templates: dict[tuple[Any, ...], tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...]] = {}
    for sensor, end in ends:
        day = inputs.get((sensor, end))
        if day:
            indicative = sensor not in stations
            key = (indicative, *sorted(day))
            shape = templates.get(key)
            if shape is None:
                shape = templates[key] = _templates(list(daily_us_aqi(dict(day), indicative=indicative)))
            rows.extend((sensor, *head, end, *tail, now) for head, tail in shape)
    return rows, ends


def write_indices(conn: psycopg.Connection, now: datetime, *, tz: tzinfo, pairs: Sequence[Pair],
                  hour_pairs: np.ndarray, hour_ends: np.ndarray, hours: HourTable,
                  days: Mapping[Pair, AbstractSet[date]], last_end: datetime, due_hours: AbstractSet[datetime],
                  due_day_ends: AbstractSet[datetime]) -> dict[str, int]:
    """Rewrite the NowCast indices and daily US AQI that the written hours (series number `hour_pairs` into
    `pairs`, end `hour_ends` in epoch seconds) and ended `days` of each series change, from the stored hours
    `hours` (by series number); log them in `window_computations`; return rows written by kind ('nowcast',
    'daily_aqi')."""
    written = np.unique(hour_pairs).tolist()
    is_nowcast = np.array([p[1] in NOWCAST_POLLUTANTS for p in pairs] or [False], dtype=bool)[hour_pairs]
    sensors = sorted({pairs[i][0] for i in written if pairs[i][1] in NOWCAST_POLLUTANTS})
    number = {s: i for i, s in enumerate(sensors)}
    sensor_of = np.array([number.get(p[0], -1) for p in pairs] or [-1], dtype=np.int64)[hour_pairs]
    ns = np.repeat(sensor_of[is_nowcast], WINDOW_HOURS)
    ne = (hour_ends[is_nowcast, None] + np.arange(WINDOW_HOURS) * HOUR.total_seconds()).ravel()
    keep = ne <= last_end.timestamp()
    ns, ne = _distinct(ns[keep], ne[keep])
    daily: dict[str, set[date]] = defaultdict(set)
    for i in written:
        if pairs[i][1] in AQI_POLLUTANTS:
            daily[pairs[i][0]].update(days.get(pairs[i], ()))
    eight = np.array([p[1] in ("o3", "co") for p in pairs] or [False], dtype=bool)[hour_pairs]
    if eight.any():  # an hour moves the 8-h means ending up to 7 h later, maybe into the next day
        later: dict[float, set[date]] = {}
        for e in np.unique(hour_ends[eight]).tolist():
            ds = {day_of_hour_end(datetime.fromtimestamp(e, UTC) + k * HOUR, tz) for k in range(8)}
            later[e] = {d for d in ds if day_bounds(d, tz)[1] <= last_end}
        for i, e in zip(hour_pairs[eight].tolist(), hour_ends[eight].tolist(), strict=True):
            daily[pairs[i][0]].update(later[e])
    stations = indices_store.stations(conn, set(sensors) | set(daily))
    counts = {"nowcast": 0, "daily_aqi": 0}
    if ns.size:
        rows = _nowcast_rows(now, pairs, hours, sensors, ns, ne, stations)
        stamps = {e: datetime.fromtimestamp(e, UTC) for e in np.unique(ne).tolist()}
        keys = [(sensors[s], stamps[e]) for s, e in zip(ns.tolist(), ne.tolist(), strict=True)]
        indices_store.replace_indices(conn, keys, ["nowcast"], rows)
        counts["nowcast"] = len(rows)
        _log(conn, "nowcast", keys, due_hours, now)
    if daily:
        rows, keys = _daily_rows(conn, now, tz, daily, stations)
        indices_store.replace_indices(conn, keys, sorted(DAILY_AVERAGING.values()), rows)
        counts["daily_aqi"] = len(rows)
        _log(conn, "daily_aqi", keys, due_day_ends, now)
    return counts


def _distinct(p: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (number, end) pairs, sorted by number then end."""
    order = np.lexsort((e, p))
    p, e = p[order], e[order]
    first = np.ones(p.shape, dtype=bool)
    first[1:] = (p[1:] != p[:-1]) | (e[1:] != e[:-1])
    return p[first], e[first]


def _log(conn: psycopg.Connection, period: str, keys: list[tuple[str, datetime]], due: AbstractSet[datetime],
         now: datetime) -> None:
    tallies: dict[str, dict[datetime, int]] = {"due": defaultdict(int), "late": defaultdict(int)}
    for _, end in keys:
        tallies["due" if end in due else "late"][end] += 1
    for reason, by_end in tallies.items():
        windows_store.log_windows(conn, period, reason, by_end, now)
