"""The pipeline with several batches in flight (`writes_in_flight`): writes side by side, acknowledgements after
durability and in the order the messages were submitted, whatever order the sink finishes in; retries, the
single ERROR line, the flush on close and a stop mid-write keep their contract. An in-memory sink."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from sensors.network import bundled_network
from sensors.reading import RawReading
from tests.fixtures.waiting import until

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)


class GatedSink:
    """Each write (one per batch, in call order) finishes when the test opens its gate; `fail[i]` failures first."""

    def __init__(self, fail: dict[int, int] | None = None) -> None:
        self.calls = 0
        self.gates: dict[int, asyncio.Event] = {}
        self.running: set[int] = set()
        self.most_at_once = 0
        self.committed: list[float] = []  #: values, in commit order
        self.fail = dict(fail or {})
        self.batch_of: dict[float, int] = {}  #: value → which batch wrote it

    async def write(self, batch, letters=()):
        value = batch[0].value
        i = self.batch_of.setdefault(value, len(self.batch_of))
        self.calls += 1
        if self.fail.get(i):
            self.fail[i] -= 1
            raise ConnectionError("database down")
        self.running.add(i)
        self.most_at_once = max(self.most_at_once, len(self.running))
        try:
            await self.gates.setdefault(i, asyncio.Event()).wait()
        finally:
            self.running.discard(i)
        self.committed.extend(r.value for r in batch)

    def open(self, *batches: int) -> None:
        for i in batches:
            self.gates.setdefault(i, asyncio.Event()).set()


class Observer:
    def __init__(self) -> None:
        self.failures = 0

    def written(self, batch, result, seconds) -> None: ...

    def write_failed(self, error, attempt) -> None:
        self.failures += 1

    def rejected(self, raw, reason, detail) -> None: ...


def _raw(value: float, minute: int) -> RawReading:
    return RawReading("MS01", "MS01", "temperature", value, "°C", NOW - timedelta(minutes=minute), NOW)


async def _start(sink: GatedSink, in_flight: int) -> tuple[Pipeline, asyncio.Task[None], list[float]]:
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=Observer(), clock=lambda: NOW,
                        batch_max=1, batch_max_age_s=0.05, retry_max_s=0.01)  # each submission is a batch
    pipeline.writes_in_flight = in_flight
    return pipeline, asyncio.create_task(pipeline.run()), []


async def _submit(pipeline: Pipeline, acks: list[float], value: float, minute: int) -> None:
    await pipeline.submit([_raw(value, minute)], lambda: acks.append(value))


async def test_writes_finishing_out_of_order_are_acknowledged_in_submission_order() -> None:
    sink = GatedSink()
    pipeline, task, acks = await _start(sink, 3)
    for i in range(3):
        await _submit(pipeline, acks, float(i), i)
    await until(lambda: len(sink.running) == 3, timeout_s=4)  # three batches written at once
    sink.open(2, 1)
    await until(lambda: sink.committed in ([2.0, 1.0], [1.0, 2.0]), timeout_s=4)
    await asyncio.sleep(0.05)
    assert acks == []  # durable, but the first submission is not: nothing acknowledged yet
    sink.open(0)
    await until(lambda: len(acks) == 3, timeout_s=4)
    assert acks == [0.0, 1.0, 2.0]
    pipeline.close()
    await task


async def test_one_in_flight_writes_one_batch_at_a_time() -> None:
    sink = GatedSink()
    pipeline, task, acks = await _start(sink, 1)
    for i in range(3):
        await _submit(pipeline, acks, float(i), i)
    await until(lambda: sink.running == {0}, timeout_s=4)
    await asyncio.sleep(0.05)
    assert sink.running == {0}
    sink.open(0, 1, 2)
    await until(lambda: len(acks) == 3, timeout_s=4)
    assert acks == [0.0, 1.0, 2.0] and sink.most_at_once == 1
    pipeline.close()
    await task


async def test_a_repeated_reading_waits_for_the_batch_that_holds_it() -> None:
    # the same key twice (a redelivery), and an unrelated reading in between
    sink = GatedSink()
    pipeline, task, acks = await _start(sink, 3)
    await _submit(pipeline, acks, 1.0, 0)
    await _submit(pipeline, acks, 2.0, 5)
    await pipeline.submit([_raw(1.5, 0)], lambda: acks.append(1.5))  # same sensor, variable and time as the first
    await until(lambda: sink.running == {0, 1}, timeout_s=4)
    await asyncio.sleep(0.05)
    assert sink.running == {0, 1}  # the third waits for the first
    sink.open(0)
    await until(lambda: 2 in sink.running, timeout_s=4)
    sink.open(1, 2)
    await until(lambda: len(acks) == 3, timeout_s=4)
    assert sink.committed[0] == 1.0 and acks == [1.0, 2.0, 1.5]  # the first submitted is the first stored
    pipeline.close()
    await task


async def test_a_failing_write_holds_back_later_acks_with_one_error_line(caplog) -> None:
    sink = GatedSink(fail={0: 3})
    pipeline, task, acks = await _start(sink, 2)
    with caplog.at_level(logging.DEBUG, logger="ingest.pipeline"):
        await _submit(pipeline, acks, 0.0, 0)
        await _submit(pipeline, acks, 1.0, 1)
        sink.open(1)
        await until(lambda: sink.committed == [1.0], timeout_s=4)
        await asyncio.sleep(0.05)
        assert acks == []  # the second is durable, the first is still being retried
        sink.open(0)
        await until(lambda: len(acks) == 2, timeout_s=4)
    assert acks == [0.0, 1.0]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    pipeline.close()
    await task


async def test_close_waits_for_every_batch_in_flight() -> None:
    sink = GatedSink()
    pipeline, task, acks = await _start(sink, 3)
    for i in range(3):
        await _submit(pipeline, acks, float(i), i)
    await until(lambda: len(sink.running) == 3, timeout_s=4)
    pipeline.close()
    await asyncio.sleep(0.2)  # well past the batch age: run() would have returned by now if it did not wait
    assert not task.done()
    sink.open(0, 1, 2)
    await task
    assert acks == [0.0, 1.0, 2.0]


async def test_a_stop_mid_write_acknowledges_nothing_after_the_cut() -> None:
    sink = GatedSink()
    pipeline, task, acks = await _start(sink, 3)
    for i in range(3):
        await _submit(pipeline, acks, float(i), i)
    await until(lambda: len(sink.running) == 3, timeout_s=4)
    sink.open(0)
    await until(lambda: acks == [0.0], timeout_s=4)
    task.cancel()
    sink.open(2)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert acks == [0.0]  # the first was acknowledged before the stop; 1 was cut mid-write, so 2 is never acked
