"""The `Sensor` (logical measuring point) and `Device` (hardware behind it) records. Pure.

A sensor keeps its id across hardware swaps; its series is continuous. A reference station is one sensor with
several devices (a PM monitor, gas analysers, a weather station), each with its own profile and Modbus unit id;
a microsensor is one sensor with one device publishing over MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Device", "Protocol", "Sensor", "SensorKind"]

SensorKind = Literal["station", "microsensor"]
Protocol = Literal["modbus-tcp", "mqtt"]


@dataclass(frozen=True, slots=True)
class Device:
    """One instrument: a Modbus analyser behind a station's logger, or a microsensor board."""

    id: str  #: unique device id, e.g. "USQ-nox" or "MS01"
    sensor_id: str
    protocol: Protocol
    profile: str  #: Modbus: device profile name (sensors/profiles/<name>.yaml); MQTT: payload format name
    variables: tuple[str, ...]  #: vocabulary codes this device measures
    host: str | None = None  #: Modbus TCP gateway host
    port: int | None = None  #: Modbus TCP gateway port
    unit_id: int | None = None  #: Modbus unit (device) id behind the gateway
    topic: str | None = None  #: MQTT topic it publishes to
    primary: tuple[str, ...] = ()  #: variables for which this device is the sensor's primary instrument

    def __post_init__(self) -> None:
        if self.protocol == "modbus-tcp" and (self.host is None or self.port is None or self.unit_id is None):
            raise ValueError(f"device {self.id}: modbus-tcp needs host, port and unit_id")
        if self.protocol == "mqtt" and not self.topic:
            raise ValueError(f"device {self.id}: mqtt needs a topic")


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
