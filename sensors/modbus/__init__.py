"""Stage 1, the Modbus side: device profiles and their checks, the register codec, read plans, the logger history
ring, the links (pymodbus), one device read, the station poller and the technicians' probe. Pure, except `link`,
`read`, `poller` and `probe`.

Index: `sensors.modbus.profile` (a package: Profile, load_profile), `.profile_check`, `.decode`, `.plan`,
`.history`, `.replay` (history records → readings), `.link` (a package: the links and LinkRegistry), `.read`
(`read_device`: one read of one device), `.poller` (StationPoller), `.probe`.
"""

from __future__ import annotations

from sensors.modbus.history import HistoryRecord, RingHeader
from sensors.modbus.link import LinkRegistry, ModbusLink, ModbusReadError, RtuOverTcpLink, SerialLink
from sensors.modbus.poller import StationPoller, StatusEvent
from sensors.modbus.probe import Probe
from sensors.modbus.profile import Profile, ProfileError, list_profiles, load_profile
from sensors.modbus.profile_check import ProfileReport, check_profile_file

__all__ = ["HistoryRecord", "LinkRegistry", "ModbusLink", "ModbusReadError", "Probe", "Profile", "ProfileError",
           "ProfileReport", "RingHeader", "RtuOverTcpLink", "SerialLink", "StationPoller", "StatusEvent",
           "check_profile_file", "list_profiles", "load_profile"]
