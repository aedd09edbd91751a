"""Opening a spool directory: the pending records and the resume point, rebuilt from the files. I/O.

Part of `storage.spool`: `Spool` calls `recover` once, under its lock, before anything else, and keeps the state
it returns. Contract: a leftover `cursor.tmp` is removed; segments before the resume point (consumed: the crash
came between persisting the cursor and deleting the file) are deleted; every record from the resume point on is
checked with `scan_records`, and a torn tail (a crash mid-append) or a corrupt record is truncated (fsync'ed) with
a log line, never replayed as garbage. An unreadable resume point replays from the oldest segment (the writer
ignores exact repeats; skipping would lose data).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from storage.spool import files
from storage.spool.codec import scan_records

__all__ = ["Pending", "Recovered", "read_cursor", "recover"]

log = logging.getLogger("storage.spool")  # the spool's log lines keep one logger name, wherever they come from


@dataclass(slots=True)
class Pending:
    """A record waiting to be replayed: where it sits, its size in bytes and its reading count."""

    segment: int
    offset: int
    size: int
    readings: int


@dataclass(slots=True)
class Recovered:
    """What `recover` found: the resume point (segment, offset), each segment's valid bytes, the pending records."""

    cursor: tuple[int, int]
    sizes: dict[int, int] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)


def read_cursor(directory: Path, segments: list[int]) -> tuple[int, int]:
    """The resume point in `directory/cursor`; the oldest segment's start when there is none or it is unreadable."""
    path = directory / "cursor"
    first = (segments[0], 0) if segments else (0, 0)
    if not path.exists():
        return first
    try:
        doc = json.loads(path.read_text(encoding="ascii"))
        return int(doc["segment"]), int(doc["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        # replaying from the start is safe (the writer ignores exact repeats); skipping would lose data
        log.error("spool %s: unreadable resume point (%s); replaying from the oldest segment", path, exc)
        return first


def recover(directory: Path) -> Recovered:
    """Rebuild the pending list from the files: drop consumed segments, check every pending record from the
    resume point on, truncate a torn or corrupt tail."""
    (directory / "cursor.tmp").unlink(missing_ok=True)
    segments = sorted(int(p.stem) for p in directory.glob(f"*{files.SEGMENT_SUFFIX}") if p.stem.isdigit())
    cur_seg, cur_off = read_cursor(directory, segments)
    found = Recovered((cur_seg, cur_off))
    for seg in segments:
        path = files.segment_path(directory, seg)
        if seg < cur_seg:  # consumed: the crash came between persisting the cursor and deleting the file
            path.unlink()
            continue
        data = path.read_bytes()
        start = cur_off if seg == cur_seg else 0
        if start > len(data):
            log.error("spool %s: resume offset %d is beyond the file's %d bytes; nothing to replay in it",
                      path, start, len(data))
            start = len(data)
        spans, end, why = scan_records(memoryview(data)[start:])
        end += start
        if why is not None:
            tail = seg == segments[-1]
            log.log(logging.WARNING if tail else logging.ERROR,
                    "spool %s: %s at offset %d; truncating %d bytes (%s)", path, why, end, len(data) - end,
                    "a crash during an append: that batch was never acknowledged" if tail
                    else "the records after it in this segment cannot be framed and are lost")
            with open(path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        found.sizes[seg] = end
        found.pending += [Pending(seg, start + span.offset, span.size, span.readings) for span in spans]
    return found
