"""`ModbusLink`: Modbus TCP to a gateway or logger at (host, port) (MBAP framing, transaction ids). I/O (pymodbus).

Part of `sensors.modbus.link`; the request path is `ModbusLinkBase`'s. A timeout closes the connection, so a late
answer is never taken for the next request's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from sensors.modbus.link.base import ModbusLinkBase
from sensors.modbus.link.watch import ConnectionLost

__all__ = ["ModbusLink"]


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

    def _new_client(self, lost: ConnectionLost) -> Any:
        # reconnect_delay=0 and retries=0: reconnect and retry policy are this class's, not pymodbus'
        return AsyncModbusTcpClient(self.host, port=self.port, framer=self._framer, timeout=self.timeout_s,
                                    retries=0, reconnect_delay=0, name=f"aqnet {self.endpoint}",
                                    trace_connect=lambda up: None if up else lost.set())
