"""`LinkRegistry`: one link per physical link (host:port, or the serial port's path), so every device behind it
shares its owner; `link_key` names that physical link. I/O (it creates and closes the links).

Part of `sensors.modbus.link`. One physical link speaks one framing, and one bus has one set of line settings:
a device that disagrees with the device that created its link is refused with a ValueError naming both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sensors.modbus.link.base import ModbusLinkBase
from sensors.modbus.link.rtu import SERIAL_DEFAULTS, RtuOverTcpLink, SerialLink
from sensors.modbus.link.tcp import ModbusLink
from sensors.sensor import Device

__all__ = ["LinkRegistry", "link_key"]


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
    return {k: SERIAL_DEFAULTS[k] if v is None else v for k, v in given.items()}


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
        assert device.host is not None
        assert device.port is not None
        if device.protocol == "modbus-rtu-tcp":
            return RtuOverTcpLink(device.host, device.port, request_gap_s=gap, drain_s=self._drain_s,
                                  **self._options)
        return ModbusLink(device.host, device.port, request_gap_s=gap, **self._options)

    async def close(self) -> None:
        """Close every link."""
        for link in self._links.values():
            await link.close()
