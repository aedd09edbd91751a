"""The spool's file primitives: segment appends that leave no partial record, the atomic cursor file, the reserve
that keeps room for it on a full disk, directory fsync. I/O, stateless: `storage.spool` keeps the state and calls
these under its lock. Every function raises OSError with nothing half-done (a partial write is cut back, a
temporary cursor file removed), so the caller's state can stay as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

__all__ = ["DISK_FULL", "RESERVE_BYTES", "SEGMENT_SUFFIX", "ensure_reserve", "fsync_dir", "put_cursor",
           "release_reserve", "segment_path", "truncate_to", "write_record"]

SEGMENT_SUFFIX = ".seg"
#: the errors that mean "no room": the spool reports them as full (SpoolFullError), not as failures
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: room kept in the file `reserve` for writing the cursor on a full disk (a few cursor files' blocks)
RESERVE_BYTES = 16 << 10


def segment_path(directory: Path, index: int) -> Path:
    """The file of segment `index`."""
    return directory / f"{index:016d}{SEGMENT_SUFFIX}"


def write_record(fd: int, start: int, record: bytes) -> None:
    """Append `record` to the segment open on `fd` (O_APPEND) whose valid data ends at `start`, and fdatasync it.
    On an error the segment is cut back to `start` (and the error raised): no partial record stays in front of a
    later append."""
    truncate_to(fd, start)  # a failed append whose own cut failed too left bytes behind
    try:
        view = memoryview(record)
        while view:
            view = view[os.write(fd, view):]
        os.fdatasync(fd)
    except OSError:
        with contextlib.suppress(OSError):  # if this fails too, the next append (or roll-over) cuts first
            os.ftruncate(fd, start)
        raise


def truncate_to(fd: int, size: int) -> None:
    if os.fstat(fd).st_size != size:
        os.ftruncate(fd, size)
        os.fdatasync(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def put_cursor(directory: Path, cursor: tuple[int, int]) -> None:
    """Replace `directory/cursor` atomically with (segment, offset): a temporary file, fsync'ed, renamed, the
    directory fsync'ed. On an error the temporary file is removed and the old cursor stays in force."""
    tmp = directory / "cursor.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            json.dump({"segment": cursor[0], "offset": cursor[1]}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / "cursor")
        fsync_dir(directory)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def ensure_reserve(directory: Path) -> str | None:
    """Allocate `directory/reserve` when it is missing and there is room; None when it is there, else why not
    (a partial one is removed)."""
    path = directory / "reserve"
    try:
        if path.exists() and path.stat().st_size >= RESERVE_BYTES:
            return None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return str(exc.strerror or exc)
    return None


def release_reserve(directory: Path) -> bool:
    """Delete the reserve (its room goes to the cursor write that follows); False when there was none."""
    try:
        (directory / "reserve").unlink()
    except OSError:
        return False
    return True
