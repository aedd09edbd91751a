"""Every fault kind reaches the drivers and is handled as the drivers' issues say.

Parametrised from `FaultKind`: a kind without a case here fails `test_every_fault_kind_has_a_case`. Station
faults run through `simulators.network_sim.SimulatedNetwork` (a real pymodbus `StationServer`, faults applied
by the plan at the stepped simulated time) and are read by the real driver (`sensors.modbus.poller` over a
`ModbusLink`), then normalised and quality-checked by ingest like the daemon does. Message faults run through
the microsensor fleet's payloads and the MQTT driver's `Intake` (tests/simulators/test_faults_messages.py).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from aqnet.localstack import free_port
from ingest import qc
from ingest.normalise import normalise, site_default_conditions
from ingest.reading import QC, Reading
from sensors.modbus.link import ModbusLink
from sensors.modbus.poller import StationPoller
from sensors.modbus.profile import load_profile
from sensors.network import ANALYSERS
from sensors.reading import Gap, RawReading
from sensors.sensor import Device, Sensor
from simulators.faults import MESSAGE_ONLY, FaultKind, FaultPlan, FaultSpec
from simulators.network_sim import SimulatedNetwork
from tests.simulators import test_faults_messages

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PROFILES = ("sim-pm", "sim-nox", "sim-met")
PROFILE = {p: load_profile(p) for p in PROFILES}


class StepClock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


class RampSignals:
    """21.3 rising 0.5 per hour, for every variable: values a test can predict, never flat."""

    def value(self, sensor_id: str, variable: str, t: datetime, **_: object) -> float:
        return 21.3 + (t - T0).total_seconds() / 3600 * 0.5


def station(port: int) -> Sensor:
    units = {p: i for i, p in enumerate(ANALYSERS, start=1)}
    devices = tuple(Device(id=f"FX-{p.removeprefix('sim-')}", sensor_id="FX", protocol="modbus-tcp", profile=p,
                           variables=ANALYSERS[p][:3], host="127.0.0.1", port=port, unit_id=units[p])
                    for p in PROFILES)
    return Sensor(id="FX", name="fault station", kind="station", lat=4.6, lon=-74.1, devices=devices)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fault(kind: FaultKind, start_min: float, end_min: float, **kw: object) -> FaultSpec:
    return FaultSpec(kind=kind, start=at(start_min), end=at(end_min), sensors=frozenset({"FX"}),
                     **kw)  # type: ignore[arg-type]


class Rig:
    """A simulated station, the driver polling it, and what the driver emitted."""

    def __init__(self, sensor: Sensor, net: SimulatedNetwork, clock: StepClock, poller: StationPoller) -> None:
        self.sensor, self.net, self.clock, self.poller = sensor, net, clock, poller
        self.readings: list[RawReading] = []
        self.gaps: list[Gap] = []

    async def poll_at(self, minutes: float) -> tuple[list[RawReading], list[Gap]]:
        """Step the clock, apply the faults, poll every device once: what this poll emitted."""
        self.clock.t = at(minutes)
        await self.net.apply_faults()
        n, g = len(self.readings), len(self.gaps)
        await self.poller.poll_once()
        return self.readings[n:], self.gaps[g:]


@asynccontextmanager
async def rig(*faults: FaultSpec) -> AsyncIterator[Rig]:
    port = free_port()
    sensor = station(port)
    clock = StepClock(T0)
    net = SimulatedNetwork([sensor], RampSignals(), clock, plan=FaultPlan(faults))  # type: ignore[arg-type]
    await net.start()
    link = ModbusLink("127.0.0.1", port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
    out: Rig | None = None

    def on_readings(rs: list[RawReading]) -> None:
        assert out is not None
        out.readings.extend(rs)

    def on_gap(gap: Gap) -> None:
        assert out is not None
        out.gaps.append(gap)

    poller = StationPoller(sensor, link, PROFILE, clock, interval_s=60, on_readings=on_readings, on_gap=on_gap,
                           retry_initial_s=1.0)
    out = Rig(sensor, net, clock, poller)
    try:
        yield out
    finally:
        await link.close()
        await net.stop()


def ingest(raws: list[RawReading]) -> list[Reading]:
    """Normalise and quality-check one series after the other, as the daemon's pipeline does."""
    states: dict[tuple[str, str], qc.QCState | None] = {}
    out = []
    for raw in sorted(raws, key=lambda r: r.time):
        spec = PROFILE[f"sim-{raw.device_id.removeprefix('FX-')}"].variable(raw.variable)
        reading = normalise(raw, site_default_conditions(), range_=spec.range)
        key = (raw.device_id, raw.variable)
        reading, states[key] = qc.check(reading, states.get(key), raw.received_at)
        out.append(reading)
    return out


def of(readings: list[RawReading], variable: str) -> list[RawReading]:
    return [r for r in readings if r.variable == variable]


# ------------------------------------------------------------------------------------------------ cases

async def case_dropout() -> None:
    # the station goes offline: gaps during the outage, then the history ring fills it in (backfill)
    async with rig(fault(FaultKind.DROPOUT, 10, 30)) as r:
        live, gaps = await r.poll_at(5)
        assert live and not gaps
        for minute in (12, 20, 28):
            live, gaps = await r.poll_at(minute)
            assert not live
            assert {g.reason for g in gaps} <= {"connection", "timeout"} and len(gaps) == len(PROFILES)
        emitted, gaps = await r.poll_at(35)
        assert not gaps
        backfilled = [x for x in emitted if x.time_source == "device"]
        minutes = {round((x.time - T0).total_seconds() / 60) for x in of(backfilled, "pm25")}
        assert set(range(10, 30)) <= minutes, sorted(minutes)
        assert max(minutes) < 35


async def case_flatline() -> None:
    # pm25 stuck from minute 10: the same raw value for 6 h and more is flagged FLATLINE by ingest's QC
    async with rig(fault(FaultKind.FLATLINE, 10, 8 * 60, variable="pm25")) as r:
        for minute in range(0, 7 * 60 + 1, 30):
            await r.poll_at(minute)
        pm25 = of(r.readings, "pm25")
        assert len({x.value for x in pm25 if x.time >= at(10)}) == 1
        assert len({x.value for x in of(r.readings, "pm10")}) > 1  # only the faulty variable is stuck
        flags = {x.time: x.flags for x in ingest(r.readings) if x.variable == "pm25"}
        assert flags[at(7 * 60)] & QC.FLATLINE
        assert not flags[at(60)] & QC.FLATLINE
        assert not any(x.flags & QC.FLATLINE for x in ingest(of(r.readings, "pm10")))


async def case_spike() -> None:
    async with rig(fault(FaultKind.SPIKE, 10, 20, variable="pm25", params={"factor": 40})) as r:
        await r.poll_at(9)
        await r.poll_at(10.5)
        await r.poll_at(12)
        pm25 = of(r.readings, "pm25")
        assert pm25[1].value == pytest.approx(40 * pm25[0].value, rel=0.01)
        flags = [x.flags for x in ingest(pm25)]
        assert flags[1] & QC.SPIKE and flags[2] & QC.SPIKE  # both edges of the outlier
        assert not flags[0] & QC.SPIKE


async def case_negative() -> None:
    async with rig(fault(FaultKind.NEGATIVE, 10, 20, variable="no2", params={"value": -4})) as r:
        await r.poll_at(5)
        await r.poll_at(15)
        no2 = ingest(of(r.readings, "no2"))
        assert no2[1].raw_value == -4 and no2[1].flags & QC.NEGATIVE
        assert not no2[0].flags & QC.NEGATIVE


async def case_modbus_exception() -> None:
    async with rig(fault(FaultKind.MODBUS_EXCEPTION, 10, 20, devices=frozenset({"FX-nox"}),
                         params={"code": 4})) as r:
        live, gaps = await r.poll_at(15)
        assert [(g.device_id, g.reason) for g in gaps] == [("FX-nox", "exception_response")]
        assert {x.device_id for x in live} == {"FX-pm", "FX-met"}
        live, gaps = await r.poll_at(25)
        assert not gaps and {x.device_id for x in live} == {"FX-pm", "FX-nox", "FX-met"}


async def case_modbus_hang() -> None:
    async with rig(fault(FaultKind.MODBUS_HANG, 10, 20, devices=frozenset({"FX-nox"}))) as r:
        live, gaps = await r.poll_at(15)
        assert [(g.device_id, g.reason) for g in gaps] == [("FX-nox", "timeout")]
        assert {x.device_id for x in live} == {"FX-pm", "FX-met"}  # one hung analyser costs the others nothing
        live, gaps = await r.poll_at(25)
        assert not gaps and "FX-nox" in {x.device_id for x in live}


async def case_word_order() -> None:
    # served CDAB to a driver whose profile says ABCD: the value decodes wrong, and out of range it is flagged
    async with rig(fault(FaultKind.WORD_ORDER, 10, 20, devices=frozenset({"FX-pm"}))) as r:
        await r.poll_at(15)
        truth = RampSignals().value("FX", "pm25", at(15))
        words = struct.unpack(">HH", struct.pack(">f", truth))
        swapped = struct.unpack(">f", struct.pack(">HH", words[1], words[0]))[0]
        pm25 = of(r.readings, "pm25")[0]
        assert pm25.value == pytest.approx(swapped) and pm25.value != pytest.approx(truth)
        assert ingest([pm25])[0].flags & QC.OUT_OF_RANGE
        no2 = of(r.readings, "no2")[0]  # the other analysers are served right
        assert no2.value == pytest.approx(RampSignals().value("FX", "no2", at(15)), rel=1e-6)
        await r.poll_at(25)
        assert of(r.readings, "pm25")[-1].value == pytest.approx(RampSignals().value("FX", "pm25", at(25)),
                                                                 rel=1e-6)


STATION_CASES: dict[FaultKind, Callable[[], Awaitable[None]]] = {
    FaultKind.DROPOUT: case_dropout,
    FaultKind.FLATLINE: case_flatline,
    FaultKind.SPIKE: case_spike,
    FaultKind.NEGATIVE: case_negative,
    FaultKind.MODBUS_EXCEPTION: case_modbus_exception,
    FaultKind.MODBUS_HANG: case_modbus_hang,
    FaultKind.WORD_ORDER: case_word_order,
}


def test_every_fault_kind_has_a_case() -> None:
    covered = set(STATION_CASES) | set(test_faults_messages.MESSAGE_CASES)
    assert covered == set(FaultKind), f"no driver test for {sorted(set(FaultKind) - covered)}"
    assert set(test_faults_messages.MESSAGE_CASES) >= MESSAGE_ONLY


@pytest.mark.integration
@pytest.mark.parametrize("kind", [k for k in FaultKind if k in STATION_CASES], ids=str)
async def test_station_fault_reaches_the_modbus_driver(kind: FaultKind) -> None:
    await STATION_CASES[kind]()
