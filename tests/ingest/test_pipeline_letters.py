"""Refused input travels through the pipeline as letters, in the batch, and is acknowledged only after the sink
stored it: a reading that cannot be normalised and a message the driver refused alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ingest.letter import Letter
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from sensors.network import bundled_network
from sensors.reading import RawReading
from tests.fixtures.waiting import until

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)


class Sink:
    def __init__(self, fail_first: int = 0) -> None:
        self.writes: list[tuple[list, list]] = []
        self.fail_first = fail_first

    async def write(self, batch, letters=()):
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("database down")
        self.writes.append((list(batch), list(letters)))


class Observer:
    def __init__(self) -> None:
        self.rejected_reasons: list[str] = []

    def written(self, batch, result, seconds) -> None: ...

    def write_failed(self, error, attempt) -> None: ...

    def rejected(self, raw, reason, detail) -> None:
        self.rejected_reasons.append(reason)


async def _pipeline(sink: Sink, observer: Observer) -> tuple[Pipeline, asyncio.Task[None]]:
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=observer, clock=lambda: NOW,
                        batch_max=1, batch_max_age_s=0.05, retry_max_s=0.01)  # each submission is a batch
    return pipeline, asyncio.create_task(pipeline.run())


async def test_a_reading_that_cannot_be_normalised_is_a_letter_in_its_batch() -> None:
    sink, observer = Sink(fail_first=2), Observer()
    pipeline, task = await _pipeline(sink, observer)
    acked: list[str] = []
    good = RawReading("MS01", "MS01", "pm25", 12.0, "µg/m³", NOW, NOW, conditions="local")
    bad = RawReading("MS01", "MS01", "pm10", 3.0, "furlongs", NOW, NOW)
    await pipeline.submit([good, bad], lambda: acked.append("message"))
    await until(lambda: acked, timeout_s=4)
    pipeline.close()
    await task
    assert acked == ["message"] and observer.rejected_reasons  # counted, and ...
    ((readings, letters),) = sink.writes  # ... stored with the batch, after two failed writes, then acked
    assert [r.variable for r in readings] == ["pm25"]
    (refused,) = letters
    assert (refused.source, refused.sensor_id, refused.received_at) == ("pipeline", "MS01", NOW)
    assert refused.reading == {"sensor_id": "MS01", "device_id": "MS01", "variable": "pm10", "value": 3.0,
                               "unit": "furlongs", "time": NOW.isoformat()}


async def test_a_refused_message_is_acknowledged_only_after_its_letter_is_written() -> None:
    sink, observer = Sink(fail_first=3), Observer()
    pipeline, task = await _pipeline(sink, observer)
    acked: list[int] = []
    refused = Letter("mqtt", "not_json", "payload is not JSON", NOW, sensor_id="MS02", payload=b"\xff")
    await pipeline.submit([], lambda: acked.append(1), letters=[refused])
    await asyncio.sleep(0.02)
    assert acked == [] or sink.writes  # never acknowledged before a write succeeded
    await until(lambda: acked, timeout_s=4)
    assert sink.writes == [([], [refused])]
    assert pipeline.try_submit([], letters=[refused])  # a Modbus device failure: queued without waiting
    await until(lambda: len(sink.writes) == 2, timeout_s=4)
    pipeline.close()
    await task
