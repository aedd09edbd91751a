"""Device times outside the plausibility window are refused (issue 16): pure window, and through the pipeline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ingest.normalise import ConditionsBook, NormaliseError
from ingest.pipeline import Pipeline
from ingest.plausibility import TimeWindow
from sensors.network import bundled_network
from sensors.reading import RawReading

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)
WINDOW = TimeWindow(past_days=30, future_s=86_400)


def _raw(time: datetime, source: str = "device") -> RawReading:
    return RawReading("MS01", "MS01", "pm25", 12.0, "µg/m³", time, NOW, conditions="local",
                      time_source=source)  # type: ignore[arg-type]


@pytest.mark.parametrize("time", [
    NOW, NOW - timedelta(days=30), NOW + timedelta(days=1), NOW - timedelta(days=29, hours=23),
])
def test_times_inside_the_window_pass(time: datetime) -> None:
    WINDOW.check(_raw(time), NOW)


@pytest.mark.parametrize(("time", "which"), [
    (datetime(9999, 12, 31, 23, 59, tzinfo=UTC), "ingest.device_time_future_s"),
    (datetime(1, 1, 2, tzinfo=UTC), "ingest.device_time_past_days"),
    (NOW + timedelta(days=1, seconds=1), "ingest.device_time_future_s"),
    (NOW - timedelta(days=30, seconds=1), "ingest.device_time_past_days"),
])
def test_times_outside_the_window_are_refused_naming_the_setting(time: datetime, which: str) -> None:
    with pytest.raises(NormaliseError) as exc:
        WINDOW.check(_raw(time), NOW)
    assert exc.value.reason == "device_time" and which in str(exc.value) and "MS01" in str(exc.value)


def test_receive_time_readings_always_pass_and_bad_windows_are_refused() -> None:
    WINDOW.check(_raw(datetime(1, 1, 2, tzinfo=UTC), source="received"), NOW)
    with pytest.raises(ValueError, match="past_days > 0"):
        TimeWindow(past_days=0)


class _Sink:
    def __init__(self) -> None:
        self.writes: list[tuple[list, list]] = []

    async def write(self, batch, letters=()):  # type: ignore[no-untyped-def]
        self.writes.append((list(batch), list(letters)))


class _Observer:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def written(self, batch, result, seconds) -> None: ...  # type: ignore[no-untyped-def]

    def write_failed(self, error, attempt) -> None: ...  # type: ignore[no-untyped-def]

    def rejected(self, raw, reason, detail) -> None:  # type: ignore[no-untyped-def]
        self.reasons.append(reason)


async def test_a_device_time_in_year_9999_becomes_a_dead_letter_not_a_reading() -> None:
    sink, observer = _Sink(), _Observer()
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=observer, clock=lambda: NOW,
                        batch_max=1, batch_max_age_s=0.05)  # the default window
    task = asyncio.create_task(pipeline.run())
    acked: list[int] = []
    await pipeline.submit([_raw(NOW), _raw(datetime(9999, 12, 31, tzinfo=UTC))], lambda: acked.append(1))
    for _ in range(400):
        if acked:
            break
        await asyncio.sleep(0.01)
    pipeline.close()
    await task
    assert acked == [1] and observer.reasons == ["device_time"]
    ((readings, letters),) = sink.writes
    assert [r.time for r in readings] == [NOW]
    (letter,) = letters
    assert letter.reason == "device_time" and letter.reading is not None and letter.reading["time"].startswith("9999")
