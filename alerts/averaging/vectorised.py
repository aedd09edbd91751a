"""The averages and the NowCast of many series at once, equal to the per-series pure functions
(`alerts.averaging.averages.hourly_average`, `rolling_average`, `daily_average`,
`alerts.averaging.nowcast.nowcast`). Pure (numpy), no I/O, no clock. The averaging job (`alerts.averaging.job`)
calls these; the per-series functions stay the definition, and `tests/alerts/averaging/test_vectorised.py` checks
the equality on random series.

Hourly averages start from the samples already summed per hour in the database (`hourly_from_sums`): counts,
coverage and validity are equal, the mean is the database's sum over the count, which differs from numpy's
pairwise mean of the same samples by the order of the additions (a few units in the last place). The windows
over hourly values below are equal bit for bit:

numpy's ``mean`` sums with pairwise summation, and so does a reduction along the contiguous last
axis of a 2-D array, row by row; ``np.add.reduceat`` and cumulative sums do not (they round differently). So
every mean here gathers each window's valid inputs, in their input order, into the rows of a matrix of one
width per distinct count and sums along axis 1. A count, a coverage and a validity use the same float
operations as the per-series functions. Missing values are NaN (the per-series functions say None).

The NowCast weights 12 values with ``math.fsum`` and truncates on the decimal string, which numpy cannot
reproduce; `nowcast_values` computes it with numpy and takes that result only where the truncation is decided
with a wide margin (the raw value not within 1e-6 of a truncation step), and calls `alerts.averaging.nowcast.nowcast`
for the few rows near a step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alerts.averaging.averages import SUBHOURLY_COMPLETENESS, Average
from alerts.averaging.nowcast import MIN_RECENT_VALID, MIN_WEIGHT, NOWCAST_POLLUTANTS, WINDOW_HOURS, nowcast

__all__ = ["Averages", "HourTable", "hourly_from_sums", "nowcast_values", "packed", "segment_means",
           "window_averages"]

_HOUR_S = 3600.0
#: a truncation decided closer than this to a step (in units of the last decimal kept) goes to `nowcast`
_TRUNCATION_MARGIN = 1e-6


@dataclass(frozen=True, slots=True)
class Averages:
    """Averages of many windows, one element per window (the fields of `alerts.averaging.averages.Average`)."""

    value: np.ndarray  #: float, NaN where the window had no valid input (Average.value None)
    coverage: np.ndarray  #: float in [0, 1]
    samples: np.ndarray  #: int64, valid inputs that entered the mean
    valid: np.ndarray  #: bool, the completeness rule met

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def average(self, i: int) -> Average:
        """Window `i` as an `Average`."""
        n = int(self.samples[i])
        return Average(value=float(self.value[i]) if n else None, coverage=float(self.coverage[i]), samples=n,
                       valid=bool(self.valid[i]))


def packed(chunks: list[bytes], dtype: str) -> np.ndarray:
    """Big-endian packed arrays (e.g. PostgreSQL's ``string_agg(float8send(x), '')``) joined into one native
    array: ``'>f8'`` floats, ``'>i4'`` ints, ``'?'`` booleans."""
    return np.frombuffer(b"".join(chunks), dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))


#: cells (series × hours) up to which `HourTable` keeps a dense matrix (9 bytes a cell)
_DENSE_CELLS = 4_000_000


class HourTable:
    """Stored hourly values by (series id, end in whole epoch seconds), looked up many at once. Ends that are not
    whole seconds are never found (hour ends always are). A key given twice keeps its first value.

    When the ends lie on one hourly grid and series × hours stays small (`_DENSE_CELLS`: a run's table spans a
    few days), the values are kept in a dense series × hour matrix and looked up by position; otherwise (or with
    a key given twice) by binary search in the sorted keys. Both give the same answers."""

    def __init__(self, series: np.ndarray, ends: np.ndarray, values: np.ndarray, valid: np.ndarray) -> None:
        s = np.asarray(series, dtype=np.int64)
        e = np.asarray(ends, dtype=float)
        whole = e == np.rint(e)
        s, e = s[whole], np.rint(e[whole]).astype(np.int64)
        v = np.asarray(values, dtype=float)[whole]
        ok = np.asarray(valid, dtype=bool)[whole]
        self._size = int(s.size)
        self._base = int(e.min()) if e.size else 0
        self._span = int(e.max()) - self._base + 1 if e.size else 1
        self._dense: tuple[np.ndarray, np.ndarray] | None = None
        rel = e - self._base
        if s.size and s.min() >= 0 and not (rel % 3600).any():
            rows, width = int(s.max()) + 1, int(rel.max()) // 3600 + 1
            cell = s * width + rel // 3600
            if rows * width <= _DENSE_CELLS and np.bincount(cell, minlength=rows * width).max() <= 1:
                dense_values = np.full((rows, width), np.nan)
                dense_valid = np.zeros((rows, width), dtype=bool)
                dense_values.flat[cell] = v
                dense_valid.flat[cell] = ok
                self._dense = (dense_values, dense_valid)
                return
        keys = s * self._span + rel
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._values = v[order]
        self._valid = ok[order]

    def __len__(self) -> int:
        return self._size

    def get(self, series: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values (NaN where absent) and validity (False where absent) at `series` × `ends` (broadcast)."""
        s, e = np.broadcast_arrays(np.asarray(series, dtype=np.int64), np.asarray(ends, dtype=float))
        values = np.full(s.shape, np.nan)
        valid = np.zeros(s.shape, dtype=bool)
        if not self._size:
            return values, valid
        rel = np.rint(e) - self._base
        inside = (e == np.rint(e)) & (rel >= 0) & (rel < self._span)
        if self._dense is not None:
            dense_values, dense_valid = self._dense
            rows, width = dense_values.shape
            inside &= (s >= 0) & (s < rows) & (rel % 3600 == 0)
            at = np.where(inside, s * width + rel // 3600, 0).astype(np.int64)
            values[inside] = dense_values.flat[at[inside]]
            valid[inside] = dense_valid.flat[at[inside]]
            return values, valid
        key = s * self._span + np.where(inside, rel, 0).astype(np.int64)
        pos = np.minimum(np.searchsorted(self._keys, key), self._keys.size - 1)
        hit = inside & (self._keys[pos] == key)
        values[hit] = self._values[pos[hit]]
        valid[hit] = self._valid[pos[hit]]
        return values, valid


def segment_means(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of ``values[starts[i] : starts[i] + counts[i]]`` for every i (NaN for an empty one), equal bit for bit
    to ``values[a:b].mean()``: the segments of one length are gathered into a matrix summed along axis 1."""
    values = np.asarray(values, dtype=float)
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    out = np.full(counts.shape, np.nan)
    for c in np.unique(counts[counts > 0]):
        rows = np.flatnonzero(counts == c)
        block = values[starts[rows, None] + np.arange(c)]
        out[rows] = block.sum(axis=1) / c
    return out


def _compacted_means(matrix: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the mean of ``matrix[row][use[row]]`` (NaN when none) and the count."""
    counts = use.sum(axis=1).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return segment_means(matrix[use], starts, counts), counts  # boolean indexing keeps the row-major order


def window_averages(values: np.ndarray, valid: np.ndarray, min_valid: int | np.ndarray) -> Averages:
    """Averages of fixed-length windows of hourly values: row i of `values` / `valid` (shape windows × hours,
    oldest → newest) is one window. Equal to `alerts.averaging.averages.rolling_average(values[i], valid[i], hours,
    min_valid)` and, with ``min_valid = min_valid_hours(hours)`` and the day's hours as columns (missing hours
    NaN / invalid), to `alerts.averaging.averages.daily_average`: the mean of the valid finite values,
    coverage = valid / hours, valid with at least `min_valid` (one number, or one per window)."""
    v = np.asarray(values, dtype=float)
    ok = np.asarray(valid, dtype=bool)
    if v.ndim != 2 or v.shape != ok.shape:
        raise ValueError(f"window_averages: values {v.shape} and valid {ok.shape}: expected equal 2-D shapes")
    hours = v.shape[1]
    need = np.broadcast_to(np.asarray(min_valid, dtype=np.int64), (v.shape[0],))
    if hours < 1 or (need.size and (need.min() < 1 or need.max() > hours)):
        raise ValueError(f"window_averages: min_valid: expected 1..{hours}, got {np.unique(need).tolist()}")
    use = ok & np.isfinite(v)
    mean, n = _compacted_means(v, use)
    return Averages(value=mean, coverage=n / hours, samples=n, valid=n >= need)


def hourly_from_sums(series: np.ndarray, ends: np.ndarray, counts: np.ndarray, sums: np.ndarray,
                     window_series: np.ndarray, window_ends: np.ndarray, cadence_s: np.ndarray | float) -> Averages:
    """Hourly averages of many series from their valid samples summed per hour (and device): group i holds
    ``counts[i]`` valid samples of series ``series[i]`` summing to ``sums[i]`` in the hour ending at ``ends[i]``
    (epoch seconds, whole); several groups of one hour (devices pooled) add up. Window j is the hour ending at
    ``window_ends[j]`` of series ``window_series[j]`` with the cadence ``cadence_s[j]`` (or one for all). The
    count, coverage and validity equal `alerts.averaging.averages.hourly_average`'s; the mean is the sum over
    the count, equal to its mean up to the order of the additions (a few units in the last place)."""
    s = np.asarray(series, dtype=np.int64)
    e = np.asarray(ends, dtype=float)
    n = np.asarray(counts, dtype=np.int64)
    total = np.asarray(sums, dtype=float)
    if not s.shape == e.shape == n.shape == total.shape or s.ndim != 1:
        raise ValueError(f"hourly_from_sums: series {s.shape}, ends {e.shape}, counts {n.shape}, sums "
                         f"{total.shape}: expected equal 1-D shapes")
    ws = np.asarray(window_series, dtype=np.int64)
    we = np.asarray(window_ends, dtype=float)
    if ws.shape != we.shape or ws.ndim != 1:
        raise ValueError(f"hourly_from_sums: window_series {ws.shape} and window_ends {we.shape}: expected equal "
                         "1-D shapes")
    cad = np.broadcast_to(np.asarray(cadence_s, dtype=float), we.shape)
    if cad.size and not (np.all(np.isfinite(cad)) and np.all(cad > 0)):
        raise ValueError("hourly_from_sums: cadence_s: expected positive numbers of seconds, got "
                         f"{np.unique(cad[~(np.isfinite(cad) & (cad > 0))]).tolist()}")
    got = np.zeros(we.shape, dtype=np.int64)
    added = np.zeros(we.shape)
    if s.size and we.size:
        base = min(float(e.min()), float(we.min()))
        span = int(max(float(e.max()), float(we.max())) - base) + 1
        wkey = ws * span + np.rint(we - base).astype(np.int64)
        order = np.argsort(wkey, kind="stable")
        key = s * span + np.rint(e - base).astype(np.int64)
        pos = np.minimum(np.searchsorted(wkey[order], key), wkey.size - 1)
        hit = wkey[order][pos] == key
        at = order[pos[hit]]  # a window asked twice gets its groups once (the first one) ...
        np.add.at(got, at, n[hit])
        np.add.at(added, at, total[hit])
        first = np.ones(we.shape, dtype=bool)  # ... and every copy of it the same numbers
        ranked = wkey[order]
        first[order[1:]] = ranked[1:] != ranked[:-1]
        if not first.all():
            lead = order[np.searchsorted(ranked, wkey)]
            got, added = got[lead], added[lead]
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(got > 0, added / got, np.nan)
    expected = _HOUR_S / cad
    coverage = np.minimum(1.0, got / expected)
    is_valid = (got > 0) & (got >= SUBHOURLY_COMPLETENESS * expected - 1e-9)
    return Averages(value=means, coverage=coverage, samples=got, valid=is_valid)


def nowcast_values(hourly: np.ndarray, pollutant: str) -> np.ndarray:
    """The truncated NowCast of every row of `hourly` (windows × up to 12 hours, oldest → newest, NaN = missing):
    equal to `alerts.averaging.nowcast.nowcast(row, pollutant)`, NaN where that is None (module docstring)."""
    if pollutant not in NOWCAST_POLLUTANTS:
        nowcast([], pollutant)  # raises with the per-series function's message
    h = np.asarray(hourly, dtype=float)
    if h.ndim != 2:
        raise ValueError(f"nowcast_values: hourly {h.shape}: expected windows × hours")
    h = h[:, -WINDOW_HOURS:]
    if h.shape[1] < WINDOW_HOURS:  # absent older hours are missing
        h = np.hstack((np.full((h.shape[0], WINDOW_HOURS - h.shape[1]), np.nan), h))
    c = h[:, ::-1]  # c[:, i]: i hours before the current one
    ok = np.isfinite(c)
    x = np.where(ok, np.maximum(np.where(ok, c, 0.0), 0.0), 0.0)  # negative hours count as 0
    out = np.full(h.shape[0], np.nan)
    enough = ok[:, :3].sum(axis=1) >= MIN_RECENT_VALID
    top = np.max(np.where(ok, x, -np.inf), axis=1)
    low = np.min(np.where(ok, x, np.inf), axis=1)
    zero = enough & (top == 0.0)
    out[zero] = 0.0
    rest = enough & ~zero
    flat = rest & (low == top)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.maximum(low / top, MIN_WEIGHT)
        powers = np.where(ok, weight[:, None] ** np.arange(WINDOW_HOURS), 0.0)
        raw = np.where(flat, top, (powers * x).sum(axis=1) / powers.sum(axis=1))
    scale = 10.0 ** NOWCAST_POLLUTANTS[pollutant]
    scaled = raw * scale
    floor = np.floor(scaled)
    frac = scaled - floor
    sure = rest & (frac > _TRUNCATION_MARGIN) & (frac < 1 - _TRUNCATION_MARGIN) & (scaled < 1e9)
    out[sure] = floor[sure] / scale
    for i in np.flatnonzero(rest & ~sure):  # near a truncation step: the exact per-series path
        got = nowcast([None if not np.isfinite(y) else float(y) for y in h[i]], pollutant)
        out[i] = np.nan if got is None else got
    return out
