"""Backfill end to end: a station goes offline, comes back, and the stored series has no gap and no duplicate.

Real pymodbus server (the simulated station with its logger history rings), the real poller, the ingest
pipeline and the TimescaleDB writer, wired as aqnet/daemon/ wires them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.reading import QC, Reading
from sensors.modbus.link import ModbusLink
from sensors.modbus.poller import StationPoller
from sensors.modbus.profile import load_profile
from sensors.network import ANALYSERS
from sensors.reading import RawReading
from sensors.sensor import Device, Sensor
from simulators.station import StationServer
from storage.writer import TimescaleWriter, WriteResult

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MINUTES = 30
#: minutes the station is unreachable: a 6-minute outage, a 1-minute blip, and a 4-minute one
OFFLINE = {*range(5, 11), 14, *range(20, 24)}
#: minutes its NOx analyser reports maintenance (status bit 1), partly inside an outage
MAINTENANCE = set(range(8, 13))


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        return self.t


class Observer:
    """The pipeline's observer: what the writer did, and anything rejected."""

    def __init__(self) -> None:
        self.results: list[WriteResult] = []
        self.rejections: list[tuple[RawReading, str, str]] = []

    def written(self, batch: Sequence[Reading], result: object, seconds: float) -> None:
        assert isinstance(result, WriteResult)
        self.results.append(result)

    def write_failed(self, error: Exception, attempt: int) -> None:
        raise AssertionError(f"write failed: {error}")

    def rejected(self, raw: RawReading, reason: str, detail: str) -> None:
        self.rejections.append((raw, reason, detail))


def value_source(sensor_id: str, variable: str, t: datetime) -> float:
    minutes = (t - T0).total_seconds() / 60
    return {"pm10": 40.0, "pm25": 20.0, "no": 10.0, "no2": 25.0, "nox": 35.0}[variable] + minutes / 4


def the_station(port: int) -> Sensor:
    devices = tuple(Device(id=f"BKF-{p.removeprefix('sim-')}", sensor_id="BKF", protocol="modbus-tcp", profile=p,
                           variables=ANALYSERS[p], host="127.0.0.1", port=port, unit_id=unit)
                    for unit, p in ((1, "sim-pm"), (2, "sim-nox")))
    return Sensor(id="BKF", name="Backfill station", kind="station", lat=4.6, lon=-74.1, devices=devices)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as p:
        yield p


async def test_backfill_after_outages_leaves_no_gap_and_no_duplicate(pool: AsyncConnectionPool[Any],
                                                                      database_url: str) -> None:
    clock = Clock()
    server = StationServer(the_station(1), value_source, clock, history_period_s=60)
    await server.start()
    sensor = the_station(server.port)
    link = ModbusLink("127.0.0.1", server.port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
    observer = Observer()
    pipeline = Pipeline(TimescaleWriter(pool), conditions=ConditionsBook([sensor]), observer=observer, clock=clock,
                        batch_max=50, batch_max_age_s=0.2)
    pipeline_task = asyncio.create_task(pipeline.run())
    profiles = {d.profile: load_profile(d.profile) for d in sensor.devices}
    poller = StationPoller(sensor, link, profiles, clock, interval_s=60, on_readings=pipeline.submit,
                           on_gap=lambda gap: None)
    try:
        for minute in range(MINUTES):
            clock.t = T0 + timedelta(minutes=minute)
            await server.set_offline(minute in OFFLINE)
            server.set_status("BKF-nox", ["maintenance"] if minute in MAINTENANCE else [])
            results = await poller.poll_once()
            assert all(isinstance(r, list) for r in results) == (minute not in OFFLINE), minute
    finally:
        pipeline.close()
        await pipeline_task
        await link.close()
        await server.stop()

    assert not observer.rejections
    assert sum(r.duplicates for r in observer.results) == 0, "a reading was emitted twice"
    assert sum(r.conflicts for r in observer.results) == 0
    expected = [T0 + timedelta(minutes=m) for m in range(MINUTES)]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT device_id, variable, time, raw_value, flags FROM measurements "
                            "ORDER BY device_id, variable, time").fetchall()
    series: dict[tuple[str, str], list[tuple[datetime, float, int]]] = {}
    for device_id, variable, time, raw_value, flags in rows:
        series.setdefault((device_id, variable), []).append((time, raw_value, flags))
    assert set(series) == {(d.id, v) for d in sensor.devices for v in d.variables}
    for (device_id, variable), points in series.items():
        assert [t for t, _, _ in points] == expected, (device_id, variable)  # one row per minute: no gap
        for t, raw_value, flags in points:
            assert raw_value == pytest.approx(value_source("BKF", variable, t), rel=1e-6)
            minute = int((t - T0).total_seconds() // 60)
            # the status in force when a record was logged becomes its flags, as the live read's does
            raised = minute in MAINTENANCE if device_id == "BKF-nox" else False
            assert bool(flags & QC.MAINTENANCE) == raised, (device_id, variable, minute)
    assert len(rows) == MINUTES * 5


async def test_a_restarted_poller_backfills_from_its_first_failed_read(pool: AsyncConnectionPool[Any],
                                                                       database_url: str) -> None:
    """Nothing emitted yet (the daemon started while the station was down): backfill from the first failure."""
    clock = Clock()
    server = StationServer(the_station(1), value_source, clock, history_period_s=60)
    await server.start()
    sensor = replace(the_station(server.port), devices=the_station(server.port).devices[1:])  # NOx only
    link = ModbusLink("127.0.0.1", server.port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
    observer = Observer()
    pipeline = Pipeline(TimescaleWriter(pool), conditions=ConditionsBook([sensor]), observer=observer, clock=clock)
    pipeline_task = asyncio.create_task(pipeline.run())
    poller = StationPoller(sensor, link, {"sim-nox": load_profile("sim-nox")}, clock, interval_s=60,
                           on_readings=pipeline.submit, on_gap=lambda gap: None)
    try:
        for minute in range(3, 8):  # logging since minute 0; down at 3 and 4 when aqnet starts
            clock.t = T0 + timedelta(minutes=minute)
            await server.set_offline(minute < 5)
            await poller.poll_once()
    finally:
        pipeline.close()
        await pipeline_task
        await link.close()
        await server.stop()
    with psycopg.connect(database_url) as conn:
        times = [t for (t,) in conn.execute("SELECT time FROM measurements WHERE variable = 'no2' ORDER BY time")]
    assert times == [T0 + timedelta(minutes=m) for m in range(3, 8)]
