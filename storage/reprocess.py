"""`aqnet reprocess`: re-derive one sensor's stored values from their raw values after a calibration fix. I/O.

Contract of `reprocess(conn, sensor_id, time_from, time_to, run_by=…)`, in ONE transaction it opens itself:

1. locks the sensor's measurements with `time_from <= time < time_to` (`FOR UPDATE`);
2. loads the calibrations in force for their devices (`storage.registry.calibrations`), and re-derives each row with
   `ingest.normalise.renormalise`: from `raw_value`/`raw_unit`, with the temperature and pressure recorded
   with the row (a local mass concentration is corrected with exactly those again — never corrected twice,
   never re-resolved; gases and met variables need none) and the calibration valid at the row's time. A
   humidity calibration uses the RH recorded with the row, else the sensor's own latest valid
   `relativehumidity` at or before the row's time, at most 2 h older (the pipeline's ConditionsBook rule);
3. updates, with one explicit UPDATE, the rows whose value, unit, flags (CALIBRATED, NEGATIVE), calibration id
   or RH used changed — raw values, times, conditions and every other flag are never touched;
4. records the run in `reprocess_runs` (who, when, sensor, range, counts, calibrations used) and every changed
   row, before and after, in `reprocess_changes`;
5. marks the (sensor, variable, 15-minute slot) of every changed row in `dirty_slots` (storage.writer's late-data
   marks), so the averaging job recomputes the averages and indices they touch.

Rows that cannot be re-derived are skipped and counted by reason (`no_provenance`: a mass concentration stored
before migration 0002 recorded its conditions; `not_finite`: no raw value; `calibration_unit`: …). A second
run over the same range with the same calibrations changes nothing. `dry_run=True` computes the same result and
writes nothing (no run is recorded). The range is half-open, [time_from, time_to).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from ingest.normalise import renormalise
from ingest.reading import EXCLUDED, Reading
from storage.registry.calibrations import load_calibration_book
from storage.rows import MEASUREMENT_COLUMNS, MEASUREMENT_KEY, row_reading
from storage.writer import MARK_LATE, SLOT_OF

__all__ = ["Change", "ReprocessError", "ReprocessResult", "reprocess"]

#: the pipeline's ConditionsBook default max_age (an aqnet convention, see ingest.normalise)
DEFAULT_RH_MAX_AGE = timedelta(hours=2)
_STAGING = "_aqnet_reprocess"


class ReprocessError(ValueError):
    """A reprocess request that cannot run (unknown sensor, bad range); nothing was changed."""


@dataclass(frozen=True, slots=True)
class Change:
    """One measurement a run changes: its key, and what changes."""

    time: datetime
    device_id: str
    variable: str
    old: Reading
    new: Reading


@dataclass(frozen=True, slots=True)
class ReprocessResult:
    """What a run examined, changed and skipped; `run_id` is None for a dry run."""

    sensor_id: str
    time_from: datetime
    time_to: datetime
    dry_run: bool
    examined: int
    changes: tuple[Change, ...]
    skipped: Mapping[str, int] = field(default_factory=dict)  #: reason → rows
    calibration_ids: tuple[int, ...] = ()  #: calibrations applied to the re-derived values
    run_id: int | None = None

    @property
    def changed(self) -> int:
        """Rows whose normalised value, flags or calibration changed."""
        return len(self.changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the CLI's `--json`)."""
        return {
            "run_id": self.run_id, "sensor_id": self.sensor_id, "time_from": self.time_from.isoformat(),
            "time_to": self.time_to.isoformat(), "dry_run": self.dry_run, "examined": self.examined,
            "changed": self.changed, "skipped": dict(self.skipped), "calibration_ids": list(self.calibration_ids),
            "changes": [{"time": c.time.isoformat(), "device_id": c.device_id, "variable": c.variable,
                         "old_value": _json_float(c.old.value), "new_value": _json_float(c.new.value),
                         "old_flags": int(c.old.flags), "new_flags": int(c.new.flags),
                         "old_calibration_id": c.old.calibration_id, "new_calibration_id": c.new.calibration_id}
                        for c in self.changes],
        }


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x


def _same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _differs(old: Reading, new: Reading) -> bool:
    return not (_same_float(old.value, new.value) and old.unit == new.unit and old.flags == new.flags
                and old.calibration_id == new.calibration_id
                and _same_float(old.calibration_rh_pct, new.calibration_rh_pct))


_SELECT = sql.SQL("""
SELECT {columns}, rh.value
FROM measurements m
LEFT JOIN LATERAL (
    SELECT h.value FROM measurements h
    WHERE h.sensor_id = m.sensor_id AND h.variable = 'relativehumidity'
      AND h.time <= m.time AND h.time >= m.time - %(rh_max_age)s
      AND h.flags & %(excluded)s = 0 AND h.value IS NOT NULL
    ORDER BY h.time DESC LIMIT 1
) rh ON true
WHERE m.sensor_id = %(sensor)s AND m.time >= %(from)s AND m.time < %(to)s
ORDER BY m.time, m.device_id, m.variable
""")
_LOCK = sql.SQL(" FOR UPDATE OF m")

_CREATE_STAGING = sql.SQL("""
CREATE TEMPORARY TABLE {} (
    time timestamptz NOT NULL, sensor_id text NOT NULL, device_id text NOT NULL, variable text NOT NULL,
    value float8, unit text NOT NULL, flags int4 NOT NULL, calibration_id int8, calibration_rh_pct float8,
    old_value float8, old_flags int4 NOT NULL, old_calibration_id int8, old_calibration_rh_pct float8
) ON COMMIT DROP""").format(sql.Identifier(_STAGING))
_STAGING_TYPES = ("timestamptz", "text", "text", "text", "float8", "text", "int4", "int8", "float8", "float8",
                  "int4", "int8", "float8")

_UPDATE = sql.SQL("""
UPDATE measurements m
SET value = c.value, unit = c.unit, flags = c.flags, calibration_id = c.calibration_id,
    calibration_rh_pct = c.calibration_rh_pct
FROM {staging} c
WHERE {key}
""").format(staging=sql.Identifier(_STAGING),
            key=sql.SQL(" AND ").join(sql.SQL("m.{k} = c.{k}").format(k=sql.Identifier(k)) for k in MEASUREMENT_KEY))

_RECORD_CHANGES = sql.SQL("""
INSERT INTO reprocess_changes (run_id, time, sensor_id, device_id, variable, old_value, new_value, old_flags,
                               new_flags, old_calibration_id, new_calibration_id, old_calibration_rh_pct,
                               new_calibration_rh_pct)
SELECT %s, time, sensor_id, device_id, variable, old_value, value, old_flags, flags, old_calibration_id,
       calibration_id, old_calibration_rh_pct, calibration_rh_pct
FROM {staging}
""").format(staging=sql.Identifier(_STAGING))


_MARK_CHANGED = sql.SQL(MARK_LATE.format(
    select=f"SELECT DISTINCT sensor_id, variable, {SLOT_OF.format(time='time')} FROM {_STAGING}"))


def _nan_to_null(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


async def reprocess(conn: AsyncConnection[Any], sensor_id: str, time_from: datetime, time_to: datetime, *,
                    run_by: str, dry_run: bool = False, note: str = "",
                    rh_max_age: timedelta = DEFAULT_RH_MAX_AGE) -> ReprocessResult:
    """Re-derive `sensor_id`'s values in [time_from, time_to) from their raw values (see the module docstring)."""
    if time_from.tzinfo is None or time_to.tzinfo is None:
        raise ReprocessError("reprocess: --from and --to must carry a UTC offset (e.g. 2026-03-02T00:00-05:00)")
    if not time_from < time_to:
        raise ReprocessError(f"reprocess: --from {time_from.isoformat()} must be before --to {time_to.isoformat()}")
    if not run_by:
        raise ReprocessError("reprocess: run_by (who runs it) is required")
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("SELECT 1 FROM sensors WHERE id = %s", (sensor_id,))
        if await cur.fetchone() is None:
            raise ReprocessError(f"reprocess: unknown sensor {sensor_id!r} (not in the registry)")
        columns = sql.SQL(", ").join(sql.SQL("m.{}").format(sql.Identifier(c)) for c in MEASUREMENT_COLUMNS)
        query = _SELECT.format(columns=columns) + (sql.SQL("") if dry_run else _LOCK)
        await cur.execute(query, {"rh_max_age": rh_max_age, "excluded": int(EXCLUDED), "sensor": sensor_id,
                                  "from": time_from, "to": time_to})
        rows = await cur.fetchall()
        stored = [(row_reading(r[:-1]), r[-1]) for r in rows]
        book = await load_calibration_book(conn, device_ids={s.device_id for s, _ in stored})
        changes: list[Change] = []
        skipped: Counter[str] = Counter()
        used: set[int] = set()
        for old, rh in stored:
            try:
                new = renormalise(old, book, rh_pct=rh)
            except ValueError as exc:  # NormaliseError (reason), UnitError, UnknownVariableError
                skipped[getattr(exc, "reason", type(exc).__name__)] += 1
                continue
            if new.calibration_id is not None:
                used.add(new.calibration_id)
            if _differs(old, new):
                changes.append(Change(old.time, old.device_id, old.variable, old, new))
        result = ReprocessResult(sensor_id, time_from, time_to, dry_run, len(stored), tuple(changes),
                                 dict(skipped), tuple(sorted(used)))
        if dry_run:
            return result
        await cur.execute(
            "INSERT INTO reprocess_runs (run_by, sensor_id, time_from, time_to, rows_examined, rows_changed, "
            "rows_skipped, skipped_reasons, calibration_ids, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            (run_by, sensor_id, time_from, time_to, result.examined, result.changed, sum(skipped.values()),
             Jsonb(dict(skipped)), list(result.calibration_ids), note))
        run = await cur.fetchone()
        assert run is not None
        run_id = int(run[0])
        if changes:
            await cur.execute(_CREATE_STAGING)
            async with cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(
                    sql.Identifier(_STAGING))) as copy:
                copy.set_types(list(_STAGING_TYPES))
                for c in changes:
                    await copy.write_row((c.time, sensor_id, c.device_id, c.variable, _nan_to_null(c.new.value),
                                          c.new.unit, int(c.new.flags), c.new.calibration_id,
                                          c.new.calibration_rh_pct, _nan_to_null(c.old.value), int(c.old.flags),
                                          c.old.calibration_id, c.old.calibration_rh_pct))
            await cur.execute(_UPDATE)
            if cur.rowcount != len(changes):
                raise RuntimeError(f"reprocess {sensor_id}: updated {cur.rowcount} rows, expected {len(changes)}; "
                                   "rolled back")
            await cur.execute(_RECORD_CHANGES, (run_id,))
            await cur.execute(_MARK_CHANGED)
    return ReprocessResult(sensor_id, time_from, time_to, False, result.examined, result.changes, result.skipped,
                           result.calibration_ids, run_id)
