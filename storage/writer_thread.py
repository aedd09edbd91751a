"""The measurements writer on an event loop of its own, in a thread of its own. I/O.

Why: the daemon's event loop also decodes, normalises and batches the intake, in steps of several milliseconds
each under load, and every round trip of a write (BEGIN, the lock and claim, the COPY, COMMIT) waits for the loop's
next turn: measured in `make bench`, a 800-row write took 60-90 ms in the daemon against ~20 ms when the loop was
idle, and the batches in flight, not the database, set the ingest rate. On a loop of its own, a write's coroutine
runs as soon as its socket is ready and the interpreter lets its thread run (libpq waits without the GIL).

`WriterThread(url, pool_kwargs)` starts the thread, opens a psycopg pool on the thread's loop (a pool belongs to
the loop it was opened on) and a `storage.writer.TimescaleWriter` over it; `write` has the writer's contract and
is awaited from the daemon's loop. A cancel of the awaiting task (a timeout, a stop) cancels the write on the
thread's loop, where the transaction is rolled back as it would be in place. `close()` closes the pool and ends
the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ingest.letter import Letter
from ingest.reading import Reading
from storage.writer import TimescaleWriter, WriteResult, WriterStats

__all__ = ["WriterThread"]


class WriterThread:
    """A `TimescaleWriter` and its pool on an event loop in a thread of their own (module docstring)."""

    def __init__(self, url: str, *, pool_kwargs: Mapping[str, Any], name: str = "aqnet-writer",
                 open_timeout_s: float = 30.0) -> None:
        self._url = url
        self._pool_kwargs = dict(pool_kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._writer: TimescaleWriter | None = None
        self._open_timeout_s = open_timeout_s
        self._closing = False

    @property
    def stats(self) -> WriterStats:
        """The writer's counts (read from the daemon's thread: plain integers, never torn)."""
        if self._writer is None:
            return WriterStats()
        return self._writer.stats

    async def start(self) -> None:
        """Start the thread and open the pool on its loop (waits until the pool is open, or raises)."""
        self._thread.start()
        await asyncio.wrap_future(self._submit(self._open()))

    async def write(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> WriteResult:
        """`TimescaleWriter.write` on the thread's loop; returns once the batch is committed. Once `close()` has
        begun (or the thread is gone) it raises psycopg.OperationalError at once, like an unreachable database
        (the forwarding sink spools the batch), instead of waiting on a loop that will not run it."""
        if self._closing or not self._thread.is_alive():
            raise psycopg.OperationalError("the measurements writer is closed")
        return await asyncio.wrap_future(self._submit(self._write(batch, letters)))

    async def close(self) -> None:
        """Close the pool, then stop the thread's loop and join the thread."""
        if not self._thread.is_alive():
            return
        self._closing = True
        try:
            await asyncio.wrap_future(self._submit(self._close()))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 10)

    # ----------------------------------------------------------------------------------- internals

    def _submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _open(self) -> None:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(self._url, open=False, **self._pool_kwargs)
        await pool.open(wait=True, timeout=self._open_timeout_s)
        self._writer = TimescaleWriter(pool)

    async def _write(self, batch: Sequence[Reading], letters: Sequence[Letter]) -> WriteResult:
        assert self._writer is not None, "WriterThread.write before start()"
        return await self._writer.write(batch, letters)

    async def _close(self) -> None:
        if self._writer is not None:
            await self._writer.pool.close()
