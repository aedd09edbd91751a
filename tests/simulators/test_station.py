"""The simulated station: register maps from the profiles, refreshed per read, status control, lifecycle."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sensors.modbus.decode import decode_value, encode_value
from sensors.modbus.link import ModbusLink, ModbusReadError
from sensors.modbus.poller import read_device
from sensors.network import bundled_network
from sensors.profile import load_profile
from sensors.sensor import Sensor
from simulators.signals import REPORTED_UNITS, CitySignals
from simulators.station import StationServer

T0 = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def stations() -> list[Sensor]:
    return [s for s in bundled_network() if s.kind == "station"]


def biggest_station() -> Sensor:
    return max(stations(), key=lambda s: sum(len(d.variables) for d in s.devices))


def linear(sensor_id: str, variable: str, t: datetime) -> float:
    return 10.0 + (t - T0).total_seconds() / 60  # +1 per minute


def test_profiles_report_the_units_the_signals_produce() -> None:
    for sensor in stations():
        for device in sensor.devices:
            profile = load_profile(device.profile)
            for name in device.variables:
                assert profile.variable(name).unit == REPORTED_UNITS[name], (device.profile, name)


def test_city_signals_fit_every_register_encoding() -> None:
    signals = CitySignals(7)
    profiles = {d.profile: load_profile(d.profile) for s in stations() for d in s.devices}
    for hour in range(0, 24 * 8, 5):  # a week and a bit, every 5 h: every hour of day, weekdays and weekend
        t = T0 + timedelta(hours=hour)
        for sensor in stations():
            for device in sensor.devices:
                for name in device.variables:
                    spec = profiles[device.profile].variable(name)
                    value = signals.value(sensor.id, name, t)
                    registers = encode_value(value, spec)  # raises if the type can't hold it
                    assert decode_value(registers, spec) == pytest.approx(value, rel=1e-3, abs=spec.scale)
                    low, high = spec.range
                    assert low <= value <= high, (sensor.id, name, value, spec.range)


def test_duplicate_unit_ids_are_refused() -> None:
    sensor = biggest_station()
    twin = replace(sensor.devices[1], id="twin", unit_id=sensor.devices[0].unit_id)
    with pytest.raises(ValueError, match=r"unit id 1 used by .*-pm and twin"):
        StationServer(replace(sensor, devices=(*sensor.devices, twin)), linear, Clock())


def test_set_status_checks_device_and_flags() -> None:
    server = StationServer(biggest_station(), linear, Clock())
    with pytest.raises(KeyError, match="no device 'nope'"):
        server.set_status("nope", ["maintenance"])
    with pytest.raises(ValueError, match=r"expected device_invalid\|maintenance, got \['calibrating'\]"):
        server.set_status(biggest_station().devices[0].id, ["calibrating"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def served(clock: Clock) -> AsyncIterator[tuple[StationServer, ModbusLink]]:
    server = StationServer(biggest_station(), linear, clock)
    await server.start()
    link = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    try:
        yield server, link
    finally:
        await link.close()
        await server.stop()


@pytest.mark.integration
async def test_start_picks_a_free_port(served: tuple[StationServer, ModbusLink]) -> None:
    server, _ = served
    assert server.port > 0 and server.endpoint == ("127.0.0.1", server.port)


@pytest.mark.integration
async def test_every_device_is_served_under_its_unit_id(served: tuple[StationServer, ModbusLink],
                                                        clock: Clock) -> None:
    server, link = served
    for device in server.sensor.devices:
        profile = load_profile(device.profile)
        for name in device.variables:
            spec = profile.variable(name)
            registers = await link.read(spec.table, spec.pdu_address, spec.count, device.unit_id or 0)
            assert registers == encode_value(10.0, spec), (device.id, name)


@pytest.mark.integration
async def test_registers_refresh_on_every_read(served: tuple[StationServer, ModbusLink],
                                               clock: Clock) -> None:
    _, link = served
    spec = load_profile("sim-co").variable("co")
    for minutes in (0, 5, 90):
        clock.t = T0 + timedelta(minutes=minutes)
        registers = await link.read("holding", spec.pdu_address, 2, unit_id=5)
        assert decode_value(registers, spec) == pytest.approx(10.0 + minutes)


@pytest.mark.integration
async def test_status_register_bits(served: tuple[StationServer, ModbusLink]) -> None:
    server, link = served
    nox = next(d for d in server.sensor.devices if d.profile == "sim-nox")
    status = load_profile("sim-nox").status
    assert status is not None and status.pdu_address == 100  # written 1-based as 101
    assert await link.read("holding", 100, 1, nox.unit_id or 0) == [0]
    server.set_status(nox.id, ["device_invalid"])
    assert await link.read("holding", 100, 1, nox.unit_id or 0) == [0b01]
    server.set_status(nox.id, ["device_invalid", "maintenance"])
    assert await link.read("holding", 100, 1, nox.unit_id or 0) == [0b11]
    server.set_status(nox.id, [])
    assert await link.read("holding", 100, 1, nox.unit_id or 0) == [0]


@pytest.mark.integration
async def test_unmapped_registers_and_tables_are_illegal_addresses(
        served: tuple[StationServer, ModbusLink]) -> None:
    _, link = served
    cases = (("input", 1000, 2), ("input", 4, 2), ("coil", 0, 1), ("discrete_input", 0, 1))
    for table, address, count in cases:
        with pytest.raises(ModbusReadError) as info:
            await link.read(table, address, count, unit_id=1)  # sim-pm: input 0..4 only
        assert info.value.exception_code == 2, (table, address)


@pytest.mark.integration
async def test_stop_closes_the_port(clock: Clock) -> None:
    server = StationServer(biggest_station(), linear, clock)
    await server.start()
    port = server.port
    await server.stop()
    await server.stop()  # idempotent
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


@pytest.mark.integration
async def test_whole_bundled_network_reads_back_the_city_signals(clock: Clock) -> None:
    signals = CitySignals(3)
    servers = [StationServer(s, signals.value, clock) for s in stations()]
    links: list[ModbusLink] = []
    try:
        for server in servers:
            await server.start()
        network = bundled_network({s.sensor.id: ("127.0.0.1", s.port) for s in servers})
        for sensor in (s for s in network if s.kind == "station"):
            link = ModbusLink("127.0.0.1", sensor.devices[0].port or 0, timeout_s=1.0)
            links.append(link)
            for device in sensor.devices:
                profile = load_profile(device.profile)
                result = await read_device(link, device, profile, clock)
                assert isinstance(result, list), result
                for reading in result:
                    expected = signals.value(sensor.id, reading.variable, clock.t)
                    spec = profile.variable(reading.variable)
                    assert reading.value == pytest.approx(expected, rel=1e-3, abs=spec.scale / 2 + 1e-9)
    finally:
        for link in links:
            await link.close()
        for server in servers:
            await server.stop()
