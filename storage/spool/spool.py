"""The store-and-forward spool: batches of Readings kept on local disk while TimescaleDB is unreachable. I/O.

Contract:
- `append(batch)` returns only after the batch is in a segment file and `fdatasync`'ed: a spooled batch is
  durable, so the pipeline may acknowledge its messages. Batches are replayed in append order.
- Layout under `directory`: segment files `<index>.seg` (appended to until they reach `segment_bytes`, then a
  new one starts), the resume point `cursor` (JSON `{"segment", "offset"}`, replaced atomically: written to
  `cursor.tmp`, fsync'ed, renamed, directory fsync'ed), `reserve` (see below) and `lock` (an exclusive `flock`:
  one spool, one process).
- Records and their payload are framed and encoded by `storage.spool.codec` (pure); the file primitives (appends,
  the cursor file, the reserve) are `storage.spool.files`. At open (`storage.spool.recover`) every pending record
  is checked: a torn tail (a crash mid-append) or a corrupt record is truncated with a log line, never replayed
  as garbage.
- `peek()` returns the oldest pending batch; `commit(batch)` moves the resume point past it (after the batch
  is committed to the database). A crash between the two replays that batch once more, which the writer's
  idempotent insert turns into a no-op; otherwise the resume point is exact. Consumed segments are deleted.
- `max_bytes` bounds the segment files on disk: an append that would exceed it raises `SpoolFullError`.
- A full disk (ENOSPC, EDQUOT) at any write is survived. A failed append raises `SpoolFullError` and leaves no
  byte behind (the segment is truncated back; should that fail too, it is truncated before the next append or
  roll-over, and never written past); memory only counts what is fdatasync'ed. A failed cursor write raises
  `SpoolError` and changes nothing: the batch stays pending, in memory and on disk, and is replayed again.
  `reserve` (`RESERVE_BYTES`, allocated when there is room) is released to write the cursor on a full disk, so
  the replay can always move on and delete consumed segments, even when the spool itself filled the disk.

Thread-safe (one lock): the forwarding sink calls it through `asyncio.to_thread` so fsync never blocks the loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.letter import Letter
from ingest.reading import Reading
from storage.spool import files
from storage.spool.codec import HEADER as _HEADER
from storage.spool.codec import BatchCodec, frame_record, scan_records
from storage.spool.recover import Pending, recover

__all__ = ["Spool", "SpoolError", "SpoolFullError", "SpoolStats", "SpooledBatch"]

log = logging.getLogger("storage.spool")  # the spool's log lines keep one logger name, wherever they come from


class SpoolError(RuntimeError):
    """The spool directory cannot be used (locked by another process, unreadable)."""


class SpoolFullError(SpoolError):
    """An append would take the spool above its byte limit (or the disk is full); the batch was not spooled."""

    def __init__(self, directory: Path, disk_bytes: int, record_bytes: int, max_bytes: int,
                 detail: str | None = None) -> None:
        self.directory, self.disk_bytes, self.record_bytes, self.max_bytes = (directory, disk_bytes, record_bytes,
                                                                              max_bytes)
        if detail is not None:
            what = f"a batch of {record_bytes} bytes could not be written ({detail})"
            hint = "free disk space; it empties as the database comes back"
        else:
            what = f"full ({disk_bytes} of {max_bytes} bytes used, a batch of {record_bytes} bytes does not fit)"
            hint = ("this batch alone is larger than the limit: raise storage.spool_max_bytes"
                    if record_bytes > max_bytes else "it empties as the database comes back")
        super().__init__(f"spool {directory}: {what}; batch not spooled, {hint}")


# ------------------------------------------------------------------------------------------------ spool


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """The oldest pending batch, and where it sits (what `Spool.commit` needs to move past it)."""

    readings: tuple[Reading, ...]
    segment: int  #: where the first of its records sits
    offset: int
    size: int  #: bytes of its records
    records: int = 1  #: spooled batches joined in it
    letters: tuple[Letter, ...] = ()  #: the dead letters spooled with them


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """Depth of the spool (pending = not yet replayed) and its disk use against the limit."""

    pending_bytes: int
    pending_batches: int
    pending_readings: int
    disk_bytes: int  #: segment files on disk (consumed records count until their segment is deleted)
    max_bytes: int
    near_full: bool
    full: bool
    disk_full: bool = False  #: the last append failed for lack of disk space (not the byte limit)


class Spool:
    """An append-only, fsync'ed, bounded spool of Reading batches in `directory` (see the module docstring)."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int | None = None,
                 near_full_fraction: float = 0.8) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool {directory}: max_bytes must be > 0, got {max_bytes}")
        if not 0 < near_full_fraction <= 1:
            raise ValueError(f"spool {directory}: near_full_fraction must be in (0, 1], got {near_full_fraction}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        #: a segment is closed once it holds this many bytes; consumed segments are deleted whole
        self.segment_bytes = segment_bytes or max(4096, min(16 << 20, max_bytes // 16))
        self.near_full_fraction = near_full_fraction
        self._codec = BatchCodec()
        self._lock = threading.Lock()
        self._pending: deque[Pending] = deque()
        self._pending_bytes = 0
        self._pending_readings = 0
        self._sizes: dict[int, int] = {}  # segment index → bytes on disk
        self._disk = 0  # sum of _sizes
        self._cursor = (0, 0)
        self._refused = False  # the last append was refused for lack of space, nothing freed since
        self._disk_full = False  # the last append failed with ENOSPC/EDQUOT, no append succeeded nor segment freed
        self._tail_fd: int | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolError(f"spool {self.directory}: locked by another process (another aqnet daemon on "
                             "the same storage.spool_dir?)") from None
        try:
            with self._lock:
                self._recover()
                self._ensure_reserve()
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------------------------- public surface

    def append(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> int:
        """Spool a batch and its letters durably (fdatasync'ed before returning); returns the record's size in bytes.
        Raises SpoolFullError when it would take the segment files above `max_bytes`."""
        record = frame_record(self._codec.encode(batch, letters), len(batch))
        with self._lock:
            if self._lock_fd < 0:
                raise SpoolError(f"spool {self.directory}: closed")
            if self._disk + len(record) > self.max_bytes:
                self._refused = True
                raise SpoolFullError(self.directory, self._disk, len(record), self.max_bytes)
            try:
                segment, fd = self._tail_for_append()
                start = self._sizes[segment]
                files.write_record(fd, start, record)
            except OSError as exc:
                if exc.errno in files.DISK_FULL:
                    self._refused = self._disk_full = True
                    raise SpoolFullError(self.directory, self._disk, len(record), self.max_bytes,
                                         detail=os.strerror(exc.errno)) from exc
                raise
            self._refused = self._disk_full = False
            self._sizes[segment] = start + len(record)
            self._disk += len(record)
            self._pending.append(Pending(segment, start, len(record), len(batch)))
            self._pending_bytes += len(record)
            self._pending_readings += len(batch)
            return len(record)

    def peek(self, max_readings: int = 0) -> SpooledBatch | None:
        """The oldest pending batch, or None when the spool is empty; with `max_readings`, the oldest consecutive
        batches joined while they hold at most that many readings (always at least one batch). A record that fails
        its checksum or cannot be decoded now is copied aside to `rejected-<segment>-<offset>.rec` and skipped,
        with a log line."""
        with self._lock:
            readings: list[Reading] = []
            letters: list[Letter] = []
            taken: list[Pending] = []
            for entry in list(self._pending):
                if taken and len(readings) + entry.readings > max_readings:
                    break
                decoded = self._read(entry)
                if decoded is None:
                    if taken:
                        break  # hand over what was read; this record is set aside when it becomes the head
                    self._advance(1)
                    continue
                readings += decoded[0]
                letters += decoded[1]
                taken.append(entry)
            if not taken:
                return None
            return SpooledBatch(tuple(readings), taken[0].segment, taken[0].offset, sum(e.size for e in taken),
                                len(taken), tuple(letters))

    def commit(self, batch: SpooledBatch) -> None:
        """Move the resume point past `batch` (as `peek` returned it: the head) and persist it (fsync'ed)."""
        with self._lock:
            head = self._pending[0] if self._pending else None
            if head is None or (head.segment, head.offset) != (batch.segment, batch.offset):
                raise ValueError(f"spool {self.directory}: commit of segment {batch.segment} offset "
                                 f"{batch.offset}, but the head is {head}: commit only what peek returned")
            self._advance(batch.records)

    @property
    def is_empty(self) -> bool:
        """True when nothing waits to be replayed."""
        return not self._pending

    @property
    def is_near_full(self) -> bool:
        """Disk use at or above `near_full_fraction` of the limit (the alarm threshold)."""
        return self._disk >= self.near_full_fraction * self.max_bytes

    @property
    def is_full(self) -> bool:
        """The limit is reached, or the last append was refused (no room, or disk full)."""
        return self._refused or self._disk_full or self._disk >= self.max_bytes

    @property
    def is_disk_full(self) -> bool:
        """The last append failed for lack of disk space (ENOSPC/EDQUOT), and no segment was freed since."""
        return self._disk_full

    def stats(self) -> SpoolStats:
        """Depth (pending bytes/batches/readings) and disk use, for metrics and `/status`."""
        with self._lock:
            return SpoolStats(pending_bytes=self._pending_bytes, pending_batches=len(self._pending),
                              pending_readings=self._pending_readings, disk_bytes=self._disk,
                              max_bytes=self.max_bytes, near_full=self.is_near_full, full=self.is_full,
                              disk_full=self._disk_full)

    def close(self) -> None:
        """Close the files and release the directory lock (everything appended is already durable)."""
        with self._lock:
            if self._tail_fd is not None:
                os.close(self._tail_fd)
                self._tail_fd = None
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    # ----------------------------------------------------------------------------------- internals

    def _segment_path(self, index: int) -> Path:
        return files.segment_path(self.directory, index)

    def _tail_for_append(self) -> tuple[int, int]:
        """The segment the next record goes to and its open descriptor; starts a new segment when the tail is
        full. Raises OSError with nothing changed (a new segment that could not be made durable is removed)."""
        tail = max(self._sizes) if self._sizes else None
        if tail is None or self._sizes[tail] >= self.segment_bytes:
            if tail is not None and self._tail_fd is not None:  # what a failed append left behind goes first
                files.truncate_to(self._tail_fd, self._sizes[tail])
            new = max(self._cursor[0], tail + 1 if tail is not None else 0)
            path = self._segment_path(new)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                files.fsync_dir(self.directory)  # the new file's directory entry is durable before its first record
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    path.unlink()
                raise
            if self._tail_fd is not None:
                os.close(self._tail_fd)
            self._tail_fd = fd
            self._sizes[new] = 0
            return new, fd
        if self._tail_fd is None:
            self._tail_fd = os.open(self._segment_path(tail), os.O_WRONLY | os.O_APPEND)
        return tail, self._tail_fd

    def _read(self, entry: Pending) -> tuple[list[Reading], list[Letter]] | None:
        """The readings of a pending record, or None (copied aside, logged) when it is damaged or undecodable."""
        path = self._segment_path(entry.segment)
        with open(path, "rb") as f:
            f.seek(entry.offset)
            data = f.read(entry.size)
        spans, _, why = scan_records(data)
        where = f"spool {path} offset {entry.offset}"
        if spans and why is None:
            try:
                return self._codec.decode_record(data[_HEADER.size:], where)
            except (ValueError, TypeError, KeyError) as exc:
                why = f"undecodable: {exc}"
        aside = self.directory / f"rejected-{entry.segment}-{entry.offset}.rec"
        try:
            aside.write_bytes(data)
        except OSError as exc:  # a full disk must not stop the replay behind a record nobody can read
            with contextlib.suppress(OSError):
                aside.unlink()
            log.error("%s: batch of %d readings unreadable (%s); skipped, not copied aside (%s: %s)", where,
                      entry.readings, why, aside, exc.strerror or exc)
            return None
        log.error("%s: batch of %d readings unreadable (%s); copied to %s and skipped", where, entry.readings, why,
                  aside)
        return None

    def _advance(self, records: int) -> None:
        """Drop the first `records` pending records: persist the new resume point, then delete the segments it
        left behind. Raises SpoolError, with nothing changed, when the resume point cannot be written."""
        last = self._pending[records - 1]
        nxt = self._pending[records] if len(self._pending) > records else None
        # empty afterwards: the next append starts a new segment, and every file can go
        cursor = (max(self._sizes, default=last.segment) + 1, 0) if nxt is None else (nxt.segment, nxt.offset)
        self._write_cursor(cursor)  # first: memory never runs ahead of the disk
        for _ in range(records):
            head = self._pending.popleft()
            self._pending_bytes -= head.size
            self._pending_readings -= head.readings
        self._refused = False
        self._drop_segments_below(cursor[0])

    def _drop_segments_below(self, index: int) -> None:
        tail = max(self._sizes, default=None)
        freed = False
        for seg in sorted(s for s in self._sizes if s < index):
            if seg == tail and self._tail_fd is not None:
                os.close(self._tail_fd)
                self._tail_fd = None
            try:
                self._segment_path(seg).unlink(missing_ok=True)
            except OSError as exc:  # consumed all the same (the cursor is past it): the next open removes it
                log.error("spool %s: cannot delete consumed segment %d (%s); retried later", self.directory, seg,
                          exc.strerror or exc)
                continue
            self._disk -= self._sizes.pop(seg)
            freed = True
        if freed:
            self._disk_full = False  # room again, perhaps: the next append finds out
            self._ensure_reserve()

    def _write_cursor(self, cursor: tuple[int, int]) -> None:
        """Persist the resume point atomically; on a full disk the reserve is released for it. Raises SpoolError
        (the old resume point stays in force, nothing else changed) when it cannot be written."""
        try:
            try:
                files.put_cursor(self.directory, cursor)
            except OSError as exc:
                if exc.errno not in files.DISK_FULL or not files.release_reserve(self.directory):
                    raise
                log.warning("spool %s: disk full; released the %d-byte reserve to write the resume point",
                            self.directory, files.RESERVE_BYTES)
                files.put_cursor(self.directory, cursor)
        except OSError as exc:
            raise SpoolError(f"spool {self.directory}: the resume point could not be written "
                             f"({exc.strerror or exc}); the batch stays pending and is replayed again") from exc
        self._cursor = cursor

    def _ensure_reserve(self) -> None:
        why = files.ensure_reserve(self.directory)
        if why is not None:  # a full disk: the next freed segment tries again
            log.debug("spool %s: no room for the %d-byte reserve yet (%s)", self.directory, files.RESERVE_BYTES, why)

    def _recover(self) -> None:
        """Take the pending records and the resume point from the files (`recover`), then move the resume point
        past what the scan dropped and delete segments left wholly consumed."""
        found = recover(self.directory)
        self._cursor = found.cursor
        self._sizes = found.sizes
        self._disk = sum(found.sizes.values())
        for entry in found.pending:
            self._pending.append(entry)
            self._pending_bytes += entry.size
            self._pending_readings += entry.readings
        if self._pending:
            head = self._pending[0]
            if (head.segment, head.offset) != self._cursor:
                self._try_write_cursor((head.segment, head.offset))
            log.info("spool %s: %d batches (%d readings) waiting to be replayed", self.directory,
                     len(self._pending), self._pending_readings)
        elif self._sizes and self._try_write_cursor((max(self._sizes) + 1, 0)):
            self._drop_segments_below(self._cursor[0])

    def _try_write_cursor(self, cursor: tuple[int, int]) -> bool:
        """At open: move the resume point past what the scan dropped, when the disk lets us (the old one only
        makes the next open scan the same bytes again)."""
        try:
            self._write_cursor(cursor)
        except SpoolError as exc:
            log.warning("%s; kept the old one at open", exc)
            return False
        return True
