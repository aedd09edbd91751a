"""storage/forwarding.py under faults of the spool itself: the replay task survives any error around peek, the
database write and commit (it logs the cause and retries, never dies), and a full disk is one episode: one log
line when intake stops acknowledging, one when it resumes, `disk_full` in the stats meanwhile."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from ingest.reading import Reading
from storage.forwarding import ForwardingSink, Spooled
from storage.spool import Spool, SpooledBatch, SpoolFullError
from tests.storage.test_forwarding import ScriptedWriter, batch, clock, until


def make(tmp_path: Path, writer: Any, *spooled: list[Reading]) -> tuple[ForwardingSink, Spool]:
    """A sink over a spool that holds `spooled` batches from an earlier run."""
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    for b in spooled:
        spool.append(b)
    return ForwardingSink(writer, spool, clock=clock, replay_retry_s=0.01), spool


def enospc(*_: object, **__: object) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["peek", "commit"])
async def test_replay_survives_errors_around_peek_and_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture, where: str) -> None:
    writer = ScriptedWriter()
    sink, spool = make(tmp_path, writer, batch(0), batch(1))
    failures = [3]
    real = getattr(spool, where)

    def flaky(*args: Any) -> SpooledBatch | None:
        if failures[0]:
            failures[0] -= 1
            raise OSError(errno.EIO, f"{where} failed")
        return real(*args)  # type: ignore[no-any-return]

    monkeypatch.setattr(spool, where, flaky)
    task = asyncio.create_task(sink.replay())
    with caplog.at_level(logging.ERROR, logger="storage.forwarding"):
        await until(lambda: sink.state == "direct" or task.done())
    assert not task.done(), f"the replay task died: {task.exception() if task.done() else ''}"
    assert failures == [0]
    assert f"{where} failed" in caplog.text and "retry in" in caplog.text
    # a batch whose commit failed is written once more: the writer's idempotent insert makes that a no-op
    assert {tuple(b) for b in writer.batches} == {tuple(batch(0) + batch(1))}
    assert spool.is_empty
    await sink.write(batch(2))  # and the sink works on
    assert writer.batches[-1] == batch(2)
    await sink.close()
    assert task.done()


async def test_cursor_write_on_a_full_disk_keeps_replaying_until_space_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ScriptedWriter()
    sink, spool = make(tmp_path, writer, batch(0))
    (tmp_path / "spool" / "reserve").unlink()  # nothing in reserve: the cursor write itself meets the full disk
    with monkeypatch.context() as m:
        m.setattr(os, "replace", enospc)
        task = asyncio.create_task(sink.replay())
        await until(lambda: len(writer.batches) >= 3)  # replayed again and again; commit fails each time
        assert not task.done() and spool.stats().pending_batches == 1
    await until(lambda: sink.state == "direct")
    assert spool.is_empty and all(b == batch(0) for b in writer.batches)
    await sink.close()


async def test_disk_full_is_one_episode_in_the_log_and_visible_in_the_stats(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    writer = ScriptedWriter()
    writer.down = True
    sink, _ = make(tmp_path, writer)
    task = asyncio.create_task(sink.replay())
    assert isinstance(await sink.write(batch(0)), Spooled)
    with caplog.at_level(logging.INFO, logger="storage.forwarding"):
        with monkeypatch.context() as m:
            m.setattr(os, "write", enospc)
            for k in range(1, 6):  # the pipeline's retries
                with pytest.raises(SpoolFullError, match="No space left on device"):
                    await sink.write(batch(k))
                assert sink.stats().spool.disk_full and sink.stats().spool.full
        full_lines = [r for r in caplog.records if "stops acknowledging" in r.getMessage()]
        assert len(full_lines) == 1 and full_lines[0].levelno == logging.ERROR
        assert "No space left on device" in full_lines[0].getMessage()
        assert isinstance(await sink.write(batch(1)), Spooled)  # space is back
    resumed = [r for r in caplog.records if "acknowledging again" in r.getMessage()]
    assert len(resumed) == 1 and "5 batches refused" in resumed[0].getMessage()
    assert not sink.stats().spool.disk_full
    writer.down = False
    await until(lambda: sink.state == "direct")
    assert writer.readings == batch(0) + batch(1)
    await sink.close()
    assert task.done()
