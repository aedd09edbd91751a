"""The pipeline's contract with an in-memory sink: acks only after the batch is written, failed writes retried
and never acked meanwhile, the configured clock-skew tolerance applied, met values normalised first."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.reading import QC
from sensors.network import bundled_network
from sensors.reading import RawReading

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)


class Sink:
    def __init__(self, fail_first: int = 0) -> None:
        self.batches: list = []
        self.fail_first = fail_first

    async def write(self, batch, letters=()):
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("database down")
        self.batches.append(list(batch))


class Observer:
    def __init__(self) -> None:
        self.failures = 0

    def written(self, batch, result, seconds) -> None: ...

    def write_failed(self, error, attempt) -> None:
        self.failures += 1

    def rejected(self, raw, reason, detail) -> None: ...


def _raw(variable: str, value: float, unit: str, t: datetime = NOW, conditions=None) -> RawReading:
    return RawReading("MS01", "MS01", variable, value, unit, t, NOW, conditions=conditions)


async def _run(sink: Sink, observer: Observer, submissions, **kw):
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=observer, clock=lambda: NOW,
                        batch_max_age_s=0.05, retry_max_s=0.01, **kw)
    task = asyncio.create_task(pipeline.run())
    acks: list[int] = []
    for i, raws in enumerate(submissions):
        await pipeline.submit(raws, lambda i=i: acks.append(i))
    for _ in range(200):
        if len(acks) == len(submissions):
            break
        await asyncio.sleep(0.01)
    pipeline.close()
    await task
    return acks


async def test_acks_follow_the_write_and_failed_writes_are_retried() -> None:
    sink, observer = Sink(fail_first=2), Observer()
    acks = await _run(sink, observer, [[_raw("temperature", 14.0, "°C")], [_raw("relativehumidity", 70, "%")]])
    assert acks == [0, 1]
    assert observer.failures == 2
    assert [r.variable for batch in sink.batches for r in batch] == ["temperature", "relativehumidity"]


async def test_clock_skew_tolerance_is_configurable() -> None:
    ahead = NOW + timedelta(seconds=120)
    for tolerance, flagged in ((300.0, False), (60.0, True)):
        sink = Sink()
        await _run(sink, Observer(), [[_raw("temperature", 14.0, "°C", ahead)]], clock_skew_tolerance_s=tolerance)
        assert bool(sink.batches[0][0].flags & QC.CLOCK_SKEW) is flagged


async def test_met_values_of_a_message_correct_its_pm() -> None:
    sink = Sink()
    await _run(sink, Observer(), [[_raw("pm25", 30.0, "µg/m³", conditions="local"),
                                   _raw("pressure", 752.0, "hPa"), _raw("temperature", 14.0, "°C")]])
    pm = next(r for r in sink.batches[0] if r.variable == "pm25")
    assert round(pm.value, 2) == 38.93  # CONVERSIONS.md worked example: 30.0 local at 752 hPa, 14 °C


class RefusingSink:
    """Refuses every batch (the spool is full: disk or limit) until `refusing` is cleared."""

    def __init__(self) -> None:
        self.refusing = True
        self.batches: list = []

    async def write(self, batch, letters=()):
        if self.refusing:
            raise OSError(28, "spool /var/spool/aqnet: a batch could not be written (No space left on device)")
        self.batches.append(list(batch))


async def test_a_refusing_sink_stops_acks_and_fills_the_bounded_queue_then_resumes(caplog) -> None:
    sink, observer = RefusingSink(), Observer()
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=observer, clock=lambda: NOW,
                        batch_max_age_s=0.05, retry_max_s=0.01, batch_max=2, queue_max=3)
    task = asyncio.create_task(pipeline.run())
    acks: list[int] = []
    submits = [asyncio.create_task(pipeline.submit([_raw("temperature", 14.0 + i, "°C")],
                                                   lambda i=i: acks.append(i))) for i in range(8)]
    try:
        with caplog.at_level(logging.DEBUG, logger="ingest.pipeline"):
            while observer.failures < 5 or pipeline.queue_length < 3:
                await asyncio.sleep(0.01)
            assert acks == []  # nothing acknowledged while nothing is stored
            # the batch being retried holds 2, the queue 3: the rest wait in `submit` (the broker keeps those messages)
            assert pipeline.queue_length == 3 and sum(not s.done() for s in submits) == 3
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()
            sink.refusing = False
            await asyncio.gather(*submits)
            pipeline.close()  # flushes the last batch (the test's clock stands still: no batch ever comes of age)
            await task
    finally:  # a failed assertion must not leave the pipeline flushing into a refusing sink forever
        sink.refusing = False
    assert sorted(acks) == list(range(8))
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert any("written again" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


async def test_waiting_submissions_are_normalised_as_one_group_and_acked_in_order() -> None:
    """Drivers only queue: the run loop takes every submission waiting (up to the batch's room) and normalises them
    in one call, so one-value messages reach the numpy path together; each keeps its ack, in submission order."""
    sink = Sink()
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=Observer(), clock=lambda: NOW,
                        batch_max=150, batch_max_age_s=0.05)
    calls: list[int] = []
    normaliser = pipeline._normaliser

    def counting(raws, *args, **kw):
        calls.append(len(raws))
        return normaliser(raws, *args, **kw)

    pipeline._normaliser = counting  # type: ignore[assignment]
    acks: list[int] = []
    for i in range(200):  # queued before the loop runs: 150 fill the first batch's room, 50 the next group
        await pipeline.submit([_raw("pm25", float(i), "ug/m3", NOW - timedelta(seconds=200 - i), "local")],
                              lambda i=i: acks.append(i))
    task = asyncio.create_task(pipeline.run())
    for _ in range(500):
        if len(acks) == 200:
            break
        await asyncio.sleep(0.01)
    pipeline.close()
    await task
    assert calls == [150, 50]
    assert acks == list(range(200))
    assert [len(b) for b in sink.batches] == [150, 50]
    assert [r.raw_value for b in sink.batches for r in b] == [float(i) for i in range(200)]


async def test_a_group_never_spans_a_swap_of_the_books() -> None:
    """Submissions queued under one calibration/maintenance/ranges book are normalised with it, even when the
    daemon swaps in another before the run loop takes them."""
    sink = Sink()
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=Observer(), clock=lambda: NOW,
                        batch_max_age_s=0.05)
    await pipeline.submit([_raw("pm25", 1.0, "ug/m3", NOW - timedelta(seconds=2), "local")])
    pipeline.ranges = {("MS01", "pm25"): (0.0, 0.5)}  # the second submission's value is out of this range
    await pipeline.submit([_raw("pm25", 1.0, "ug/m3", NOW - timedelta(seconds=1), "local")])
    task = asyncio.create_task(pipeline.run())
    for _ in range(200):
        if sum(len(b) for b in sink.batches) == 2:
            break
        await asyncio.sleep(0.01)
    pipeline.close()
    await task
    flags = [bool(r.flags & QC.OUT_OF_RANGE) for b in sink.batches for r in sorted(b, key=lambda r: r.time)]
    assert flags == [False, True]
