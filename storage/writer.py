"""The measurements writer: one batch of Readings → TimescaleDB, idempotently, in one transaction. I/O.

Implements `ingest.pipeline.Sink`. Per batch, inside one transaction:

1. the shared advisory lock `LATE_MARK_LOCK` (point 3), then the averaging job's claim;
2. *fast path*, the common case — every key new: when no two rows of the batch share a key (checked in Python)
   and misses do not come in a row, a binary `COPY` of the rows (`storage.rows`) straight into `measurements`
   inside a savepoint. Any stored key makes the COPY fail on the unique constraint (a key being inserted by a
   concurrent transaction makes it wait for that one's outcome): the savepoint is rolled back and the batch takes
   the full path. A miss costs little (the COPY stops at the first stored key; three round trips) but a burst of
   them — redeliveries after a restart, a Modbus backfill of stored history — would pay it on every batch: after
   `MISSES_IN_A_ROW` consecutive misses the batches are classified directly until one comes out all new again;
   an isolated miss (measured: a stored key in every fifth batch) does not stop the next batch trying. A COPY that
   succeeded stored exactly what the classification would have: every row an insert.
   *Full path* (a miss, a key repeated in the batch, or during a burst of misses): a binary `COPY` into a
   temporary staging table (`ON COMMIT DROP`), then one statement classifies every staged row against
   `measurements` and against the earlier rows of the batch with the same key (sensor_id, device_id, variable,
   time) — first write wins:
   - *insert*: a new key (its first occurrence in the batch);
   - *duplicate*: the key exists (stored, or earlier in the batch) with the same value and flags — an exact
     repeat, e.g. a redelivered MQTT message or a re-polled register: a no-op. The flags that depend on when and
     in which order a reading arrived (SPIKE, FLATLINE, STALE) are left out of the comparison: a redelivery after
     a restart may earn them differently;
   - *conflict*: the key exists with a different value or flags. The row is kept out of `measurements` and
     recorded in `dead_letters` (source 'writer', reason 'conflict') with both values in `reading`: never
     silently dropped, never overwriting what was stored;
   then inserts (`ON CONFLICT DO NOTHING`) and dead-letters accordingly;
3. late data: every inserted row whose time is before the averaging job's claim (`job_watermarks.claimed_through`)
   marks its (sensor, variable, 15-minute slot) in `dirty_slots`, in the same transaction (the full path in its
   statement; the fast path marks the rows before the claim it read: usually none in live data), so the job
   recomputes the windows it touches (alerts.averaging.job). The transaction first takes the shared advisory lock
   `LATE_MARK_LOCK`; the job advances its claim under the exclusive one, so a write either commits before the job
   reads the measurements or sees the new claim and marks (never both missed). A mark carries the epoch the job's
   last claim began (migration 0022) and is inserted only when the slot has none in that epoch (`_MARK_NEW`): a
   run consumes only earlier epochs' marks, so concurrent writers of late data never wait on each other's marks
   (an upsert locked the slot's row until its writer committed: a backlog's writes queued behind one another);
4. receive-time readings (no device clock) carry the identity of their message: before the rows are written, a
   redelivered message takes the time its first delivery was stored with, and the batch's receipts are saved
   (`storage.deliveries`), so a message committed but not acknowledged is a duplicate when it comes again;
5. the batch's letters (`ingest.letter.Letter`: refused messages and readings) are inserted into `dead_letters`:
   a refusal is acknowledged only once it is durable, like a reading.

When a concurrent writer commits one of our new keys between our snapshot and our insert, the insert count
falls short: the transaction is rolled back and the batch retried, so the row is classified against the
committed value; so is a transaction the database ended to break a deadlock between writers (inserting shared keys
in different orders). Concurrent `write` calls run on connections of their own: of two concurrent writes of one
key, the one that commits first is the first write (`ingest.pipeline` keeps batches that share keys in order).
`write` returns when the batch is committed (durable); connection errors propagate (psycopg.OperationalError: the
pipeline retries or spools).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from psycopg import AsyncConnection, AsyncCursor, errors, sql
from psycopg_pool import AsyncConnectionPool

from ingest.letter import Letter
from ingest.reading import QC, Reading
from storage import deadletter, deliveries
from storage.rows import MEASUREMENT_COLUMNS, MEASUREMENT_TYPES, Row, reading_row

__all__ = ["LATE_MARK_LOCK", "LATE_SLOT", "MARK_EPOCH", "MARK_LATE", "MISSES_IN_A_ROW", "SLOT_OF", "TimescaleWriter",
           "WriteResult", "WriterStats", "keys_unique", "late_marks", "late_rows"]

_STAGING = "_aqnet_staging"
#: consecutive fast-path misses after which batches are classified directly (module docstring, point 2)
MISSES_IN_A_ROW = 2
_RACE_RETRIES = 3

#: pg_advisory_xact_lock key: shared by measurement writers, exclusive while the averaging job claims windows
#: ("aqnetlat" in ASCII, as a bigint)
LATE_MARK_LOCK = 0x6171_6E65_746C_6174
#: width of a late-data mark (dirty_slots.slot_start, binned from 2000-01-01 UTC): every UTC offset in use is a
#: multiple of 15 minutes, so a slot lies inside one local hour of any network time zone
LATE_SLOT = timedelta(minutes=15)
#: SQL expression of a time's slot start, shared by the writer, reprocess and the job
SLOT_OF = "date_bin('15 minutes', {time}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
#: the epoch of the late-data marks written now (migration 0022): advanced by every claim of the averaging job
MARK_EPOCH = "coalesce((SELECT mark_epoch FROM job_watermarks WHERE job = 'averages'), 0)"
#: insert of late marks with the current epoch, in key order (two writers inserting the same new marks wait in one
#: order, never in a deadlock); `{select}` gives (sensor_id, variable, slot_start), `{action}` the conflict's
_MARK = f"""
    INSERT INTO dirty_slots (sensor_id, variable, slot_start, epoch)
    SELECT *, {MARK_EPOCH} FROM ({{select}}) AS marks ORDER BY 1, 2, 3
    ON CONFLICT (sensor_id, variable, slot_start, epoch) {{action}}
"""
#: upsert of late marks by a writer that does not hold `LATE_MARK_LOCK` (reprocess, validation): a re-mark takes a
#: new `mark` number, so the job never deletes a mark it did not read. `{select}` as in `_MARK`
MARK_LATE = _MARK.replace("{action}", "DO UPDATE SET mark = EXCLUDED.mark")
#: late marks of the measurements writer, which holds `LATE_MARK_LOCK` shared (module docstring, point 3): the
#: epoch read under the lock is current until the writer commits, and the job consumes only the marks of earlier
#: epochs, so a mark already there is enough and is left alone (DO NOTHING: a committed row is not locked, so
#: writers of late data into the same slots do not wait for each other)
_MARK_NEW = _MARK.replace("{action}", "DO NOTHING")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What happened to a batch's rows: inserted, exact repeats (no-op) and conflicts (dead-lettered), and how many
    letters (refused input) it stored."""

    inserted: int
    duplicates: int
    conflicts: int
    letters: int = 0

    def __post_init__(self) -> None:
        if min(self.inserted, self.duplicates, self.conflicts, self.letters) < 0:
            raise ValueError(f"WriteResult counts must be >= 0, got {self}")


#: the shared lock, then the claim in a second statement (its own snapshot, taken once the lock is held), in one
#: round trip (no parameters: the simple query protocol runs them all); `_OPEN_FAST` also opens the fast path's
#: savepoint (released by the commit; rolled back to on a miss)
_OPEN = sql.SQL("SELECT pg_advisory_xact_lock_shared({lock}); "
                "SELECT claimed_through FROM job_watermarks WHERE job = 'averages'").format(
    lock=sql.Literal(LATE_MARK_LOCK))
_SAVEPOINT = sql.SQL("SAVEPOINT aqnet_fast_path")
_ROLLBACK_TO_SAVEPOINT = sql.SQL("ROLLBACK TO SAVEPOINT aqnet_fast_path")
_OPEN_FAST = sql.SQL("{}; {}").format(_OPEN, _SAVEPOINT)
_COPY_MEASUREMENTS = sql.SQL("COPY measurements ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in MEASUREMENT_COLUMNS))
#: the fast path's late marks: (sensor_id, variable, time) of the rows before the claim, as three arrays
_MARK_ROWS = _MARK_NEW.format(select=f"""
    SELECT DISTINCT sensor_id, variable, {SLOT_OF.format(time="time")}
    FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS late(sensor_id, variable, time)""")
#: `SLOT_OF`'s origin
_SLOT_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
_TIME, _SENSOR, _VARIABLE, _DEVICE = (MEASUREMENT_COLUMNS.index(c) for c in ("time", "sensor_id", "variable",
                                                                            "device_id"))


class _RacedError(Exception):
    """A concurrent transaction inserted one of our new keys first; retry the batch."""


def _create_staging() -> sql.Composed:
    pairs = zip(MEASUREMENT_COLUMNS, MEASUREMENT_TYPES, strict=True)
    cols = [sql.SQL("ord int4 NOT NULL")] + [
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in pairs]
    return sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
        sql.Identifier(_STAGING), sql.SQL(", ").join(cols))


def _copy_staging() -> sql.Composed:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in ("ord", *MEASUREMENT_COLUMNS))
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(_STAGING), cols)


#: flags earned from when and in which order a reading arrived, not from the reading: ignored when comparing
ARRIVAL_FLAGS = QC.SPIKE | QC.FLATLINE | QC.STALE

_MERGE = sql.SQL("""
WITH staged AS (
    SELECT st.*,
           row_number() OVER w AS rn,
           first_value(st.value) OVER w AS batch_value,
           first_value(st.flags) OVER w AS batch_flags
    FROM {staging} st
    WINDOW w AS (PARTITION BY st.sensor_id, st.device_id, st.variable, st.time ORDER BY st.ord)
), classified AS (
    SELECT s.*,
           m.time IS NOT NULL AS stored,
           CASE WHEN m.time IS NOT NULL THEN m.value ELSE s.batch_value END AS existing_value,
           CASE WHEN m.time IS NOT NULL THEN m.flags ELSE s.batch_flags END AS existing_flags,
           CASE
               WHEN m.time IS NOT NULL AND (s.value, s.flags & ~{arrival}) IS NOT DISTINCT FROM
                                               (m.value, m.flags & ~{arrival})
                   THEN 'duplicate'
               WHEN m.time IS NOT NULL THEN 'conflict'
               WHEN s.rn = 1 THEN 'insert'
               WHEN (s.value, s.flags & ~{arrival}) IS NOT DISTINCT FROM (s.batch_value, s.batch_flags & ~{arrival})
                   THEN 'duplicate'
               ELSE 'conflict'
           END AS outcome
    FROM staged s
    LEFT JOIN measurements m
        ON m.sensor_id = s.sensor_id AND m.device_id = s.device_id AND m.variable = s.variable
       AND m.time = s.time
), inserted AS (
    INSERT INTO measurements ({columns})
    SELECT {columns} FROM classified WHERE outcome = 'insert' ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING 1
), dead AS (
    INSERT INTO dead_letters (source, sensor_id, reason, detail, reading)
    SELECT 'writer', sensor_id, 'conflict',
           format('%s/%s/%s at %s: value %s (flags %s) differs from %s (flags %s) %s; the first is kept',
                  sensor_id, device_id, variable, time, coalesce(value::text, 'NULL'), flags,
                  coalesce(existing_value::text, 'NULL'), existing_flags,
                  CASE WHEN stored THEN 'already stored' ELSE 'earlier in the same batch' END),
           jsonb_build_object(
               'sensor_id', sensor_id, 'device_id', device_id, 'variable', variable, 'time', time,
               'value', value, 'unit', unit, 'flags', flags, 'raw_value', raw_value, 'raw_unit', raw_unit,
               'received_at', received_at, 'existing_value', existing_value, 'existing_flags', existing_flags,
               'existing_in', CASE WHEN stored THEN 'measurements' ELSE 'batch' END)
    FROM classified WHERE outcome = 'conflict' ORDER BY ord
    RETURNING 1
), marked AS ({mark}
    RETURNING 1
)
SELECT (SELECT count(*) FROM classified WHERE outcome = 'insert'),
       (SELECT count(*) FROM inserted),
       (SELECT count(*) FROM classified WHERE outcome = 'duplicate'),
       (SELECT count(*) FROM dead)
""").format(staging=sql.Identifier(_STAGING),
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in MEASUREMENT_COLUMNS),
            arrival=sql.Literal(int(ARRIVAL_FLAGS)),
            mark=sql.SQL(_MARK_NEW.format(select=f"""
    SELECT DISTINCT sensor_id, variable, {SLOT_OF.format(time="time")} FROM classified
    WHERE outcome = 'insert'
      AND time < (SELECT claimed_through FROM job_watermarks WHERE job = 'averages')""")))


class TimescaleWriter:
    """Writes batches of Readings to `measurements` through a psycopg_pool AsyncConnectionPool.

    Args:
        pool: the connection pool; concurrent `write` calls each take a connection of their own.
        fast_path: try the fast path (module docstring, point 2); False always classifies (tests compare both).
    """

    def __init__(self, pool: AsyncConnectionPool[Any], *, fast_path: bool = True) -> None:
        self.pool = pool
        self._fast_path = fast_path
        #: consecutive fast-path misses; from MISSES_IN_A_ROW on, batches are classified until one is all new
        self._misses = 0
        self.stats = WriterStats()

    async def write(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> WriteResult:
        """Store a batch and its letters in one transaction; returns once committed. Exact repeats are no-ops,
        conflicts are dead-lettered (see the module docstring)."""
        if not batch and not letters:
            return WriteResult(0, 0, 0)
        rows = [reading_row(r) for r in batch]  # pure part first: bad rows fail early
        for attempt in range(1, _RACE_RETRIES + 1):
            try:
                async with self.pool.connection() as conn:
                    return await self._write(conn, batch, rows, letters)
            except (_RacedError, errors.DeadlockDetected) as exc:
                if attempt == _RACE_RETRIES:
                    raise RuntimeError(f"measurements: concurrent writers kept taking this batch's keys "
                                       f"({type(exc).__name__}); gave up after {attempt} attempts") from None
        raise AssertionError("unreachable")

    async def _write(self, conn: AsyncConnection[Any], batch: Sequence[Reading], rows: list[Row],
                     letters: Sequence[Letter]) -> WriteResult:
        async with conn.transaction(), conn.cursor() as cur:
            stored = await deadletter.record_letters(conn, letters)
            if not batch:
                return WriteResult(0, 0, 0, stored)
            settle = any(r.delivery is not None for r in batch)  # receipts may change times: rows again after them
            fast = self._fast_path and self._misses < MISSES_IN_A_ROW and (settle or keys_unique(rows))
            # the lock is released at commit and taken before any snapshot that reads measurements (module
            # docstring, point 3); the claim read after it cannot move until then. One round trip, with the fast
            # path's savepoint when it is known to be due.
            await cur.execute(_OPEN_FAST if fast and not settle else _OPEN)
            cur.nextset()
            claim_row = await cur.fetchone()
            claim: datetime | None = claim_row[0] if claim_row else None
            if settle:  # point 4, under the lock like the rows it settles
                batch, receipts = deliveries.settle(batch, await deliveries.load(cur, batch))
                await deliveries.save(cur, receipts)
                rows = [reading_row(r) for r in batch]
                fast = fast and keys_unique(rows)
                if fast:
                    await cur.execute(_SAVEPOINT)
            if fast:
                try:
                    await _copy_new(cur, rows, claim)
                except (errors.UniqueViolation, errors.DeadlockDetected):
                    await cur.execute(_ROLLBACK_TO_SAVEPOINT)  # the rest of the transaction goes on
                    self._misses += 1
                    self.stats.misses += 1
                else:
                    self.stats.fast += 1
                    self._misses = 0
                    return WriteResult(len(rows), 0, 0, stored)
            result = await _classify(cur, rows, stored)
            self.stats.classified += 1
            if result.inserted == len(rows):  # all new: the burst of misses, if any, is over
                self._misses = 0
        return result


@dataclass(slots=True)
class WriterStats:
    """Batches written by the fast path, fast-path misses (then classified), and batches classified in all."""

    fast: int = 0
    misses: int = 0
    classified: int = 0


def keys_unique(rows: Sequence[Row]) -> bool:
    """True when no two rows share a measurement key (sensor_id, device_id, variable, time). Pure."""
    return len({(r[_SENSOR], r[_DEVICE], r[_VARIABLE], r[_TIME]) for r in rows}) == len(rows)


def late_rows(rows: Sequence[Row], claim: datetime | None) -> list[Row]:
    """The rows before the averaging job's claim (they mark their slots late); none without a claim. Pure."""
    if claim is None:
        return []
    return [r for r in rows if cast("datetime", r[_TIME]) < claim]


def late_marks(rows: Sequence[Row], claim: datetime | None) -> list[tuple[str, str, datetime]]:
    """(sensor_id, variable, time) standing for the late-data slots of the rows before `claim`: the earliest and
    the latest time of each (sensor, variable, 15-minute bin), so a batch of hundreds of late rows sends a handful.
    The database bins them again with `SLOT_OF`; the two ends also cover a server whose date_bin rounds times
    before its origin (2000) toward it, where a bin boundary falls in the slot before. Pure."""
    ends: dict[tuple[str, str, int], tuple[datetime, datetime]] = {}
    for r in late_rows(rows, claim):
        t = cast("datetime", r[_TIME])
        key = (cast("str", r[_SENSOR]), cast("str", r[_VARIABLE]), (t - _SLOT_ORIGIN) // LATE_SLOT)
        low, high = ends.get(key, (t, t))
        ends[key] = (min(low, t), max(high, t))
    return [(s, v, t) for (s, v, _), pair in ends.items() for t in sorted(set(pair))]


async def _copy_new(cur: AsyncCursor[Any], rows: Sequence[Row], claim: datetime | None) -> None:
    """Fast path: COPY the rows straight into `measurements` and mark the late ones' slots. Raises UniqueViolation
    when a key is already stored (the caller's savepoint undoes the COPY)."""
    async with cur.copy(_COPY_MEASUREMENTS) as copy:
        copy.set_types(list(MEASUREMENT_TYPES))
        for row in rows:
            await copy.write_row(row)
    marks = late_marks(rows, claim)
    if marks:
        await cur.execute(_MARK_ROWS, ([m[0] for m in marks], [m[1] for m in marks], [m[2] for m in marks]))


async def _classify(cur: AsyncCursor[Any], rows: Sequence[Row], stored: int) -> WriteResult:
    """Full path: stage the rows, classify and store them in one statement (module docstring, point 2)."""
    await cur.execute(_create_staging())
    async with cur.copy(_copy_staging()) as copy:
        copy.set_types(["int4", *MEASUREMENT_TYPES])
        for i, row in enumerate(rows):
            await copy.write_row((i, *row))
    await cur.execute(_MERGE)
    counts = await cur.fetchone()
    assert counts is not None
    expected, inserted, duplicates, conflicts = (int(c) for c in counts)
    if inserted != expected:
        raise _RacedError
    return WriteResult(inserted, duplicates, conflicts, stored)
