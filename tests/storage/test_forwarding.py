"""storage/forwarding.py: routing between the database and the spool, replay in order, spool full, close.

Unit tests use a scripted writer; the integration tests stop and restart a TimescaleDB cluster of their own
(never the session one: other tests share it) under a real `TimescaleWriter`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from aqnet.localstack import TimescaleCluster, free_port
from ingest.reading import QC, Reading
from storage.forwarding import ForwardingSink, Spooled
from storage.migrate import migrate
from storage.spool import Spool, SpoolFullError
from storage.writer import TimescaleWriter, WriteResult
from tests.fixtures.waiting import until

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def clock() -> datetime:
    return T0


def reading(i: int, value: float | None = None) -> Reading:
    t = T0 + timedelta(seconds=i)
    v = float(i) if value is None else value
    return Reading(sensor_id="USQ", device_id="USQ-pm", variable="pm25", time=t, value=v, unit="µg/m³",
                   flags=QC(0), raw_value=v, raw_unit="ug/m3", received_at=t + timedelta(seconds=2))


def batch(k: int, n: int = 3) -> list[Reading]:
    return [reading(10 * k + i) for i in range(n)]


class ScriptedWriter:
    """Stores batches in memory; `down` makes it raise OperationalError, `hang` makes it never answer."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []  #: one list per transaction
        self.down = False
        self.hang = False
        self.fail_with: Exception | None = None

    async def write(self, batch: Sequence[Reading], letters: Sequence[object] = ()) -> WriteResult:
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail_with is not None:
            raise self.fail_with
        if self.down:
            raise psycopg.OperationalError("connection refused")
        self.batches.append(list(batch))
        return WriteResult(len(batch), 0, 0)

    @property
    def readings(self) -> list[Reading]:
        return [r for b in self.batches for r in b]


@contextlib.asynccontextmanager
async def running(sink: ForwardingSink) -> AsyncIterator[ForwardingSink]:
    task = asyncio.create_task(sink.replay())
    try:
        yield sink
    finally:
        await sink.close()
        assert task.done()


def make(tmp_path: Path, writer: Any, **kw: Any) -> ForwardingSink:
    spool = Spool(tmp_path / "spool", max_bytes=kw.pop("max_bytes", 1 << 20))
    return ForwardingSink(writer, spool, clock=clock, replay_retry_s=kw.pop("replay_retry_s", 0.02), **kw)


async def test_database_up_writes_directly(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    async with running(make(tmp_path, writer)) as sink:
        assert await sink.write(batch(0)) == WriteResult(3, 0, 0)
        assert writer.batches == [batch(0)]
        stats = sink.stats()
        assert stats.state == "direct" and stats.spool.pending_batches == 0


async def test_outage_spools_then_replays_in_order(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    replayed: list[list[Reading]] = []
    sink = make(tmp_path, writer, on_replayed=lambda b, r, s: replayed.append(list(b)))
    async with running(sink):
        await sink.write(batch(0))
        writer.down = True
        result = await sink.write(batch(1))
        assert isinstance(result, Spooled) and result.readings == 3 and result.bytes > 0
        assert sink.state == "spooling"
        writer.down = False
        # the spool holds data: a new batch queues behind it even though the database answers now
        await sink.write(batch(2))
        await until(lambda: sink.state == "direct")
        assert writer.readings == batch(0) + batch(1) + batch(2)
        assert [r for b in replayed for r in b] == batch(1) + batch(2)
        stats = sink.stats()
        assert (stats.spooled_batches, stats.replayed_batches, stats.replayed_readings) == (2, 2, 6)
        assert stats.spool.pending_bytes == 0
        await sink.write(batch(3))
        assert writer.batches[-1] == batch(3)


async def test_replay_keeps_retrying_while_the_database_stays_down(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.down = True
    async with running(make(tmp_path, writer)) as sink:
        for k in range(3):
            await sink.write(batch(k))
        await asyncio.sleep(0.1)  # several replay attempts fail meanwhile
        assert sink.stats().spool.pending_batches == 3 and sink.state == "spooling"
        writer.down = False
        await until(lambda: sink.state == "direct")
        assert writer.batches == [batch(0) + batch(1) + batch(2)]  # joined into one transaction


async def test_replay_joins_batches_up_to_the_limit(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.down = True
    async with running(make(tmp_path, writer, replay_max_readings=7)) as sink:
        for k in range(5):
            await sink.write(batch(k))  # 3 readings each
        writer.down = False
        await until(lambda: sink.state == "direct")
    assert [len(b) for b in writer.batches] == [6, 6, 3]
    assert writer.readings == [r for k in range(5) for r in batch(k)]
    assert sink.stats().replayed_batches == 5


async def test_database_that_does_not_answer_counts_as_unreachable(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.hang = True
    async with running(make(tmp_path, writer, unreachable_after_s=0.05)) as sink:
        assert isinstance(await sink.write(batch(0)), Spooled)
        writer.hang = False
        await until(lambda: sink.state == "direct")
        assert writer.batches == [batch(0)]


async def test_other_errors_are_not_spooled(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.fail_with = psycopg.errors.DataError("bad value")
    async with running(make(tmp_path, writer)) as sink:
        with pytest.raises(psycopg.errors.DataError):
            await sink.write(batch(0))
        assert sink.stats().spool.pending_batches == 0 and sink.state == "direct"


async def test_full_spool_refuses_the_batch_so_nothing_is_acknowledged(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.down = True
    async with running(make(tmp_path, writer, max_bytes=2000)) as sink:
        with pytest.raises(SpoolFullError):
            for k in range(100):
                await sink.write(batch(k))
        spooled = sink.stats().spool
        assert spooled.full and spooled.pending_batches == k
        writer.down = False
        await until(lambda: sink.state == "direct")
        assert writer.readings == [r for j in range(k) for r in batch(j)]
        await sink.write(batch(k))  # the pipeline's retry succeeds once the spool drained
        assert writer.batches[-1] == batch(k)


async def test_close_keeps_the_spool_for_the_next_start(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.down = True
    async with running(make(tmp_path, writer)) as sink:
        await sink.write(batch(0))
        await sink.write(batch(1))
    assert sink.stats().spool.pending_batches == 2  # closed with the database still down: kept on disk
    writer.down = False
    again = make(tmp_path, writer)
    assert again.state == "replaying"
    async with running(again):
        await again.write(batch(2))  # behind the two left from the last run
        await until(lambda: again.state == "direct")
    assert writer.readings == batch(0) + batch(1) + batch(2)


class CancelledAsItReturns(ScriptedWriter):
    """Cancels `task` in the same step as its write completes (or fails): the moment a shutdown or a crash can land.
    With `swallow`, the write itself drops that cancel the way a library's `asyncio.wait_for` does on Python 3.11
    (psycopg_pool waits for a connection with it)."""

    def __init__(self, swallow: bool = False) -> None:
        super().__init__()
        self.task: asyncio.Task[None] | None = None
        self.swallow = swallow

    async def write(self, batch: Sequence[Reading], letters: Sequence[object] = ()) -> WriteResult:
        try:
            return await super().write(batch)
        finally:
            if self.task is not None and self.swallow:
                loop = asyncio.get_running_loop()
                ready = loop.create_future()
                task = self.task
                loop.call_soon(lambda: (ready.set_result(None), task.cancel()))
                await asyncio.wait_for(ready, 10)  # 3.11: returns, as `ready` is done, and drops the cancel
            elif self.task is not None:
                self.task.cancel()


@pytest.mark.parametrize(("swallow", "down"), [(False, False), (True, False), (True, True)],
                         ids=["cancel-as-write-completes", "cancel-dropped-by-the-writer", "same-database-down"])
async def test_a_cancel_landing_as_a_replayed_write_ends_stops_the_replay(tmp_path: Path, swallow: bool,
                                                                          down: bool) -> None:
    # asyncio.wait_for (Python 3.11) returns the result of a write that completed as the cancel arrived and drops
    # the cancel: the replay then ran on and `close()` (or a crash's `cancel(); await task`) waited forever
    writer = CancelledAsItReturns(swallow)
    writer.down = True
    sink = make(tmp_path, writer)
    assert isinstance(await sink.write(batch(0)), Spooled)
    writer.down = down
    task = asyncio.create_task(sink.replay())
    writer.task = task
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled(), "the replay ignored its cancellation"
    assert writer.batches == ([] if down else [batch(0)])  # written or not, the spool never moved past it:
    assert sink.stats().spool.pending_batches == 1  # replayed again at the next start (a no-op if written)
    await sink.close()


async def test_close_stops_a_replay_whose_write_completes_as_it_is_cancelled(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.down = True
    sink = make(tmp_path, writer)
    for k in range(3):
        await sink.write(batch(k))
    task = asyncio.create_task(sink.replay())
    await asyncio.sleep(0.05)  # the replay retries meanwhile
    original = writer.write

    async def close_as_it_returns(b: Sequence[Reading], letters: Sequence[object] = ()) -> WriteResult:
        result = await original(b, letters)
        writer.write = original  # type: ignore[method-assign]
        closing.append(asyncio.create_task(sink.close()))
        await asyncio.sleep(0)  # close() cancels the replay now, as this write completes
        return result

    closing: list[asyncio.Task[None]] = []
    writer.write = close_as_it_returns  # type: ignore[method-assign]
    writer.down = False
    await until(lambda: bool(closing))
    done, _ = await asyncio.wait({closing[0]}, timeout=2)
    assert closing[0] in done, "close() waited forever for a replay that ignored its cancellation"
    assert task.done()


# ------------------------------------------------------------------------------ against a real database


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[TimescaleCluster]:
    """A TimescaleDB cluster this test may stop and start, with every migration applied."""
    cluster = TimescaleCluster(tmp_path / "pgdata", free_port(), persistent=False)
    cluster.start()
    try:
        with psycopg.connect(cluster.url) as conn:
            migrate(conn)
        yield cluster
    finally:
        cluster.discard()


def stored(url: str) -> list[tuple[datetime, float]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT time, value FROM measurements ORDER BY time").fetchall()


def conflicts(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM dead_letters WHERE reason = 'conflict'").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.integration
async def test_database_stopped_and_restarted_loses_nothing_and_keeps_order(
        own_cluster: TimescaleCluster, tmp_path: Path) -> None:
    async with AsyncConnectionPool(own_cluster.url, min_size=1, max_size=2, open=False,
                                   reconnect_timeout=5) as pool:
        sink = make(tmp_path, TimescaleWriter(pool), replay_retry_s=0.2, unreachable_after_s=5)
        async with running(sink):
            await sink.write(batch(0))
            await asyncio.to_thread(own_cluster.stop)
            for k in range(1, 6):
                assert isinstance(await sink.write(batch(k)), Spooled)
            # the same key again with another value, accepted later: first write wins, so order matters
            assert isinstance(await sink.write([reading(10, value=99.0)]), Spooled)
            assert sink.state == "spooling" and sink.stats().spool.pending_batches == 6
            await asyncio.to_thread(own_cluster.start)
            await until(lambda: sink.state == "direct", timeout_s=60)
            await sink.write(batch(6))
    expected = [(r.time, r.value) for k in range(7) for r in batch(k)]
    assert stored(own_cluster.url) == sorted(expected)
    assert conflicts(own_cluster.url) == 1  # the later 99.0 was dead-lettered, the earlier 10.0 kept


@pytest.mark.integration
async def test_crash_mid_replay_resumes_without_loss(own_cluster: TimescaleCluster, tmp_path: Path) -> None:
    writer_results: list[WriteResult] = []
    async with AsyncConnectionPool(own_cluster.url, min_size=1, max_size=2, open=False,
                                   reconnect_timeout=5) as pool:
        writer = TimescaleWriter(pool)
        await asyncio.to_thread(own_cluster.stop)
        sink = make(tmp_path, writer, replay_retry_s=0.2, unreachable_after_s=5, replay_max_readings=5,
                    on_replayed=lambda b, r, s: writer_results.append(r))
        task = asyncio.create_task(sink.replay())
        for k in range(40):
            await sink.write(batch(k, n=5))
        await asyncio.to_thread(own_cluster.start)
        await until(lambda: sink.stats().replayed_batches >= 5, timeout_s=60)
        task.cancel()  # the process dies mid-replay: no clean close, the spool file handles just go
        await asyncio.wait({task}, timeout=10)
        assert task.cancelled(), "the replay ran on after its cancellation"  # it once drained the spool and hung
        left = sink.stats().spool.pending_batches
        assert 0 < left < 40
        sink._spool.close()
        again = make(tmp_path, writer, replay_retry_s=0.2, on_replayed=lambda b, r, s: writer_results.append(r))
        assert again.stats().spool.pending_batches == left
        async with running(again):
            await until(lambda: again.state == "direct", timeout_s=60)
    assert stored(own_cluster.url) == sorted((r.time, r.value) for k in range(40) for r in batch(k, n=5))
    # resumed exactly: at most the batch in flight at the crash (committed, cursor not yet moved) comes again
    assert sum(r.duplicates for r in writer_results) <= 5
    assert sum(r.inserted for r in writer_results) >= 195
