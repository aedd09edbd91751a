"""`ingest.qc.check` over a whole batch with numpy: the same flags and the same `QCState`s, in a fixed number of
array operations however many readings and series the batch holds (ingest stage). Pure.

Contract of `check_batch`: given the batch's readings in processing order (columns: series, times in µs since
the epoch, canonical and reported values, limits) and each series' state before the batch, it returns the flags
`check` would have added to each reading had it been called reading by reading in that order, and each touched
series' state after the batch — `check`'s state, including the empty `QCState()` a series gets when its only
readings were clock-skewed.

How the order-dependent checks become array operations: a series' state only changes on a reading that is not
skewed and newer than every earlier such reading ("accepted"), so the readings are grouped by series (the
series' state before the batch as a first pseudo-row), a segmented running maximum of the times finds the
accepted ones, a second one finds, for every reading, the newest accepted row before it (the state `check`
would have compared it with), and a third one the first row of each run of identical reported values
(FLATLINE's run start). Float arithmetic is `check`'s, operation for operation (Δt in µs / 10⁶ is
`timedelta.total_seconds()`, both correctly rounded), so the comparisons come out the same.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from ingest.qc import QCState
from ingest.reading import QC

__all__ = ["check_batch"]

K = TypeVar("K", bound=Hashable)
_I64 = npt.NDArray[np.int64]
_F64 = npt.NDArray[np.float64]
_B = npt.NDArray[np.bool_]


def _shift(a: _I64, first: int) -> _I64:
    # a[k-1] at k, `first` at 0: the exclusive form of a running maximum
    out = np.empty_like(a)
    out[0] = first
    out[1:] = a[:-1]
    return out


def check_batch(keys: Sequence[K], times: Sequence[datetime], raws: Sequence[float], *,
                t_us: _I64, received_us: _I64, value: _F64, raw_value: _F64, spike_limit: _F64,
                flatline_after: _F64, states: Mapping[K, QCState], now_us: int,
                to_us: Callable[[datetime], int], skew_tolerance_s: float, stale_after_s: float,
                spike_min_interval_s: float) -> tuple[_I64, dict[K, QCState]]:
    """The QC bits `check` adds to each reading (int64, processing order) and every touched series' new state.

    `keys[i]` names reading i's series, `times[i]`/`raws[i]` are its `Reading.time` and `raw_value` (kept in the
    states), `spike_limit`/`flatline_after` are NaN where the variable is not checked, `states` holds the series'
    states before the batch, `to_us` turns a datetime into µs since the epoch.
    """
    n = len(keys)
    convert = to_us
    skew = (t_us - np.minimum(np.int64(now_us), received_us)) / 1e6 > skew_tolerance_s
    stale = (received_us - t_us) / 1e6 > stale_after_s
    added: _I64 = np.zeros(n, np.int64)
    added[skew] |= int(QC.CLOCK_SKEW)
    added[stale] |= int(QC.STALE)
    # series numbers, and a pseudo-row per series with a state that has seen a reading
    series: dict[K, int] = {}
    sid = np.fromiter((series.setdefault(k, len(series)) for k in keys), np.int64, n)
    ordered = list(series)
    inits = [(j, states[k]) for j, k in enumerate(ordered)
             if (s := states.get(k)) is not None and s.last_time is not None]
    m0 = len(inits)
    init_t = np.fromiter((int(convert(s.last_time)) if s.last_time is not None else 0 for _, s in inits), np.int64, m0)
    init_run = np.fromiter((int(convert(s.run_start)) if s.run_start is not None else 0 for _, s in inits),
                           np.int64, m0)
    init_has_run = np.fromiter((s.run_start is not None for _, s in inits), np.bool_, m0)
    init_v = np.fromiter((s.last_value if s.last_value is not None else np.nan for _, s in inits), np.float64, m0)
    init_raw = np.fromiter((s.last_raw_value if s.last_raw_value is not None else np.nan for _, s in inits),
                           np.float64, m0)
    init_flags = np.fromiter((int(s.last_flags) for _, s in inits), np.int64, m0)
    # all rows, grouped by series, the pseudo-row first, then the readings in processing order
    seg_all = np.concatenate([sid, np.fromiter((j for j, _ in inits), np.int64, m0)])
    pos_all = np.concatenate([np.arange(n, dtype=np.int64), np.full(m0, -1, np.int64)])
    perm = np.lexsort((pos_all, seg_all))
    m = n + m0
    seg = seg_all[perm]
    is_init = perm >= n
    reading_of = np.where(is_init, 0, perm)  # the reading index of a row (0 for pseudo-rows: masked)
    init_of = np.where(is_init, perm - n, 0)
    t = np.where(is_init, init_t[init_of] if m0 else 0, t_us[reading_of])
    v = np.where(is_init, init_v[init_of] if m0 else 0.0, value[reading_of])
    raw = np.where(is_init, init_raw[init_of] if m0 else 0.0, raw_value[reading_of])
    has_run = np.where(is_init, init_has_run[init_of] if m0 else False, True)
    run_t = np.where(is_init, init_run[init_of] if m0 else 0, t)
    cand = is_init | ~skew[reading_of]
    rows = np.arange(m, dtype=np.int64)
    first = np.ones(m, np.bool_)
    first[1:] = seg[1:] != seg[:-1]
    seg_start = np.maximum.accumulate(np.where(first, rows, 0))
    # accepted: a candidate newer than every earlier candidate of its series (times ranked, so the segmented
    # running maximum cannot overflow whatever the times)
    _, rank = np.unique(t, return_inverse=True)
    width = int(rank.max()) + 2 if m else 1
    base = seg * width
    key = np.where(cand, base + rank.reshape(-1) + 1, base)
    before = _shift(np.maximum.accumulate(key), -1)
    accepted = cand & ~is_init & ((before <= base) | (key > before))
    # p: the newest accepted row (or pseudo-row) before each row: the state check() compares it with
    chain = accepted | is_init
    p = _shift(np.maximum.accumulate(np.where(chain, rows, -1)), -1)
    has_p = p >= seg_start
    p = np.where(has_p, p, 0)
    compared = accepted & has_p
    with np.errstate(all="ignore"):
        interval = np.maximum((t - t[p]) / 1e6, spike_min_interval_s)
        limit = spike_limit[reading_of]
        spike = compared & ~np.isnan(limit) & np.isfinite(v) & np.isfinite(v[p]) & \
            (np.abs(v - v[p]) / interval * 60.0 > limit)
    same_run = compared & (raw == raw[p]) & has_run[p]
    # a run starts at a pseudo-row, at a series' first accepted reading, and where the reported value changes
    starts = is_init | (accepted & ~same_run)
    run_row = np.maximum.accumulate(np.where(starts, rows, -1))
    run_row = np.where(run_row >= 0, run_row, 0)
    after = flatline_after[reading_of]
    with np.errstate(all="ignore"):
        flat = same_run & ~np.isnan(after) & ((t - run_t[run_row]) / 1e6 > after)
    earned = np.where(spike, np.int64(QC.SPIKE), np.int64(0)) | np.where(flat, np.int64(QC.FLATLINE), np.int64(0))
    earned = np.where(is_init, init_flags[init_of] if m0 else 0, earned)
    repeat = cand & ~is_init & ~accepted & has_p & (t == t[p]) & (v == v[p]) & (raw == raw[p])
    row_added = np.where(accepted, earned, np.where(repeat, earned[p], 0))
    readings_rows = ~is_init
    added[perm[readings_rows]] |= row_added[readings_rows]
    # each series' newest accepted reading becomes its state
    new_states: dict[K, QCState] = {}
    last_rows = np.flatnonzero(np.append(seg[1:] != seg[:-1], True)) if m else rows
    newest = np.maximum.accumulate(np.where(accepted, rows, -1))
    for end in last_rows.tolist():
        k = ordered[int(seg[end])]
        row = int(newest[end])
        if row < int(seg_start[end]):  # nothing accepted in this series: check() kept (or began) the state
            new_states[k] = states.get(k) or QCState()
            continue
        i = int(perm[row])
        start = int(run_row[row])
        run_start = states[k].run_start if is_init[start] else times[int(perm[start])]
        new_states[k] = QCState(times[i], float(value[i]), raws[i], run_start, QC(int(earned[row])))
    return added, new_states
