"""Stage 1, the physical Modbus links and the requests sent over them: the driver side's only pymodbus import. I/O.

Index: `sensors.modbus.link.base` (`ModbusLinkBase`: lock, pacing, timeouts, backoff, reconnect; `ModbusReadError`),
`.tcp` (`ModbusLink`: Modbus TCP), `.rtu` (`SerialLink`, `RtuOverTcpLink`, the serial timing), `.registry`
(`LinkRegistry`: one link per physical link), `.exchange` (one request and its answer without pymodbus'
per-request wait_for), `.watch` (`ConnectionLost`, `Deadline`: what ends a request early).
"""

from __future__ import annotations

from sensors.modbus.link.base import ModbusLinkBase, ModbusReadError
from sensors.modbus.link.registry import LinkRegistry, link_key
from sensors.modbus.link.rtu import HA_SERIAL_GAP_S, RtuOverTcpLink, SerialLink, default_serial_gap_s, silent_interval_s
from sensors.modbus.link.tcp import ModbusLink

__all__ = ["HA_SERIAL_GAP_S", "LinkRegistry", "ModbusLink", "ModbusLinkBase", "ModbusReadError", "RtuOverTcpLink",
           "SerialLink", "default_serial_gap_s", "link_key", "silent_interval_s"]
