"""Stage 3 — the averaging job's tables: its watermark and claim (`job_watermarks`), the late-data marks
(`dirty_slots`), the samples it averages (`measurements`, primary devices only; readings a person invalidated do
not count, `storage.validation`), the stored `averages` (packed
reads and the idempotent write) and its log (`window_computations`). I/O (psycopg 3, sync), for
`alerts.averaging.job`; every function runs in the caller's transaction except `claim`, which is its own.

Every read returns a `Pending`: the statement is sent, and `Pending.result` waits for it. In pipeline mode
(`psycopg.Connection.pipeline`, as the job runs) the server works on it while the caller does something else;
outside one, it has already run. Writes return nothing: in pipeline mode they are waited for by the next result
asked for, or when the pipeline ends.

Samples are summed in the database per (series, device, hour): one row per group, not one per sample. Stored
averages are read packed, one row per series: big-endian float8 / bool arrays in one bytea each, for numpy to read
at once, not one Python object per hour; a NULL value is NaN. They are grouped under ``COLLATE "C"`` (byte order:
the same groups as any deterministic collation, sorted without the locale's rules) and in no order inside a group
(each hour carries its end). Averages are written from binary arrays (`storage.pgarrays`) by one statement that
deletes the keys it rewrites and inserts the rows.
The claim takes the exclusive advisory lock `storage.writer.LATE_MARK_LOCK`: from then on every measurement
written before the claim marks its (sensor, variable, 15-minute slot) in `dirty_slots`, in the epoch the claim
begins (migration 0022); a run consumes the marks of the epochs before.
`window_computations` has one 'due' row per (period, end) under a unique index; 'late' rows log recomputations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import numpy as np
import psycopg

from ingest.reading import EXCLUDED
from storage import pgarrays
from storage.validation import DECIDING_SQL, INVALIDATED_SENSORS_SQL
from storage.writer import LATE_MARK_LOCK, MARK_EPOCH

__all__ = ["HOUR_RECORD", "PG_EPOCH_S", "AverageColumns", "Pending", "active_units", "claim", "computed_through",
           "delete_marks", "dirty_marks",
           "due_hours", "due_units", "log_windows", "set_computed_through", "stored_hours", "stored_packed",
           "window_hours", "write_averages"]

Pair = tuple[str, str]  # (sensor_id, variable)
T = TypeVar("T")


class Pending(Generic[T]):
    """A read sent to the server (module docstring): `result` waits for its rows (in pipeline mode, and for every
    statement sent before it) and converts them."""

    __slots__ = ("_convert", "_cursors")

    def __init__(self, cursors: Sequence[psycopg.Cursor[Any]], convert: Callable[[list[Any]], T]) -> None:
        self._cursors = cursors
        self._convert = convert

    def result(self) -> T:
        """The rows of every statement sent, in order, converted."""
        return self._convert([row for cur in self._cursors for row in cur.fetchall()])


@dataclass(frozen=True, slots=True)
class AverageColumns:
    """Average windows as columns, one element per window (`write_averages`): no row built in Python."""

    sensors: list[bytes]  #: the series' sensor ids, encoded (`storage.pgarrays.text_elements`)
    variables: list[bytes]  #: their variables, encoded
    units: list[bytes]  #: their units, encoded
    series: np.ndarray  #: per window, an index into the three lists above
    period_names: list[bytes]  #: the periods, encoded ('1h', '8h', '24h', 'day', 'year')
    period: np.ndarray  #: per window, an index into `period_names`
    start: np.ndarray  #: epoch seconds
    end: np.ndarray  #: epoch seconds
    value: np.ndarray  #: the mean (any number where samples is 0: stored NULL)
    coverage: np.ndarray
    samples: np.ndarray
    valid: np.ndarray


_CLAIM = """
INSERT INTO job_watermarks (job, claimed_through, mark_epoch, updated_at) VALUES (%(job)s, %(end)s, 1, now())
ON CONFLICT (job) DO UPDATE SET claimed_through = greatest(job_watermarks.claimed_through, EXCLUDED.claimed_through),
                                mark_epoch = job_watermarks.mark_epoch + 1, updated_at = now()
"""

# a sample counts when its value is finite, it has no excluded QC bit (alerts.averaging.averages.sample_validity:
# a NULL, NaN or infinite value does not count; NaN is above every number in PostgreSQL, so it fails `< 'Infinity'`)
# and no person invalidated it (storage.validation: the latest decision in force covering it is not an
# invalidation). The sensors with an invalidation meeting the statement's period are read first
# (`_invalidated`); with none — the common case — the statement has no validation term at all (a term that only
# compares with an empty array still made the tick several times slower: measured with `bench averages`), with
# some, the decision is looked up only for their samples
_VALID_SAMPLE = "(m.flags & %(excluded)s::int4) = 0 AND m.value > '-Infinity'::float8 AND m.value < 'Infinity'::float8"
_NOT_INVALIDATED = (f"NOT (m.sensor_id = ANY(%(invalidated)s::text[]) "
                    f"AND coalesce({DECIDING_SQL.format(excluding='0')} = 'invalidate', false))")


def _sums(invalidated: bool) -> tuple[str, str]:
    """The aggregates of the valid samples' count and sum (`_VALID_SAMPLE`, and `_NOT_INVALIDATED` when some
    sensor has an invalidation in the period), and their output columns."""
    counts = f"{_VALID_SAMPLE} AND {_NOT_INVALIDATED}" if invalidated else _VALID_SAMPLE
    return (f"count(*) FILTER (WHERE {counts}) AS n, coalesce(sum(m.value) FILTER (WHERE {counts}), 0) AS total",
            "h.n, h.total")


def _invalidated(conn: psycopg.Connection, start: datetime | None, end: datetime | None) -> list[str]:
    """The sensors with an invalidation in force meeting [start, end)."""
    if start is None or end is None:
        return []
    row = conn.execute("SELECT " + INVALIDATED_SENSORS_SQL.format(start="%(start)s", end="%(end)s"),
                       {"start": start, "end": end}).fetchone()
    return list(row[0]) if row is not None else []


# the samples of one hour of a series and device summed in the database (time_bucket): the valid samples' count and
# sum (`_sums`), or the least unit of its samples (`_UNITS`, read only for variables outside the vocabulary, whose
# unit the job takes from the data); the primary-device filter applies to the groups (a device's groups are all in
# or all out), so the hash aggregate sees no join
_UNITS = ("min(m.unit) AS unit", "h.unit")
_PRIMARY_GROUPS = """
SELECT h.sensor_id, h.variable, h.device_id, date_part('epoch', h.stop), {out}
FROM h LEFT JOIN primary_devices p ON p.sensor_id = h.sensor_id AND p.variable = h.variable
WHERE p.device_id IS NULL OR p.device_id = h.device_id
"""

_DUE_HOURS = """
WITH h AS (
    SELECT m.sensor_id, m.variable, m.device_id, time_bucket('1 hour', m.time, %(end)s) + interval '1 hour' AS stop,
           {aggregates}
    FROM measurements m WHERE m.time >= %(start)s AND m.time < %(end)s {variables}
    GROUP BY 1, 2, 3, 4)
""" + _PRIMARY_GROUPS

_WINDOW_HOURS = """
WITH h AS (
    SELECT m.sensor_id, m.variable, m.device_id, w.t1 AS stop, {aggregates}
    FROM unnest(%(sensors)s::text[], %(variables)s::text[], %(t0)s::timestamptz[], %(t1)s::timestamptz[])
         AS w(sensor_id, variable, t0, t1)
    JOIN measurements m ON m.sensor_id = w.sensor_id AND m.variable = w.variable AND m.time >= w.t0 AND m.time < w.t1
    GROUP BY 1, 2, 3, 4)
""" + _PRIMARY_GROUPS

# stored averages of one period per series, packed like the samples: (sensor, variable, n, ends, values, valid)
_PACKED_AVERAGES = """
    a.sensor_id COLLATE "C", a.variable COLLATE "C", count(*),
    string_agg(float8send(date_part('epoch', a.period_end)), ''::bytea),
    string_agg(float8send(coalesce(a.value, 'NaN'::float8)), ''::bytea), string_agg(boolsend(a.valid), ''::bytea)
"""

_STORED = f"""
SELECT {_PACKED_AVERAGES}
FROM unnest(%(sensors)s::text[], %(variables)s::text[], %(lo)s::timestamptz[], %(hi)s::timestamptz[])
     AS w(sensor_id, variable, lo, hi)
JOIN averages a ON a.sensor_id = w.sensor_id AND a.variable = w.variable AND a.period = %(period)s
               AND a.period_end > w.lo AND a.period_end <= w.hi
GROUP BY 1, 2
"""

_STORED_RANGE = f"""
SELECT {_PACKED_AVERAGES}
FROM averages a WHERE a.period = %(period)s AND a.period_end > %(lo)s AND a.period_end <= %(hi)s
GROUP BY 1, 2
"""

# every series' stored hours in one range scan, with whether it has hours holding samples in a sub-range (the series
# active then, without a second scan). Each hour is one 17-byte record (`HOUR_RECORD`) in one aggregate: three
# string_agg of one field each took ~45 % longer (10,000 series, `bench averages`)
_HOURS_RANGE = """
SELECT a.sensor_id COLLATE "C", a.variable COLLATE "C", count(*),
       string_agg(timestamptz_send(a.period_end) || float8send(coalesce(a.value, 'NaN'::float8)) || boolsend(a.valid),
                  ''::bytea),
       bool_or(a.samples > 0 AND a.period_end > %(since)s AND a.period_end <= %(until)s)
FROM averages a WHERE a.period = '1h' AND a.period_end > %(lo)s AND a.period_end <= %(hi)s
GROUP BY 1, 2
"""
#: one stored hour as `stored_hours` packs it: its end (PostgreSQL's binary timestamptz, microseconds since
#: `PG_EPOCH_S`), its value (NaN for NULL), whether it is valid
HOUR_RECORD = np.dtype([("end", ">i8"), ("value", ">f8"), ("valid", "?")])
PG_EPOCH_S = 946_684_800  #: 2000-01-01T00:00:00Z in Unix epoch seconds
# the least unit of the hours holding samples in a range, of the series of some variables
_ACTIVE_UNITS = """
SELECT a.sensor_id, a.variable, min(a.unit) FROM averages a
WHERE a.period = '1h' AND a.samples > 0 AND a.period_end > %(since)s AND a.period_end <= %(until)s
  AND a.variable = ANY(%(variables)s)
GROUP BY 1, 2
"""

#: series sharing one window above which one range scan beats per-series index lookups
_RANGE_SCAN_MIN = 50

# the windows written replace the stored ones with the same key (averages_key) in one statement: the keys are
# deleted (bounded by the ends' range) before the first row is inserted (the INSERT reads the DELETE's count), and
# a plain INSERT follows (an upsert's speculative insertion costs more per row)
_WRITE = """
WITH w AS MATERIALIZED (
    SELECT w.sensor_id, w.variable, w.period, to_timestamp(w.t0) AS period_start, to_timestamp(w.t1) AS period_end,
           CASE WHEN w.samples > 0 THEN w.value END AS value, w.unit, w.coverage, w.samples, w.valid
    FROM unnest(%(sensors)b, %(variables)b, %(units)b, %(period)b, %(t0)b, %(t1)b, %(value)b, %(coverage)b,
                %(samples)b, %(valid)b) AS w(sensor_id, variable, unit, period, t0, t1, value, coverage, samples, valid)
), gone AS (
    DELETE FROM averages a USING w
    WHERE a.sensor_id = w.sensor_id AND a.variable = w.variable AND a.period = w.period AND a.period_end = w.period_end
      AND a.period_end BETWEEN %(first)s AND %(last)s
    RETURNING 1
)
INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, coverage, samples, valid,
                      computed_at)
SELECT w.sensor_id, w.variable, w.period, w.period_start, w.period_end, w.value, w.unit, w.coverage, w.samples,
       w.valid, %(now)s
FROM w, (SELECT count(*) FROM gone) AS deleted
"""

# ------------------------------------------------------------------------------------ watermark, marks

def claim(conn: psycopg.Connection, job: str, end: datetime) -> None:
    """Advance `job`'s claim to `end` and its late-mark epoch in its own short transaction under the exclusive
    `LATE_MARK_LOCK`: writers from then on mark what they write before `end`, in the new epoch (`dirty_marks`)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LATE_MARK_LOCK,))
        conn.execute(_CLAIM, {"job": job, "end": end})


def computed_through(conn: psycopg.Connection, job: str) -> Pending[datetime | None]:
    """`job`'s watermark, its row locked FOR UPDATE (two leaders racing serialise here); None before the first."""
    cur = conn.execute("SELECT computed_through FROM job_watermarks WHERE job = %s FOR UPDATE", (job,))
    return Pending([cur], lambda rows: rows[0][0] if rows else None)


def set_computed_through(conn: psycopg.Connection, job: str, end: datetime) -> None:
    """Every hour ending at or before `end` has been computed."""
    conn.execute("UPDATE job_watermarks SET computed_through = %s, updated_at = now() WHERE job = %s",
                 (end, job))


def dirty_marks(conn: psycopg.Connection, before: datetime) -> Pending[list[tuple[Any, ...]]]:
    """The late-data marks of slots starting before `before` from the epochs before the current one (migration
    0022: their writers have all committed; the current epoch's marks wait for the next run): (sensor_id,
    variable, slot_start, mark)."""
    return Pending([conn.execute("SELECT sensor_id, variable, slot_start, mark FROM dirty_slots "
                                 f"WHERE slot_start < %s AND epoch < {MARK_EPOCH}", (before,))], list)


def delete_marks(conn: psycopg.Connection, marks: Sequence[tuple[Any, ...]]) -> None:
    """Delete exactly the marks read (same `mark` number): a write racing the run is left for the next one."""
    conn.execute("DELETE FROM dirty_slots d USING unnest(%s::text[], %s::text[], %s::timestamptz[], "
                 "%s::bigint[]) AS c(sensor_id, variable, slot_start, mark) WHERE d.sensor_id = c.sensor_id "
                 "AND d.variable = c.variable AND d.slot_start = c.slot_start AND d.mark = c.mark",
                 [list(col) for col in zip(*marks, strict=True)])


# ------------------------------------------------------------------------------------ samples, series

def due_hours(conn: psycopg.Connection, start: datetime, end: datetime) -> Pending[list[tuple[Any, ...]]]:
    """The samples of the whole hours in [start, end) (`end` an hour end), summed per (sensor, variable, device,
    hour) over the primary device's samples (`primary_devices`; every device without one): sensor, variable,
    device, hour end (epoch s), valid samples, their sum. A group exists when the hour holds a sample, valid or
    not."""
    invalidated = _invalidated(conn, start, end)
    sums = _sums(bool(invalidated))
    query = _DUE_HOURS.format(aggregates=sums[0], variables="", out=sums[1])
    return Pending([conn.cursor(binary=True).execute(query, {"start": start, "end": end, "excluded": int(EXCLUDED),
                                                             "invalidated": invalidated})], list)


def due_units(conn: psycopg.Connection, start: datetime, end: datetime, variables: Sequence[str]
              ) -> Pending[list[tuple[Any, ...]]]:
    """The least unit of each group of `due_hours` of the `variables`: sensor, variable, device, hour end, unit."""
    query = _DUE_HOURS.format(aggregates=_UNITS[0], variables="AND m.variable = ANY(%(variables)s)", out=_UNITS[1])
    return Pending([conn.cursor(binary=True).execute(query, {"start": start, "end": end,
                                                             "variables": list(variables)})], list)


def window_hours(conn: psycopg.Connection, windows: Sequence[tuple[str, str, datetime, datetime]], *,
                 units: bool = False) -> Pending[list[tuple[Any, ...]]]:
    """The samples of each (sensor, variable, t0, t1) window in [t0, t1) (distinct windows of a series never
    overlap), summed like `due_hours`, the window's end t1 as the hour end; or, with `units`, their least unit
    per group like `due_units`."""
    invalidated = [] if units else _invalidated(conn, min((w[2] for w in windows), default=None),
                                                max((w[3] for w in windows), default=None))
    out = _UNITS if units else _sums(bool(invalidated))
    return Pending([conn.cursor(binary=True).execute(_WINDOW_HOURS.format(aggregates=out[0], out=out[1]), {
        "sensors": [w[0] for w in windows], "variables": [w[1] for w in windows],
        "t0": [w[2] for w in windows], "t1": [w[3] for w in windows], "excluded": int(EXCLUDED),
        "invalidated": invalidated})], list)


# ------------------------------------------------------------------------------------ stored averages

def stored_packed(conn: psycopg.Connection, period: str, windows: Mapping[Pair, tuple[datetime, datetime]]
                  ) -> Pending[list[tuple[Pair, int, bytes, bytes, bytes]]]:
    """Stored averages of `period` ending in each series' (lo, hi], packed (`_PACKED_AVERAGES`): one range scan
    per window many series share (the due hours), one indexed lookup per series for the others (late data)."""
    groups: dict[tuple[datetime, datetime], list[Pair]] = defaultdict(list)
    for pair, window in windows.items():
        groups[window].append(pair)
    scattered = sorted(p for ps in groups.values() if len(ps) < _RANGE_SCAN_MIN for p in ps)
    cursors = [conn.cursor(binary=True).execute(_STORED_RANGE, {"lo": lo, "hi": hi, "period": period})
               for (lo, hi), ps in groups.items() if len(ps) >= _RANGE_SCAN_MIN]
    if scattered:
        cursors.append(conn.cursor(binary=True).execute(_STORED, {
            "sensors": [p[0] for p in scattered], "variables": [p[1] for p in scattered],
            "lo": [windows[p][0] for p in scattered], "hi": [windows[p][1] for p in scattered], "period": period}))
    return Pending(cursors, lambda rows: [((sensor, variable), n, ends, values, valid)
                                          for sensor, variable, n, ends, values, valid in rows
                                          if (sensor, variable) in windows])


def stored_hours(conn: psycopg.Connection, lo: datetime, hi: datetime, since: datetime, until: datetime
                 ) -> Pending[list[tuple[Pair, int, bytes, bool]]]:
    """Every series' stored '1h' averages ending in (lo, hi], one row per series: its pair, its number of hours,
    the hours packed as `HOUR_RECORD`s (in no order), and whether it has hours holding samples that end in
    (since, until] (the series active then, from the same scan; since ⊂ (lo, hi]; their unit: `active_units`).
    `conn` must be in a transaction."""
    conn.execute("SET LOCAL work_mem = '64MB'")
    cur = conn.cursor(binary=True).execute(_HOURS_RANGE, {"lo": lo, "hi": hi, "since": since, "until": until})
    conn.execute("RESET work_mem")
    return Pending([cur], lambda rows: [((sensor, variable), n, hours, active)
                                        for sensor, variable, n, hours, active in rows])


def active_units(conn: psycopg.Connection, since: datetime, until: datetime, variables: Sequence[str]
                 ) -> Pending[dict[Pair, str]]:
    """The least unit of the '1h' averages holding samples and ending in (since, until] of each series of the
    `variables`."""
    cur = conn.execute(_ACTIVE_UNITS, {"since": since, "until": until, "variables": list(variables)})
    return Pending([cur], lambda rows: {(sensor, variable): unit for sensor, variable, unit in rows})


def write_averages(conn: psycopg.Connection, windows: AverageColumns, now: datetime) -> None:
    """Write averages given as columns (`AverageColumns`), replacing those with the same key (averages_key); a
    window's value is NULL where it has no sample. One statement (`_WRITE`) from binary arrays
    (`storage.pgarrays`)."""
    if not windows.series.size:
        return
    cur = conn.cursor()
    pgarrays.register(cur)
    cur.execute(_WRITE, {
        "sensors": pgarrays.text_array(windows.sensors, windows.series),
        "variables": pgarrays.text_array(windows.variables, windows.series),
        "units": pgarrays.text_array(windows.units, windows.series), "now": now,
        "period": pgarrays.text_array(windows.period_names, windows.period), "t0": pgarrays.float8_array(windows.start),
        "t1": pgarrays.float8_array(windows.end), "value": pgarrays.float8_array(windows.value),
        "coverage": pgarrays.float8_array(windows.coverage), "samples": pgarrays.int4_array(windows.samples),
        "valid": pgarrays.bool_array(windows.valid),
        "first": datetime.fromtimestamp(float(windows.end.min()), UTC),
        "last": datetime.fromtimestamp(float(windows.end.max()), UTC)})


# ------------------------------------------------------------------------------------ the log

def log_windows(conn: psycopg.Connection, period: str, reason: str, counts: Mapping[datetime, int],
                now: datetime) -> None:
    """Log the computation of `period` windows by end (`counts`: end → series) with `reason` 'due' or 'late'."""
    if reason not in ("due", "late"):
        raise ValueError(f"log_windows: reason: expected 'due' or 'late', got {reason!r}")
    if counts:
        ends = sorted(counts)
        conn.execute("INSERT INTO window_computations (period, period_end, reason, series, computed_at) "
                     "SELECT %s, e, %s, n, %s FROM unnest(%s::timestamptz[], %s::int[]) AS u(e, n)",
                     (period, reason, now, ends, [counts[e] for e in ends]))
