"""The pipeline's hand-off of the registry's books: readings in a maintenance window are stored with
QC.MAINTENANCE, a book swapped in applies from the next submission, and a temperature taken in maintenance is
not used to correct other readings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ingest.maintenance import MaintenanceBook, MaintenanceWindow
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.reading import QC
from sensors.network import bundled_network
from sensors.reading import RawReading

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)
H = timedelta(hours=1)


class Sink:
    def __init__(self) -> None:
        self.rows: list = []

    async def write(self, batch, letters=()):
        self.rows.extend(batch)


class Observer:
    def written(self, batch, result, seconds) -> None: ...

    def write_failed(self, error, attempt) -> None: ...

    def rejected(self, raw, reason, detail) -> None: ...


def _raw(sensor: str, variable: str, value: float, unit: str, t: datetime = NOW) -> RawReading:
    return RawReading(sensor, sensor, variable, value, unit, t, NOW,
                      conditions="local" if variable.startswith("pm") else None)


async def _drain(pipeline: Pipeline, task: asyncio.Task) -> None:
    pipeline.close()
    await task


async def test_readings_in_a_window_are_flagged_and_stored() -> None:
    sink = Sink()
    book = MaintenanceBook([MaintenanceWindow("MS01", NOW - H, NOW + H, variable="pm25")])
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=Observer(),
                        clock=lambda: NOW, batch_max_age_s=0.05, maintenance=book)
    task = asyncio.create_task(pipeline.run())
    await pipeline.submit([_raw("MS01", "pm25", 10, "ug/m3"), _raw("MS01", "pm10", 20, "ug/m3"),
                           _raw("MS02", "pm25", 10, "ug/m3"),
                           _raw("MS01", "pm25", 11, "ug/m3", NOW - 2 * H)])
    await _drain(pipeline, task)
    flagged = {(r.sensor_id, r.variable, r.time): bool(r.flags & QC.MAINTENANCE) for r in sink.rows}
    assert flagged == {("MS01", "pm25", NOW): True, ("MS01", "pm10", NOW): False,
                       ("MS02", "pm25", NOW): False, ("MS01", "pm25", NOW - 2 * H): False}


async def test_a_swapped_book_applies_from_the_next_submission() -> None:
    sink = Sink()
    pipeline = Pipeline(sink, conditions=ConditionsBook(bundled_network()), observer=Observer(),
                        clock=lambda: NOW, batch_max_age_s=0.05)
    task = asyncio.create_task(pipeline.run())
    await pipeline.submit([_raw("MS01", "pm25", 10, "ug/m3", NOW - timedelta(seconds=2))])
    pipeline.maintenance = MaintenanceBook(sensors_in_maintenance=["MS01"])
    await pipeline.submit([_raw("MS01", "pm25", 10, "ug/m3", NOW - timedelta(seconds=1))])
    pipeline.maintenance = MaintenanceBook()
    await pipeline.submit([_raw("MS01", "pm25", 10, "ug/m3")])
    await _drain(pipeline, task)
    assert [bool(r.flags & QC.MAINTENANCE) for r in sorted(sink.rows, key=lambda r: r.time)] == [False, True, False]


async def test_a_temperature_in_maintenance_is_not_a_site_condition() -> None:
    sink = Sink()
    conditions = ConditionsBook(bundled_network())
    book = MaintenanceBook([MaintenanceWindow("MS01", NOW - H, NOW + H, variable="temperature")])
    pipeline = Pipeline(sink, conditions=conditions, observer=Observer(), clock=lambda: NOW, batch_max_age_s=0.05,
                        maintenance=book)
    task = asyncio.create_task(pipeline.run())
    # a heat gun on the sensor during maintenance: 60 °C must not correct its PM reading
    await pipeline.submit([_raw("MS01", "temperature", 60.0, "degC"), _raw("MS01", "pm25", 10, "ug/m3")])
    await _drain(pipeline, task)
    pm = next(r for r in sink.rows if r.variable == "pm25")
    temperature = next(r for r in sink.rows if r.variable == "temperature")
    assert temperature.flags & QC.MAINTENANCE
    assert pm.conditions_source != "own" and pm.conditions_temp_c != 60.0
    assert not pm.flags & QC.MAINTENANCE
