"""The simulated station: register maps from the profiles, refreshed per read, status control, lifecycle."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sensors.modbus.decode import decode_value, encode_value
from sensors.modbus.link import ModbusLink, ModbusReadError
from sensors.modbus.profile import load_profile
from sensors.modbus.read import read_device, read_history
from sensors.network import bundled_network
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


# ---- faults, request counting, history ring -----------------------------------------------------------------


def test_set_fault_checks_device_fault_and_code() -> None:
    server = StationServer(biggest_station(), linear, Clock())
    device = biggest_station().devices[0].id
    with pytest.raises(KeyError, match="no device 'nope'"):
        server.set_fault("nope", "hang")
    with pytest.raises(ValueError, match=r"expected hang\|exception\|None, got 'smoke'"):
        server.set_fault(device, "smoke")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="code: expected a Modbus exception code .*, got 99"):
        server.set_fault(device, "exception", code=99)


@pytest.mark.integration
async def test_exception_fault_answers_the_code_until_cleared(served: tuple[StationServer, ModbusLink]) -> None:
    server, link = served
    o3 = next(d for d in server.sensor.devices if d.profile == "sim-o3")
    spec = load_profile("sim-o3").variable("o3")
    server.set_fault(o3.id, "exception", code=6)
    with pytest.raises(ModbusReadError) as info:
        await link.read("input", spec.pdu_address, 2, o3.unit_id or 0)
    assert (info.value.reason, info.value.exception_code) == ("exception_response", 6)
    other = next(d for d in server.sensor.devices if d.profile == "sim-co")
    assert len(await link.read("holding", load_profile("sim-co").variable("co").pdu_address, 2,
                               other.unit_id or 0)) == 2  # only that device is faulty
    server.set_fault(o3.id, None)
    assert await link.read("input", spec.pdu_address, 2, o3.unit_id or 0) == encode_value(10.0, spec)


@pytest.mark.integration
async def test_hang_fault_never_answers_until_cleared(clock: Clock) -> None:
    server = StationServer(biggest_station(), linear, clock)
    await server.start()
    link = ModbusLink("127.0.0.1", server.port, timeout_s=0.3, backoff_initial_s=0.0, backoff_max_s=0.0)
    try:
        nox = next(d for d in server.sensor.devices if d.profile == "sim-nox")
        server.set_fault(nox.id, "hang")
        started = asyncio.get_running_loop().time()
        with pytest.raises(ModbusReadError) as info:
            await link.read("input", 0, 6, nox.unit_id or 0)
        assert info.value.reason == "timeout"
        assert 0.25 <= asyncio.get_running_loop().time() - started < 1.0
        assert server.requests[nox.unit_id or 0] == 1  # the request arrived: the device just never answered
        server.set_fault(nox.id, None)
        assert len(await link.read("input", 0, 6, nox.unit_id or 0)) == 6
    finally:
        await link.close()
        await server.stop()


@pytest.mark.integration
async def test_offline_refuses_connections_and_keeps_the_port(clock: Clock) -> None:
    server = StationServer(biggest_station(), linear, clock)
    await server.start()
    port = server.port
    link = ModbusLink("127.0.0.1", port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
    try:
        await link.read("input", 0, 2, 1)
        await server.set_offline(True)
        assert server.offline
        with pytest.raises(ModbusReadError) as info:
            await link.read("input", 0, 2, 1)
        assert info.value.reason == "connection"
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
        await server.set_offline(False)
        assert server.port == port and not server.offline
        assert len(await link.read("input", 0, 2, 1)) == 2
    finally:
        await link.close()
        await server.stop()


@pytest.mark.integration
async def test_requests_are_counted_per_unit(served: tuple[StationServer, ModbusLink]) -> None:
    server, link = served
    server.clear_requests()
    await link.read("input", 0, 4, 1)
    await link.read("input", 0, 2, 1)
    await link.read("holding", 100, 1, 2)
    assert dict(server.requests) == {1: 2, 2: 1}
    assert [(r.unit_id, r.table, r.address, r.count) for r in server.recent_requests] == [
        (1, "input", 0, 4), (1, "input", 0, 2), (2, "holding", 100, 1)]


@pytest.mark.integration
async def test_history_ring_logs_one_record_per_period_with_the_flags_of_the_time(clock: Clock) -> None:
    sensor = biggest_station()
    server = StationServer(sensor, linear, clock, history_period_s=60)
    await server.start()
    link = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    nox = next(d for d in sensor.devices if d.profile == "sim-nox")
    profile = load_profile("sim-nox")
    assert profile.history is not None
    layout = profile.history.layout
    try:
        clock.t = T0 + timedelta(minutes=3, seconds=20)
        server.set_status(nox.id, ["maintenance"])  # from 03:20 on: the records of 00..03 stay clean
        clock.t = T0 + timedelta(minutes=5, seconds=59)
        records = await read_history(link, nox, profile)
        assert [r.time for r in records] == [T0 + timedelta(minutes=m) for m in range(6)]
        assert [r.status for r in records] == [0, 0, 0, 0, 0b10, 0b10]
        for r in records:
            minutes = (r.time - T0).total_seconds() / 60
            assert r.values == {"no": 10.0 + minutes, "no2": 10.0 + minutes, "nox": 10.0 + minutes}
        header = await link.read(layout.table, layout.pdu_address, 4, nox.unit_id or 0)
        assert header == [6, 6, layout.record_size, layout.capacity]
        clock.t = T0 + timedelta(minutes=layout.capacity + 10)  # a long silence: the ring wrapped
        wrapped = await read_history(link, nox, profile)
        assert len(wrapped) == layout.capacity
        assert wrapped[-1].time == clock.t and wrapped[0].time == clock.t - timedelta(minutes=layout.capacity - 1)
    finally:
        await link.close()
        await server.stop()
