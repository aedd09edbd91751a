"""storage/spool/spool.py on a full disk: an OSError(ENOSPC) injected at each write site (segment append, its fdatasync,
the truncation that undoes it, new segment creation, the cursor's temporary file, its fsync, its rename, the
directory fsync). What the spool holds is never lost, its memory never runs ahead of its files, and it is usable
(and reopenable) afterwards. The end-to-end version on a real full filesystem is tests/e2e/test_spool_disk_full.py.
"""

from __future__ import annotations

import builtins
import errno
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import storage.spool.files
from ingest.reading import Reading
from storage.spool import RESERVE_BYTES, Spool, SpoolError, SpoolFullError
from tests.storage.spool.test_spool import batch, drain, segments


def enospc(*_: object, **__: object) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@contextmanager
def failing(monkeypatch: pytest.MonkeyPatch, site: str) -> Iterator[None]:
    """While inside, the write at `site` fails with ENOSPC (every other call goes through)."""
    real_open, real_os_open = builtins.open, os.open
    with monkeypatch.context() as m:
        if site == "segment-write":
            m.setattr(os, "write", enospc)
        elif site == "segment-write-partial":  # half the record reaches the file, then the disk is full
            real_write = os.write

            def partial(fd: int, data: bytes | memoryview) -> int:
                if len(data) > 20:
                    return real_write(fd, bytes(data[:20]))
                return enospc()
            m.setattr(os, "write", partial)
        elif site == "segment-write-partial-no-truncate":  # ... and undoing it fails as well
            real_write = os.write

            def partial_once(fd: int, data: bytes | memoryview) -> int:
                if len(data) > 20:
                    return real_write(fd, bytes(data[:20]))
                return enospc()
            m.setattr(os, "write", partial_once)
            m.setattr(os, "ftruncate", lambda fd, n: enospc())
        elif site == "segment-fdatasync":
            m.setattr(os, "fdatasync", enospc)
        elif site == "segment-create":
            m.setattr(os, "open", lambda path, flags, *a, **kw: enospc() if str(path).endswith(".seg") and
                      flags & os.O_CREAT else real_os_open(path, flags, *a, **kw))
        elif site in ("segment-create-dirsync", "cursor-dirsync"):  # the directory entry of a new file
            m.setattr(storage.spool.files, "fsync_dir", enospc)
        elif site == "cursor-open":
            m.setattr(builtins, "open", lambda path, *a, **kw: enospc() if str(path).endswith("cursor.tmp")
                      else real_open(path, *a, **kw))
        elif site == "cursor-fsync":
            m.setattr(os, "fsync", enospc)
        elif site == "cursor-rename":
            m.setattr(os, "replace", enospc)
        else:
            raise AssertionError(site)
        yield


APPEND_SITES = ["segment-write", "segment-write-partial", "segment-write-partial-no-truncate", "segment-fdatasync",
                "segment-create", "segment-create-dirsync"]
CURSOR_SITES = ["cursor-open", "cursor-fsync", "cursor-rename", "cursor-dirsync"]


def reopened(directory: Path) -> list[list[Reading]]:
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=300)
    try:
        return drain(spool)
    finally:
        spool.close()


@pytest.mark.parametrize("site", APPEND_SITES)
def test_failed_append_loses_nothing_and_leaves_the_spool_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 site: str) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)  # a batch of 2 fills a segment: each append
    spool.append(batch(2))                                          # after the first starts a new one
    before = spool.stats()
    with failing(monkeypatch, site), pytest.raises(SpoolFullError, match="No space left on device"):
        spool.append(batch(2, start=10))
    assert spool.is_full and spool.stats().full
    after = spool.stats()
    assert (after.pending_batches, after.pending_readings, after.disk_bytes) == (
        before.pending_batches, before.pending_readings, before.disk_bytes), "memory ran ahead of the files"
    spool.append(batch(2, start=20))  # space is back: the spool goes on by itself
    assert not spool.is_full
    spool.append(batch(2, start=30))
    spool.close()
    assert reopened(tmp_path) == [batch(2), batch(2, start=20), batch(2, start=30)]


@pytest.mark.parametrize("site", [s for s in APPEND_SITES if not s.startswith("segment-create")])
def test_failed_append_into_the_same_segment_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           site: str) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)  # one large segment: the append goes to the open tail
    spool.append(batch(2))
    with failing(monkeypatch, site), pytest.raises(SpoolFullError):
        spool.append(batch(2, start=10))
    spool.append(batch(2, start=20))
    assert drain(spool) == [batch(2), batch(2, start=20)]
    spool.append(batch(2, start=30))
    spool.close()
    assert reopened(tmp_path) == [batch(2, start=30)]


def test_first_append_that_cannot_create_a_segment_leaves_an_empty_spool(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    with failing(monkeypatch, "segment-create"), pytest.raises(SpoolFullError):
        spool.append(batch(2))
    assert spool.is_empty and spool.stats().disk_bytes == 0
    spool.append(batch(2, start=10))
    spool.close()
    assert reopened(tmp_path) == [batch(2, start=10)]


@pytest.mark.parametrize("site", CURSOR_SITES)
@pytest.mark.parametrize("last", [False, True], ids=["more-pending", "last-pending"])
def test_failed_cursor_write_keeps_the_batch_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: str,
                                                     last: bool) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    spool.append(batch(2))
    if not last:
        spool.append(batch(2, start=10))
    head = spool.peek()
    assert head is not None
    before = spool.stats()
    with failing(monkeypatch, site), pytest.raises(SpoolError, match="resume point"):
        spool.commit(head)
    assert spool.stats() == before, "memory ran ahead of the cursor on disk"
    assert not (tmp_path / "cursor.tmp").exists()
    again = spool.peek()  # the same batch: replayed once more (the writer's idempotent insert makes it a no-op)
    assert again == head
    spool.commit(again)  # the disk has room again
    assert drain(spool) == ([] if last else [batch(2, start=10)])
    spool.append(batch(2, start=20))
    spool.close()
    assert reopened(tmp_path) == [batch(2, start=20)]


@pytest.mark.parametrize("site", CURSOR_SITES)
def test_crash_after_a_failed_cursor_write_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         site: str) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    spool.append(batch(2))
    spool.append(batch(2, start=10))
    head = spool.peek()
    assert head is not None
    with failing(monkeypatch, site), pytest.raises(SpoolError):
        spool.commit(head)
    spool.close()  # the process stops here
    replayed = reopened(tmp_path)
    # the head is replayed again (a no-op in the database) unless its new resume point had reached the disk
    assert replayed in ([batch(2), batch(2, start=10)], [batch(2, start=10)])


def test_open_on_a_full_disk_still_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    spool.append(batch(2))
    spool.append(batch(2, start=10))
    spool.close()
    (tmp_path / "cursor").unlink(missing_ok=True)
    first = segments(tmp_path)[0]
    with first.open("r+b") as f:  # the first record is damaged: the resume point moves past it at open
        f.seek(20)
        f.write(b"\xff")
    with failing(monkeypatch, "cursor-rename"), caplog.at_level(logging.WARNING, logger="storage.spool"):
        spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    assert "resume point" in caplog.text
    assert drain(spool) == [batch(2, start=10)]
    spool.close()


def test_peek_and_commit_on_a_full_disk_after_a_refused_append(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    for k in range(3):
        spool.append(batch(2, start=10 * k))
    with failing(monkeypatch, "segment-write-partial"), pytest.raises(SpoolFullError):
        spool.append(batch(2, start=90))
    got: list[list[Reading]] = []
    while (head := spool.peek()) is not None:  # the replay drains while the disk stays full
        got.append(list(head.readings))
        spool.commit(head)
    assert got == [batch(2, start=10 * k) for k in range(3)]
    assert segments(tmp_path) == []
    spool.close()


def test_cursor_write_on_a_full_disk_uses_the_reserve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    reserve = tmp_path / "reserve"
    assert reserve.stat().st_size == RESERVE_BYTES
    for k in range(3):
        spool.append(batch(2, start=10 * k))
    real_replace = os.replace

    def full_unless_reserve_released(src: Any, dst: Any) -> None:  # the disk is full while the reserve exists
        if reserve.exists():
            enospc()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_unless_reserve_released)
    head = spool.peek()
    assert head is not None
    with caplog.at_level(logging.WARNING, logger="storage.spool"):
        spool.commit(head)  # the spool filled the disk itself; the replay still moves on
    assert "released the 16384-byte reserve" in caplog.text
    assert spool.stats().pending_batches == 2
    assert reserve.stat().st_size == RESERVE_BYTES, "a freed segment makes room for the reserve again"
    monkeypatch.undo()
    spool.close()
    assert reopened(tmp_path) == [batch(2, start=10), batch(2, start=20)]
