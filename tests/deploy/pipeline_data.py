"""A day of the bundled network's data produced by the pipeline from the simulators, for the dashboard tests. I/O.

Nothing here inserts a measurement, an average or an alert itself. On a stepped simulated clock, every station's
analysers are read through the real poller decode path (`sensors.modbus.read.read_device`) from the simulated
stations' register maps (`simulators.station`, values from `simulators.signals.CitySignals` with the scenario's
faults, served in memory instead of over TCP: the bytes are the same, the sockets would only cost time), and
every microsensor's messages (`simulators.microsensor.SimulatedMicrosensor.step`) are decoded by the daemon's
`Intake`; the readings go through `ingest.pipeline.Pipeline` (normalise, QC, batch) into
`storage.writer.TimescaleWriter`, rejected messages become dead letters as in the daemon, the registry is seeded
by `upsert_registry`, and every simulated hour `alerts.jobs.run_stage_jobs` computes the averages, indices and
alerts with the bundled rules. The scenario: a PM2.5 episode over the south-west and a few faults (garbage,
clock skew, spike, negative, flatline).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts.jobs import run_stage_jobs
from alerts.rules.model import default_rules
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from sensors.modbus.profile import load_profile
from sensors.modbus.read import read_device
from sensors.mqtt.directory import UnknownDeviceError
from sensors.mqtt.payloads._message import PayloadError
from sensors.mqtt.subscriber import Intake
from sensors.network import bundled_network
from sensors.sensor import MODBUS_PROTOCOLS
from simulators.microsensor import SimulatedMicrosensor
from simulators.network_sim import SimulatedNetwork
from simulators.scenario import scenario_from_text
from simulators.signals import CitySignals
from storage import deadletter
from storage.live_network import network_ranges
from storage.registry.seed import upsert_registry
from storage.writer import TimescaleWriter

__all__ = ["BOGOTA", "ProducedData", "produce"]

BOGOTA = ZoneInfo("America/Bogota")

SCENARIO = """
description: dashboard test day - PM2.5 episode over the south-west, and faults
seed: 11
speed: 600
duration: 26h
poll_interval: 10m
publish_interval: 10m
episodes:
  - {variable: pm25, at: 7h, for: 10h, centre: [4.600, -74.155], radius_km: 4.5, factor: 3}
faults:
  - {kind: garbage, sensors: [MS03], at: 1h, for: 30m}
  - {kind: clock_skew, sensors: [MS07], at: 2h, for: 1h, params: {skew_s: 900}}
  - {kind: spike, sensors: [SUB], variable: pm10, at: 3h, for: 1h, params: {factor: 20, every_s: 1800}}
  - {kind: negative, sensors: [GYR], variable: so2, at: 4h, for: 30m, params: {value: -4}}
  - {kind: flatline, sensors: [MAM], variable: no2, at: 2h, for: 3h}
  - {kind: spike, sensors: [TUN], variable: pm10, at: 5h, for: 1h, params: {factor: 20, every_s: 1800}}
  - {kind: negative, sensors: [TUN], variable: no2, at: 6h, for: 30m, params: {value: -4}}
"""


@dataclass(frozen=True, slots=True)
class ProducedData:
    """What `produce` wrote: the simulated span [start, end] and counts for the tests' sanity checks."""

    start: datetime
    end: datetime
    readings: int
    dead_letters: int
    alert_events: int


class _MemoryLink:
    """The poller's `Link` over a simulated station's register map, read at the clock's instant."""

    def __init__(self, server: Any, unit_to_device: dict[int, str]) -> None:
        self._server = server
        self._devices = unit_to_device
        self.endpoint = f"memory:{server.sensor.id}"

    async def read(self, table: str, address: int, count: int, unit_id: int) -> list[int] | list[bool]:
        words = self._server._map(self._devices[unit_id]).words(table)  # the served bytes, without the socket
        return [words.get(a, 0) for a in range(address, address + count)]  # type: ignore[return-value]


class _Observer:
    def written(self, batch: Any, result: object, seconds: float) -> None:
        pass

    def write_failed(self, error: Exception, attempt: int) -> None:
        raise error

    def rejected(self, raw: Any, reason: str, detail: str) -> None:
        pass


def default_start(now: datetime) -> datetime:
    """01:00 UTC-5 … : 23:00 Bogotá two days before `now`'s local date, so 26 h end before `now`."""
    day = now.astimezone(BOGOTA).date() - timedelta(days=2)
    return (datetime(day.year, day.month, day.day, tzinfo=BOGOTA) - timedelta(hours=1)).astimezone(UTC)


async def _produce(url: str, start: datetime, hours: int, step_s: float) -> ProducedData:
    scenario = scenario_from_text(SCENARIO, name="grafana-test", source="tests/deploy/pipeline_data.py")
    network = bundled_network()
    state = {"t": start, "wall": time.monotonic()}

    def sim_clock() -> datetime:
        return state["t"]

    def pipeline_clock() -> datetime:  # simulated time, creeping on with real time so batches fall due
        return state["t"] + timedelta(seconds=time.monotonic() - state["wall"])

    signals = CitySignals(scenario.seed, episodes=scenario.episodes(start), sensors=network)
    plan = scenario.fault_plan(start)
    stations = [s for s in network if s.kind == "station"]
    sim = SimulatedNetwork(stations, signals, sim_clock, plan=plan)
    profiles = {d.profile: load_profile(d.profile) for s in stations for d in s.devices
                if d.protocol in MODBUS_PROTOCOLS}
    reads: list[tuple[_MemoryLink, Any]] = []
    for s in stations:
        server = sim.stations[s.id]
        units = {d.unit_id: d.id for d in s.devices if d.protocol == "modbus-tcp" and d.unit_id is not None}
        link = _MemoryLink(server, units)
        reads += [(link, d) for d in s.devices if d.protocol == "modbus-tcp"]
    microsensors = [SimulatedMicrosensor(s, signals, faults=plan, seed=scenario.seed)
                    for s in network if s.kind == "microsensor"]
    intake = Intake(network, tz=BOGOTA)
    cadences = {d.id: step_s for s in network for d in s.devices}
    rules = default_rules()
    pending = [0]
    counts = {"readings": 0, "dead": 0, "events": 0}

    def acked() -> None:
        pending[0] -= 1

    async with AsyncConnectionPool(url, min_size=1, max_size=4, open=False) as pool:
        await upsert_registry(pool, network)
        pipeline = Pipeline(TimescaleWriter(pool), conditions=ConditionsBook(network), observer=_Observer(),
                            clock=pipeline_clock, ranges=network_ranges(network, profiles), batch_max=2000,
                            batch_max_age_s=0.002)
        task = asyncio.create_task(pipeline.run())

        async def submit(readings: list[Any]) -> None:
            pending[0] += 1
            counts["readings"] += len(readings)
            await pipeline.submit(readings, acked)

        def stage(now: datetime) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                run = run_stage_jobs(conn, now, rules, cadence_s=cadences, tz=BOGOTA)
            counts["events"] += len(run.events)

        t = start
        end = start + timedelta(hours=hours)
        while t < end:
            t += timedelta(seconds=step_s)
            state["t"], state["wall"] = t, time.monotonic()
            for link, device in reads:
                result = await read_device(link, device, profiles[device.profile], sim_clock)
                if isinstance(result, list):
                    await submit(result)
            for ms in microsensors:
                for out in ms.step(t):
                    fmt = "airrohr" if out.transport == "http" else None
                    try:
                        resolved = intake.resolve(out.topic, out.payload, None, fmt=fmt, received_at=t)
                    except (PayloadError, UnknownDeviceError) as exc:  # the daemon's reject(): a dead letter
                        async with pool.connection() as conn:
                            await deadletter.record(conn, out.transport, exc.reason, exc.detail,
                                                    sensor_id=getattr(exc, "sensor_id", None) or out.sensor_id,
                                                    payload=out.payload, topic=out.topic, fmt=fmt)
                        counts["dead"] += 1
                        continue
                    await submit(list(resolved.readings))
            while pending[0]:
                await asyncio.sleep(0.002)
            if (t - start) % timedelta(hours=1) == timedelta(0):
                await asyncio.to_thread(stage, t + timedelta(seconds=1))
        pipeline.close()
        await task
    return ProducedData(start, end, counts["readings"], counts["dead"], counts["events"])


def produce(url: str, *, start: datetime | None = None, hours: int = 26, step_s: float = 600.0,
            now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ProducedData:
    """Run the simulated network through the pipeline into the database at `url` for `hours` simulated hours."""
    return asyncio.run(_produce(url, start or default_start(now()), hours, step_s))
