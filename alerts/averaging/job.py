"""The averaging job: every 1 h, 8 h / 24 h rolling, calendar-day and calendar-year average due up to `now`, plus
the windows late data touched, then their indices (`alerts.averaging.index_job`). I/O glue (psycopg 3, sync) over the
pure `alerts.averaging.averages`, `alerts.averaging.windows`; its queries are `storage.windows_store`.

`compute_windows(conn, now, ...)` is pure over the injected clock: it never reads the wall clock, computes only
windows that have ended by ``now - settle``, and is idempotent (a second call with the same `now` computes
nothing). The same call catches up after downtime (bounded by `lookback_h`) and drives accelerated simulations.

How it knows what is due (bookkeeping in migration 0006):
- `job_watermarks['averages'].computed_through`: every hour ending at or before it has been computed. A run
  computes the hour ends in (computed_through, last_end], at most `lookback_h` of them, where last_end is the
  latest local hour end at or before ``now - settle``; the days and years ending in that range too. It sets
  computed_through = last_end in the same transaction as the windows, so a crash leaves nothing half-done
  and a window is computed as due exactly once (`window_computations` has one 'due' row per window, under a
  unique index; two leaders racing serialise on the watermark row, `FOR UPDATE`).
- Late data: before computing, the run advances `claimed_through` to last_end in its own short transaction
  under the exclusive advisory lock `storage.writer.LATE_MARK_LOCK`; from then on every measurement written
  before the claim marks its (sensor, variable, 15-minute slot) in `dirty_slots` (writer, reprocess). The run
  recomputes the 1 h averages of the marked hours that are not due anyway, and everything holding them: the
  8 h / 24 h windows ending in the 7 / 23 hours after, the day, the year if it has ended, the NowCasts of the
  11 hours after and the daily AQI. It deletes only the marks it read (same `mark` number), so a write racing
  the run is recomputed by the next one.

Which series get rows: a (sensor, variable) with readings in the due hours, from its first hour with data on,
and one that had readings in the 24 hours before them (so a silent sensor's hours are stored as invalid with
coverage 0 for a day, and its rolling windows age out). Only the primary device's readings count
(`primary_devices`); a series without a primary pools every device, the expected sample count summed over them.
A series whose device has no configured cadence is skipped with an error in the log.

How a run spends its time (issue 19): the claim and the run go through one psycopg pipeline, so the server
executes each statement while the job computes, and the job waits only where it needs a result (in a pipeline,
waiting for one result waits for every statement sent before it). Both cores serve the run: once the watermark
row is locked the transaction exports its snapshot (`storage.side_reader`), and reads that do not need its own
writes go to a second, read-only connection in that snapshot — the stored hours, read while the job's connection
sums the samples per (series, device, hour), and the daily AQI inputs of a day many sensors share, read while it
writes and merged with what it writes (`storage.indices_store.daily_inputs`). Every write stays on the job's
connection, in its one transaction. The hourly averages are written while the rolling windows and days are
computed, the NowCasts computed while those windows are written. Python's cyclic garbage collector is paused for
the run (`_collector_paused`).
"""

from __future__ import annotations

import gc
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

import numpy as np
import psycopg

from alerts.averaging.averages import HOUR, ROLLING_PERIODS, Average, annual_average, min_valid_hours
from alerts.averaging.hours import Scan, load_hours
from alerts.averaging.index_job import write_indices
from alerts.averaging.series import (
    AverageBatch,
    HourSums,
    Pair,
    Series,
    SeriesNames,
    cadence_for,
    day_windows,
    hour_windows,
    rolling_windows,
    unit_of,
)
from alerts.averaging.vectorised import Averages, hourly_from_sums, packed, window_averages
from alerts.averaging.windows import (
    day_bounds,
    days_ending_in,
    hour_end_at_or_before,
    hour_end_containing,
    hour_ends_in,
    year_bounds,
    years_ending_in,
)
from sensors.domain import load
from sensors.variables import VARIABLES
from storage import indices_store, side_reader, windows_store

__all__ = ["JOB", "WindowRun", "compute_windows", "network_timezone"]

log = logging.getLogger(__name__)

JOB = "averages"  #: job_watermarks.job of this job (storage.writer reads its claim)
HISTORY = 24 * HOUR  #: a series with readings this long before the due hours still gets (invalid) hours


def network_timezone() -> tzinfo:
    """The bundled network's time zone (reference.json `site.timezone`, America/Bogota)."""
    from zoneinfo import ZoneInfo
    return ZoneInfo(load("reference")["site"]["timezone"])


@dataclass(frozen=True, slots=True)
class WindowRun:
    """What one run computed: the due window ends, the series recomputed for late data, rows written."""

    last_end: datetime  #: the latest hour end considered (UTC)
    due_hours: tuple[datetime, ...] = ()  #: hour ends computed as due
    due_days: tuple[date, ...] = ()
    due_years: tuple[int, ...] = ()
    late: Mapping[Pair, tuple[datetime, ...]] = field(default_factory=dict)  #: late hour ends per series
    rows: Mapping[str, int] = field(default_factory=dict)  #: period (1h, 8h, 24h, day, year, nowcast, daily_aqi)

    @property
    def written(self) -> int:
        """Average rows written (the indices not counted)."""
        return sum(n for p, n in self.rows.items() if p in ("1h", "8h", "24h", "day", "year"))


# ------------------------------------------------------------------------------------------- years

def _by_end(ends: np.ndarray, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored averages in the order of their ends (a year's mean sums its days oldest first)."""
    order = np.argsort(ends, kind="stable")
    return ends[order], values[order], valid[order]


def _years(conn: psycopg.Connection, days: Mapping[Pair, set[date]], *, series: Series, tz: tzinfo,
           last_end: datetime) -> AverageBatch:
    """The ended local years holding a written day (`annual_average` of the stored days; once a year)."""
    batch = AverageBatch()
    ended = {y: year_bounds(y, tz)[1] <= last_end for y in {d.year for ds in days.values() for d in ds}}
    years = {p: ys for p, ds in days.items() if (ys := {d.year for d in ds if ended[d.year]})}
    if not years:
        return batch
    stored = {pair: _by_end(packed([e], ">f8"), packed([v], ">f8"), packed([ok], "?"))
              for pair, _, e, v, ok in windows_store.stored_packed(conn, "day", {
                  p: (year_bounds(min(ys), tz)[0], year_bounds(max(ys), tz)[1]) for p, ys in years.items()}).result()}
    for pair, ys in sorted(years.items()):
        ends, values, valid = stored.get(pair, (np.empty(0), np.empty(0), np.empty(0, dtype=bool)))
        for year in sorted(ys):
            start, end = year_bounds(year, tz)
            daily = [Average(value=None if math.isnan(v) else v, coverage=0.0, samples=0 if math.isnan(v) else 1,
                             valid=ok and not math.isnan(v))
                     for e, v, ok in zip(ends.tolist(), values.tolist(), valid.tolist(), strict=True)
                     if start.timestamp() < e <= end.timestamp()]
            avg = annual_average(daily, start, end)
            batch.add("year", np.array([series.index[pair]]), np.array([end.timestamp()]), round((end - start) / HOUR),
                      Averages(np.array([math.nan if avg.value is None else avg.value]), np.array([avg.coverage]),
                               np.array([avg.samples]), np.array([avg.valid])))
    return batch


# ------------------------------------------------------------------------------------------- the job

def compute_windows(conn: psycopg.Connection, now: datetime, *, cadence_s: float | Mapping[str, float],
                    default_cadence_s: float | None = None, tz: tzinfo | None = None, lookback_h: int = 72,
                    settle_s: float = 0.0, indices: bool = True, side_reads: bool = True) -> WindowRun:
    """Compute every window due up to ``now - settle_s`` and every window late data touched (module docstring).

    `cadence_s`: seconds between samples, one number for every device or device_id → seconds (falling back to
    `default_cadence_s`). `tz` defaults to the network's. `indices`: also write the NowCast and daily AQI
    indices of the windows written (`alerts.averaging.index_job`). `side_reads`: read the stored hours on a second
    connection in the run's snapshot (`storage.side_reader`; not when `conn` is already in a transaction, whose
    snapshot a savepoint cannot export), else on `conn`: the same rows either way. `conn` must be idle; each step
    commits on its own.
    """
    if lookback_h < 1:
        raise ValueError(f"compute_windows: lookback_h: expected >= 1, got {lookback_h}")
    if settle_s < 0:
        raise ValueError(f"compute_windows: settle_s: expected >= 0, got {settle_s}")
    tz = tz or network_timezone()
    last_end = hour_end_at_or_before(now - timedelta(seconds=settle_s), tz)
    # one pipeline: the server runs each statement while the job computes (only a result asked for is waited for);
    # without pipeline support in libpq (< 14) every statement is waited for, with the same results
    side_reads = side_reads and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    pipeline = conn.pipeline() if psycopg.Pipeline.is_supported() else nullcontext()
    with _collector_paused(), pipeline:
        windows_store.claim(conn, JOB, last_end)  # the claim: writers from now on mark what they write before last_end
        with conn.transaction():
            return _run(conn, now, last_end, tz=tz, cadence_s=cadence_s, default_cadence_s=default_cadence_s,
                        lookback_h=lookback_h, indices=indices, side_reads=side_reads)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for one run. A run makes and frees hundreds of thousands of tuples
    and lists (rows, keys), freed by reference counting, but their allocations trigger the collector hundreds of
    times, and the full collections among them walk the whole process heap (0.12-0.14 s of a 10,000-sensor tick in
    the benchmark, more in the daemon's bigger heap). Cycles made meanwhile are collected after the run."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _run(conn: psycopg.Connection, now: datetime, last_end: datetime, *, tz: tzinfo,
         cadence_s: float | Mapping[str, float], default_cadence_s: float | None, lookback_h: int,
         indices: bool, side_reads: bool) -> WindowRun:
    watermark = windows_store.computed_through(conn, JOB)
    snapshot = side_reader.export_snapshot(conn) if side_reads else None  # taken once the watermark row is locked
    marks_read = windows_store.dirty_marks(conn, last_end)
    stations = indices_store.stations(conn) if indices else None
    through = watermark.result()
    floor = last_end - lookback_h * HOUR
    after = max(through, floor) if through is not None else floor
    due = hour_ends_in(after, last_end)
    due_set = set(due)
    # the stored hours every due series may need, and which series were active before the due hours: read on a
    # second connection in this transaction's snapshot while this one sums the samples (storage.side_reader)
    lo = due[0] - 26 * HOUR if due else last_end
    hours_span = (lo, last_end, due[0] - HOUR - HISTORY, due[0] - HOUR) if due else None
    snapshot_id = snapshot.result() if snapshot is not None else None
    side = None
    if snapshot_id is not None and hours_span is not None:
        span = hours_span
        side = side_reader.SideRead(conn, snapshot_id, lambda c: windows_store.stored_hours(c, *span).result(),
                                    name="the averaging job's stored hours read")

    # 1. late marks: hours already computed (or never due) that got readings after their computation
    marks = marks_read.result()
    late: dict[Pair, set[datetime]] = defaultdict(set)
    for sensor, variable, slot, _ in marks:
        end = hour_end_containing(slot, tz)
        if end not in due_set and end <= last_end:
            late[(sensor, variable)].add(end)

    # 2. the samples, summed per hour in the database: due hours for every series, late hours for the marked ones;
    # then the stored hours every due series may need, and which series were active before the due hours, read
    # while the sums are taken in
    sums = [windows_store.due_hours(conn, due[0] - HOUR, due[-1])] if due else []
    keys = [(p, e) for p, ends in sorted(late.items()) for e in sorted(ends)]
    if keys:
        sums.append(windows_store.window_hours(conn, [(p[0], p[1], e - HOUR, e) for p, e in keys]))
    results = [pending.result() for pending in sums]
    stored = None if side is None else side.result()
    if stored is None and hours_span is not None:  # no second connection: read here, after the sums
        stored = windows_store.stored_hours(conn, *hours_span).result()
    got = HourSums()
    for i, rows in enumerate(results):
        got.add(rows, due=bool(due) and i == 0)
    outside = sorted({v for _, v in got.devices if v not in VARIABLES})  # their unit comes from the samples
    if outside:
        reads = [windows_store.due_units(conn, due[0] - HOUR, due[-1], outside)] if due else []
        if late_outside := [(p[0], p[1], e - HOUR, e) for p, e in keys if p[1] in outside]:
            reads.append(windows_store.window_hours(conn, late_outside, units=True))
        for pending in reads:
            got.add_units(pending.result())
    cadence_of = {pair: cadence_for(sorted(devices), cadence_s, default_cadence_s)
                  for pair, devices in got.devices.items()}
    scanned = Scan.of(lo, stored) if stored is not None else None
    active: dict[Pair, str | None] = {}  # the series active before the due hours, and their unit when it comes
    if scanned is not None:  # from the data (outside the vocabulary)
        active = dict.fromkeys(p for p, a in zip(scanned.pairs, scanned.active, strict=True) if a)
        if outside_active := sorted({v for _, v in active if v not in VARIABLES}):
            active.update(windows_store.active_units(conn, due[0] - HOUR - HISTORY, due[0] - HOUR,
                                                     outside_active).result())

    # 3. the hourly averages, every series at once (alerts.averaging.vectorised), written while the windows holding
    # them are computed
    series = Series(sorted(set(got.devices) | set(active)))
    wp, we = hour_windows(series, got, active, late, due)
    cadence = np.empty(len(series))
    for i, pair in enumerate(series.pairs):
        c = cadence_of.get(pair, 3600.0)  # no sample at all: coverage 0 whatever the cadence
        if c is None:
            log.error("averages of sensor %s %s not computed: no cadence_s configured for device(s) %s",
                      pair[0], pair[1], sorted(got.devices[pair]))
        cadence[i] = math.nan if c is None else c
    keep = ~np.isnan(cadence[wp])
    wp, we = wp[keep], we[keep]
    units = [unit_of(p[1], got.units.get(p) or active.get(p)) for p in series.pairs]
    hourly = hourly_from_sums(*got.arrays(series), wp, we, cadence[wp])
    first = AverageBatch()
    counts: dict[str, int] = {"1h": len(hourly)}
    logged: dict[str, np.ndarray] = {"1h": first.add("1h", wp, we, 1, hourly)}
    names = SeriesNames.of(series.pairs, units)  # the NowCast siblings added after have no windows
    sent = [first.columns(names)]  # every average written, for the daily index inputs (index_job)
    windows_store.write_averages(conn, sent[0], now)
    batch = AverageBatch()

    # 4. rolling windows and days holding a written hour, from the stored hours (the written ones in place)
    table = load_hours(conn, series, wp, we, hourly, last_end, scanned)
    last = last_end.timestamp()
    for period, (n, need) in ROLLING_PERIODS.items():
        rp, re_ = rolling_windows(wp, we, n, last)
        values, valid = table.get(rp[:, None], re_[:, None] - np.arange(n - 1, -1, -1) * 3600.0)
        counts[period] = re_.size
        logged[period] = batch.add(period, rp, re_, n, window_averages(values, valid, need))
    days, dp, de, dh = day_windows(series, wp, we, last_end, tz)
    day_ends = []
    for hours in np.unique(dh).tolist():  # 24 h, or 23 / 25 across a DST change
        mine = dh == hours
        values, valid = table.get(dp[mine, None], de[mine, None] - np.arange(hours - 1, -1, -1) * 3600.0)
        day_ends.append(batch.add("day", dp[mine], de[mine], hours,
                                  window_averages(values, valid, min_valid_hours(hours))))
    sent.append(batch.columns(names))
    windows_store.write_averages(conn, sent[-1], now)  # the year reads the days, the indices all of them
    logged["day"] = np.concatenate(day_ends) if day_ends else np.empty(0)
    counts["day"] = logged["day"].size
    years = _years(conn, days, series=series, tz=tz, last_end=last_end)
    if len(years):
        sent.append(years.columns(names))
        windows_store.write_averages(conn, sent[-1], now)
    logged["year"] = years.ends()
    counts["year"] = logged["year"].size

    # 5. indices of the windows written (same transaction: never averages without their indices)
    due_days = days_ending_in(after, last_end, tz) if due else []
    due_years = years_ending_in(after, last_end, tz) if due else []
    due_ends = {"1h": due_set, "8h": due_set, "24h": due_set,
                "day": {day_bounds(d, tz)[1] for d in due_days}, "year": {year_bounds(y, tz)[1] for y in due_years}}
    if stations is not None:
        counts.update(write_indices(conn, now, tz=tz, pairs=series.pairs, hour_pairs=wp, hour_ends=we, hours=table,
                                    days=days, last_end=last_end, due_hours=due_ends["1h"],
                                    due_day_ends=due_ends["day"], stations=stations.result(),
                                    snapshot=snapshot_id, written_averages=sent))

    # 6. bookkeeping: the log, the consumed marks, the watermark
    _log_averages(conn, now, due_ends, logged)
    if marks:
        windows_store.delete_marks(conn, marks)
    if due:
        windows_store.set_computed_through(conn, JOB, last_end)
    written = {series.pairs[i] for i in np.unique(wp).tolist()}
    late_done = {p: tuple(sorted(e)) for p, e in late.items() if p in written}
    result = WindowRun(last_end, tuple(due), tuple(due_days), tuple(due_years), late_done, counts)
    if due or late_done:
        log.info("averages up to %s: %d due hour(s), %d series with late data, rows %s", last_end, len(due),
                 len(late_done), counts)
    return result


def _log_averages(conn: psycopg.Connection, now: datetime, due_ends: Mapping[str, set[datetime]],
                  logged: Mapping[str, np.ndarray]) -> None:
    """One `window_computations` row per (period, end, reason): 'due' for the due windows, 'late' for others."""
    for period, due in due_ends.items():
        ends, n = np.unique(logged.get(period, np.empty(0)), return_counts=True)
        tallies: dict[str, dict[datetime, int]] = {"due": dict.fromkeys(due, 0), "late": {}}
        for e, k in zip(ends.tolist(), n.tolist(), strict=True):
            end = datetime.fromtimestamp(e, UTC)
            tallies["due" if end in due else "late"][end] = k  # a due window with no series is still logged
        for reason, by_end in tallies.items():
            windows_store.log_windows(conn, period, reason, by_end, now)
