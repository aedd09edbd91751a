"""The Modbus driver against a real simulated station: values within the type's precision, gaps not zeros."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.reading import QC
from sensors.modbus.link import ModbusLink, ModbusReadError
from sensors.modbus.poller import StationPoller, read_device, resolve_conditions
from sensors.network import ANALYSERS
from sensors.profile import Profile, VariableSpec, load_profile
from sensors.reading import Gap, RawReading
from sensors.sensor import Device, Sensor
from simulators.station import StationServer

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
#: one plausible value per variable, in the unit the sim profiles report
BASE = {"pm10": 48.7, "pm25": 21.3, "no": 12.5, "no2": 27.25, "nox": 39.75, "o3": 33.3, "so2": 3.1,
        "co": 0.84,
        "temperature": 14.6, "temperature_8m": 13.9, "temperature_20m": -2.3, "relativehumidity": 67.4,
        "pressure": 564.21, "wind_speed": 2.7, "wind_direction": 245.3, "precipitation": 0.2,
        "solar_radiation": 812.4, "bc": 2.345678, "bbp": 41.27, "co2": 431.19}


class Clock:
    """A settable aware-UTC clock."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def value_source(sensor_id: str, variable: str, t: datetime) -> float:
    return BASE[variable] + (t - T0).total_seconds() / 600


def station(port: int = 1, code: str = "TST") -> Sensor:
    """A station with every simulated analyser, unit id = position + 1 (as sensors.network builds them)."""
    devices = tuple(Device(id=f"{code}-{p.removeprefix('sim-')}", sensor_id=code, protocol="modbus-tcp",
                           profile=p, variables=v, host="127.0.0.1", port=port, unit_id=i)
                    for i, (p, v) in enumerate(ANALYSERS.items(), start=1))
    return Sensor(id=code, name="Test station", kind="station", lat=4.6, lon=-74.1, devices=devices)


def at_port(sensor: Sensor, port: int) -> Sensor:
    return replace(sensor, devices=tuple(replace(d, port=port) for d in sensor.devices))


def tolerance(spec: VariableSpec, value: float) -> float:
    """Half a step of the device's encoding at `value`."""
    relative = {"float16": 2**-11, "float32": 2**-24, "float64": 2**-53}.get(spec.data_type)
    if relative is not None:
        return abs(value) * relative * 1.01 + 1e-12
    return abs(spec.scale) / 2 + 1e-9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(clock: Clock) -> AsyncIterator[StationServer]:
    srv = StationServer(station(), value_source, clock)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def link(server: StationServer) -> AsyncIterator[ModbusLink]:
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0, backoff_initial_s=0.0, backoff_max_s=0.0)
    try:
        yield lnk
    finally:
        await lnk.close()


def profiles() -> dict[str, Profile]:
    return {name: load_profile(name) for name in ANALYSERS}


@pytest.mark.integration
async def test_every_variable_reads_back_within_its_precision(server: StationServer, link: ModbusLink,
                                                              clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    seen = set()
    for t in (T0, T0 + timedelta(minutes=7)):
        clock.t = t
        for device in sensor.devices:
            profile = load_profile(device.profile)
            result = await read_device(link, device, profile, clock)
            assert isinstance(result, list), result
            assert [r.variable for r in result] == list(device.variables)
            for reading in result:
                spec = profile.variable(reading.variable)
                expected = value_source(sensor.id, reading.variable, t)
                assert reading.value == pytest.approx(expected, abs=tolerance(spec, expected)), reading
                assert reading.unit == spec.unit
                assert reading.time == reading.received_at == t
                assert reading.time_source == "received"
                assert reading.device_status == 0
                assert (reading.sensor_id, reading.device_id) == (sensor.id, device.id)
                seen.add(reading.variable)
    assert seen == set(BASE)


@pytest.mark.integration
async def test_conditions_come_from_the_profile(server: StationServer, link: ModbusLink,
                                                clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    pm = next(d for d in sensor.devices if d.profile == "sim-pm")
    readings = await read_device(link, pm, load_profile("sim-pm"), clock)
    assert isinstance(readings, list) and {r.conditions for r in readings} == {"local"}


@pytest.mark.integration
async def test_status_register_sets_device_status(server: StationServer, link: ModbusLink,
                                                  clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    nox, o3 = sensor.devices[1], sensor.devices[2]
    server.set_status(nox.id, ["maintenance"])
    server.set_status(o3.id, ["device_invalid", "maintenance"])
    nox_readings = await read_device(link, nox, load_profile(nox.profile), clock)
    o3_readings = await read_device(link, o3, load_profile(o3.profile), clock)
    assert isinstance(nox_readings, list) and isinstance(o3_readings, list)
    assert {r.device_status for r in nox_readings} == {int(QC.MAINTENANCE)}
    assert {r.device_status for r in o3_readings} == {int(QC.DEVICE_INVALID | QC.MAINTENANCE)}
    server.set_status(nox.id)
    again = await read_device(link, nox, load_profile(nox.profile), clock)
    assert isinstance(again, list) and {r.device_status for r in again} == {0}


@pytest.mark.integration
async def test_gap_not_zero_when_nothing_listens(clock: Clock) -> None:
    port = free_port()
    now = [100.0]
    lnk = ModbusLink("127.0.0.1", port, timeout_s=1.0, backoff_initial_s=2.0, backoff_max_s=8.0,
                     monotonic=lambda: now[0])
    device = at_port(station(), port).devices[0]
    first = await read_device(lnk, device, load_profile("sim-pm"), clock)
    assert isinstance(first, Gap)
    assert (first.reason, first.sensor_id, first.device_id) == ("connection", "TST", device.id)
    assert first.time == T0
    assert "cannot connect" in first.detail and "next attempt in 2.0 s" in first.detail
    second = await read_device(lnk, device, load_profile("sim-pm"), clock)  # inside the backoff: no attempt
    assert isinstance(second, Gap) and "next connect attempt in 2.0 s" in second.detail
    now[0] += 2.0
    third = await read_device(lnk, device, load_profile("sim-pm"), clock)
    assert isinstance(third, Gap) and "next attempt in 4.0 s" in third.detail  # doubled
    await lnk.close()


@pytest.mark.integration
async def test_gap_when_the_station_stops_and_values_when_it_returns(clock: Clock) -> None:
    srv = StationServer(station(), value_source, clock)
    await srv.start()
    port = srv.port
    lnk = ModbusLink("127.0.0.1", port, timeout_s=1.0, backoff_initial_s=0.0, backoff_max_s=0.0)
    device = at_port(station(), port).devices[4]  # sim-co
    profile = load_profile("sim-co")
    try:
        assert isinstance(await read_device(lnk, device, profile, clock), list)
        await srv.stop()
        gap = await read_device(lnk, device, profile, clock)
        assert isinstance(gap, Gap) and gap.reason == "connection", gap
        srv = StationServer(station(), value_source, clock, port=port)
        await srv.start()
        back = await read_device(lnk, device, profile, clock)
        assert isinstance(back, list) and back[0].value == pytest.approx(BASE["co"], rel=1e-6)
    finally:
        await srv.stop()
        await lnk.close()


@pytest.mark.integration
async def test_gap_on_timeout_when_the_gateway_never_answers(clock: Clock) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    gateway = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = gateway.sockets[0].getsockname()[1]
    lnk = ModbusLink("127.0.0.1", port, timeout_s=0.3)
    device = at_port(station(), port).devices[2]
    try:
        gap = await read_device(lnk, device, load_profile("sim-o3"), clock)
        assert isinstance(gap, Gap) and gap.reason == "timeout", gap
        assert "no response within 0.3 s" in gap.detail
    finally:
        await lnk.close()
        gateway.close()
        await gateway.wait_closed()


@pytest.mark.integration
async def test_exception_response_for_an_unknown_unit(server: StationServer, link: ModbusLink) -> None:
    with pytest.raises(ModbusReadError) as info:
        await link.read("input", 0, 2, unit_id=42)
    err = info.value
    assert err.reason == "exception_response" and err.exception_code == 4
    assert str(err).startswith(f"modbus 127.0.0.1:{server.port} unit 42: input 0×2: exception_response:")


@pytest.mark.integration
async def test_exception_response_for_an_unmapped_address(server: StationServer, link: ModbusLink) -> None:
    with pytest.raises(ModbusReadError) as info:
        await link.read("input", 500, 2, unit_id=1)
    assert (info.value.reason, info.value.exception_code) == ("exception_response", 2)
    assert "illegal data address" in str(info.value)


@pytest.mark.integration
async def test_value_the_device_cannot_encode_is_a_gap(clock: Clock) -> None:
    def broken(sensor_id: str, variable: str, t: datetime) -> float:
        return 5000.0 if variable == "temperature" else BASE[variable]  # beyond int16 at scale 0.1

    srv = StationServer(station(), broken, clock)
    await srv.start()
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=1.0)
    try:
        met = at_port(station(), srv.port).devices[5]
        gap = await read_device(lnk, met, load_profile("sim-met"), clock)
        assert isinstance(gap, Gap) and gap.reason == "exception_response" and "device failure" in gap.detail
    finally:
        await lnk.close()
        await srv.stop()


@pytest.mark.integration
async def test_nan_values_give_no_reading(clock: Clock) -> None:
    def nan_no2(sensor_id: str, variable: str, t: datetime) -> float:
        return math.nan if variable in ("no2", "o3") else BASE[variable]

    srv = StationServer(station(), nan_no2, clock)
    await srv.start()
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=1.0)
    try:
        sensor = at_port(station(), srv.port)
        nox = await read_device(lnk, sensor.devices[1], load_profile("sim-nox"), clock)
        assert isinstance(nox, list) and [r.variable for r in nox] == ["no", "nox"]
        o3 = await read_device(lnk, sensor.devices[2], load_profile("sim-o3"), clock)
        assert isinstance(o3, Gap) and o3.reason == "not_finite"
    finally:
        await lnk.close()
        await srv.stop()


@pytest.mark.integration
async def test_discrete_input_status_bits(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "bits-o3.yaml").write_text("""
model: T-BITS
manufacturer: test
firmware: "1"
source: test profile shaped like a T400 (discrete inputs 19-24)
address_base: 0
variables:
  o3: {table: input, address: 18, data_type: float32, unit: ppb, range: [-5, 10000]}
status:
  table: discrete_input
  address: 19
  bits:
    0: {name: invalid concentration, flag: device_invalid}
    1: {name: zero calibration, flag: maintenance}
    5: {name: system OK, flag: device_invalid, when: clear}
""", encoding="utf-8")
    device = Device(id="B-o3", sensor_id="B", protocol="modbus-tcp", profile="bits-o3", variables=("o3",),
                    host="127.0.0.1", port=1, unit_id=3)
    sensor = Sensor(id="B", name="bits", kind="station", lat=0, lon=0, devices=(device,))
    srv = StationServer(sensor, value_source, clock, profiles_dir=tmp_path)
    await srv.start()
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=1.0)
    profile = load_profile("bits-o3", tmp_path)
    dev = replace(device, port=srv.port)
    try:
        assert await lnk.read("discrete_input", 19, 6, 3) == [False, False, False, False, False, True]
        ok = await read_device(lnk, dev, profile, clock)
        assert isinstance(ok, list) and ok[0].device_status == 0
        srv.set_status("B-o3", ["maintenance"])
        assert await lnk.read("discrete_input", 19, 6, 3) == [False, True, False, False, False, True]
        maint = await read_device(lnk, dev, profile, clock)
        assert isinstance(maint, list) and maint[0].device_status == int(QC.MAINTENANCE)
        srv.set_status("B-o3", ["device_invalid"])  # bit 0 set and "system OK" cleared
        assert await lnk.read("discrete_input", 19, 6, 3) == [True, False, False, False, False, False]
    finally:
        await lnk.close()
        await srv.stop()


@pytest.mark.integration
async def test_station_poller_polls_on_its_interval(server: StationServer, clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    batches: list[list[RawReading]] = []
    gaps: list[Gap] = []

    async def on_readings(readings: list[RawReading]) -> None:
        batches.append(readings)

    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=0.05, on_readings=on_readings,
                           on_gap=gaps.append)
    task = asyncio.create_task(poller.run())
    try:
        while len(batches) < 3 * len(sensor.devices):
            await asyncio.sleep(0.01)
    finally:
        await poller.stop()
        await lnk.close()
    assert task.done() and task.exception() is None
    assert not gaps
    assert {b[0].device_id for b in batches} == {d.id for d in sensor.devices}


@pytest.mark.integration
async def test_poller_logs_first_failure_error_repeats_debug_recovery_info(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    sensor = at_port(station(), port)
    sensor = replace(sensor, devices=sensor.devices[:1])
    lnk = ModbusLink("127.0.0.1", port, timeout_s=1.0, backoff_initial_s=0.0, backoff_max_s=0.0)
    readings: list[list[RawReading]] = []
    gaps: list[Gap] = []
    poller = StationPoller(sensor, {("127.0.0.1", port): lnk}, profiles(), clock, interval_s=30,
                           on_readings=readings.append, on_gap=gaps.append)
    caplog.set_level(logging.DEBUG, logger="sensors.modbus.poller")
    await poller.poll_once()
    await poller.poll_once()
    srv = StationServer(sensor, value_source, clock, port=port)
    await srv.start()
    try:
        await poller.poll_once()
    finally:
        await srv.stop()
        await lnk.close()
    assert [g.reason for g in gaps] == ["connection", "connection"] and len(readings) == 1
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "sensors.modbus.poller"]
    assert [level for level, _ in records] == [logging.ERROR, logging.DEBUG, logging.INFO]
    first = records[0][1]
    where = f"sensor TST device TST-pm (modbus 127.0.0.1:{port} unit 1)"
    assert first.startswith(f"{where}: connection: input 0×5:")
    assert first.endswith("gap recorded, retry in 30 s")


@pytest.mark.integration
async def test_poller_cancel_stops_cleanly(server: StationServer, clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=10, on_readings=lambda r: None,
                           on_gap=lambda g: None)
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await lnk.close()


def test_poller_refuses_an_incomplete_setup(clock: Clock) -> None:
    sensor = station(port=1502)
    other = ModbusLink("127.0.0.1", 1503)
    noop: Callable[[object], None] = lambda _: None  # noqa: E731
    with pytest.raises(ValueError, match=r"its link at 127\.0\.0\.1:1503"):
        StationPoller(sensor, other, profiles(), clock, interval_s=1, on_readings=noop, on_gap=noop)
    with pytest.raises(ValueError, match=r"TST-pm: profile 'sim-pm' not loaded"):
        StationPoller(sensor, ModbusLink("127.0.0.1", 1502), {}, clock, interval_s=1, on_readings=noop,
                      on_gap=noop)
    with pytest.raises(ValueError, match=r"no ModbusLink for 127\.0\.0\.1:1502"):
        StationPoller(sensor, {}, profiles(), clock, interval_s=1, on_readings=noop, on_gap=noop)


def test_required_conditions_need_the_technician() -> None:
    profile = replace(load_profile("sim-pm"), conditions="required")
    device = station().devices[0]
    with pytest.raises(ValueError, match="conditions: required: state local or reference"):
        resolve_conditions(device, profile)
    assert resolve_conditions(device, profile, "reference") == "reference"
    assert resolve_conditions(device, load_profile("sim-pm")) == "local"
