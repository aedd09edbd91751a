"""Interoperability: a Modbus client that is not ours (Debian's mbpoll) reads a simulated station and prints the
values aqnet's `read_device` returns as each reading's value (what ingest stores as `raw_value`).

mbpoll numbers registers from 1 by default (`-r 1` is PDU address 0; `-0` switches to PDU addresses), prints
32-bit values with the low word first unless `-B` (so float32/int32 ABCD needs `-B`, CDAB needs none), and has no
byte-swapped, 16-bit float or 64-bit types: those registers are read raw (`:hex`) and decoded here with struct,
independently of aqnet's decoder. Its floats are printed with 6 significant digits, so the simulated values are
chosen exact in float32 and short.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from sensors.modbus.link import ModbusLink
from sensors.modbus.profile import VariableSpec, load_profile
from sensors.modbus.read import read_device
from sensors.network import ANALYSERS
from sensors.reading import RawReading
from sensors.sensor import Sensor
from simulators.station import StationServer
from tests.fixtures.stations import simulated_station

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mbpoll") is None,
                       reason="mbpoll not installed (Debian package mbpoll; deploy/install-system.sh installs it)"),
]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
#: constant values, exact in each variable's encoding (float32 values short enough for mbpoll's %g)
VALUES = {"pm10": 48.5, "pm25": 21.25, "no": 12.5, "no2": 27.25, "nox": 39.75, "o3": 33.375, "so2": 3.125,
          "co": 1.5, "temperature": 14.6, "temperature_8m": 13.9, "temperature_20m": -2.3,
          "relativehumidity": 67.4, "pressure": 564.21, "wind_speed": 2.75, "wind_direction": 245.3,
          "precipitation": 0.25, "solar_radiation": 812.4, "bc": 2.5, "bbp": 41.27, "co2": 431.19}
_LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)(?:\s+\((-?\d+)\))?\s*$")
_STRUCT = {"int16": "h", "uint16": "H", "float16": "e", "int32": "i", "uint32": "I", "float32": "f",
           "int64": "q", "uint64": "Q", "float64": "d"}


def value_source(sensor_id: str, variable: str, t: datetime) -> float:
    return VALUES.get(variable, 1.0)


def station(port: int) -> Sensor:
    return simulated_station("MB", name="mbpoll station", port=port)


@pytest.fixture
async def served() -> AsyncIterator[tuple[StationServer, dict[tuple[str, str], RawReading]]]:
    """The station, and what aqnet reads from it: (device id, variable) → RawReading."""
    server = StationServer(station(1), value_source, lambda: T0)
    await server.start()
    link = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    readings: dict[tuple[str, str], RawReading] = {}
    try:
        for device in station(server.port).devices:
            result = await read_device(link, device, load_profile(device.profile), lambda: T0)
            assert isinstance(result, list), result
            readings.update({(r.device_id, r.variable): r for r in result})
        yield server, readings
    finally:
        await link.close()
        await server.stop()


async def mbpoll(port: int, unit_id: int, *args: str) -> list[tuple[int, str, int | None]]:
    """Run mbpoll once; its printed values as (reference, text, signed 16-bit value if shown)."""
    process = await asyncio.create_subprocess_exec(
        "mbpoll", "-m", "tcp", "-a", str(unit_id), *args, "-1", "-p", str(port), "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    text = out.decode()
    assert process.returncode == 0, f"mbpoll {' '.join(args)}:\n{text}"
    rows = [m for line in text.splitlines() if (m := _LINE.match(line))]
    assert rows, f"mbpoll printed no values:\n{text}"
    return [(int(m[1]), m[2], int(m[3]) if m[3] else None) for m in rows]


def mbpoll_args(spec: VariableSpec) -> tuple[list[str], str]:
    """mbpoll flags reading `spec` from its 1-based reference, and how to take its output: float|int|int16|hex."""
    table = "3" if spec.table == "input" else "4"
    ref = ["-r", str(spec.pdu_address + 1)]
    order = spec.order or {1: "AB", 2: "ABCD", 4: "ABCDEFGH"}[spec.count]
    if spec.data_type in ("float32", "int32", "uint32") and order in ("ABCD", "CDAB"):
        kind = "float" if spec.data_type == "float32" else "int"
        swap = ["-B"] if order == "ABCD" else []  # mbpoll's default 32-bit word order is low word first
        return ["-t", f"{table}:{kind}", *swap, *ref, "-c", "1"], kind
    if spec.data_type in ("int16", "uint16") and order == "AB":
        return ["-t", table, *ref, "-c", "1"], spec.data_type
    return ["-t", f"{table}:hex", *ref, "-c", str(spec.count)], "hex"


def from_words(words: list[int], spec: VariableSpec) -> float:
    """Decode raw words as the profile says, with struct (independently of sensors.modbus.decode)."""
    order = spec.order or {1: "AB", 2: "ABCD", 4: "ABCDEFGH"}[spec.count]
    wire = b"".join(w.to_bytes(2, "big") for w in words)
    big_endian = bytes(wire[order.index(chr(ord("A") + i))] for i in range(len(wire)))
    return float(struct.unpack(">" + _STRUCT[spec.data_type], big_endian)[0])


async def test_mbpoll_prints_what_aqnet_reads_for_every_variable(
        served: tuple[StationServer, dict[tuple[str, str], RawReading]]) -> None:
    server, readings = served
    checked = 0
    kinds: set[str] = set()
    for device in station(server.port).devices:
        profile = load_profile(device.profile)
        for name in device.variables:
            spec = profile.variable(name)
            args, kind = mbpoll_args(spec)
            kinds.add(kind)
            rows = await mbpoll(server.port, device.unit_id or 0, *args)
            assert rows[0][0] == spec.pdu_address + 1  # mbpoll's 1-based reference
            if kind == "hex":
                raw = from_words([int(text, 16) for _, text, _ in rows], spec)
            elif kind == "int16":
                raw = float(rows[0][2] if rows[0][2] is not None else rows[0][1])
            else:
                raw = float(rows[0][1])
            theirs = raw * spec.scale + spec.offset
            ours = readings[(device.id, name)].value
            assert theirs == pytest.approx(ours, rel=1e-12, abs=1e-12), \
                f"{device.id} {name} ({spec.data_type} {spec.order} via mbpoll {' '.join(args)})"
            checked += 1
    assert checked == sum(len(v) for v in ANALYSERS.values())
    assert {"float", "int", "hex"} <= kinds  # mbpoll's float, 32-bit int and raw readings all exercised


async def test_zero_based_flag_reads_the_same_register(
        served: tuple[StationServer, dict[tuple[str, str], RawReading]]) -> None:
    server, readings = served
    spec = load_profile("sim-pm").variable("pm25")
    assert (spec.data_type, spec.order) == ("float32", "ABCD")
    one_based = await mbpoll(server.port, 1, "-t", "3:float", "-B", "-r", str(spec.pdu_address + 1))
    zero_based = await mbpoll(server.port, 1, "-t", "3:float", "-B", "-0", "-r", str(spec.pdu_address))
    assert float(one_based[0][1]) == float(zero_based[0][1]) == readings[("MB-pm", "pm25")].value == 21.25
    # and without -B mbpoll takes the words the other way round: a value nobody would mistake for 21.25
    swapped = await mbpoll(server.port, 1, "-t", "3:float", "-r", str(spec.pdu_address + 1))
    assert float(swapped[0][1]) != 21.25
