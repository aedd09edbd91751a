"""The RTU links: `SerialLink` (Modbus RTU on a serial line, pyserial through pymodbus' AsyncModbusSerialClient)
and `RtuOverTcpLink` (RTU frames over TCP to a transparent serial-to-Ethernet converter), and the serial timing.
I/O (pymodbus); `silent_interval_s` and `default_serial_gap_s` are pure.

On a serial link the pause after each request defaults to the larger of Home Assistant's 30 ms (home-assistant/core:
homeassistant/components/modbus/modbus.py, `_msg_wait` for serial) and the 3.5-character silent interval that
ends an RTU frame (Modbus over Serial Line V1.02, 2.5.1.1), so devices on one bus never collide. RTU frames have no
transaction id, but the bus itself is healthy when one device is dead, so an RTU link keeps its port open after a
timeout and, after the gap, discards every byte received so far (pymodbus' receive buffer and the serial driver's
input queue): a late reply from the dead device is dropped instead of being read as the next device's answer.
Part of `sensors.modbus.link`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.framer import FramerType

from sensors.modbus.link.base import ModbusLinkBase
from sensors.modbus.link.tcp import ModbusLink
from sensors.modbus.link.watch import ConnectionLost

__all__ = ["HA_SERIAL_GAP_S", "SERIAL_DEFAULTS", "RtuOverTcpLink", "SerialLink", "default_serial_gap_s",
           "silent_interval_s"]

#: Home Assistant's default pause between requests on a serial hub (homeassistant/components/modbus/modbus.py)
HA_SERIAL_GAP_S = 0.030
#: Modbus over Serial Line V1.02, 2.5.1: "the default parity mode must be even", 19200 bps default rate
SERIAL_DEFAULTS = {"baudrate": 19200, "parity": "E", "stopbits": 1, "bytesize": 8}


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


def _check_drain(endpoint: str, drain_s: float) -> float:
    if drain_s < 0:
        raise ValueError(f"link {endpoint}: drain_s: expected >= 0, got {drain_s}")
    return drain_s


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

    def _new_client(self, lost: ConnectionLost) -> Any:
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

    def _new_client(self, lost: ConnectionLost) -> Any:
        client = AsyncModbusSerialClient(self.serial_port, framer=FramerType.RTU, baudrate=self.baudrate,
                                         bytesize=self.bytesize, parity=self.parity, stopbits=self.stopbits,
                                         timeout=self.timeout_s, retries=0, reconnect_delay=0,
                                         name=f"aqnet {self.endpoint}",
                                         trace_connect=lambda up: None if up else lost.set())
        client.set_max_no_responses(1 << 30)  # a dead device on the bus is no reason to touch the port
        return client

    def _on_timeout(self) -> None:
        self._stale = True
