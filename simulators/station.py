"""A simulated reference station: one pymodbus TCP server answering for every analyser of a `Sensor`. I/O.

Each Modbus device of the sensor is served under its `unit_id`, with a register map built from the same
`sensors/profiles/<name>.yaml` the driver reads, encoded with `sensors.modbus.decode.encode_value`, so a map
is written once. Registers are refreshed on every read: pymodbus calls the device's action hook before it
answers, and the hook re-encodes every variable of the table being read from `value_source(sensor_id,
variable, clock())` (in the unit the profile reports) and the status bits set with `set_status`. A value the
data type cannot hold (or a `value_source` that raises) is answered with exception 4, server device failure,
the way a real analyser signals an internal fault; the driver records a gap.

A profile with a `history:` section gets a logger history ring (`sensors.modbus.history`, aqnet's own
protocol): one record per `history_period_s` of the injected clock (aligned to multiples of it since the Unix
epoch, from the server's creation on), built from the same value source and the status flags in force when it
was logged. The ring is filled lazily, on each request and before each status change, so a stepped test clock
and a station that was offline both end with every period logged.

Faults for tests and scenarios: `set_word_order(device_id)` (multi-register values served with their words
reversed, as a gateway configured with the wrong word order serves them), `set_fault(device_id, "hang")` (the
request is accepted and never answered: the action hook waits until the fault is cleared or the server stops,
then the pending answer is dropped),
`set_fault(device_id, "exception", code=…)` (a Modbus exception response) and `await set_offline(True)` (the
whole station stops listening and drops its connections; its loggers keep logging). Every request PDU received
is counted per unit id in `requests` (pymodbus' trace_pdu hook), so tests can check the driver's coalescing.

pymodbus 3.16's datastore is the SimDevice/SimData model (the ModbusDeviceContext/ModbusServerContext classes
are deprecated for v4): one SimDevice per unit id with four separate blocks (coils, discrete inputs, holding,
input), so bits are addressed individually, as real analysers do.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from sensors.modbus.decode import encode_value
from sensors.modbus.history import HistoryRecord, RingHeader, encode_header, encode_record
from sensors.modbus.profile import BIT_TABLES, Profile, load_profile
from sensors.sensor import Device, Sensor

__all__ = ["Fault", "SeenRequest", "StationServer", "ValueSource"]

_log = logging.getLogger(__name__)

#: value_source(sensor_id, variable, t) → value in the unit the device's profile reports
ValueSource = Callable[[str, str, datetime], float]
#: a device fault: "hang" (never answers) or "exception" (answers with a Modbus exception code)
Fault = Literal["hang", "exception"]

#: pymodbus function code → profile table
_TABLE_OF_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete_input", 4: "input",
                3: "holding", 6: "holding", 16: "holding", 22: "holding", 23: "holding"}
_BLOCK_ORDER = ("coil", "discrete_input", "holding", "input")  # SimDevice's tuple order
_FLAGS = frozenset({"device_invalid", "maintenance"})
_RECENT_REQUESTS = 10_000


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request PDU the simulated station received."""

    unit_id: int
    function_code: int
    table: str | None  #: profile table of the function code (None for other functions)
    address: int
    count: int


class _DeviceMap:
    """The register map of one simulated analyser, its history ring, its fault, and the action hook."""

    def __init__(self, sensor_id: str, device: Device, profile: Profile, value_source: ValueSource,
                 clock: Callable[[], datetime], *, history_period_s: float = 60.0) -> None:
        if not history_period_s > 0:
            raise ValueError(f"device {device.id}: history_period_s: expected > 0, got {history_period_s}")
        self.sensor_id = sensor_id
        self.device = device
        self.profile = profile
        self.value_source = value_source
        self.clock = clock
        self.flags: frozenset[str] = frozenset()
        self.tables: frozenset[str] = frozenset()  # tables with mapped addresses (set by sim_device)
        self.variables = [profile.variable(v) for v in device.variables]
        self.fault: Fault | None = None
        self.swapped = False  # word_order fault: multi-register values served with their words reversed
        self.exception_code = ExcCodes.DEVICE_FAILURE
        self.hung: set[asyncio.Task[object]] = set()
        self.history_period_s = history_period_s
        self.ring: list[int] = []
        self._written = 0  # records logged so far
        self._first_record = 0  # index (periods since the epoch) of the first record
        if profile.history is not None:
            layout = profile.history.layout
            self.ring = encode_header(RingHeader.after(0, layout)) + [0] * (layout.registers - 4)
            self._first_record = math.floor(clock().timestamp() / history_period_s)

    def sim_device(self) -> SimDevice:
        """The pymodbus SimDevice: each table's mapped addresses, everything else ILLEGAL DATA ADDRESS."""
        blocks: dict[str, list[SimData]] = {t: [] for t in _BLOCK_ORDER}
        spans: list[tuple[str, int, int]] = [(v.table, v.pdu_address, v.count) for v in self.variables]
        if self.profile.status is not None:
            st = self.profile.status
            spans.append((st.table, st.pdu_address, st.count))
        if self.profile.history is not None:
            ring = self.profile.history.layout
            spans.append((ring.table, ring.pdu_address, ring.registers))
        for table, address, count in sorted(spans):
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

    def status_word(self) -> int:
        """The status register (or bits, bit i = offset i) for the flags raised now."""
        word = 0
        st = self.profile.status
        if st is None:
            return 0
        for bit, spec_bit in st.bits.items():
            raised = spec_bit.flag is not None and spec_bit.flag in self.flags
            if raised == (spec_bit.when == "set"):
                word |= 1 << bit
        return word

    def words(self, table: str) -> dict[int, int | bool]:
        """{0-based address: register word or bit} of the live values and status of `table` now."""
        now = self.clock()
        out: dict[int, int | bool] = {}
        for spec in self.variables:
            if spec.table != table:
                continue
            value = self.value_source(self.sensor_id, spec.name, now)
            encoded = encode_value(value, spec)
            if self.swapped and len(encoded) > 1:
                encoded = encoded[::-1]
            for i, word in enumerate(encoded):
                out[spec.pdu_address + i] = bool(word) if table in BIT_TABLES else word
        st = self.profile.status
        if st is not None and st.table == table:
            word = self.status_word()
            if table in BIT_TABLES:
                for bit in range(st.count):
                    out[st.pdu_address + bit] = bool((word >> bit) & 1)
            else:
                out[st.pdu_address] = encode_value(word, _Uint16(st.order))[0]
        return out

    def log_history(self, *, before_now: bool = False) -> None:
        """Write the records of every period begun since the last one logged (at most a ring's worth).

        `before_now`: only the periods that began strictly before now (a status change at the very start of a
        period applies to that period's record).
        """
        if self.profile.history is None:
            return
        layout = self.profile.history.layout
        periods = self.clock().timestamp() / self.history_period_s
        due = (math.ceil(periods) if before_now else math.floor(periods) + 1) - self._first_record
        if due <= self._written:
            return
        status = self.status_word() & 0xFFFF
        for n in range(max(self._written, due - layout.capacity), due):
            t = datetime.fromtimestamp((self._first_record + n) * self.history_period_s, UTC)
            try:
                values = {f.name: self.value_source(self.sensor_id, f.name, t) for f in layout.fields}
                words = encode_record(HistoryRecord(t, values, status), layout)
            except Exception as exc:  # the logger had no value it could store for this period: no record
                _log.debug("simulated %s: no history record at %s: %s", self.device.id, t.isoformat(), exc)
                continue
            slot = n % layout.capacity
            start = layout.slot_address(slot) - layout.pdu_address
            self.ring[start:start + layout.record_size] = words
            self.ring[:4] = encode_header(RingHeader.after(n + 1, layout))
        self._written = due

    async def action(self, function_code: int, start_address: int, address: int, count: int,
                     registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus hook, called before each answer: apply the fault, refresh the table's registers in place."""
        table = _TABLE_OF_FC.get(function_code)
        if table is None or table not in self.tables:
            return ExcCodes.ILLEGAL_ADDRESS
        if self.fault == "hang":
            await self._hang()
        if self.fault == "exception":
            return self.exception_code
        if set_values is not None:
            return None
        try:
            words = self.words(table)
            self.log_history()
        except Exception as exc:  # any failure of the value source is the simulated device's internal fault
            _log.warning("simulated %s (unit %s): %s %s×%s: %s", self.device.id, self.device.unit_id, table,
                         address, count, exc)
            return ExcCodes.DEVICE_FAILURE
        ring = self.profile.history.layout if self.profile.history is not None else None
        if ring is not None and ring.table == table:
            low = max(address, ring.pdu_address)
            high = min(address + count, ring.pdu_address + ring.registers)
            for pdu in range(low, high):
                words[pdu] = self.ring[pdu - ring.pdu_address]
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

    async def _hang(self) -> None:
        # wait until the fault is cleared or the server stops: both cancel this task, so no answer is sent
        task = asyncio.current_task()
        assert task is not None
        self.hung.add(task)
        try:
            await asyncio.Event().wait()
        finally:
            self.hung.discard(task)

    def release_hung(self) -> None:
        """Drop every request waiting in a hang (their answers are never sent)."""
        for task in list(self.hung):
            task.cancel()


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
        clock: aware-UTC clock passed to value_source (and driving the history rings).
        host, port: where to listen; port 0 picks a free port (read `.port` after `start()`).
        profiles_dir: where the profiles are (default: the shipped sensors/profiles).
        history_period_s: the simulated loggers' logging period (one history record per period), in s.
        profiles: profile name → Profile already loaded (many stations share a few profiles); others are loaded.
    """

    def __init__(self, sensor: Sensor, value_source: ValueSource, clock: Callable[[], datetime],
                 host: str = "127.0.0.1", port: int = 0, *, profiles_dir: Path | None = None,
                 history_period_s: float = 60.0, profiles: Mapping[str, Profile] | None = None) -> None:
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
            profile = (profiles or {}).get(device.profile) or load_profile(device.profile, profiles_dir)
            self._maps[device.id] = _DeviceMap(sensor.id, device, profile, value_source, clock,
                                               history_period_s=history_period_s)
        if not self._maps:
            raise ValueError(f"station {sensor.id}: no modbus-tcp devices to serve")
        self._server: ModbusTcpServer | None = None
        self._offline = False
        #: request PDUs received, per unit id (since start or `clear_requests`)
        self.requests: Counter[int] = Counter()
        #: the most recent requests received (at most 10 000), oldest first
        self.recent_requests: deque[SeenRequest] = deque(maxlen=_RECENT_REQUESTS)

    @property
    def endpoint(self) -> tuple[str, int]:
        """(host, port) to connect to (the bound port once started)."""
        return self.host, self.port

    @property
    def device_ids(self) -> tuple[str, ...]:
        """The ids of the devices served."""
        return tuple(self._maps)

    @property
    def offline(self) -> bool:
        """True between `set_offline(True)` and `set_offline(False)`."""
        return self._offline

    def _map(self, device_id: str) -> _DeviceMap:
        if device_id not in self._maps:
            raise KeyError(f"station {self.sensor.id}: no device {device_id!r}: expected one of "
                           f"{', '.join(self._maps)}")
        return self._maps[device_id]

    def set_status(self, device_id: str, flags: Iterable[str] = ()) -> None:
        """Raise exactly `flags` ("device_invalid", "maintenance") in the status register of `device_id`."""
        device = self._map(device_id)
        wanted = frozenset(flags)
        unknown = wanted - _FLAGS
        if unknown:
            raise ValueError(
                f"set_status {device_id}: expected device_invalid|maintenance, got {sorted(unknown)}")
        device.log_history(before_now=True)  # the periods begun before now keep the flags they had
        device.flags = wanted

    def set_fault(self, device_id: str, fault: Fault | None, *, code: int = int(ExcCodes.DEVICE_FAILURE)) -> None:
        """Make `device_id` hang, answer exception `code` (default 4, server device failure), or (None) recover."""
        device = self._map(device_id)
        if fault not in ("hang", "exception", None):
            raise ValueError(f"set_fault {device_id}: expected hang|exception|None, got {fault!r}")
        try:
            exception_code = ExcCodes(code)
        except ValueError:
            raise ValueError(f"set_fault {device_id}: code: expected a Modbus exception code "
                             f"({', '.join(str(int(c)) for c in ExcCodes)}), got {code}") from None
        device.fault = fault
        device.exception_code = exception_code
        if fault != "hang":
            device.release_hung()

    def set_word_order(self, device_id: str, swapped: bool = True) -> None:
        """Serve `device_id`'s 32- and 64-bit values with their 16-bit words reversed (a word_order fault:
        ABCD read as CDAB), or (False) as its profile says."""
        self._map(device_id).swapped = swapped

    def clear_requests(self) -> None:
        """Reset the request counters."""
        self.requests.clear()
        self.recent_requests.clear()

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests[pdu.dev_id] += 1
            self.recent_requests.append(SeenRequest(pdu.dev_id, pdu.function_code,
                                                    _TABLE_OF_FC.get(pdu.function_code), pdu.address, pdu.count))
        return pdu

    async def start(self) -> None:
        """Bind and serve in the background."""
        if self._server is not None:
            raise RuntimeError(f"station {self.sensor.id}: server already started")
        devices = [m.sim_device() for m in self._maps.values()]
        server = ModbusTcpServer(devices, address=(self.host, self.port), trace_pdu=self._trace_pdu)
        await server.serve_forever(background=True)
        self._server = server
        sockets = getattr(server.transport, "sockets", None) or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        _log.info("simulated station %s listening on %s:%s (%d device(s))", self.sensor.id, self.host,
                  self.port, len(devices))

    async def set_offline(self, offline: bool = True) -> None:
        """Stop listening and drop every connection (True), or listen again on the same port (False)."""
        if offline == self._offline:
            return
        if offline:
            if self._server is None:
                raise RuntimeError(f"station {self.sensor.id}: not started")
            await self._shutdown()
            self._offline = True
            _log.info("simulated station %s offline", self.sensor.id)
        else:
            self._offline = False
            await self.start()

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        self._offline = False
        await self._shutdown()

    async def _shutdown(self) -> None:
        for device in self._maps.values():
            device.release_hung()
        if self._server is None:
            return
        server, self._server = self._server, None
        await server.shutdown()
