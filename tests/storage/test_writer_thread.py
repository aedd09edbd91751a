"""storage/writer_thread.py against a real, migrated TimescaleDB: the writer on a loop of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from storage.writer import LATE_MARK_LOCK, WriteResult
from storage.writer_thread import WriterThread
from tests.storage.test_writer import reading, rows


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[WriterThread]:
    w = WriterThread(database_url, pool_kwargs={"min_size": 1, "max_size": 2})
    await w.start()
    try:
        yield w
    finally:
        await w.close()


async def test_writes_go_through_the_writers_contract(writer: WriterThread, database_url: str) -> None:
    assert await writer.write([reading(10.0, 0), reading(11.0, 1)]) == WriteResult(2, 0, 0)
    assert await writer.write([reading(10.0, 0), reading(12.0, 2)]) == WriteResult(1, 1, 0)  # first write wins
    assert [r[3] for r in rows(database_url)] == [10.0, 11.0, 12.0]
    assert writer.stats.fast + writer.stats.classified == 2


async def test_a_write_finishes_while_the_callers_loop_is_blocked(writer: WriterThread, database_url: str) -> None:
    """The point of the thread: the write's round trips do not need the caller's event loop to turn."""
    pending = asyncio.ensure_future(writer.write([reading(20.0, 5)]))
    await asyncio.sleep(0)  # the task hands the write to the thread's loop
    deadline = time.monotonic() + 60
    while not rows(database_url):  # synchronous: this loop does not run meanwhile
        assert time.monotonic() < deadline, "the write did not commit while the caller's loop was blocked"
        time.sleep(0.05)
    assert await pending == WriteResult(1, 0, 0)


async def test_a_cancelled_write_commits_nothing_and_the_writer_goes_on(writer: WriterThread,
                                                                       database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LATE_MARK_LOCK,))  # the write waits for its shared lock
        task = asyncio.ensure_future(writer.write([reading(30.0, 7)]))
        deadline = time.monotonic() + 60
        while not holder.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                 ).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the write never waited for the lock"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        holder.execute("SELECT pg_advisory_unlock(%s)", (LATE_MARK_LOCK,))
    assert rows(database_url) == []
    assert await writer.write([reading(31.0, 8)]) == WriteResult(1, 0, 0)
    assert [r[3] for r in rows(database_url)] == [31.0]


async def test_close_ends_the_thread(database_url: str) -> None:
    w = WriterThread(database_url, pool_kwargs={"min_size": 1, "max_size": 1}, name="aqnet-writer-test")
    await w.start()
    assert w._thread.is_alive()
    await w.close()
    assert not w._thread.is_alive()
    await w.close()  # twice is a no-op


async def test_a_write_after_close_fails_at_once_like_an_unreachable_database(database_url: str) -> None:
    """The forwarding sink spools on psycopg.OperationalError: a late write must not wait on a stopped loop."""
    import psycopg as pg

    w = WriterThread(database_url, pool_kwargs={"min_size": 1, "max_size": 1})
    await w.start()
    await w.close()
    with pytest.raises(pg.OperationalError, match="writer is closed"):
        await asyncio.wait_for(w.write([reading(40.0, 9)]), 30)
