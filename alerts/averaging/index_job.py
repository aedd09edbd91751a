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


#: stands for the sensor-specific times that `_template` slices away
_PLACEHOLDER = datetime(1970, 1, 1, tzinfo=UTC)


class _Shapes:
    """The rows of many index windows as a few shapes: a shape is the list of template rows (`_rows_with_dominant`
    without sensor, end and now: `indices_store.TEMPLATE_COLUMNS`) one window gets; built once per distinct key."""

    def __init__(self) -> None:
        self.templates: list[tuple[Any, ...]] = []
        self._ids: dict[tuple[Any, ...], int] = {}
        self._of: dict[Any, int] = {}
        self._shapes: list[list[int]] = []

    def known(self, key: Any) -> int | None:
        """The shape of `key`, if built."""
        return self._of.get(key)

    def add(self, key: Any, values: list[IndexValue]) -> int:
        """Build the shape of `key` from its index values."""
        ids = []
        for r in _rows_with_dominant(values, "", _PLACEHOLDER, _PLACEHOLDER):
            t = (*r[1:4], *r[5:15])
            if t not in self._ids:
                self._ids[t] = len(self.templates)
                self.templates.append(t)
            ids.append(self._ids[t])
        self._shapes.append(ids)
        self._of[key] = len(self._shapes) - 1
        return self._of[key]

    def windows(self, sensors: list[str], sensor: np.ndarray, end: np.ndarray, shape: np.ndarray
                ) -> indices_store.IndexWindows:
        """The windows (sensor number, end) with their shapes, expanded into rows."""
        sizes = np.array([len(x) for x in self._shapes] or [0], dtype=np.int64)
        flat = np.array([t for x in self._shapes for t in x] or [0], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        counts = sizes[shape] if shape.size else np.zeros(0, dtype=np.int64)
        window = np.repeat(np.arange(shape.size), counts)
        within = np.arange(window.size) - np.repeat(np.cumsum(counts) - counts, counts)
        template = flat[np.repeat(starts[shape], counts) + within] if window.size else window
        return indices_store.IndexWindows(sensors, sensor, end, self.templates, window, template)


def _nowcast_windows(pairs: Sequence[Pair], hours: HourTable, sensors: list[str], ns: np.ndarray, ne: np.ndarray,
                     stations: AbstractSet[str]) -> indices_store.IndexWindows:
    """The NowCast index windows (sensor number `ns`, end `ne`) and their rows, from the stored hours."""
    index = {p: i for i, p in enumerate(pairs)}
    offsets = np.arange(WINDOW_HOURS - 1, -1, -1) * HOUR.total_seconds()
    concentrations = []
    for pollutant in NOWCAST_POLLUTANTS:
        ids = np.array([index.get((s, pollutant), -1) for s in sensors], dtype=np.int64)[ns]
        values, valid = hours.get(ids[:, None], ne[:, None] - offsets)
        c = nowcast_values(np.where(valid & (ids[:, None] >= 0), values, np.nan), pollutant)
        concentrations.append([None if math.isnan(x) else x for x in c.tolist()])
    indicative = [s not in stations for s in sensors]
    shapes = _Shapes()
    shape = np.empty(ns.size, dtype=np.int64)
    for i, s in enumerate(ns.tolist()):
        key = (indicative[s], *(c[i] for c in concentrations))
        got = shapes.known(key)
        if got is None:  # a NowCast is truncated (0.1 µg/m³ PM2.5, 1 µg/m³ PM10): few distinct keys a run
            values_: list[IndexValue] = []
            for pollutant, conc in zip(NOWCAST_POLLUTANTS, key[1:], strict=True):
                if conc is not None:
                    for fn in (us_aqi, iboca):
                        v = fn(pollutant, conc, "nowcast", indicative=key[0])
                        if v is not None:
                            values_.append(v)
            got = shapes.add(key, values_)
        shape[i] = got
    return shapes.windows(sensors, ns, ne, shape)


def _daily_keys(tz: tzinfo, days_by_sensor: Mapping[str, set[date]]
                ) -> tuple[list[str], list[tuple[int, date]], list[tuple[datetime, datetime]]]:
    """The daily AQI windows: the sensors numbered, (sensor number, day) per window, and each window's bounds."""
    sensors = sorted(days_by_sensor)
    keys = [(k, d) for k, s in enumerate(sensors) for d in sorted(days_by_sensor[s])]
    of_day = {d: day_bounds(d, tz) for d in {d for _, d in keys}}
    return sensors, keys, [of_day[d] for _, d in keys]


def _daily_windows(sensors: list[str], keys: list[tuple[int, date]], bounds: list[tuple[datetime, datetime]],
                   result: list[tuple[Any, ...]], stations: AbstractSet[str]) -> indices_store.IndexWindows:
    """The daily AQI windows (`_daily_keys`) and their rows, from their inputs (`indices_store.daily_inputs`)."""
    inputs: dict[tuple[str, datetime], list[tuple[str, DailyInputs]]] = defaultdict(list)
    for sensor, day_end, variable, mean_24h, max_8h, max_1h in result:
        inputs[(sensor, day_end)].append((variable, DailyInputs(mean_24h=mean_24h, max_8h=max_8h, max_1h=max_1h)))
    # the sub-indices are looked up truncated: few distinct days a run, each looked up once
    shapes = _Shapes()
    none = shapes.add(None, [])
    shape = np.empty(len(keys), dtype=np.int64)
    for i, ((k, _), (_, end)) in enumerate(zip(keys, bounds, strict=True)):
        day = inputs.get((sensors[k], end))
        if not day:
            shape[i] = none
            continue
        indicative = sensors[k] not in stations
        key = (indicative, *sorted(day))
        got = shapes.known(key)
        if got is None:
            got = shapes.add(key, list(daily_us_aqi(dict(day), indicative=indicative)))
        shape[i] = got
    return shapes.windows(sensors, np.array([k for k, _ in keys], dtype=np.int64),
                          np.array([b[1].timestamp() for b in bounds]), shape)


def write_indices(conn: psycopg.Connection, now: datetime, *, tz: tzinfo, pairs: Sequence[Pair],
                  hour_pairs: np.ndarray, hour_ends: np.ndarray, hours: HourTable,
                  days: Mapping[Pair, AbstractSet[date]], last_end: datetime, due_hours: AbstractSet[datetime],
                  due_day_ends: AbstractSet[datetime], stations: AbstractSet[str], snapshot: str | None = None,
                  written_averages: Sequence[windows_store.AverageColumns] = ()) -> dict[str, int]:
    """Rewrite the NowCast indices and daily US AQI that the written hours (series number `hour_pairs` into
    `pairs`, end `hour_ends` in epoch seconds) and ended `days` of each series change, from the stored hours
    `hours` (by series number) and the stored averages (`conn`: they must have been written, or sent before in
    pipeline mode); `stations`: the reference stations. Log them in `window_computations`; return rows written by
    kind ('nowcast', 'daily_aqi'). In pipeline mode the NowCasts are computed while the server writes the averages
    and reads the daily inputs, and the daily indices while it writes the NowCasts. `snapshot`: `conn`'s
    transaction's, exported before it wrote `written_averages` (every average it writes before this call): the
    daily inputs of a day many sensors share are then read on a second connection while `conn` writes
    (`indices_store.daily_inputs`)."""
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
    if daily:
        day_sensors, keys, bounds = _daily_keys(tz, daily)
        inputs = indices_store.daily_inputs(
            conn, [(day_sensors[k], b[0], b[1]) for (k, _), b in zip(keys, bounds, strict=True)], DAILY_INPUTS,
            snapshot=snapshot, written=written_averages)
    counts = {"nowcast": 0, "daily_aqi": 0}
    nowcasts = _nowcast_windows(pairs, hours, sensors, ns, ne, stations) if ns.size else None
    # the NowCasts are sent before the daily inputs are waited for when those are read on another connection (the
    # server writes them meanwhile); on `conn`, waiting for a result waits for every statement sent before it
    beside = daily and isinstance(inputs, indices_store.BesideRead)
    if nowcasts is not None and beside:
        _write_nowcasts(conn, nowcasts, due_hours, now, counts)
    rows = inputs.result() if daily else []
    if nowcasts is not None and not beside:
        _write_nowcasts(conn, nowcasts, due_hours, now, counts)
    if daily:
        windows = _daily_windows(day_sensors, keys, bounds, rows, stations)
        indices_store.replace_indices(conn, windows, sorted(DAILY_AVERAGING.values()), now)
        counts["daily_aqi"] = len(windows)
        _log(conn, "daily_aqi", windows.end, due_day_ends, now)
    return counts


def _write_nowcasts(conn: psycopg.Connection, nowcasts: indices_store.IndexWindows, due_hours: AbstractSet[datetime],
                    now: datetime, counts: dict[str, int]) -> None:
    """Write and log the NowCast indices, counting them in `counts`."""
    indices_store.replace_indices(conn, nowcasts, ["nowcast"], now)
    counts["nowcast"] = len(nowcasts)
    _log(conn, "nowcast", nowcasts.end, due_hours, now)


def _distinct(p: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (number, end) pairs, sorted by number then end."""
    order = np.lexsort((e, p))
    p, e = p[order], e[order]
    first = np.ones(p.shape, dtype=bool)
    first[1:] = (p[1:] != p[:-1]) | (e[1:] != e[:-1])
    return p[first], e[first]


def _log(conn: psycopg.Connection, period: str, window_ends: np.ndarray, due: AbstractSet[datetime],
         now: datetime) -> None:
    """Log the windows ending at `window_ends` (epoch s, one per window): 'due' at a due end, 'late' otherwise."""
    tallies: dict[str, dict[datetime, int]] = {"due": {}, "late": {}}
    ends, n = np.unique(window_ends, return_counts=True)
    for e, k in zip(ends.tolist(), n.tolist(), strict=True):
        end = datetime.fromtimestamp(e, UTC)
        tallies["due" if end in due else "late"][end] = k
    for reason, by_end in tallies.items():
        windows_store.log_windows(conn, period, reason, by_end, now)
