"""RTU links: one owner per bus, pacing between frames, a dead device costing its timeout, RTU over TCP.

The integration tests run aqnet's SerialLink against simulators.rtu's RTU server on a real pseudo-terminal pair
made by socat, and RtuOverTcpLink against the same server on a TCP listener.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from sensors.modbus.link import (
    HA_SERIAL_GAP_S,
    LinkRegistry,
    ModbusLink,
    ModbusReadError,
    RtuOverTcpLink,
    SerialLink,
    default_serial_gap_s,
    link_key,
    silent_interval_s,
)
from sensors.modbus.plan import plan_requests
from sensors.modbus.profile import Profile, VariableSpec, load_profile
from sensors.modbus.read import read_device
from sensors.network import ANALYSERS
from sensors.reading import Gap, RawReading
from sensors.sensor import Device, Sensor
from simulators.rtu import PtyPair, RtuStationServer

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
#: one plausible value per variable, in the unit the sim profiles report
BASE = {"pm10": 48.7, "pm25": 21.3, "no": 12.5, "no2": 27.25, "nox": 39.75, "o3": 33.3, "so2": 3.1,
        "co": 0.84, "temperature": 14.6, "temperature_8m": 13.9, "temperature_20m": -2.3,
        "relativehumidity": 67.4, "pressure": 564.21, "wind_speed": 2.7, "wind_direction": 245.3,
        "precipitation": 0.2, "solar_radiation": 812.4, "bc": 2.345678, "bbp": 41.27, "co2": 431.19}
LINE = {"baudrate": 9600, "parity": "N", "stopbits": 1, "bytesize": 8}


def clock() -> datetime:
    return T0


def value_source(sensor_id: str, variable: str, t: datetime) -> float:
    return BASE[variable]


def rtu_station(serial_port: str = "/dev/ttyS9", code: str = "RTU") -> Sensor:
    """Every simulated analyser on one RS-485 bus, unit id = position + 1."""
    devices = tuple(Device(id=f"{code}-{p.removeprefix('sim-')}", sensor_id=code, protocol="modbus-rtu",
                           profile=p, variables=v, unit_id=i, serial_port=serial_port, **LINE)  # type: ignore[arg-type]
                    for i, (p, v) in enumerate(ANALYSERS.items(), start=1))
    return Sensor(id=code, name="RTU station", kind="station", lat=4.6, lon=-74.1, devices=devices)


def gateway_station(port: int, code: str = "GW") -> Sensor:
    devices = tuple(Device(id=f"{code}-{p.removeprefix('sim-')}", sensor_id=code, protocol="modbus-rtu-tcp",
                           profile=p, variables=v, unit_id=i, host="127.0.0.1", port=port)
                    for i, (p, v) in enumerate(ANALYSERS.items(), start=1))
    return Sensor(id=code, name="Gateway station", kind="station", lat=4.6, lon=-74.1, devices=devices)


def tolerance(spec: VariableSpec, value: float) -> float:
    relative = {"float16": 2**-11, "float32": 2**-24, "float64": 2**-53}.get(spec.data_type)
    if relative is not None:
        return abs(value) * relative * 1.01 + 1e-12
    return abs(spec.scale) / 2 + 1e-9


def profiles() -> dict[str, Profile]:
    return {name: load_profile(name) for name in ANALYSERS}


def assert_read_back(device: Device, result: list[RawReading] | Gap) -> None:
    assert isinstance(result, list), f"{device.id}: {result}"
    spec_of = profiles()[device.profile]
    assert [r.variable for r in result] == list(device.variables)
    for reading in result:
        expected = BASE[reading.variable]
        assert abs(reading.value - expected) <= tolerance(spec_of.variable(reading.variable), expected)


# --- pure: timing, keys, the registry, the Device record -------------------------------------------------


def test_silent_interval_is_three_and_a_half_characters() -> None:
    # 9600 8N1: 10 bits a character; 19200 8E1: 11 bits (Modbus over Serial Line V1.02, 2.5.1.1)
    assert silent_interval_s(9600, parity="N") == pytest.approx(3.5 * 10 / 9600)
    assert silent_interval_s(19200) == pytest.approx(3.5 * 11 / 19200)
    assert silent_interval_s(9600, parity="N", stopbits=2) == pytest.approx(3.5 * 11 / 9600)
    assert silent_interval_s(115200) == 0.00175  # fixed above 19200 bit/s
    with pytest.raises(ValueError, match="baudrate"):
        silent_interval_s(0)


def test_default_serial_gap_is_at_least_ha_30_ms_and_t35() -> None:
    assert default_serial_gap_s(9600) == HA_SERIAL_GAP_S == 0.030
    assert default_serial_gap_s(1200) == pytest.approx(3.5 * 11 / 1200)  # 32 ms > 30 ms
    assert SerialLink("/dev/ttyS9", baudrate=300).request_gap_s == pytest.approx(3.5 * 11 / 300)
    assert SerialLink("/dev/ttyS9", request_gap_s=0.005).request_gap_s == 0.005


def test_link_key_is_the_physical_link() -> None:
    sensor = rtu_station("/dev/ttyUSB0")
    assert {link_key(d) for d in sensor.devices} == {"/dev/ttyUSB0"}
    assert {link_key(d) for d in gateway_station(4001).devices} == {"127.0.0.1:4001"}
    mqtt = Device(id="MS1", sensor_id="MS1", protocol="mqtt", profile="aqnet-json", variables=("pm25",), topic="t")
    with pytest.raises(ValueError, match="MS1: not a Modbus device"):
        link_key(mqtt)


def test_registry_hands_every_device_on_one_link_the_same_owner() -> None:
    registry = LinkRegistry(timeout_s=0.5)
    bus = [registry.link_for(d) for d in rtu_station("/dev/ttyUSB0").devices]
    assert all(link is bus[0] for link in bus) and isinstance(bus[0], SerialLink)
    assert bus[0].line == "9600 8N1" and bus[0].request_gap_s == default_serial_gap_s(9600, parity="N")
    gateway = [registry.link_for(d) for d in gateway_station(4001).devices]
    assert all(link is gateway[0] for link in gateway) and isinstance(gateway[0], RtuOverTcpLink)
    assert gateway[0].request_gap_s == 0.0
    tcp = Device(id="T-pm", sensor_id="T", protocol="modbus-tcp", profile="sim-pm", variables=("pm10",),
                 host="127.0.0.1", port=4002, unit_id=1)
    other_bus = Device(id="B-pm", sensor_id="B", protocol="modbus-rtu", profile="sim-pm", variables=("pm10",),
                       unit_id=1, serial_port="/dev/ttyUSB1")
    assert type(registry.link_for(tcp)) is ModbusLink
    assert registry.link_for(other_bus) is not bus[0]
    assert set(registry.links) == {"/dev/ttyUSB0", "127.0.0.1:4001", "127.0.0.1:4002", "/dev/ttyUSB1"}
    assert registry.links["/dev/ttyUSB1"].line == "19200 8E1"  # type: ignore[attr-defined]  # spec defaults


def test_registry_refuses_two_framings_or_two_line_settings_on_one_link() -> None:
    registry = LinkRegistry()
    registry.link_for(gateway_station(4001).devices[0])
    tcp = Device(id="T-pm", sensor_id="T", protocol="modbus-tcp", profile="sim-pm", variables=("pm10",),
                 host="127.0.0.1", port=4001, unit_id=1)
    with pytest.raises(ValueError, match="T-pm: 127.0.0.1:4001 is modbus-tcp, but device GW-pm reaches it as "
                                         "modbus-rtu-tcp"):
        registry.link_for(tcp)
    registry.link_for(rtu_station("/dev/ttyUSB0").devices[0])
    faster = Device(id="X-co", sensor_id="X", protocol="modbus-rtu", profile="sim-co", variables=("co",),
                    unit_id=5, serial_port="/dev/ttyUSB0", baudrate=19200, parity="N")
    with pytest.raises(ValueError, match="X-co: serial /dev/ttyUSB0 line settings .* differ from device RTU-pm"):
        registry.link_for(faster)


def test_device_rtu_fields_are_validated() -> None:
    ok = Device(id="D", sensor_id="S", protocol="modbus-rtu", profile="sim-pm", variables=("pm10",),
                unit_id=247, serial_port="/dev/ttyUSB0", baudrate=9600, parity="O", stopbits=2, bytesize=7)
    assert ok.serial_port == "/dev/ttyUSB0"
    base = {"id": "D", "sensor_id": "S", "profile": "sim-pm", "variables": ("pm10",)}
    cases = [
        ({"protocol": "modbus-rtu", "unit_id": 1}, "modbus-rtu needs serial_port and unit_id"),
        ({"protocol": "modbus-rtu", "serial_port": "/dev/x"}, "modbus-rtu needs serial_port and unit_id"),
        ({"protocol": "modbus-rtu", "serial_port": "/dev/x", "unit_id": 0}, "unit_id: expected 1..247"),
        ({"protocol": "modbus-rtu", "serial_port": "/dev/x", "unit_id": 1, "parity": "X"}, "parity: expected N"),
        ({"protocol": "modbus-rtu", "serial_port": "/dev/x", "unit_id": 1, "stopbits": 3}, "stopbits"),
        ({"protocol": "modbus-rtu", "serial_port": "/dev/x", "unit_id": 1, "bytesize": 5}, "bytesize"),
        ({"protocol": "modbus-rtu", "serial_port": "/dev/x", "unit_id": 1, "baudrate": 0}, "baudrate"),
        ({"protocol": "modbus-rtu-tcp", "host": "h", "unit_id": 1}, "modbus-rtu-tcp needs host, port"),
        ({"protocol": "modbus-tcp", "host": "h", "port": 1, "unit_id": 1, "baudrate": 9600},
         "baudrate: serial line settings apply to modbus-rtu only"),
    ]
    for extra, message in cases:
        with pytest.raises(ValueError, match=message):
            Device(**base, **extra)  # type: ignore[arg-type]


def test_serial_link_refuses_impossible_line_settings() -> None:
    with pytest.raises(ValueError, match="SerialLink /dev/x: expected parity N|E|O"):
        SerialLink("/dev/x", parity="M")
    with pytest.raises(ValueError, match="drain_s"):
        SerialLink("/dev/x", drain_s=-1)


async def test_missing_serial_port_is_a_connection_error_with_backoff() -> None:
    now = [100.0]
    link = SerialLink("/nonexistent/ttyUSB7", timeout_s=0.2, backoff_initial_s=4.0, backoff_max_s=8.0,
                      monotonic=lambda: now[0])
    with pytest.raises(ModbusReadError) as first:
        await link.read("input", 0, 2, 1)
    assert first.value.reason == "connection" and first.value.endpoint == "/nonexistent/ttyUSB7"
    assert "port missing, busy or not permitted" in first.value.detail and "next attempt in 4.0 s" in str(first.value)
    with pytest.raises(ModbusReadError, match="next connect attempt in 4.0 s"):
        await link.read("input", 0, 2, 1)
    await link.close()


# --- integration: a real RTU server on a pseudo-terminal pair ---------------------------------------------


@pytest.fixture
async def pty() -> AsyncIterator[PtyPair]:
    async with PtyPair() as pair:
        yield pair


@pytest.fixture
async def bus(pty: PtyPair) -> AsyncIterator[tuple[RtuStationServer, Sensor]]:
    sensor = rtu_station(pty.client_end)
    server = RtuStationServer(sensor, value_source, clock, serial_port=pty.server_end, **LINE)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, sensor
    finally:
        await server.stop()


@pytest.mark.integration
async def test_every_device_on_one_bus_reads_back_through_one_owner(
        bus: tuple[RtuStationServer, Sensor]) -> None:
    server, sensor = bus
    registry = LinkRegistry(timeout_s=1.0)
    try:
        links = {id(registry.link_for(d)) for d in sensor.devices}
        assert len(links) == 1
        for device in sensor.devices:
            result = await read_device(registry.link_for(device), device, profiles()[device.profile], clock)
            assert_read_back(device, result)
        assert {r.unit_id for r in server.requests} == set(range(1, 9))
    finally:
        await registry.close()


@pytest.mark.integration
async def test_concurrent_pollers_on_one_bus_never_collide_and_frames_keep_the_gap(
        bus: tuple[RtuStationServer, Sensor]) -> None:
    server, sensor = bus
    gap = 0.02
    link = SerialLink(sensor.devices[0].serial_port or "", **LINE, timeout_s=1.0, request_gap_s=gap)  # type: ignore[arg-type]
    try:
        for _ in range(3):  # every device polled at once, as independent pollers would
            results = await asyncio.gather(*(read_device(link, d, profiles()[d.profile], clock)
                                             for d in sensor.devices))
            for device, result in zip(sensor.devices, results, strict=True):
                assert_read_back(device, result)
    finally:
        await link.close()
    expected = 3 * sum(len(plan_requests(profiles()[d.profile], d.variables)) for d in sensor.devices)
    assert len(server.requests) == expected  # no request lost or repeated
    times = [r.at for r in server.requests]
    spacing = [b - a for a, b in itertools.pairwise(times)]
    assert min(spacing) >= gap * 0.9, f"frames closer than the {gap} s gap: {min(spacing):.4f} s"


@pytest.mark.integration
async def test_dead_device_on_a_shared_bus_costs_only_its_timeout(
        bus: tuple[RtuStationServer, Sensor]) -> None:
    server, sensor = bus
    timeout_s = 0.5
    link = SerialLink(sensor.devices[0].serial_port or "", **LINE, timeout_s=timeout_s)  # type: ignore[arg-type]
    try:
        async def cycle() -> tuple[dict[str, float], list[list[RawReading] | Gap]]:
            elapsed: dict[str, float] = {}
            results: list[list[RawReading] | Gap] = []
            for d in sensor.devices:
                started = time.monotonic()
                results.append(await read_device(link, d, profiles()[d.profile], clock))
                elapsed[d.id] = time.monotonic() - started
            return elapsed, results

        await cycle()  # opens the port: connection set-up is not part of what is measured
        dead = sensor.devices[2]  # the O3 analyser, unit 3, in the middle of the bus
        server.set_silent(dead.id)
        before = len(server.requests)
        elapsed, results = await cycle()
        for device, result in zip(sensor.devices, results, strict=True):
            if device is dead:
                assert isinstance(result, Gap) and result.reason == "timeout", result
            else:
                assert_read_back(device, result)  # the next device gets its own answer, not confusion
        assert link.connected  # a silent device is no reason to close the port
        # The dead device costs its timeout once: one request, no retry storm inside the link, and the wait is
        # the timeout (never less; the upper bound is generous, the machine may be loaded).
        dead_requests = [r for r in server.requests[before:] if r.unit_id == dead.unit_id]
        assert len(dead_requests) == 1, dead_requests
        assert timeout_s * 0.9 <= elapsed[dead.id] <= timeout_s * 3, f"dead device cost {elapsed[dead.id]:.3f} s"
        # Every other device is answered without waiting for a timeout of its own.
        slow = {d: s for d, s in elapsed.items() if d != dead.id and s >= timeout_s * 0.9}
        assert not slow, f"healthy devices waited a timeout: {slow}"
        server.set_silent(dead.id, False)
        _, results = await cycle()
        assert all(isinstance(r, list) for r in results)
    finally:
        await link.close()


@pytest.mark.integration
async def test_late_answer_is_drained_not_taken_for_the_next_request(
        bus: tuple[RtuStationServer, Sensor]) -> None:
    server, sensor = bus
    slow, after = sensor.devices[0], sensor.devices[3]  # the PM monitor answers 0.45 s late; then SO2
    server.set_delay(slow.id, 0.45)
    link = SerialLink(slow.serial_port or "", **LINE, timeout_s=0.3, drain_s=0.5)  # type: ignore[arg-type]
    try:
        for _ in range(2):  # without the drain, the 2nd read would take the 1st read's late answer
            result = await read_device(link, slow, profiles()[slow.profile], clock)
            assert isinstance(result, Gap) and result.reason == "timeout", result
        assert_read_back(after, await read_device(link, after, profiles()[after.profile], clock))
        server.set_delay(slow.id, 0)
        await asyncio.sleep(0.5)  # the last late answer arrives while the link is idle and is dropped
        assert_read_back(slow, await read_device(link, slow, profiles()[slow.profile], clock))
    finally:
        await link.close()


@pytest.mark.integration
async def test_exception_response_over_rtu(bus: tuple[RtuStationServer, Sensor]) -> None:
    _, sensor = bus
    link = SerialLink(sensor.devices[0].serial_port or "", **LINE, timeout_s=1.0)  # type: ignore[arg-type]
    try:
        with pytest.raises(ModbusReadError) as err:
            await link.read("holding", 999, 2, 1)  # the PM monitor maps no holding register 999
        assert err.value.reason == "exception_response" and err.value.exception_code == 2
        assert str(err.value).startswith(f"modbus {link.endpoint} unit 1: holding 999×2")
        assert len(await link.read("input", 0, 4, 1)) == 4  # the bus is fine afterwards
    finally:
        await link.close()


@pytest.mark.integration
async def test_rtu_over_tcp_gateway_shares_one_connection_and_survives_a_dead_device() -> None:
    server = RtuStationServer(gateway_station(1), value_source, clock)
    await server.start()
    sensor = gateway_station(server.port)
    registry = LinkRegistry(timeout_s=0.4)
    try:
        link = registry.link_for(sensor.devices[0])
        assert isinstance(link, RtuOverTcpLink)
        for device in sensor.devices:
            assert registry.link_for(device) is link
            assert_read_back(device, await read_device(link, device, profiles()[device.profile], clock))
        server.set_silent(sensor.devices[1].id)
        results = [await read_device(link, d, profiles()[d.profile], clock) for d in sensor.devices]
        assert isinstance(results[1], Gap) and results[1].reason == "timeout"
        assert all(isinstance(r, list) for i, r in enumerate(results) if i != 1)
        assert link.connected
    finally:
        await registry.close()
        await server.stop()
