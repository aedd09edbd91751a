"""Stage 4, averages — pure (numpy, no I/O, no clock): the averaging job's series and windows as arrays: the (sensor,
variable) series of one run numbered, the samples' hourly sums read from the database as numpy arrays, and which
hours, rolling windows and local days to compute — the inputs of `alerts.averaging.vectorised`, for
`alerts.averaging.job`.

Samples arrive summed as `storage.windows_store` reads them: per (sensor, variable, device, hour holding a sample,
valid or not), the hour's end and the count and sum of its valid samples; the units of the groups only for variables
outside the vocabulary (`unit_of`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import numpy as np

from alerts.averaging.averages import HOUR
from alerts.averaging.vectorised import Averages
from alerts.averaging.windows import day_bounds, day_of_hour_end
from sensors.variables import VARIABLES
from storage import pgarrays
from storage.windows_store import AverageColumns

__all__ = ["AverageBatch", "HourSums", "Pair", "Series", "SeriesNames", "cadence_for", "day_windows", "hour_windows",
           "rolling_windows", "unique_windows", "unit_of"]

Pair = tuple[str, str]  # (sensor_id, variable)


def cadence_for(devices: Iterable[str], cadence_s: float | Mapping[str, float],
                default_cadence_s: float | None) -> float | None:
    """Effective cadence of the devices pooled for a series: 1 / Σ 1/cadence; None if one is unknown."""
    rate = 0.0
    for device in devices:
        c = cadence_s if isinstance(cadence_s, int | float) else cadence_s.get(device, default_cadence_s)
        if c is None or not c > 0:
            return None
        rate += 1.0 / c
    return 1.0 / rate if rate else None


def unit_of(variable: str, seen: str | None) -> str:
    known = VARIABLES.get(variable)
    return known.unit if known is not None else (seen or "")


class Series:
    """The (sensor, variable) series of one run, numbered: the ids of the vectorised arrays."""

    def __init__(self, pairs: Iterable[Pair]) -> None:
        self.pairs: list[Pair] = list(pairs)
        self.index: dict[Pair, int] = {p: i for i, p in enumerate(self.pairs)}

    def __len__(self) -> int:
        return len(self.pairs)

    def add(self, pair: Pair) -> int:
        if pair not in self.index:
            self.index[pair] = len(self.pairs)
            self.pairs.append(pair)
        return self.index[pair]


class HourSums:
    """The samples of the hours read, summed in the database per (sensor, variable, device, hour) as
    `storage.windows_store.due_hours` / `window_hours` return them (module docstring), as arrays at once."""

    def __init__(self) -> None:
        self.devices: dict[Pair, set[str]] = defaultdict(set)
        self.units: dict[Pair, str] = {}
        self._rows: list[tuple[Pair, float, int, float, bool]] = []

    def add(self, rows: Iterable[tuple[Any, ...]], *, due: bool) -> None:
        """Add the rows of one read; `due`: they are the due hours' (else late windows')."""
        for sensor, variable, device, end, n, total in rows:
            pair = (sensor, variable)
            self.devices[pair].add(device)
            self._rows.append((pair, end, n, total, due))

    def add_units(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Take the units of groups (`storage.windows_store.due_units`): a series' unit is the least seen, whatever
        order the rows came in (only read for variables outside the vocabulary: `unit_of`)."""
        for sensor, variable, _, _, unit in rows:
            pair = (sensor, variable)
            seen = self.units.get(pair)
            if seen is None or unit < seen:
                self.units[pair] = unit

    def arrays(self, series: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Series id, hour end (epoch s), valid samples and their sum of every (series, device, hour) read."""
        rows = self._rows
        sid = np.array([series.index[r[0]] for r in rows], dtype=np.int64)
        end = np.array([r[1] for r in rows], dtype=float)
        n = np.array([r[2] for r in rows], dtype=np.int64)
        total = np.array([r[3] for r in rows], dtype=float)
        return sid, end, n, total

    def first_due(self, series: Series) -> np.ndarray:
        """Per series id: the start of its first due hour holding a sample (+inf without any); an hour end e is at
        or after the end of that hour iff e > this start."""
        first = np.full(len(series), np.inf)
        due = [(series.index[r[0]], r[1]) for r in self._rows if r[4]]
        if due:
            np.minimum.at(first, np.array([d[0] for d in due], dtype=np.int64),
                          np.array([d[1] for d in due]) - HOUR.total_seconds())
        return first


def hour_windows(series: Series, got: HourSums, active: Mapping[Pair, str | None],
                 late: Mapping[Pair, set[datetime]], due: list[datetime]) -> tuple[np.ndarray, np.ndarray]:
    """The hours to compute, as (series id, end) arrays sorted by series then end: every due hour of an active
    series, the due hours of a new series from its first hour with data on (`HourSums.first_due`), and the late
    hours."""
    due_s = np.array([e.timestamp() for e in due])
    after = got.first_due(series) if due else np.full(len(series), np.inf)
    after[[series.index[p] for p in active]] = -np.inf
    wp, wd = np.nonzero(due_s[None, :] > after[:, None]) if due else (np.empty(0, int), np.empty(0, int))
    late_p = [series.index[p] for p, ends in late.items() if p in series.index for _ in ends]
    late_e = [e.timestamp() for p, ends in late.items() if p in series.index for e in ends]
    wp = np.concatenate((wp, late_p)).astype(np.int64)
    we = np.concatenate((due_s[wd], late_e)).astype(float)
    order = np.lexsort((we, wp))
    return wp[order], we[order]


def rolling_windows(p: np.ndarray, e: np.ndarray, hours: int, last: float) -> tuple[np.ndarray, np.ndarray]:
    """The distinct windows of `hours` hours holding an hour (series `p`, end `e`) and ending at or before `last`:
    (series id, end) sorted by series then end (the windows ending 0 … hours-1 h after each hour)."""
    keep = [e + k * 3600.0 <= last for k in range(hours)]
    return unique_windows(np.concatenate([p[m] for m in keep]),
                          np.concatenate([e[m] + k * 3600.0 for k, m in enumerate(keep)]), last)


def unique_windows(p: np.ndarray, e: np.ndarray, last: float) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (series id, end) with end <= last, sorted by series then end."""
    keep = e <= last
    p, e = p[keep], e[keep]
    order = np.lexsort((e, p))
    p, e = p[order], e[order]
    first = np.ones(p.shape, dtype=bool)
    first[1:] = (p[1:] != p[:-1]) | (e[1:] != e[:-1])
    return p[first], e[first]


def day_windows(series: Series, wp: np.ndarray, we: np.ndarray, last_end: datetime, tz: tzinfo
                ) -> tuple[dict[Pair, set[date]], np.ndarray, np.ndarray, np.ndarray]:
    """The ended local days holding a written hour: per series, and as (series id, day end, hours) arrays."""
    ends = np.unique(we)
    day_of = [day_of_hour_end(datetime.fromtimestamp(e, UTC), tz) for e in ends.tolist()]
    bounds = {d: day_bounds(d, tz) for d in set(day_of)}
    ordinal = np.array([d.toordinal() for d in day_of], dtype=np.int64)
    ended = np.array([bounds[d][1] <= last_end for d in day_of], dtype=bool)
    at = np.searchsorted(ends, we)
    keep = ended[at] if ends.size else np.zeros(0, dtype=bool)
    dp, dord = unique_windows(wp[keep], ordinal[at[keep]].astype(float), math.inf)
    days: dict[Pair, set[date]] = defaultdict(set)
    dord = dord.astype(np.int64)
    ords = np.unique(dord)
    of = {o: date.fromordinal(int(o)) for o in ords.tolist()}
    at_day = np.searchsorted(ords, dord)
    de = np.array([bounds[of[o]][1].timestamp() for o in ords.tolist()])[at_day] if ords.size else np.empty(0)
    dh = np.array([round((bounds[of[o]][1] - bounds[of[o]][0]) / HOUR) for o in ords.tolist()],
                  dtype=np.int64)[at_day] if ords.size else np.empty(0, dtype=np.int64)
    pairs = series.pairs
    for p, o in zip(dp.tolist(), dord.tolist(), strict=True):
        days[pairs[p]].add(of[o])
    return days, dp.astype(np.int64), de, dh


@dataclass(frozen=True, slots=True)
class SeriesNames:
    """The series' sensor ids, variables and units encoded once for `storage.pgarrays` (`AverageBatch.columns`)."""

    sensors: list[bytes]
    variables: list[bytes]
    units: list[bytes]

    @classmethod
    def of(cls, pairs: list[Pair], units: list[str]) -> SeriesNames:
        """The names of the series ids `pairs` and their `units`."""
        return cls(pgarrays.text_elements(p[0] for p in pairs), pgarrays.text_elements(p[1] for p in pairs),
                   pgarrays.text_elements(units))


class AverageBatch:
    """Average windows gathered as columns for `storage.windows_store.write_averages`: no row is built in Python."""

    def __init__(self) -> None:
        self._parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, Averages]] = []

    def add(self, period: str, p: np.ndarray, e: np.ndarray, hours: int, avg: Averages) -> np.ndarray:
        """Add the windows (series `p`, end `e` in epoch s) of `hours` hours of `period`; returns their ends."""
        self._parts.append((period, p, e, e - hours * 3600.0, avg))
        return e

    def ends(self) -> np.ndarray:
        """The ends of every window added, in the order added."""
        return np.concatenate([x[2] for x in self._parts]) if self._parts else np.empty(0)

    def __len__(self) -> int:
        return sum(x[1].size for x in self._parts)

    def columns(self, names: SeriesNames) -> AverageColumns:
        """Every window added, ordered by series id, period name and end (the order of the table's key when the ids
        follow the sorted series: the rows then go into its index page after page); `names` name the series ids."""
        parts = self._parts
        periods = sorted({x[0] for x in parts})
        rank = {name: i for i, name in enumerate(periods)}

        def joined(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(arrays) if arrays else np.empty(0)
        series = joined([x[1] for x in parts]).astype(np.int64)
        period = joined([np.full(x[1].size, rank[x[0]], dtype=np.int64) for x in parts]).astype(np.int64)
        end = joined([x[2] for x in parts])
        order = np.lexsort((end, period, series))
        return AverageColumns(
            sensors=names.sensors, variables=names.variables, units=names.units, series=series[order],
            period_names=pgarrays.text_elements(periods),
            period=period[order], start=joined([x[3] for x in parts])[order], end=end[order],
            value=joined([np.where(x[4].samples > 0, x[4].value, 0.0) for x in parts])[order],
            coverage=joined([x[4].coverage for x in parts])[order],
            samples=joined([x[4].samples for x in parts])[order],
            valid=joined([x[4].valid for x in parts]).astype(bool)[order])
