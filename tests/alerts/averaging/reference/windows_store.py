"""Stage 3 — the averaging job's tables: its watermark and claim (`job_watermarks`), the late-data marks
(`dirty_slots`), the samples it averages (`measurements`, primary devices only), the stored `averages` (packed
reads and the idempotent upsert) and its log (`window_computations`). I/O (psycopg 3, sync), for
`alerts.averaging.job`; every function runs in the caller's transaction except `claim`, which is its own.

Samples and stored averages are read packed, one row per series (and device): big-endian float8 / int4 / bool
arrays in one bytea each, for numpy to read at once, not one Python object per sample; a NULL value is NaN.
The claim takes the exclusive advisory lock `storage.writer.LATE_MARK_LOCK`: from then on every measurement
written before the claim marks its (sensor, variable, 15-minute slot) in `dirty_slots`.
`window_computations` has one 'due' row per (period, end) under a unique index; 'late' rows log recomputations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from storage.writer import LATE_MARK_LOCK

__all__ = ["active_series", "claim", "computed_through", "delete_marks", "dirty_marks", "due_samples", "log_windows",
           "set_computed_through", "stored_packed", "upsert_averages", "window_samples"]

Pair = tuple[str, str]  # (sensor_id, variable)


_CLAIM = """
INSERT INTO job_watermarks (job, claimed_through, updated_at) VALUES (%(job)s, %(end)s, now())
ON CONFLICT (job) DO UPDATE SET claimed_through = greatest(job_watermarks.claimed_through, EXCLUDED.claimed_through),
                                updated_at = now()
"""

# the samples of a series and device as three packed big-endian arrays (time, value, flags): one bytea each,
# read with numpy at once, not one Python object per sample; a NULL value is NaN (not valid)
_SAMPLE_COLUMNS = """
    m.sensor_id, m.variable, m.device_id, min(m.unit), count(*),
    string_agg(float8send(date_part('epoch', m.time)), ''::bytea ORDER BY m.time),
    string_agg(float8send(coalesce(m.value, 'NaN'::float8)), ''::bytea ORDER BY m.time),
    string_agg(int4send(m.flags), ''::bytea ORDER BY m.time)
"""
_PRIMARY = "LEFT JOIN primary_devices p ON p.sensor_id = m.sensor_id AND p.variable = m.variable"
_IS_PRIMARY = "(p.device_id IS NULL OR p.device_id = m.device_id)"

_DUE_SAMPLES = f"""
SELECT {_SAMPLE_COLUMNS}
FROM measurements m {_PRIMARY}
WHERE m.time >= %(start)s AND m.time < %(end)s AND {_IS_PRIMARY}
GROUP BY 1, 2, 3 ORDER BY m.sensor_id COLLATE "C", m.variable COLLATE "C", m.device_id COLLATE "C"
"""

_WINDOW_SAMPLES = f"""
SELECT {_SAMPLE_COLUMNS}
FROM unnest(%(sensors)s::text[], %(variables)s::text[], %(t0)s::timestamptz[], %(t1)s::timestamptz[])
     AS w(sensor_id, variable, t0, t1)
JOIN measurements m ON m.sensor_id = w.sensor_id AND m.variable = w.variable AND m.time >= w.t0 AND m.time < w.t1
{_PRIMARY}
WHERE {_IS_PRIMARY}
GROUP BY 1, 2, 3 ORDER BY m.sensor_id COLLATE "C", m.variable COLLATE "C", m.device_id COLLATE "C"
"""

_ACTIVE = """
SELECT DISTINCT sensor_id, variable, unit FROM averages
WHERE period = '1h' AND period_end > %(since)s AND period_end <= %(until)s AND samples > 0
"""

# stored averages of one period per series, packed like the samples: (sensor, variable, n, ends, values, valid)
_PACKED_AVERAGES = """
    a.sensor_id, a.variable, count(*), string_agg(float8send(date_part('epoch', a.period_end)), ''::bytea
                                                  ORDER BY a.period_end),
    string_agg(float8send(coalesce(a.value, 'NaN'::float8)), ''::bytea ORDER BY a.period_end),
    string_agg(boolsend(a.valid), ''::bytea ORDER BY a.period_end)
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

#: series sharing one window above which one range scan beats per-series index lookups
_RANGE_SCAN_MIN = 50

_AVERAGE_COLUMNS = ("sensor_id", "variable", "period", "period_start", "period_end", "value", "unit", "coverage",
                    "samples", "valid", "computed_at")
_AVERAGE_TYPES = ("text", "text", "text", "timestamptz", "timestamptz", "float8", "text", "float8", "int4", "bool",
                  "timestamptz")


# ------------------------------------------------------------------------------------ watermark, marks

def claim(conn: psycopg.Connection, job: str, end: datetime) -> None:
    """Advance `job`'s claim to `end` in its own short transaction under the exclusive `LATE_MARK_LOCK`: writers
    from then on mark what they write before `end`."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LATE_MARK_LOCK,))
        conn.execute(_CLAIM, {"job": job, "end": end})


def computed_through(conn: psycopg.Connection, job: str) -> datetime | None:
    """`job`'s watermark, its row locked FOR UPDATE (two leaders racing serialise here); None before the first."""
    row = conn.execute("SELECT computed_through FROM job_watermarks WHERE job = %s FOR UPDATE", (job,)).fetchone()
    through: datetime | None = row[0] if row else None
    return through


def set_computed_through(conn: psycopg.Connection, job: str, end: datetime) -> None:
    """Every hour ending at or before `end` has been computed."""
    conn.execute("UPDATE job_watermarks SET computed_through = %s, updated_at = now() WHERE job = %s",
                 (end, job))


def dirty_marks(conn: psycopg.Connection, before: datetime) -> list[tuple[Any, ...]]:
    """The late-data marks of slots starting before `before`: (sensor_id, variable, slot_start, mark)."""
    return conn.execute("SELECT sensor_id, variable, slot_start, mark FROM dirty_slots WHERE slot_start < %s",
                        (before,)).fetchall()


def delete_marks(conn: psycopg.Connection, marks: Sequence[tuple[Any, ...]]) -> None:
    """Delete exactly the marks read (same `mark` number): a write racing the run is left for the next one."""
    conn.execute("DELETE FROM dirty_slots d USING unnest(%s::text[], %s::text[], %s::timestamptz[], "
                 "%s::bigint[]) AS c(sensor_id, variable, slot_start, mark) WHERE d.sensor_id = c.sensor_id "
                 "AND d.variable = c.variable AND d.slot_start = c.slot_start AND d.mark = c.mark",
                 [list(col) for col in zip(*marks, strict=True)])


# ------------------------------------------------------------------------------------ samples, series

def due_samples(conn: psycopg.Connection, start: datetime, end: datetime) -> Iterable[tuple[Any, ...]]:
    """Every series' samples in [start, end), packed per (sensor, variable, device): sensor, variable, device,
    unit, count, times, values, flags."""
    return conn.cursor(binary=True).execute(_DUE_SAMPLES, {"start": start, "end": end})


def window_samples(conn: psycopg.Connection, windows: Sequence[tuple[str, str, datetime, datetime]]
                   ) -> Iterable[tuple[Any, ...]]:
    """The samples of each (sensor, variable, t0, t1) window in [t0, t1), packed like `due_samples`."""
    return conn.cursor(binary=True).execute(_WINDOW_SAMPLES, {
        "sensors": [w[0] for w in windows], "variables": [w[1] for w in windows],
        "t0": [w[2] for w in windows], "t1": [w[3] for w in windows]})


def active_series(conn: psycopg.Connection, since: datetime, until: datetime) -> Iterable[tuple[Any, ...]]:
    """(sensor, variable, unit) of the series with a '1h' average holding samples ending in (since, until]."""
    return conn.execute(_ACTIVE, {"since": since, "until": until})


# ------------------------------------------------------------------------------------ stored averages

def stored_packed(conn: psycopg.Connection, period: str, windows: Mapping[Pair, tuple[datetime, datetime]]
                  ) -> list[tuple[Pair, int, bytes, bytes, bytes]]:
    """Stored averages of `period` ending in each series' (lo, hi], packed (`_PACKED_AVERAGES`): one range scan
    per window many series share (the due hours), one indexed lookup per series for the others (late data)."""
    groups: dict[tuple[datetime, datetime], list[Pair]] = defaultdict(list)
    for pair, window in windows.items():
        groups[window].append(pair)
    scattered = sorted(p for ps in groups.values() if len(ps) < _RANGE_SCAN_MIN for p in ps)
    results = [conn.cursor(binary=True).execute(_STORED_RANGE, {"lo": lo, "hi": hi, "period": period})
               for (lo, hi), ps in groups.items() if len(ps) >= _RANGE_SCAN_MIN]
    if scattered:
        results.append(conn.cursor(binary=True).execute(_STORED, {
            "sensors": [p[0] for p in scattered], "variables": [p[1] for p in scattered],
            "lo": [windows[p][0] for p in scattered], "hi": [windows[p][1] for p in scattered], "period": period}))
    return [((sensor, variable), n, ends, values, valid) for result in results
            for sensor, variable, n, ends, values, valid in result if (sensor, variable) in windows]


def upsert_averages(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """COPY into a staging table, then one idempotent upsert keyed by averages_key."""
    if not rows:
        return
    cols = sql.SQL(", ").join(map(sql.Identifier, _AVERAGE_COLUMNS))
    with conn.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE IF NOT EXISTS _aqnet_averages "
                    "(LIKE averages INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(sql.SQL("COPY _aqnet_averages ({}) FROM STDIN (FORMAT BINARY)").format(cols)) as copy:
            copy.set_types(list(_AVERAGE_TYPES))
            for row in rows:
                copy.write_row(row)
        cur.execute(sql.SQL("""
            INSERT INTO averages ({cols}) SELECT {cols} FROM _aqnet_averages
            ON CONFLICT (sensor_id, variable, period, period_end) DO UPDATE SET
                period_start = EXCLUDED.period_start, value = EXCLUDED.value, unit = EXCLUDED.unit,
                coverage = EXCLUDED.coverage, samples = EXCLUDED.samples, valid = EXCLUDED.valid,
                computed_at = EXCLUDED.computed_at""").format(cols=cols))
        cur.execute("TRUNCATE _aqnet_averages")


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
