"""A simulated station on a Modbus RTU bus: several analysers (unit ids) on one serial line, or RTU over TCP. I/O.

`RtuStationServer` serves the register maps `simulators.station` builds from the device profiles (one pymodbus
SimDevice per unit id, refreshed by the same action hook on every read) with the RTU framer, either on a serial
port (in tests one end of a `PtyPair`, a pseudo-terminal pair made by socat) or on a TCP listener (RTU framed
over TCP, as a transparent serial-to-Ethernet converter carries it). Like a real RS-485 bus, a request for a
unit id nobody has is not answered, and `set_silent` makes a present analyser stop answering (a dead device
costs the master its timeout; it sends no exception). Every request frame the bus carries is recorded in
`requests` (monotonic time, unit id, function code) so tests can check pacing and collisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Self

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from sensors.modbus.profile import load_profile
from sensors.sensor import MODBUS_PROTOCOLS, Sensor
from simulators.station import ValueSource, _DeviceMap

__all__ = ["PtyPair", "RtuRequest", "RtuStationServer"]

_log = logging.getLogger(__name__)
_FLAGS = frozenset({"device_invalid", "maintenance"})


@dataclass(frozen=True, slots=True)
class RtuRequest:
    """One request frame seen on the simulated bus."""

    at: float  #: time.monotonic() when the whole frame had arrived
    unit_id: int
    function_code: int


class RtuStationServer:
    """A pymodbus RTU server for one station's Modbus devices (every device with a unit id).

    Args:
        sensor: the station; every Modbus device (modbus-tcp, modbus-rtu or modbus-rtu-tcp) is served under
            its unit_id.
        value_source: value_source(sensor_id, variable, t) → the value in the profile's unit.
        clock: aware-UTC clock passed to value_source.
        serial_port: serve on this serial port (e.g. a PtyPair's `server_end`); None = RTU over TCP on
            host:port (port 0 picks a free one; read `.port` after `start()`).
        baudrate, parity, stopbits, bytesize: the serial line settings (ignored over TCP).
        profiles_dir: where the profiles are (default: the shipped sensors/profiles).
    """

    def __init__(self, sensor: Sensor, value_source: ValueSource, clock: Callable[[], datetime], *,
                 serial_port: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 baudrate: int = 19200, parity: str = "E", stopbits: int = 1, bytesize: int = 8,
                 profiles_dir: Path | None = None) -> None:
        self.sensor = sensor
        self.serial_port = serial_port
        self.host = host
        self.port = port
        self._line = {"baudrate": baudrate, "parity": parity, "stopbits": stopbits, "bytesize": bytesize}
        self._maps: dict[str, _DeviceMap] = {}
        units: dict[int, str] = {}
        for device in sensor.devices:
            if device.protocol not in MODBUS_PROTOCOLS:
                continue
            assert device.unit_id is not None
            if device.unit_id in units:
                raise ValueError(f"station {sensor.id}: unit id {device.unit_id} used by "
                                 f"{units[device.unit_id]} and {device.id}")
            units[device.unit_id] = device.id
            profile = load_profile(device.profile, profiles_dir)
            self._maps[device.id] = _DeviceMap(sensor.id, device, profile, value_source, clock)
        if not self._maps:
            raise ValueError(f"station {sensor.id}: no Modbus devices to serve")
        self._units = frozenset(units)
        self._silent: set[int] = set()
        self._delays: dict[int, float] = {}
        self.requests: list[RtuRequest] = []
        self._server: ModbusSerialServer | ModbusTcpServer | None = None

    @property
    def endpoint(self) -> str:
        """The serial port, or host:port for RTU over TCP (the bound port once started)."""
        return self.serial_port or f"{self.host}:{self.port}"

    def set_status(self, device_id: str, flags: Iterable[str] = ()) -> None:
        """Raise exactly `flags` ("device_invalid", "maintenance") in the status register of `device_id`."""
        wanted = frozenset(flags)
        if wanted - _FLAGS:
            raise ValueError(f"set_status {device_id}: expected device_invalid|maintenance, "
                             f"got {sorted(wanted - _FLAGS)}")
        self._map(device_id).flags = wanted

    @property
    def device_ids(self) -> tuple[str, ...]:
        """The ids of the devices on the bus."""
        return tuple(self._maps)

    def set_fault(self, device_id: str, fault: Literal["exception"] | None, *, code: int = 4) -> None:
        """Make `device_id` answer Modbus exception `code` (default 4, server device failure), or recover."""
        if fault not in ("exception", None):
            raise ValueError(f"set_fault {device_id}: expected exception|None (a hang is set_silent), got {fault!r}")
        try:
            exception_code = ExcCodes(code)
        except ValueError:
            raise ValueError(f"set_fault {device_id}: code: expected a Modbus exception code, got {code}") from None
        device = self._map(device_id)
        device.fault = fault
        device.exception_code = exception_code

    def set_word_order(self, device_id: str, swapped: bool = True) -> None:
        """Serve `device_id`'s multi-register values with their 16-bit words reversed (a word_order fault)."""
        self._map(device_id).swapped = swapped

    def set_silent(self, device_id: str, silent: bool = True) -> None:
        """Make `device_id` stop (or resume) answering: it hears its requests but sends nothing back."""
        unit_id = self._map(device_id).device.unit_id
        assert unit_id is not None
        (self._silent.add if silent else self._silent.discard)(unit_id)

    def set_delay(self, device_id: str, delay_s: float = 0.0) -> None:
        """Make `device_id` answer `delay_s` late (a slow analyser; later than the master's timeout, a late
        answer); 0 answers at once."""
        if delay_s < 0:
            raise ValueError(f"set_delay {device_id}: delay_s: expected >= 0, got {delay_s}")
        unit_id = self._map(device_id).device.unit_id
        assert unit_id is not None
        self._delays[unit_id] = delay_s

    def _delayed(self, unit_id: int, action: Callable[..., Awaitable[ExcCodes | None]]
                 ) -> Callable[..., Coroutine[Any, Any, ExcCodes | None]]:
        async def answer_later(*args: Any) -> ExcCodes | None:
            delay = self._delays.get(unit_id, 0.0)
            if delay:
                await asyncio.sleep(delay)
            return await action(*args)
        return answer_later

    def _map(self, device_id: str) -> _DeviceMap:
        if device_id not in self._maps:
            raise KeyError(f"station {self.sensor.id}: no device {device_id!r}: expected one of "
                           f"{', '.join(self._maps)}")
        return self._maps[device_id]

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # an RTU frame starts with the unit id: a silent unit's answer is never put on the line, nor the
        # exception pymodbus 3.16's SimCore answers for a unit id that is not on the bus (it raises KeyError)
        if sending and data and (data[0] in self._silent or data[0] not in self._units):
            return b""
        return data

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append(RtuRequest(time.monotonic(), pdu.dev_id, pdu.function_code))
        return pdu

    async def start(self) -> None:
        """Open the port (or bind) and serve in the background."""
        if self._server is not None:
            raise RuntimeError(f"station {self.sensor.id}: RTU server already started")
        devices = []
        for device_map in self._maps.values():
            sim = device_map.sim_device()
            if sim.action is not None:
                sim.action = self._delayed(sim.id, sim.action)
            devices.append(sim)
        traces = {"trace_packet": self._trace_packet, "trace_pdu": self._trace_pdu}
        server: ModbusSerialServer | ModbusTcpServer
        if self.serial_port is not None:
            # ignore_missing_devices: on a bus, nobody answers for a unit id that is not there
            server = ModbusSerialServer(devices, framer=FramerType.RTU, port=self.serial_port,
                                        ignore_missing_devices=True, **self._line, **traces)  # type: ignore[arg-type]
        else:
            server = ModbusTcpServer(devices, framer=FramerType.RTU, address=(self.host, self.port),
                                     ignore_missing_devices=True, **traces)  # type: ignore[arg-type]
        await server.serve_forever(background=True)
        self._server = server
        if self.serial_port is None:
            sockets = getattr(server.transport, "sockets", None) or ()
            if sockets:
                self.port = sockets[0].getsockname()[1]
        _log.info("simulated RTU station %s on %s (%d device(s))", self.sensor.id, self.endpoint, len(devices))

    async def stop(self) -> None:
        """Close the port or listener."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await server.shutdown()


class PtyPair:
    """Two connected pseudo-terminals made by `socat -d -d pty,raw,echo=0 pty,raw,echo=0`: a null-modem cable.

    `async with PtyPair() as pty:` gives `pty.server_end` and `pty.client_end` (device paths); whatever is
    written to one is read from the other. Needs the `socat` program (Debian package socat).

    Args:
        socat: the socat executable (default: found on PATH).
        start_timeout_s: how long to wait for socat to create both terminals.
    """

    def __init__(self, *, socat: str | None = None, start_timeout_s: float = 5.0) -> None:
        self.socat = socat or shutil.which("socat") or "socat"
        self.start_timeout_s = start_timeout_s
        self.server_end = ""
        self.client_end = ""
        self._process: asyncio.subprocess.Process | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        """Start socat and wait for both terminals."""
        if self._process is not None:
            raise RuntimeError("PtyPair already started")
        self._dir = tempfile.TemporaryDirectory(prefix="aqnet-pty-")
        links = [Path(self._dir.name) / "server", Path(self._dir.name) / "client"]
        try:
            self._process = await asyncio.create_subprocess_exec(
                self.socat, "-d", "-d", *(f"pty,raw,echo=0,link={link}" for link in links),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError:
            self._dir.cleanup()
            raise RuntimeError(f"PtyPair: {self.socat} not found: install the Debian package socat") from None
        deadline = time.monotonic() + self.start_timeout_s
        while not all(link.exists() for link in links):
            if self._process.returncode is not None or time.monotonic() > deadline:
                err = b""
                if self._process.stderr is not None and self._process.returncode is not None:
                    err = await self._process.stderr.read()
                await self.stop()
                raise RuntimeError(f"PtyPair: socat did not create {links[0]} and {links[1]} within "
                                   f"{self.start_timeout_s} s: {err.decode(errors='replace').strip()}")
            await asyncio.sleep(0.01)
        self.server_end, self.client_end = (os.path.realpath(link) for link in links)  # noqa: ASYNC240 - once, at start

    async def stop(self) -> None:
        """Stop socat (the terminals disappear) and remove the links."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if process is not None and process.stderr is not None:
            with contextlib.suppress(Exception):
                await process.stderr.read()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
