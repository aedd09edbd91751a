"""storage/forwarding.py with concurrent writes (the pipeline's `ingest.writes_in_flight`): direct writes run side
by side; one that finds the database unreachable goes to the spool while the others finish, and every batch is
durable in one place or the other. A scripted writer, a real spool."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import psycopg

from ingest.reading import Reading
from storage.forwarding import Spooled
from storage.writer import WriteResult
from tests.storage.test_forwarding import batch, make, running, until


class GatedWriter:
    """Each write waits for its gate (keyed by the batch's first value); `unreachable` batches then raise."""

    def __init__(self) -> None:
        self.gates: dict[float, asyncio.Event] = {}
        self.running: set[float] = set()
        self.most_at_once = 0
        self.stored: list[list[Reading]] = []
        self.unreachable: set[float] = set()

    async def write(self, b: Sequence[Reading], letters: Sequence[object] = ()) -> WriteResult:
        first = b[0].value
        self.running.add(first)
        self.most_at_once = max(self.most_at_once, len(self.running))
        try:
            await self.gates.setdefault(first, asyncio.Event()).wait()
        finally:
            self.running.discard(first)
        if first in self.unreachable:
            raise psycopg.OperationalError("connection refused")
        self.stored.append(list(b))
        return WriteResult(len(b), 0, 0)

    def open(self, first: float) -> None:
        self.gates.setdefault(first, asyncio.Event()).set()


async def test_direct_writes_run_side_by_side(tmp_path: Path) -> None:
    writer = GatedWriter()
    async with running(make(tmp_path, writer)) as sink:
        writes = [asyncio.create_task(sink.write(batch(k))) for k in range(3)]
        await until(lambda: len(writer.running) == 3)
        for k in (2, 0, 1):
            writer.open(batch(k)[0].value)
        assert await asyncio.gather(*writes) == [WriteResult(3, 0, 0)] * 3
    assert writer.most_at_once == 3


async def test_an_unreachable_write_is_spooled_while_the_others_complete(tmp_path: Path) -> None:
    writer = GatedWriter()
    first = [batch(k)[0].value for k in range(3)]
    writer.unreachable.add(first[1])
    async with running(make(tmp_path, writer, replay_retry_s=3600)) as sink:  # no replay during the test
        writes = [asyncio.create_task(sink.write(batch(k))) for k in range(3)]
        await until(lambda: len(writer.running) == 3)
        writer.open(first[1])
        spooled = await writes[1]
        assert isinstance(spooled, Spooled) and sink.state == "spooling"
        writer.open(first[0])
        writer.open(first[2])
        assert await writes[0] == await writes[2] == WriteResult(3, 0, 0)  # already on their way: stored
        assert writer.stored == [batch(0), batch(2)] and sink.stats().spool.pending_batches == 1
        assert isinstance(await sink.write(batch(3)), Spooled)  # behind the spooled one, as before
        assert sink.stats().spool.pending_batches == 2
