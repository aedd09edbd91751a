"""Write-when-idle (`ingest.write_when_idle`): the pending batch is written as soon as no batch is in flight and no
submission waits, not at `batch_max` or `batch_max_age_s`; while a write runs, submissions gather into the next
batch (group commit). Acknowledgements stay after durability and in order; nothing is lost. An in-memory sink."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta

import pytest

from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from sensors.network import bundled_network
from sensors.reading import RawReading
from tests.fixtures.waiting import until

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)
AGE_S = 600.0  #: batch_max_age_s: far beyond every deadline below, so only write-when-idle can release a batch


class Sink:
    """Records each batch's values; a write waits for `gate` while it is cleared."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[float]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.writing = 0
        self.delay_s = delay_s
        self.rng = random.Random(0)

    async def write(self, batch, letters=()):
        self.writing += 1
        try:
            await self.gate.wait()
            if self.delay_s:
                await asyncio.sleep(self.rng.uniform(0, self.delay_s))
        finally:
            self.writing -= 1
        self.batches.append([r.value for r in batch])


class Observer:
    def written(self, batch, result, seconds) -> None: ...

    def write_failed(self, error, attempt) -> None: ...

    def rejected(self, raw, reason, detail) -> None: ...


def _raw(value: float) -> RawReading:
    return RawReading("MS01", "MS01", "temperature", value, "°C", NOW - timedelta(seconds=value), NOW)


def _pipeline(sink: Sink, *, idle: bool, in_flight: int = 1, age_s: float = AGE_S,
              min_age_s: float = 0.0) -> Pipeline:
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=Observer(), clock=lambda: NOW,
                        batch_max=1000, batch_max_age_s=age_s)
    pipeline.writes_in_flight = in_flight
    pipeline.write_when_idle = idle
    pipeline.batch_min_age_s = min_age_s
    return pipeline


async def _stop(task: asyncio.Task[None]) -> None:
    """Stop a pipeline whose every batch is acknowledged (`close()` would wait for the run loop's next turn, up to
    half the batch age)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_lone_submission_is_written_at_once_not_at_its_batch_age() -> None:
    sink, acks = Sink(), []
    pipeline = _pipeline(sink, idle=True)
    task = asyncio.create_task(pipeline.run())
    await pipeline.submit([_raw(1.0)], lambda: acks.append(1.0))
    await until(lambda: acks == [1.0], "the lone submission's ack")
    assert sink.batches == [[1.0]]
    await _stop(task)


async def test_submissions_gather_while_a_write_runs_and_go_out_together_when_it_ends() -> None:
    sink, acks = Sink(), []
    pipeline = _pipeline(sink, idle=True)
    task = asyncio.create_task(pipeline.run())
    sink.gate.clear()
    await pipeline.submit([_raw(0.0)], lambda: acks.append(0.0))
    await until(lambda: sink.writing == 1, "the first write")
    for v in (1.0, 2.0, 3.0):
        await pipeline.submit([_raw(v)], lambda v=v: acks.append(v))
    await asyncio.sleep(0.05)
    assert sink.batches == [] and acks == []  # nothing durable yet: nothing acknowledged
    sink.gate.set()  # the first write ends; no submission comes after: the gathered three go out at once
    await until(lambda: len(acks) == 4, "the gathered batch's acks")
    assert sink.batches == [[0.0], [1.0, 2.0, 3.0]]
    assert acks == [0.0, 1.0, 2.0, 3.0]
    await _stop(task)


async def test_without_write_when_idle_a_batch_waits_for_its_size_or_age() -> None:
    sink, acks = Sink(), []
    pipeline = _pipeline(sink, idle=False, age_s=2.0)
    task = asyncio.create_task(pipeline.run())
    await pipeline.submit([_raw(1.0)], lambda: acks.append(1.0))
    await asyncio.sleep(0.3)
    assert sink.batches == [] and acks == []  # held for size (1000) or age (2 s)
    pipeline.close()  # the flush on close writes it
    await task
    assert sink.batches == [[1.0]] and acks == [1.0]


@pytest.mark.parametrize("in_flight", [1, 2, 3])
async def test_bursts_under_random_write_times_are_all_acknowledged_once_in_order(in_flight: int) -> None:
    rng = random.Random(in_flight)
    sink, acks = Sink(delay_s=0.01), []
    pipeline = _pipeline(sink, idle=True, in_flight=in_flight)
    task = asyncio.create_task(pipeline.run())
    values = [float(i) for i in range(400)]
    for v in values:
        await pipeline.submit([_raw(v)], lambda v=v: acks.append(v))
        if rng.random() < 0.1:
            await asyncio.sleep(rng.uniform(0, 0.01))
    await until(lambda: len(acks) == len(values), f"{in_flight} in flight: every ack")
    await _stop(task)
    assert acks == values  # each once, in submission order
    assert sorted(v for b in sink.batches for v in b) == values  # each stored once
    assert len(sink.batches) < len(values)  # under load some batches gathered several submissions


async def test_with_a_minimum_age_submissions_arriving_within_it_share_a_batch() -> None:
    sink, acks = Sink(), []
    pipeline = _pipeline(sink, idle=True, min_age_s=1.0)
    task = asyncio.create_task(pipeline.run())
    for v in (1.0, 2.0, 3.0):  # well within the minimum age of the first
        await pipeline.submit([_raw(v)], lambda v=v: acks.append(v))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert sink.batches == []  # idle, but the pending batch is younger than its minimum age
    await until(lambda: len(acks) == 3, "the batch at its minimum age")  # then written, long before its max age
    assert sink.batches == [[1.0, 2.0, 3.0]] and acks == [1.0, 2.0, 3.0]
    await _stop(task)
