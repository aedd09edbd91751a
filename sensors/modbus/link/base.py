"""The physical Modbus links and the requests sent over them. I/O; the driver side's only pymodbus import.

One link object owns one physical link, whichever devices (unit ids) sit behind it, and serialises every
request with an asyncio.Lock: a gateway or an RS-485 bus carries one request and its answer at a time.
Three links share one request path (`ModbusLinkBase.read`):

- `ModbusLink`: Modbus TCP to a gateway or logger at (host, port) (MBAP framing, transaction ids).
- `SerialLink`: Modbus RTU on a serial line (pyserial through pymodbus' AsyncModbusSerialClient).
- `RtuOverTcpLink`: RTU frames carried over TCP to a transparent serial-to-Ethernet converter.

The policy is ours, not pymodbus': its automatic reconnect and retries are switched off, each request has
`timeout_s`, a failed connect is retried only after an exponential backoff (`backoff_initial_s` doubling up to
`backoff_max_s`), and after every request the link keeps quiet for `request_gap_s` before the next frame. On a
serial link that gap defaults to the larger of Home Assistant's 30 ms (home-assistant/core:
homeassistant/components/modbus/modbus.py, `_msg_wait` for serial) and the 3.5-character silent interval that
ends an RTU frame (Modbus over Serial Line V1.02, 2.5.1.1), so devices on one bus never collide.

A timeout costs that request its timeout and nothing more. On TCP the connection is closed, so a late answer can
never be taken for the next request's (the next read reconnects). RTU frames have no transaction id, but the bus
itself is healthy when one device is dead, so an RTU link keeps its port open and, after the gap, discards every
byte received so far (pymodbus' receive buffer and the serial driver's input queue): a late reply from the dead
device is dropped instead of being read as the next device's answer. `LinkRegistry.link_for(device)` hands out
one link per physical link (host:port, or the serial port's path), so every device behind it shares its owner.
Failures are raised as `ModbusReadError` with a machine-readable `reason`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from sensors.sensor import Device

__all__ = ["HA_SERIAL_GAP_S", "LinkRegistry", "ModbusLink", "ModbusLinkBase", "ModbusReadError",
           "RtuOverTcpLink", "SerialLink", "default_serial_gap_s", "link_key", "silent_interval_s"]

_log = logging.getLogger(__name__)

#: Home Assistant's default pause between requests on a serial hub (homeassistant/components/modbus/modbus.py)
HA_SERIAL_GAP_S = 0.030
#: Modbus over Serial Line V1.02, 2.5.1: "the default parity mode must be even", 19200 bps default rate
_SERIAL_DEFAULTS = {"baudrate": 19200, "parity": "E", "stopbits": 1, "bytesize": 8}

#: table → (client method, function code) (HA's PB_CALL table: one row per table, no branches)
_READ = {
    "coil": ("read_coils", 1),
    "discrete_input": ("read_discrete_inputs", 2),
    "holding": ("read_holding_registers", 3),
    "input": ("read_input_registers", 4),
}
#: Modbus exception codes (Modbus Application Protocol V1.1b3, section 7)
_EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                    4: "server device failure", 5: "acknowledge", 6: "server device busy",
                    8: "memory parity error", 10: "gateway path unavailable",
                    11: "gateway target device failed to respond"}


def silent_interval_s(baudrate: int, *, bytesize: int = 8, parity: str = "E", stopbits: int = 1) -> float:
    """The RTU inter-frame silence t3.5, in s: 3.5 character times, fixed at 1.75 ms above 19200 bit/s.

    Modbus over Serial Line V1.02, 2.5.1.1. A character is a start bit, the data bits, the parity bit (if any)
    and the stop bits.
    """
    if baudrate <= 0:
        raise ValueError(f"baudrate: expected > 0, got {baudrate}")
    if baudrate > 19200:
        return 0.00175
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return 3.5 * bits / baudrate


def default_serial_gap_s(baudrate: int, *, bytesize: int = 8, parity: str = "E", stopbits: int = 1) -> float:
    """Default pause between frames on a serial link: max(HA's 30 ms, t3.5), in s."""
    return max(HA_SERIAL_GAP_S,
               silent_interval_s(baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits))


class _Disconnected(Exception):
    """The connection dropped while a request was waiting for its answer."""


class ModbusReadError(Exception):
    """A read that returned no data. `reason`: timeout | connection | exception_response | protocol.

    All are transient from the poller's point of view (a gap is recorded and the next cycle retries).
    `host`/`port` name a TCP endpoint; on a serial link `host` is the port's path and `port` 0. `endpoint`
    is how log lines write the link (host:port, or the path).
    """

    def __init__(self, reason: str, detail: str, *, host: str, port: int, unit_id: int, table: str,
                 address: int, count: int, exception_code: int | None = None,
                 endpoint: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.host = host
        self.port = port
        self.endpoint = endpoint or f"{host}:{port}"
        self.unit_id = unit_id
        self.table = table
        self.address = address
        self.count = count
        self.exception_code = exception_code
        super().__init__(
            f"modbus {self.endpoint} unit {unit_id}: {table} {address}×{count}: {reason}: {detail}")


class ModbusLinkBase:
    """The single owner of one physical link: lock, pacing, timeouts, backoff and reconnect.

    Args:
        timeout_s: connect timeout and per-request response timeout.
        backoff_initial_s, backoff_max_s: wait after the first failed connect, doubled per failure up to
            the max.
        request_gap_s: pause after each request before the next frame.
        monotonic: clock for the backoff (injected for tests).
    """

    #: the Device.protocol this link carries
    protocol: ClassVar[str] = ""
    host: str
    port: int

    def __init__(self, *, timeout_s: float = 2.0, backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 request_gap_s: float = 0.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if timeout_s <= 0 or backoff_initial_s < 0 or backoff_max_s < backoff_initial_s or request_gap_s < 0:
            raise ValueError(f"{type(self).__name__} {self.endpoint}: expected timeout_s > 0 and "
                             f"0 <= backoff_initial_s <= backoff_max_s, request_gap_s >= 0")
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_gap_s = request_gap_s
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._client: Any = None
        self._failures = 0  # consecutive failed connects
        self._next_connect_at = 0.0
        self._lost = asyncio.Event()  # set when the current connection drops
        self._stale = False  # bytes of an unanswered request may still arrive: discard them before the next
        self.drain_s = 0.0  # RTU links: how long to let a late answer arrive after a timeout before discarding

    @property
    def endpoint(self) -> str:
        """host:port (or the serial port's path), as log lines write it."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while the connection (or the serial port) is open."""
        return self._client is not None and bool(self._client.connected)

    def _new_client(self, lost: asyncio.Event) -> Any:
        """A fresh pymodbus client for this link; `lost` is set when its connection drops."""
        raise NotImplementedError

    def _on_timeout(self) -> None:
        """After a request timed out (TCP: drop the connection, so a late answer cannot meet the next)."""
        self._drop()

    async def read(self, table: str, address: int, count: int, unit_id: int) -> list[int] | list[bool]:
        """Read `count` registers (or bits) of `table` from 0-based `address` of device `unit_id`."""
        if table not in _READ:
            raise ValueError(f"table: expected {'|'.join(_READ)}, got {table!r}")

        def error(reason: str, detail: str, code: int | None = None) -> ModbusReadError:
            return ModbusReadError(reason, detail, host=self.host, port=self.port, unit_id=unit_id,
                                   table=table, address=address, count=count, exception_code=code,
                                   endpoint=self.endpoint)

        async with self._lock:
            client = await self._ensure_connected(error)
            method_name, function_code = _READ[table]
            method = getattr(client, method_name)
            try:
                response = await self._race_disconnect(method(address, count=count, device_id=unit_id))
            except asyncio.CancelledError:
                self._drop()  # the answer may still arrive: never let it meet the next request
                raise
            except _Disconnected:
                self._drop()
                raise error("connection", "connection closed by the peer during the request") from None
            except TimeoutError:
                self._on_timeout()
                raise error("timeout", f"no response within {self.timeout_s} s") from None
            except ModbusIOException as exc:
                if "no response" in str(exc).lower():
                    self._on_timeout()
                    raise error("timeout", f"no response within {self.timeout_s} s") from None
                self._drop()
                raise error("protocol", str(exc)) from None
            except ConnectionException as exc:
                self._drop()
                raise error("connection", f"connection lost: {exc}") from None
            except ModbusException as exc:
                self._drop()
                raise error("protocol", str(exc)) from None
            finally:
                pause = max(self.request_gap_s, self.drain_s) if self._stale else self.request_gap_s
                if pause:
                    await asyncio.sleep(pause)
                if self._stale:
                    self._discard_input()
            if response.isError():
                code = getattr(response, "exception_code", None)
                name = _EXCEPTION_NAMES.get(code or 0, "unknown exception")
                raise error("exception_response", f"exception code {code} ({name})", code)
            # an RTU frame carries no transaction id: an answer to another request must not pass for this one
            if response.function_code != function_code:
                self._drop()  # reopening flushes whatever else is queued on the line
                raise error("protocol", f"answer has function code {response.function_code}, "
                                        f"expected {function_code}")
            bits = table in ("coil", "discrete_input")
            values = response.bits if bits else response.registers
            if len(values) < count or (not bits and len(values) != count):  # bits come padded to a byte
                self._drop()
                raise error("protocol", f"expected {count} value(s), got {len(values)}")
            return list(values[:count])

    async def _race_disconnect(self, request: Awaitable[Any]) -> Any:
        # pymodbus keeps waiting for an answer after the peer closed the connection: stop at the disconnect
        lost = self._lost
        task = asyncio.ensure_future(request)
        watch = asyncio.ensure_future(lost.wait())
        try:
            # guard only: pymodbus times the request out at timeout_s itself
            done, _ = await asyncio.wait({task, watch}, timeout=self.timeout_s * 2,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            watch.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ModbusException):
            await task
        if watch in done:
            raise _Disconnected
        raise TimeoutError

    async def _ensure_connected(self, error: Callable[..., ModbusReadError]) -> Any:
        if self._client is not None and self._client.connected:
            return self._client
        now = self._monotonic()
        if now < self._next_connect_at:
            wait_s = self._next_connect_at - now
            raise error("connection", f"not connected; next connect attempt in {wait_s:.1f} s")
        self._drop()
        lost = asyncio.Event()
        client = self._new_client(lost)
        self._lost = lost
        if await client.connect() and client.connected:
            if self._failures:
                _log.info("modbus %s: connected after %d failed attempt(s)", self.endpoint, self._failures)
            self._failures = 0
            self._next_connect_at = 0.0
            self._client = client
            return client
        client.close()
        delay = min(self.backoff_initial_s * 2 ** self._failures, self.backoff_max_s)
        self._failures += 1
        self._next_connect_at = self._monotonic() + delay
        raise error("connection", f"cannot connect within {self.timeout_s} s ({self._unreachable}); "
                                  f"next attempt in {delay:.1f} s")

    _unreachable: ClassVar[str] = "refused or unreachable"

    def _discard_input(self) -> None:
        # pymodbus internals (3.16): the protocol's receive buffer, and pyserial's driver queue when serial
        self._stale = False
        if self._client is None:
            return
        ctx = self._client.ctx
        ctx.recv_buffer = b""
        port = getattr(ctx.transport, "sync_serial", None)
        if port is not None:
            with contextlib.suppress(Exception):  # a port closing under us: the next read reopens it
                port.reset_input_buffer()

    def _drop(self) -> None:
        self._stale = False
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        """Close the connection or port (a later read reopens it)."""
        async with self._lock:
            self._drop()


class ModbusLink(ModbusLinkBase):
    """The single owner of one Modbus TCP endpoint's connection.

    Args:
        host, port: the endpoint.
        timeout_s, backoff_initial_s, backoff_max_s, request_gap_s, monotonic: see `ModbusLinkBase`.
    """

    protocol: ClassVar[str] = "modbus-tcp"
    _framer: ClassVar[FramerType] = FramerType.SOCKET

    def __init__(self, host: str, port: int, *, timeout_s: float = 2.0, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, request_gap_s: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.host = host
        self.port = port
        super().__init__(timeout_s=timeout_s, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s,
                         request_gap_s=request_gap_s, monotonic=monotonic)

    def _new_client(self, lost: asyncio.Event) -> Any:
        # reconnect_delay=0 and retries=0: reconnect and retry policy are this class's, not pymodbus'
        return AsyncModbusTcpClient(self.host, port=self.port, framer=self._framer, timeout=self.timeout_s,
                                    retries=0, reconnect_delay=0, name=f"aqnet {self.endpoint}",
                                    trace_connect=lambda up: None if up else lost.set())


class RtuOverTcpLink(ModbusLink):
    """RTU frames over TCP to a transparent serial-to-Ethernet converter at (host, port).

    The converter puts the frames on its RS-485 bus unchanged, so a timeout is treated as on a serial link
    (the connection stays open, late bytes are discarded) rather than by reconnecting. `drain_s`: see
    `SerialLink`.
    """

    protocol: ClassVar[str] = "modbus-rtu-tcp"
    _framer: ClassVar[FramerType] = FramerType.RTU

    def __init__(self, host: str, port: int, *, timeout_s: float = 2.0, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, request_gap_s: float = 0.0, drain_s: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(host, port, timeout_s=timeout_s, backoff_initial_s=backoff_initial_s,
                         backoff_max_s=backoff_max_s, request_gap_s=request_gap_s, monotonic=monotonic)
        self.drain_s = _check_drain(self.endpoint, drain_s)

    def _new_client(self, lost: asyncio.Event) -> Any:
        client = super()._new_client(lost)
        client.set_max_no_responses(1 << 30)  # pymodbus would close after retries+3 silent requests
        return client

    def _on_timeout(self) -> None:
        self._stale = True


class SerialLink(ModbusLinkBase):
    """The single owner of one serial port carrying Modbus RTU (an RS-485 bus or a point-to-point line).

    Args:
        serial_port: the device path, e.g. "/dev/ttyUSB0" (or any pyserial URL).
        baudrate, parity ("N"|"E"|"O"), stopbits (1|2), bytesize (7|8): the line settings; the defaults are
            the Modbus serial line's (19200 baud, even parity, 8 data bits, 1 stop bit: Modbus over Serial
            Line V1.02, 2.5.1).
        request_gap_s: pause after each request; None = `default_serial_gap_s` for the line settings.
        drain_s: after a timeout, how long to wait (at least) for a late answer before discarding what
            arrived; raise it for a bus with devices that answer slower than `timeout_s` now and then.
        timeout_s, backoff_initial_s, backoff_max_s, monotonic: see `ModbusLinkBase`.
    """

    protocol: ClassVar[str] = "modbus-rtu"
    _unreachable: ClassVar[str] = "port missing, busy or not permitted"

    def __init__(self, serial_port: str, *, baudrate: int = 19200, parity: str = "E", stopbits: int = 1,
                 bytesize: int = 8, timeout_s: float = 1.0, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, request_gap_s: float | None = None, drain_s: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if parity not in ("N", "E", "O") or stopbits not in (1, 2) or bytesize not in (7, 8):
            raise ValueError(f"SerialLink {serial_port}: expected parity N|E|O, stopbits 1|2, bytesize 7|8, "
                             f"got {parity!r}, {stopbits}, {bytesize}")
        self.serial_port = serial_port
        self.host = serial_port
        self.port = 0
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        gap = request_gap_s if request_gap_s is not None else default_serial_gap_s(
            baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)
        super().__init__(timeout_s=timeout_s, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s,
                         request_gap_s=gap, monotonic=monotonic)
        self.drain_s = _check_drain(serial_port, drain_s)

    @property
    def endpoint(self) -> str:
        """The serial port's path."""
        return self.serial_port

    @property
    def line(self) -> str:
        """The line settings as technicians write them, e.g. "9600 8N1"."""
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"

    def _new_client(self, lost: asyncio.Event) -> Any:
        client = AsyncModbusSerialClient(self.serial_port, framer=FramerType.RTU, baudrate=self.baudrate,
                                         bytesize=self.bytesize, parity=self.parity, stopbits=self.stopbits,
                                         timeout=self.timeout_s, retries=0, reconnect_delay=0,
                                         name=f"aqnet {self.endpoint}",
                                         trace_connect=lambda up: None if up else lost.set())
        client.set_max_no_responses(1 << 30)  # a dead device on the bus is no reason to touch the port
        return client

    def _on_timeout(self) -> None:
        self._stale = True


def _check_drain(endpoint: str, drain_s: float) -> float:
    if drain_s < 0:
        raise ValueError(f"link {endpoint}: drain_s: expected >= 0, got {drain_s}")
    return drain_s


def link_key(device: Device) -> str:
    """The physical link a Modbus device sits behind: "host:port", or the serial port's path."""
    if device.protocol == "modbus-rtu":
        assert device.serial_port is not None
        return device.serial_port
    if device.protocol in ("modbus-tcp", "modbus-rtu-tcp"):
        return f"{device.host}:{device.port}"
    raise ValueError(f"device {device.id}: not a Modbus device (protocol {device.protocol})")


def _serial_settings(device: Device) -> dict[str, Any]:
    given = {"baudrate": device.baudrate, "parity": device.parity, "stopbits": device.stopbits,
             "bytesize": device.bytesize}
    return {k: _SERIAL_DEFAULTS[k] if v is None else v for k, v in given.items()}


class LinkRegistry:
    """One link per physical link: `link_for(device)` returns the owner every device behind it shares.

    Args:
        timeout_s: per-request timeout of every link.
        backoff_initial_s, backoff_max_s: reconnect backoff of every link.
        request_gap_s: pause between frames; None = 0 on TCP links and `default_serial_gap_s` on serial ones.
        drain_s: RTU links' wait for a late answer after a timeout (see `SerialLink`).
        monotonic: clock for the backoff.
    """

    def __init__(self, *, timeout_s: float = 2.0, backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 request_gap_s: float | None = None, drain_s: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._options: dict[str, Any] = {"timeout_s": timeout_s, "backoff_initial_s": backoff_initial_s,
                                         "backoff_max_s": backoff_max_s, "monotonic": monotonic}
        self._gap = request_gap_s
        self._drain_s = drain_s
        self._links: dict[str, ModbusLinkBase] = {}
        self._first: dict[str, Device] = {}  # the device that created each link (for conflict messages)

    @property
    def links(self) -> Mapping[str, ModbusLinkBase]:
        """link key → its owner."""
        return dict(self._links)

    def link_for(self, device: Device) -> ModbusLinkBase:
        """The link that owns `device`'s physical link, created on first use."""
        key = link_key(device)
        link = self._links.get(key)
        if link is None:
            link = self._create(device)
            self._links[key] = link
            self._first[key] = device
            return link
        first = self._first[key]
        if device.protocol != first.protocol:
            raise ValueError(f"device {device.id}: {key} is {device.protocol}, but device {first.id} reaches "
                             f"it as {first.protocol}: one physical link speaks one framing")
        if device.protocol == "modbus-rtu" and _serial_settings(device) != _serial_settings(first):
            raise ValueError(f"device {device.id}: serial {key} line settings {_serial_settings(device)} "
                             f"differ from device {first.id}'s {_serial_settings(first)}: one bus has one "
                             f"baud rate and character format")
        return link

    def _create(self, device: Device) -> ModbusLinkBase:
        if device.protocol == "modbus-rtu":
            assert device.serial_port is not None
            return SerialLink(device.serial_port, **_serial_settings(device), request_gap_s=self._gap,
                              drain_s=self._drain_s, **self._options)
        gap = self._gap or 0.0
        assert device.host is not None and device.port is not None
        if device.protocol == "modbus-rtu-tcp":
            return RtuOverTcpLink(device.host, device.port, request_gap_s=gap, drain_s=self._drain_s,
                                  **self._options)
        return ModbusLink(device.host, device.port, request_gap_s=gap, **self._options)

    async def close(self) -> None:
        """Close every link."""
        for link in self._links.values():
            await link.close()
