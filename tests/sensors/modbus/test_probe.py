"""The technicians' probe: every interpretation of the registers (pure), and `aqnet sensors probe` end to end."""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from aqnet.cli.sensors import sensors
from aqnet.localstack import free_port
from sensors.modbus.decode import ORDERS, Codec, encode_value
from sensors.modbus.probe import Interpretation, Probe, as_json, interpretations, parse_endpoint, render_table
from sensors.network import ANALYSERS
from sensors.sensor import Device, Sensor
from simulators.rtu import PtyPair, RtuStationServer
from simulators.station import StationServer


def find(items: list[Interpretation], data_type: str, order: str, offset: int = 0) -> Interpretation:
    [item] = [i for i in items if (i.data_type, i.order, i.offset) == (data_type, order, offset)]
    return item


# --- pure -------------------------------------------------------------------------------------------------


def test_row_count_for_one_two_and_four_registers() -> None:
    # per start register: 3 types x 2 orders (16-bit), 3 x 4 (32-bit), 3 x 4 (64-bit) where they fit
    assert len(interpretations([1])) == 6
    assert len(interpretations([1, 2])) == 2 * 6 + 12
    assert len(interpretations([1, 2, 3, 4])) == 4 * 6 + 3 * 12 + 12
    assert {(i.data_type, i.order) for i in interpretations([1, 2, 3, 4]) if len(i.registers) == 4} == {
        (t, o) for t in ("int64", "uint64", "float64") for o in ORDERS[4]}


def test_float32_in_every_word_and_byte_order() -> None:
    # 12.5 = 0x41480000 (IEEE 754); the letters name the big-endian bytes in wire order
    vectors = {"ABCD": [0x4148, 0x0000], "CDAB": [0x0000, 0x4148], "BADC": [0x4841, 0x0000],
               "DCBA": [0x0000, 0x4841]}
    for order, words in vectors.items():
        items = interpretations(words)
        assert find(items, "float32", order).value == 12.5, order
        assert find(items, "float32", order).text == "12.5"


def test_sixteen_bit_signed_unsigned_and_byte_swapped() -> None:
    items = interpretations([0xFFE9])
    assert find(items, "int16", "AB").value == -23
    assert find(items, "uint16", "AB").value == 65513
    assert find(items, "int16", "BA").value == struct.unpack(">h", b"\xe9\xff")[0]
    assert find(items, "float16", "AB").text == "nan"  # 0xFFE9 is a NaN in IEEE 754 half precision
    assert find(interpretations([0x3C00]), "float16", "AB").value == 1.0


def test_thirty_two_bit_integers_and_offsets() -> None:
    # 56421 as uint32 CDAB (low word first, as the sim weather station's pressure) = [0xDC65, 0x0000]
    items = interpretations([0x0007, 0xDC65, 0x0000])
    assert find(items, "uint32", "CDAB", offset=1).value == 56421
    assert find(items, "int32", "ABCD", offset=0).value == 0x0007DC65
    assert find(items, "int32", "ABCD", offset=1).value == struct.unpack(">i", b"\xdc\x65\x00\x00")[0]


def test_sixty_four_bit_orders() -> None:
    one = [0x3FF0, 0x0000, 0x0000, 0x0000]  # 1.0 as float64, big-endian
    items = interpretations(one)
    assert find(items, "float64", "ABCDEFGH").value == 1.0
    assert find(interpretations(one[::-1]), "float64", "GHEFCDAB").value == 1.0
    assert find(interpretations([0xF03F, 0, 0, 0]), "float64", "BADCFEHG").value == 1.0
    assert find(interpretations([0, 0, 0, 0xF03F]), "float64", "HGFEDCBA").value == 1.0
    big = find(interpretations([0xFFFF] * 4), "uint64", "ABCDEFGH")
    assert big.value == 2**64 - 1 and big.text == str(2**64 - 1)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(ORDERS[2]))
def test_any_float32_written_in_any_order_is_found(value: float, order: str) -> None:
    words = encode_value(value, Codec("float32", order))
    item = find(interpretations(words), "float32", order)
    assert item.value == value
    assert struct.pack(">f", float(item.text)) == struct.pack(">f", value)  # the short text is exact


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=6))
def test_every_interpretation_fits_inside_the_read(words: list[int]) -> None:
    for item in interpretations(words):
        assert tuple(words[item.offset:item.offset + len(item.registers)]) == item.registers
        assert item.text


def test_bad_registers_are_refused() -> None:
    with pytest.raises(ValueError, match="16-bit words 0..65535, got \\[70000\\]"):
        interpretations([1, 70000])


def test_parse_endpoint() -> None:
    assert parse_endpoint("10.1.2.3") == ("10.1.2.3", 502)
    assert parse_endpoint("gw.example:5020") == ("gw.example", 5020)
    assert parse_endpoint("[::1]:1502") == ("::1", 1502)
    assert parse_endpoint("::1") == ("::1", 502)
    for bad in ("host:0", "host:x", ":502", "[::1]x"):
        with pytest.raises(ValueError, match="endpoint"):
            parse_endpoint(bad)


def test_table_and_json_rendering() -> None:
    words = (0x7FC0, 0x0000)  # float32 ABCD NaN
    result = Probe("127.0.0.1:5020", 3, "input", 18, words, tuple(interpretations(words)))
    table = render_table(result)
    assert table.splitlines()[0] == ("modbus 127.0.0.1:5020 unit 3: input registers from PDU address 18 "
                                     "(0-based), 2 read")
    assert "18       0x7FC0  32704" in table and "18       float32   ABCD     nan" in table
    data = as_json(result)
    json.dumps(data, allow_nan=False)  # valid JSON: a NaN is null, with its text
    row = next(r for r in data["interpretations"] if (r["data_type"], r["order"]) == ("float32", "ABCD"))
    assert row == {"address": 18, "data_type": "float32", "order": "ABCD", "registers": [0x7FC0, 0],
                   "value": None, "text": "nan"}
    assert math.isnan(find(list(result.interpretations), "float32", "ABCD").value)


def test_cli_needs_exactly_one_endpoint() -> None:
    runner = CliRunner()
    result = runner.invoke(sensors, ["probe", "--unit", "1", "--register", "0"])
    assert result.exit_code == 2 and "give either HOST[:PORT] or --serial PORT" in result.output
    result = runner.invoke(sensors, ["probe", "h:1", "--serial", "/dev/x", "--unit", "1", "--register", "0"])
    assert result.exit_code == 2
    result = runner.invoke(sensors, ["probe", "h:0", "--unit", "1", "--register", "0"])
    assert result.exit_code == 2 and "port: expected 1..65535" in result.output


# --- integration: the command against real servers ----------------------------------------------------------

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
VALUES = {"pm10": 48.5, "pm25": 21.25, "co": 1.5}


def value_source(sensor_id: str, variable: str, t: datetime) -> float:
    return VALUES.get(variable, 2.0)


def station(protocol: str = "modbus-tcp", serial_port: str | None = None) -> Sensor:
    devices = []
    for unit_id, (profile, variables) in enumerate(ANALYSERS.items(), start=1):
        where = {"serial_port": serial_port} if serial_port else {"host": "127.0.0.1", "port": 1}
        devices.append(Device(id=f"P-{profile}", sensor_id="P", protocol=protocol, profile=profile,  # type: ignore[arg-type]
                              variables=variables, unit_id=unit_id, **where))  # type: ignore[arg-type]
    return Sensor(id="P", name="probe", kind="station", lat=0, lon=0, devices=tuple(devices))


@pytest.fixture
async def tcp_station() -> AsyncIterator[StationServer]:
    server = StationServer(station(), value_source, lambda: T0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def invoke(args: list[str]) -> Result:
    # the command runs its own event loop: run it in a thread while the server runs in this one
    return await asyncio.to_thread(CliRunner().invoke, sensors, args)


@pytest.mark.integration
async def test_probe_prints_every_interpretation(tcp_station: StationServer) -> None:
    result = await invoke(["probe", f"127.0.0.1:{tcp_station.port}", "--unit", "1", "--register", "0",
                           "--table", "input", "--count", "4"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"modbus 127.0.0.1:{tcp_station.port} unit 1: input registers" in lines[0]
    assert "0        float32   ABCD     48.5" in lines  # the sim PM monitor: pm10 float32 ABCD at 0
    assert "2        float32   ABCD     21.25" in lines
    # 0x4242 0x0000 read with the words swapped is 0x00004242, a subnormal: the wrong order is obvious
    assert "0        float32   CDAB     2.3769e-41" in lines


@pytest.mark.integration
async def test_probe_json_one_based_holding(tcp_station: StationServer) -> None:
    result = await invoke(["probe", f"127.0.0.1:{tcp_station.port}", "--unit", "5", "--register", "2101",
                           "--one-based", "--json"])  # sim CO analyser: float32 CDAB at holding 2100 (0-based)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["address"] == 2100 and data["table"] == "holding" and data["unit_id"] == 5
    cdab = next(r for r in data["interpretations"] if (r["data_type"], r["order"]) == ("float32", "CDAB"))
    assert cdab["value"] == 1.5 and cdab["registers"] == data["registers"]


@pytest.mark.integration
async def test_probe_failure_names_the_read_and_exits_1(tcp_station: StationServer) -> None:
    result = await invoke(["probe", f"127.0.0.1:{tcp_station.port}", "--unit", "1", "--register", "500",
                           "--table", "input", "--timeout", "1"])
    assert result.exit_code == 1
    assert f"modbus 127.0.0.1:{tcp_station.port} unit 1: input 500×2: exception_response" in result.output
    port = free_port()
    result = await invoke(["probe", f"127.0.0.1:{port}", "--unit", "1", "--register", "0", "--timeout", "0.5"])
    assert result.exit_code == 1 and "connection" in result.output


@pytest.mark.integration
async def test_probe_serial_form() -> None:
    async with PtyPair() as pty:
        server = RtuStationServer(station("modbus-rtu", pty.client_end), value_source, lambda: T0,
                                  serial_port=pty.server_end, baudrate=9600, parity="N")
        await server.start()
        try:
            result = await invoke(["probe", "--serial", pty.client_end, "--baud", "9600", "--parity", "N",
                                   "--unit", "1", "--register", "2", "--table", "input", "--json"])
        finally:
            await server.stop()
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["endpoint"] == pty.client_end
    abcd = next(r for r in data["interpretations"] if (r["data_type"], r["order"]) == ("float32", "ABCD"))
    assert abcd["value"] == 21.25
