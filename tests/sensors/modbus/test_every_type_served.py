"""Every data type in every byte/word order, served by a real pymodbus server and read back by aqnet's driver."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sensors.modbus.decode import ORDERS, register_count
from sensors.modbus.link import ModbusLink
from sensors.modbus.profile import load_profile
from sensors.modbus.read import read_device
from sensors.sensor import Device, Sensor
from simulators.station import StationServer

pytestmark = pytest.mark.integration

TYPES = ("int16", "uint16", "float16", "int32", "uint32", "float32", "int64", "uint64", "float64")
COMBOS = [(t, o) for t in TYPES for o in ORDERS[register_count(t)]]
CODES = ("pm1", "pm25", "pm4", "pm10", "o3", "no2", "no", "nox", "so2", "co", "co2", "bc", "bbp")
T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_the_combinations_cover_every_type_and_order() -> None:
    assert len(COMBOS) == 2 * 3 + 4 * 3 + 4 * 3 == 30


async def test_every_type_and_order_reads_back_exactly(tmp_path: Path) -> None:
    devices, expected = [], {}
    for unit, start in enumerate(range(0, len(COMBOS), len(CODES)), start=1):
        chunk = COMBOS[start:start + len(CODES)]
        lines, address = [], 0
        for code, (data_type, order) in zip(CODES, chunk, strict=False):
            scale = 1 if data_type.startswith("float") else 0.5  # 12.5 is exact in every type this way
            lines.append(f'  "{code}": {{table: holding, address: {address}, data_type: {data_type}, order: {order}, '
                         f"scale: {scale}, unit: ppb, range: [-100, 100000]}}")
            expected[(unit, code)] = (data_type, order)
            address += register_count(data_type)
        name = f"all-types-{unit}"
        (tmp_path / f"{name}.yaml").write_text(
            f'model: ALL-{unit}\nmanufacturer: test\nfirmware: "1"\nsource: test\naddress_base: 0\n'
            "conditions: reference\nvariables:\n" + "\n".join(lines) + "\n", encoding="utf-8")
        codes = tuple(CODES[: len(chunk)])
        devices.append(Device(id=f"ALL-{unit}", sensor_id="ALL", protocol="modbus-tcp", profile=name,
                              variables=codes, host="127.0.0.1", port=1, unit_id=unit))
    sensor = Sensor(id="ALL", name="all types", kind="station", lat=0, lon=0, devices=tuple(devices))
    values = {code: 12.5 + i for i, code in enumerate(CODES)}
    server = StationServer(sensor, lambda _s, variable, _t: values[variable], lambda: T0, profiles_dir=tmp_path)
    await server.start()
    link = ModbusLink("127.0.0.1", server.port, timeout_s=2.0)
    seen = {}
    try:
        for device in devices:
            profile = load_profile(device.profile, tmp_path)
            served = replace(device, port=server.port)
            readings = await read_device(link, served, profile, lambda: T0)
            assert isinstance(readings, list), readings
            for r in readings:
                seen[(device.unit_id, r.variable)] = r.value
    finally:
        await link.close()
        await server.stop()
    assert set(seen) == set(expected)
    for key, value in seen.items():
        assert value == values[key[1]], f"{expected[key]} read {value}"
