"""A simulated reference station: one pymodbus TCP server answering for every analyser of a `Sensor`. I/O.

Each Modbus device of the sensor is served under its `unit_id`, with a register map built from the same
`sensors/profiles/<name>.yaml` the driver reads, encoded with `sensors.modbus.decode.encode_value`, so a map
is written once. Registers are refreshed on every read: pymodbus calls the device's action hook before it
answers, and the hook re-encodes every variable of the table being read from `value_source(sensor_id,
variable, clock())` (in the unit the profile reports) and the status bits set with `set_status`. A value the
data type cannot hold (or a `value_source` that raises) is answered with exception 4, server device failure,
the way a real analyser signals an internal fault; the driver records a gap.

pymodbus 3.16's datastore is the SimDevice/SimData model (the ModbusDeviceContext/ModbusServerContext classes
are deprecated for v4): one SimDevice per unit id with four separate blocks (coils, discrete inputs, holding,
input), so bits are addressed individually, as real analysers do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from sensors.modbus.decode import encode_value
from sensors.profile import BIT_TABLES, Profile, load_profile
from sensors.sensor import Device, Sensor

__all__ = ["StationServer", "ValueSource"]

_log = logging.getLogger(__name__)

#: value_source(sensor_id, variable, t) → value in the unit the device's profile reports
ValueSource = Callable[[str, str, datetime], float]

#: pymodbus function code → profile table
_TABLE_OF_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete_input", 4: "input",
                3: "holding", 6: "holding", 16: "holding", 22: "holding", 23: "holding"}
_BLOCK_ORDER = ("coil", "discrete_input", "holding", "input")  # SimDevice's tuple order


class _DeviceMap:
    """The register map of one simulated analyser and the action hook that refreshes it."""

    def __init__(self, sensor_id: str, device: Device, profile: Profile, value_source: ValueSource,
                 clock: Callable[[], datetime]) -> None:
        self.sensor_id = sensor_id
        self.device = device
        self.profile = profile
        self.value_source = value_source
        self.clock = clock
        self.flags: frozenset[str] = frozenset()
        self.tables: frozenset[str] = frozenset()  # tables with mapped addresses (set by sim_device)
        self.variables = [profile.variable(v) for v in device.variables]

    def sim_device(self) -> SimDevice:
        """The pymodbus SimDevice: each table's mapped addresses, everything else ILLEGAL DATA ADDRESS."""
        blocks: dict[str, list[SimData]] = {t: [] for t in _BLOCK_ORDER}
        spans = [(v.table, v.pdu_address, v.count) for v in self.variables]
        if self.profile.status is not None:
            st = self.profile.status
            spans.append((st.table, st.pdu_address, st.count))
        for table, address, count in spans:
            if table in BIT_TABLES:
                blocks[table].append(SimData(address, values=[False] * count, datatype=DataType.BITS))
            else:
                blocks[table].append(SimData(address, values=[0] * count, datatype=DataType.REGISTERS))
        self.tables = frozenset(t for t, block in blocks.items() if block)
        for table, block in blocks.items():
            if not block:  # pymodbus needs an entry per block; `action` refuses reads of this placeholder
                block.append(SimData(0, values=[False] * 16, datatype=DataType.BITS) if table in BIT_TABLES
                             else SimData(0, datatype=DataType.INVALID))
        assert self.device.unit_id is not None
        return SimDevice(self.device.unit_id, simdata=tuple(blocks[t] for t in _BLOCK_ORDER),  # type: ignore[arg-type]
                         action=self.action)

    def words(self, table: str) -> dict[int, int | bool]:
        """{0-based address: register word or bit} of `table` now, from value_source and the status flags."""
        now = self.clock()
        out: dict[int, int | bool] = {}
        for spec in self.variables:
            if spec.table != table:
                continue
            value = self.value_source(self.sensor_id, spec.name, now)
            encoded = encode_value(value, spec)
            for i, word in enumerate(encoded):
                out[spec.pdu_address + i] = bool(word) if table in BIT_TABLES else word
        st = self.profile.status
        if st is not None and st.table == table:
            word = 0
            for bit, spec_bit in st.bits.items():
                raised = spec_bit.flag is not None and spec_bit.flag in self.flags
                if raised == (spec_bit.when == "set"):
                    word |= 1 << bit
            if table in BIT_TABLES:
                for bit in range(st.count):
                    out[st.pdu_address + bit] = bool((word >> bit) & 1)
            else:
                out[st.pdu_address] = encode_value(word, _Uint16(st.order))[0]
        return out

    async def action(self, function_code: int, start_address: int, address: int, count: int,
                     registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus hook, called before each answer: refresh the table's registers in place."""
        table = _TABLE_OF_FC.get(function_code)
        if table is None or table not in self.tables:
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is not None:
            return None
        try:
            words = self.words(table)
        except Exception as exc:  # any failure of the value source is the simulated device's internal fault
            _log.warning("simulated %s (unit %s): %s %s×%s: %s", self.device.id, self.device.unit_id, table,
                         address, count, exc)
            return ExcCodes.DEVICE_FAILURE
        for pdu, word in words.items():
            if table in BIT_TABLES:
                index, bit = divmod(pdu, 16)
                index -= start_address
                if word:
                    registers[index] |= 1 << bit
                else:
                    registers[index] &= ~(1 << bit)
            else:
                registers[pdu - start_address] = int(word)
        return None


class _Uint16:
    """A uint16 encoding with the status register's byte order."""

    data_type = "uint16"
    scale = 1.0
    offset = 0.0

    def __init__(self, order: str | None) -> None:
        self.order = order


class StationServer:
    """A pymodbus TCP server for one station.

    Args:
        sensor: the station; every "modbus-tcp" device is served under its unit_id.
        value_source: value_source(sensor_id, variable, t) → the value in the profile's unit.
        clock: aware-UTC clock passed to value_source.
        host, port: where to listen; port 0 picks a free port (read `.port` after `start()`).
        profiles_dir: where the profiles are (default: the shipped sensors/profiles).
    """

    def __init__(self, sensor: Sensor, value_source: ValueSource, clock: Callable[[], datetime],
                 host: str = "127.0.0.1", port: int = 0, *, profiles_dir: Path | None = None) -> None:
        self.sensor = sensor
        self.host = host
        self.port = port
        self._maps: dict[str, _DeviceMap] = {}
        units: dict[int, str] = {}
        for device in sensor.devices:
            if device.protocol != "modbus-tcp":
                continue
            assert device.unit_id is not None
            if device.unit_id in units:
                raise ValueError(f"station {sensor.id}: unit id {device.unit_id} used by "
                                 f"{units[device.unit_id]} and {device.id}")
            units[device.unit_id] = device.id
            profile = load_profile(device.profile, profiles_dir)
            self._maps[device.id] = _DeviceMap(sensor.id, device, profile, value_source, clock)
        if not self._maps:
            raise ValueError(f"station {sensor.id}: no modbus-tcp devices to serve")
        self._server: ModbusTcpServer | None = None

    @property
    def endpoint(self) -> tuple[str, int]:
        """(host, port) to connect to (the bound port once started)."""
        return self.host, self.port

    def set_status(self, device_id: str, flags: Iterable[str] = ()) -> None:
        """Raise exactly `flags` ("device_invalid", "maintenance") in the status register of `device_id`."""
        if device_id not in self._maps:
            raise KeyError(f"station {self.sensor.id}: no device {device_id!r}: expected one of "
                           f"{', '.join(self._maps)}")
        wanted = frozenset(flags)
        unknown = wanted - {"device_invalid", "maintenance"}
        if unknown:
            raise ValueError(
                f"set_status {device_id}: expected device_invalid|maintenance, got {sorted(unknown)}")
        self._maps[device_id].flags = wanted

    async def start(self) -> None:
        """Bind and serve in the background."""
        if self._server is not None:
            raise RuntimeError(f"station {self.sensor.id}: server already started")
        devices = [m.sim_device() for m in self._maps.values()]
        server = ModbusTcpServer(devices, address=(self.host, self.port))
        await server.serve_forever(background=True)
        self._server = server
        sockets = getattr(server.transport, "sockets", None) or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        _log.info("simulated station %s listening on %s:%s (%d device(s))", self.sensor.id, self.host,
                  self.port, len(devices))

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await server.shutdown()
