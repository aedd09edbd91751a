"""Store-and-forward: a `Sink` that writes to TimescaleDB, or to the local spool while the database is unreachable,
and replays the spool in order when it answers again. I/O glue over `storage.writer` and `storage.spool`.

Contract (implements `ingest.pipeline.Sink`: `write` returns once the batch is durable, or raises):
- spool empty: `write` writes the batch to the database. When that fails because the database is unreachable
  (`psycopg.OperationalError`, which includes the pool's `PoolTimeout`, or no answer within `unreachable_after_s`)
  the batch is appended to the spool instead (fsync'ed: durable, so the pipeline acknowledges it). A write that
  timed out may still have committed; replaying it is then a no-op (the writer ignores exact repeats).
- spool not empty: every new batch is appended to the spool too, behind the older ones, so batches reach the
  database in the order they were accepted. Concurrent `write` calls (the pipeline's `ingest.writes_in_flight`)
  write to the database side by side while the spool is empty; batches that share a key are never in flight
  together (`ingest.pipeline`), so their order holds whichever way each goes.
- spool full (its byte limit, or the disk: ENOSPC): `write` raises `SpoolFullError`; the pipeline then retries
  and acknowledges nothing meanwhile (MQTT messages stay with the broker). One ERROR line when that starts, one
  INFO line when a batch is stored again (not one per retry); `stats().spool.full`/`disk_full` meanwhile.
- `replay()` runs as a background task for the daemon's lifetime: it writes the oldest spooled batches to the
  database (consecutive ones joined up to `replay_max_readings`, in order, in one transaction), moves the spool's
  resume point past them once committed, and goes on until the spool is empty; while the database stays
  unreachable it retries every `replay_retry_s`. Any other error (reading the spool, the write, moving the resume point
  on a full disk) is logged with its cause (ERROR once, DEBUG while it repeats, INFO on recovery) and retried
  after `replay_retry_s`: the task never dies of it. A batch whose resume point could not be written stays first and is
  written again, which the writer's idempotent insert makes a no-op.
- `close()` stops the replay between batches (a batch interrupted mid-write, or written as the stop came, is
  replayed at the next start, a no-op then) and closes the spool; a cancelled replay never runs on. Everything
  `write` accepted is already in the database or in the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import psycopg

from ingest.letter import Letter
from ingest.reading import Reading
from storage.spool import Spool, SpoolFullError, SpoolStats

__all__ = ["ForwardingSink", "ForwardingState", "ForwardingStats", "Spooled"]

log = logging.getLogger(__name__)

#: direct: batches go to the database; spooling: the database is unreachable, batches go to the spool;
#: replaying: the database answers again and the spool is being drained (new batches still queue behind it)
ForwardingState = Literal["direct", "spooling", "replaying"]


class _Writer(Protocol):
    async def write(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> object: ...


@dataclass(frozen=True, slots=True)
class Spooled:
    """`write`'s result when the batch went to the spool (durable on local disk, not yet in the database)."""

    readings: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ForwardingStats:
    """State and spool depth, for metrics and `/status`."""

    state: ForwardingState
    state_since: datetime
    spool: SpoolStats
    spooled_batches: int  #: batches appended to the spool since start
    replayed_batches: int  #: spooled batches committed to the database since start
    replayed_readings: int


class ForwardingSink:
    """Database writes with a disk spool while the database is unreachable (see the module docstring)."""

    def __init__(self, writer: _Writer, spool: Spool, *, clock: Callable[[], datetime], replay_retry_s: float = 2.0,
                 unreachable_after_s: float = 10.0, replay_max_readings: int = 5000,
                 on_replayed: Callable[[Sequence[Reading], object, float], None] | None = None) -> None:
        """Args:
            writer: the database writer (`storage.writer.TimescaleWriter`).
            spool: the disk spool, opened (its pending batches are replayed first).
            clock: the wall clock, for `state_since`.
            replay_retry_s: pause between replay attempts while the database stays unreachable.
            unreachable_after_s: a database write without an answer for this long counts as unreachable.
            replay_max_readings: consecutive spooled batches are replayed together, in one transaction, up to
                this many readings (a single larger batch goes alone).
            on_replayed: called with (readings, writer result, seconds) after each replayed batch commits.
        """
        if replay_retry_s <= 0 or unreachable_after_s <= 0:
            raise ValueError(f"ForwardingSink: replay_retry_s and unreachable_after_s must be > 0, got "
                             f"{replay_retry_s}, {unreachable_after_s}")
        self._writer = writer
        self._spool = spool
        self._clock = clock
        self._retry_s = replay_retry_s
        self._timeout_s = unreachable_after_s
        self._replay_max = replay_max_readings
        self._on_replayed = on_replayed
        self._lock = asyncio.Lock()  # one routing decision (database or spool) at a time
        self._wakeup = asyncio.Event()
        self._state: ForwardingState = "direct" if spool.is_empty else "replaying"
        self._since = clock()
        self._spooled = self._replayed = self._replayed_readings = 0
        self._near_full_logged = False
        self._refused = 0  # batches refused since the spool last stored one (a spool-full episode)
        self._replay_error: str | None = None  # the last replay error logged at ERROR, until a batch goes through
        self._replay_task: asyncio.Task[None] | None = None
        self._closed = False
        if not spool.is_empty:
            self._wakeup.set()

    @property
    def state(self) -> ForwardingState:
        return self._state

    async def write(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> object:
        """Store a batch and its letters durably: in the database (the writer's result) or in the spool
        (`Spooled`)."""
        async with self._lock:  # the route is decided once no append is under way
            direct = self._spool.is_empty
        why = ""
        if direct:  # concurrent direct writes run side by side, each on a connection of its own
            try:
                result = await self._write_db(batch, letters)
            except (psycopg.OperationalError, TimeoutError) as exc:
                why = _describe(exc)
            else:
                self._stored_again()
                return result
        async with self._lock:
            if direct:
                self._set_state("spooling", f"database unreachable ({why}); spooling batches to "
                                            f"{self._spool.directory}")
            try:
                size = await asyncio.to_thread(self._spool.append, batch, letters)
            except SpoolFullError as exc:
                self._refused += 1
                if self._refused == 1:
                    log.error("%s; intake stops acknowledging (MQTT messages stay with the broker) until the spool "
                              "stores batches again", exc)
                raise
            self._stored_again()
            self._spooled += 1
            self._wakeup.set()
            self._check_near_full()
            return Spooled(len(batch), size)

    async def replay(self) -> None:
        """Drain the spool into the database, in order, whenever it holds batches; runs until cancelled."""
        self._replay_task = asyncio.current_task()
        if self._closed:  # closed before this task first ran
            return
        if not self._spool.is_empty:  # a replay restarted by the daemon's supervisor starts with what is pending
            self._wakeup.set()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()  # before peeking: an append from now on sets it again
            while True:
                try:
                    if not await self._replay_head():
                        break
                except Exception as exc:  # peek, the write or commit: keep the batch, say why, retry
                    self._replay_failed(exc)
                    await asyncio.sleep(self._retry_s)
            if self._state != "direct":
                async with self._lock:  # no batch is being routed while the state flips back
                    if self._spool.is_empty:
                        self._set_state("direct", f"spool replayed ({self._replayed_readings} readings since "
                                                  "start); writing to the database directly")

    async def _replay_head(self) -> bool:
        """Replay the oldest spooled batches once; False when the spool is empty. Errors other than the database
        being unreachable propagate (the caller logs and retries)."""
        head = await asyncio.to_thread(self._spool.peek, self._replay_max)
        if head is None:
            return False
        _honour_lost_cancel()
        started = time.perf_counter()
        try:
            result = await self._write_db(head.readings, head.letters)
        except (psycopg.OperationalError, TimeoutError) as exc:
            self._set_state("spooling", f"database unreachable ({_describe(exc)}); {self._depth()}")
            await asyncio.sleep(self._retry_s)
            return True
        _honour_lost_cancel()  # a cancelled replay never moves the spool past what it wrote
        await asyncio.to_thread(self._spool.commit, head)
        if self._replay_error is not None:
            log.info("spool %s: replay goes on again after: %s", self._spool.directory, self._replay_error)
            self._replay_error = None
        self._replayed += head.records
        self._replayed_readings += len(head.readings)
        self._set_state("replaying", f"database reachable; replaying the spool ({self._depth()})")
        if self._on_replayed is not None:
            self._on_replayed(head.readings, result, time.perf_counter() - started)
        self._check_near_full()
        return True

    def _replay_failed(self, exc: Exception) -> None:
        why = _describe(exc)
        if exc.__cause__ is not None and str(exc.__cause__) not in why:
            why += f" (cause: {_describe(exc.__cause__)})"
        level = logging.DEBUG if why == self._replay_error else logging.ERROR
        log.log(level, "spool %s: replaying the oldest batch failed: %s; %s kept, retry in %.1f s",
                self._spool.directory, why, self._depth(), self._retry_s, exc_info=level == logging.ERROR)
        self._replay_error = why

    def _stored_again(self) -> None:
        if self._refused:
            log.info("spool %s stores batches again (%d batches refused meanwhile); intake acknowledging again",
                     self._spool.directory, self._refused)
            self._refused = 0

    def stats(self) -> ForwardingStats:
        """State and spool depth (bytes, batches, readings), for metrics."""
        return ForwardingStats(self._state, self._since, self._spool.stats(), self._spooled, self._replayed,
                               self._replayed_readings)

    async def close(self) -> None:
        """Stop replaying (between batches or mid-write: that batch is replayed at the next start), close the
        spool. Call after the pipeline has flushed its last batch through `write`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.sleep(0)  # a replay task created but not started yet runs its first step: it sees _closed
        task = self._replay_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._lock:
            stats = self._spool.stats()
            if stats.pending_batches:
                log.info("spool %s: %d batches (%d readings) kept on disk for the next start",
                         self._spool.directory, stats.pending_batches, stats.pending_readings)
            await asyncio.to_thread(self._spool.close)

    # ----------------------------------------------------------------------------------- internals

    async def _write_db(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> object:
        """The writer's write, bounded by `unreachable_after_s` (TimeoutError).

        `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11 `wait_for` returns the result of an operation
        that completes as a cancel arrives and drops the cancel, so `close()` (which cancels the replay and
        awaits it) could wait forever. `timeout` runs the write in this task, where the cancel lands.
        """
        async with asyncio.timeout(self._timeout_s):
            return await self._writer.write(batch, letters)

    def _set_state(self, state: ForwardingState, why: str) -> None:
        if state == self._state:
            return
        log.log(logging.ERROR if state == "spooling" else logging.INFO, "store-and-forward: %s → %s: %s",
                self._state, state, why)
        self._state = state
        self._since = self._clock()

    def _depth(self) -> str:
        s = self._spool.stats()
        return f"{s.pending_batches} batches, {s.pending_readings} readings, {s.pending_bytes} bytes waiting"

    def _check_near_full(self) -> None:
        s = self._spool.stats()
        if s.near_full and not self._near_full_logged:
            log.warning("spool %s near full: %d of %d bytes (%.0f %%); when full, intake stops acknowledging",
                        self._spool.directory, s.disk_bytes, s.max_bytes, 100 * s.disk_bytes / s.max_bytes)
        elif not s.near_full and self._near_full_logged:
            log.info("spool %s below the near-full mark again: %d of %d bytes", self._spool.directory,
                     s.disk_bytes, s.max_bytes)
        self._near_full_logged = s.near_full


def _honour_lost_cancel() -> None:
    """Raise CancelledError when this task was cancelled but the cancel never reached it: a library under the
    writer may still drop one that lands as its wait completes (psycopg_pool waits for a connection with
    `asyncio.wait_for`). Such a cancel stays counted in `Task.cancelling()`; `asyncio.timeout` uncounts its own."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError(f"{task.get_name()}: cancelled while a database write completed")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

