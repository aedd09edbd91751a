"""storage/spool/spool.py (and spool/recover.py): the spool on a temporary directory (append, replay in order,
exact resume after a crash, torn and corrupt tails, the byte limit, the lock)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.reading import Reading
from storage.spool import Spool, SpooledBatch, SpoolError, SpoolFullError
from storage.spool.codec import BatchCodec, frame_record
from tests.storage.spool.test_codec import reading


def batch(n: int, start: int = 0) -> list[Reading]:
    return [reading(start + i) for i in range(n)]


def drain(spool: Spool) -> list[list[Reading]]:
    out = []
    while (head := spool.peek()) is not None:
        out.append(list(head.readings))
        spool.commit(head)
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


# --------------------------------------------------------------------------------------------- spool


def test_append_then_replay_in_order_and_files_are_reclaimed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    assert spool.is_empty and spool.peek() is None
    for k in range(5):
        spool.append(batch(3, start=10 * k))
    stats = spool.stats()
    assert (stats.pending_batches, stats.pending_readings) == (5, 15) and stats.pending_bytes == stats.disk_bytes > 0
    assert drain(spool) == [batch(3, start=10 * k) for k in range(5)]
    assert spool.is_empty and spool.stats().disk_bytes == 0 and segments(tmp_path) == []
    spool.append(batch(1, start=99))  # and it carries on after emptying
    assert drain(spool) == [batch(1, start=99)]
    spool.close()


def test_peek_joins_consecutive_batches_up_to_max_readings(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)  # joins span segments too
    for k in range(5):
        spool.append(batch(3, start=10 * k))
    head = spool.peek(max_readings=7)
    assert head is not None and head.records == 2 and list(head.readings) == batch(3) + batch(3, start=10)
    spool.commit(head)
    big = spool.peek(max_readings=2)  # one batch goes alone even when it is larger than the limit
    assert big is not None and big.records == 1 and list(big.readings) == batch(3, start=20)
    spool.commit(big)
    rest = spool.peek(max_readings=100)
    assert rest is not None and rest.records == 2
    spool.commit(rest)
    assert spool.is_empty and segments(tmp_path) == []
    spool.close()


def test_appends_are_durable_across_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(batch(2))
    spool.append(batch(2, start=5))
    spool.close()  # as after a crash: nothing is buffered in memory
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert again.stats().pending_batches == 2
    assert drain(again) == [batch(2), batch(2, start=5)]
    again.close()


def test_resume_point_is_exact_after_a_crash_mid_replay(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=600)  # several segments
    for k in range(12):
        spool.append(batch(2, start=10 * k))
    assert len(segments(tmp_path)) > 2
    for k in range(5):  # five batches replayed and committed
        head = spool.peek()
        assert head is not None and list(head.readings) == batch(2, start=10 * k)
        spool.commit(head)
    assert spool.peek() is not None  # the sixth is being written to the database when the process dies
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=600)
    assert drain(reopened) == [batch(2, start=10 * k) for k in range(5, 12)]  # no loss, no repeat
    reopened.close()


def test_reopen_deletes_a_consumed_segment_left_by_a_crash(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=100)  # one batch per segment
    for k in range(3):
        spool.append(batch(1, start=k))
    first = segments(tmp_path)[0]
    kept = first.read_bytes()
    head = spool.peek()
    assert head is not None
    spool.commit(head)
    spool.close()
    first.write_bytes(kept)  # the crash came after the cursor moved on, before the segment was deleted
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=100)
    assert not first.exists()
    assert drain(reopened) == [batch(1, start=1), batch(1, start=2)]
    reopened.close()


@pytest.mark.parametrize("cut", [1, 5, 11, 12, 40])
def test_torn_tail_is_truncated_with_a_log_line(tmp_path: Path, cut: int, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(batch(2))
    spool.append(batch(2, start=5))
    spool.close()
    (seg,) = segments(tmp_path)
    good = seg.stat().st_size
    with seg.open("ab") as f:  # a crash in the middle of the third append
        f.write(frame_record(BatchCodec().encode(batch(3, start=9)), 3)[:cut])
    with caplog.at_level(logging.WARNING, logger="storage.spool"):
        reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert seg.stat().st_size == good
    assert "truncating" in caplog.text and str(seg) in caplog.text
    reopened.append(batch(1, start=20))  # appends land right after the last good record
    reopened.close()
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert drain(again) == [batch(2), batch(2, start=5), batch(1, start=20)]
    again.close()


def test_corrupt_tail_record_is_never_replayed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(batch(2))
    spool.append(batch(2, start=5))
    spool.close()
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF  # inside the last record's payload
    seg.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="storage.spool"):
        reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert "checksum mismatch" in caplog.text
    assert drain(reopened) == [batch(2)]
    reopened.close()


def test_record_damaged_after_open_is_set_aside_not_replayed(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(batch(2))
    spool.append(batch(2, start=5))
    (seg,) = segments(tmp_path)
    with seg.open("r+b") as f:  # bit rot in the first record while the daemon runs
        f.seek(20)
        byte = f.read(1)
        f.seek(20)
        f.write(bytes([byte[0] ^ 0x55]))
    with caplog.at_level(logging.ERROR, logger="storage.spool"):
        assert drain(spool) == [batch(2, start=5)]
    assert list(tmp_path.glob("rejected-*.rec")) and "copied to" in caplog.text
    spool.close()


def test_byte_limit_near_full_and_full(tmp_path: Path) -> None:
    def same_size(k: int) -> list[Reading]:  # records of identical size
        return [reading(10 * k + i, value=1.0, raw_value=1.0) for i in range(2)]

    one = len(frame_record(BatchCodec().encode(same_size(0)), 2))
    spool = Spool(tmp_path, max_bytes=5 * one, segment_bytes=one)
    for k in range(4):
        spool.append(same_size(k))
    assert spool.is_near_full and not spool.is_full  # 80 %
    spool.append(same_size(4))
    assert spool.is_full
    with pytest.raises(SpoolFullError, match=r"full \(\d+ of \d+ bytes used") as err:
        spool.append(same_size(5))
    assert err.value.max_bytes == 5 * one and str(tmp_path) in str(err.value)
    assert spool.stats().pending_batches == 5
    head = spool.peek()
    assert head is not None
    spool.commit(head)  # replaying frees a whole segment
    assert not spool.is_full and spool.stats().disk_bytes == 4 * one
    spool.append(same_size(5))
    assert drain(spool) == [same_size(k) for k in range(1, 6)]
    spool.close()


def test_batch_larger_than_the_limit_says_so(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    with pytest.raises(SpoolFullError, match="larger than the limit"):
        spool.append(batch(5))
    assert spool.is_empty and segments(tmp_path) == []
    spool.close()


def test_disk_full_is_reported_as_spool_full_and_leaves_no_partial_record(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(batch(1))
    real_write = os.write

    def short_then_enospc(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 20:
            return real_write(fd, bytes(data[:20]))  # part of the record reaches the file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", short_then_enospc)
    with pytest.raises(SpoolFullError, match="No space left on device"):
        spool.append(batch(2, start=5))
    monkeypatch.undo()
    assert spool.is_full
    spool.append(batch(1, start=9))
    assert not spool.is_full
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert drain(again) == [batch(1), batch(1, start=9)]
    again.close()


def test_commit_accepts_only_the_head(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(batch(1))
    spool.append(batch(1, start=1))
    head = spool.peek()
    assert head is not None
    with pytest.raises(ValueError, match="commit only what peek returned"):
        spool.commit(SpooledBatch(head.readings, head.segment, head.offset + head.size, head.size))
    spool.close()


def test_one_process_per_spool_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(SpoolError, match="locked by another process"):
        Spool(tmp_path, max_bytes=1 << 20)
    spool.close()
    Spool(tmp_path, max_bytes=1 << 20).close()


def test_unreadable_cursor_replays_from_the_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(batch(1))
    spool.append(batch(1, start=1))
    head = spool.peek()
    assert head is not None
    spool.commit(head)
    spool.close()
    (tmp_path / "cursor").write_text("{garbage")
    with caplog.at_level(logging.ERROR, logger="storage.spool"):
        reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert "unreadable resume point" in caplog.text
    assert drain(reopened) == [batch(1), batch(1, start=1)]  # a repeat (harmless), never a loss
    reopened.close()


@given(st.lists(st.sampled_from(["append", "replay", "reopen"]), max_size=30))
def test_any_sequence_of_appends_replays_and_reopens_replays_each_batch_once(tmp_path_factory: pytest.TempPathFactory,
                                                                           ops: list[str]) -> None:
    directory = tmp_path_factory.mktemp("spool")
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=300)
    appended: list[list[Reading]] = []
    replayed: list[list[Reading]] = []
    for op in ops:
        if op == "append":
            appended.append(batch(2, start=10 * len(appended)))
            spool.append(appended[-1])
        elif op == "replay" and (head := spool.peek(max_readings=4)) is not None:
            replayed.append(list(head.readings))
            spool.commit(head)
        elif op == "reopen":
            spool.close()
            spool = Spool(directory, max_bytes=1 << 20, segment_bytes=300)
    replayed += drain(spool)
    spool.close()
    assert [r for b in replayed for r in b] == [r for b in appended for r in b]
