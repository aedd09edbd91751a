"""The simulated RTU station: several unit ids on one pseudo-terminal bus, silent and slow devices, RTU over TCP,
and a client that is not ours (mbpoll in RTU mode) reading it."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from sensors.modbus.link import ModbusReadError, RtuOverTcpLink, SerialLink
from sensors.modbus.profile import load_profile
from sensors.sensor import Device, Sensor
from simulators.rtu import PtyPair, RtuRequest, RtuStationServer
from tests.fixtures.stations import simulated_station

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
VALUES = {"pm10": 48.5, "pm25": 21.25, "o3": 33.375}  # exact in float32, short in %g


def clock() -> datetime:
    return T0


def value_source(sensor_id: str, variable: str, t: datetime) -> float:
    return VALUES.get(variable, 1.0)


def station(serial_port: str = "/dev/ttyS9", protocol: str = "modbus-rtu") -> Sensor:
    return simulated_station("S", name="RTU station", protocol=protocol,
                             serial_port=serial_port if protocol == "modbus-rtu" else None)


def float32_abcd(words: list[int] | list[bool]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *words))[0])


# --- pure ---------------------------------------------------------------------------------------------------


def test_refuses_duplicate_unit_ids_and_stations_without_modbus_devices() -> None:
    sensor = station()
    twice = Sensor(id="S", name="s", kind="station", lat=0, lon=0, devices=sensor.devices + sensor.devices[:1])
    with pytest.raises(ValueError, match="unit id 1 used by S-pm and S-pm"):
        RtuStationServer(twice, value_source, clock, serial_port="/dev/null")
    mqtt = Device(id="M", sensor_id="M", protocol="mqtt", profile="aqnet-json", variables=("pm25",), topic="t")
    with pytest.raises(ValueError, match="no Modbus devices"):
        RtuStationServer(Sensor(id="M", name="m", kind="microsensor", lat=0, lon=0, devices=(mqtt,)),
                         value_source, clock)


def test_controls_name_the_device_and_the_expected_values() -> None:
    server = RtuStationServer(station(), value_source, clock, serial_port="/dev/null")
    with pytest.raises(KeyError, match="no device 'S-nope': expected one of S-pm"):
        server.set_silent("S-nope")
    with pytest.raises(ValueError, match="expected device_invalid|maintenance"):
        server.set_status("S-pm", ["on_fire"])
    with pytest.raises(ValueError, match="delay_s: expected >= 0"):
        server.set_delay("S-pm", -1)
    assert server.endpoint == "/dev/null"


async def test_pty_pair_without_socat_says_what_to_install() -> None:
    with pytest.raises(RuntimeError, match="install the Debian package socat"):
        await PtyPair(socat="/nonexistent/socat").start()


# --- integration ----------------------------------------------------------------------------------------


@pytest.fixture
async def pty() -> AsyncIterator[PtyPair]:
    async with PtyPair() as pair:
        yield pair


@pytest.fixture
async def server(pty: PtyPair) -> AsyncIterator[RtuStationServer]:
    srv = RtuStationServer(station(pty.client_end), value_source, clock, serial_port=pty.server_end,
                           baudrate=9600, parity="N")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def link(pty: PtyPair, server: RtuStationServer) -> AsyncIterator[SerialLink]:
    lnk = SerialLink(pty.client_end, baudrate=9600, parity="N", timeout_s=0.4)
    try:
        yield lnk
    finally:
        await lnk.close()


@pytest.mark.integration
async def test_pty_pair_is_a_null_modem_cable() -> None:
    async with PtyPair() as pair:
        assert pair.server_end.startswith("/dev/pts/") and pair.client_end.startswith("/dev/pts/")
        a = os.open(pair.server_end, os.O_RDWR | os.O_NOCTTY)
        b = os.open(pair.client_end, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(a, b"\x01\x04\x00\x00")
            await asyncio.sleep(0.1)
            assert os.read(b, 16) == b"\x01\x04\x00\x00"
        finally:
            os.close(a)
            os.close(b)
        ends = (pair.server_end, pair.client_end)
    assert not any(os.path.exists(end) for end in ends)  # socat stopped, the terminals are gone


@pytest.mark.integration
async def test_every_unit_on_the_bus_answers_for_itself(server: RtuStationServer, link: SerialLink) -> None:
    assert float32_abcd(await link.read("input", 0, 2, 1)) == 48.5  # PM monitor, unit 1, pm10
    assert float32_abcd(await link.read("input", 18, 2, 3)) == 33.375  # O3 analyser, unit 3
    assert server.requests[-2:] == [RtuRequest(server.requests[-2].at, 1, 4), RtuRequest(server.requests[-1].at, 3, 4)]


@pytest.mark.integration
async def test_absent_and_silent_units_do_not_answer_like_a_real_bus(server: RtuStationServer,
                                                                    link: SerialLink) -> None:
    for unit_id in (9, 200):  # nobody has these addresses
        with pytest.raises(ModbusReadError) as err:
            await link.read("input", 0, 2, unit_id)
        assert err.value.reason == "timeout"  # silence, not an exception response
    server.set_silent("S-pm")
    with pytest.raises(ModbusReadError, match="timeout"):
        await link.read("input", 0, 2, 1)
    assert float32_abcd(await link.read("input", 18, 2, 3)) == 33.375
    server.set_silent("S-pm", False)
    assert float32_abcd(await link.read("input", 0, 2, 1)) == 48.5


@pytest.mark.integration
async def test_status_flags_and_slow_answers(server: RtuStationServer, link: SerialLink) -> None:
    status = load_profile("sim-pm").status
    assert status is not None and status.table in ("input", "holding")
    maintenance = [bit for bit, spec in status.bits.items() if spec.flag == "maintenance"]
    server.set_status("S-pm", ["maintenance"])
    word = (await link.read(status.table, status.pdu_address, 1, 1))[0]
    assert word == sum(1 << bit for bit in maintenance)
    server.set_status("S-pm", [])
    assert (await link.read(status.table, status.pdu_address, 1, 1))[0] == 0
    server.set_delay("S-pm", 0.2)
    started = time.monotonic()
    await link.read("input", 0, 2, 1)
    assert time.monotonic() - started >= 0.2


@pytest.mark.integration
async def test_rtu_over_tcp_listener_picks_a_free_port() -> None:
    srv = RtuStationServer(station(protocol="modbus-rtu-tcp"), value_source, clock)
    await srv.start()
    lnk = RtuOverTcpLink("127.0.0.1", srv.port, timeout_s=0.5)
    try:
        assert srv.port != 0 and srv.endpoint == f"127.0.0.1:{srv.port}"
        assert float32_abcd(await lnk.read("input", 2, 2, 1)) == 21.25
    finally:
        await lnk.close()
        await srv.stop()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("mbpoll") is None,
                    reason="mbpoll not installed (Debian package mbpoll; deploy/install-system.sh installs it)")
async def test_mbpoll_reads_the_rtu_bus(pty: PtyPair, server: RtuStationServer) -> None:
    process = await asyncio.create_subprocess_exec(
        "mbpoll", "-m", "rtu", "-b", "9600", "-P", "none", "-a", "1", "-r", "1", "-c", "2", "-t", "3:float",
        "-B", "-1", "-o", "2", pty.client_end,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    text = out.decode()
    assert process.returncode == 0, text
    assert "[1]: \t48.5" in text and "[3]: \t21.25" in text, text
