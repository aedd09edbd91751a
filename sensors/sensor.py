"""The `Sensor` (logical measuring point) and `Device` (hardware behind it) records. Pure.

A sensor keeps its id across hardware swaps; its series is continuous. A reference station is one sensor with
several devices (a PM monitor, gas analysers, a weather station), each with its own profile and Modbus unit id;
a microsensor is one sensor with one device publishing over MQTT.

Modbus devices are reached three ways (`Device.protocol`): "modbus-tcp" (a gateway or logger at host:port),
"modbus-rtu" (RTU frames on a serial line, `serial_port` plus its line settings) and "modbus-rtu-tcp" (RTU
frames carried over a TCP connection to a transparent serial-to-Ethernet converter at host:port).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["MODBUS_PROTOCOLS", "Device", "Protocol", "Sensor", "SensorKind"]

SensorKind = Literal["station", "microsensor"]
Protocol = Literal["modbus-tcp", "modbus-rtu", "modbus-rtu-tcp", "mqtt", "http"]
#: the protocols read by the Modbus driver (sensors.modbus)
MODBUS_PROTOCOLS: tuple[str, ...] = ("modbus-tcp", "modbus-rtu", "modbus-rtu-tcp")
_SERIAL_FIELDS = ("serial_port", "baudrate", "parity", "stopbits", "bytesize")


@dataclass(frozen=True, slots=True)
class Device:
    """One instrument: a Modbus analyser behind a station's logger, or a microsensor board."""

    id: str  #: unique device id, e.g. "USQ-nox" or "MS01"
    sensor_id: str
    protocol: Protocol
    profile: str  #: Modbus: device profile name (sensors/profiles/<name>.yaml); MQTT: payload format name
    variables: tuple[str, ...]  #: vocabulary codes this device measures
    host: str | None = None  #: Modbus TCP (or RTU-over-TCP) gateway host
    port: int | None = None  #: Modbus TCP (or RTU-over-TCP) gateway port
    unit_id: int | None = None  #: Modbus unit (device) id behind the gateway or on the bus
    topic: str | None = None  #: MQTT topic it publishes to
    primary: tuple[str, ...] = ()  #: variables for which this device is the sensor's primary instrument
    serial_port: str | None = None  #: modbus-rtu: the serial device, e.g. "/dev/ttyUSB0"
    #: modbus-rtu line settings; None = the Modbus serial line defaults (19200 baud, even parity, 8 data bits,
    #: 1 stop bit: Modbus over Serial Line V1.02, 2.5.1), applied by sensors.modbus.link
    baudrate: int | None = None
    parity: str | None = None  #: "N", "E" or "O"
    stopbits: int | None = None  #: 1 or 2
    bytesize: int | None = None  #: 7 or 8
    #: the identity a microsensor gives itself in its payloads (airrohr esp8266id, PurpleAir MAC), lower-case
    hardware_serial: str | None = None
    #: payload channels this device takes (airrohr "SDS011", "BME280"; PurpleAir "a", "b"); empty: every channel
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.protocol in ("modbus-tcp", "modbus-rtu-tcp") and (
                self.host is None or self.port is None or self.unit_id is None):
            raise ValueError(f"device {self.id}: {self.protocol} needs host, port and unit_id")
        if self.protocol == "modbus-rtu" and (not self.serial_port or self.unit_id is None):
            raise ValueError(f"device {self.id}: modbus-rtu needs serial_port and unit_id")
        if self.protocol == "mqtt" and not self.topic:
            raise ValueError(f"device {self.id}: mqtt needs a topic")
        if self.protocol != "modbus-rtu":
            stray = [name for name in _SERIAL_FIELDS if getattr(self, name) is not None]
            if stray:
                raise ValueError(f"device {self.id}: {', '.join(stray)}: serial line settings apply to "
                                 f"modbus-rtu only, protocol is {self.protocol}")
            return
        # Modbus over Serial Line V1.02, 2.2: unit addresses 1..247 (0 is broadcast, 248..255 reserved)
        if not 1 <= (self.unit_id or 0) <= 247:
            raise ValueError(f"device {self.id}: unit_id: expected 1..247 on a serial line, got {self.unit_id}")
        if self.baudrate is not None and self.baudrate <= 0:
            raise ValueError(f"device {self.id}: baudrate: expected > 0, got {self.baudrate}")
        if self.parity is not None and self.parity not in ("N", "E", "O"):
            raise ValueError(f"device {self.id}: parity: expected N|E|O, got {self.parity!r}")
        if self.stopbits is not None and self.stopbits not in (1, 2):
            raise ValueError(f"device {self.id}: stopbits: expected 1|2, got {self.stopbits}")
        if self.bytesize is not None and self.bytesize not in (7, 8):
            raise ValueError(f"device {self.id}: bytesize: expected 7|8, got {self.bytesize}")


@dataclass(frozen=True, slots=True)
class Sensor:
    """A logical measuring point, with the ids of reference.json (station code or microsensor id)."""

    id: str
    name: str
    kind: SensorKind
    lat: float
    lon: float
    locality: str = ""
    devices: tuple[Device, ...] = field(default=())

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable measured by any of its devices, in device order."""
        seen: dict[str, None] = {}
        for d in self.devices:
            for v in d.variables:
                seen.setdefault(v, None)
        return tuple(seen)
