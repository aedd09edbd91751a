"""The bundled network (19 RMCAB reference stations and 25 microsensors) built from reference.json. Pure.

Each station is composed of the simulated analysers of `sensors/profiles/sim-*.yaml`, one Modbus unit id each
behind the station's gateway: PM monitor (pm10, pm25), NOx analyser (no, no2, nox), O3, SO2 and CO analysers and
a weather station, limited to the variables reference.json lists for that station. Microsensors publish aqnet
JSON on `aqnet/<id>/readings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sensors.domain import load
from sensors.sensor import Device, Sensor
from sensors.variables import BY_REFERENCE_NAME

__all__ = ["ANALYSERS", "DEFAULT_TOPIC", "MicrosensorLink", "StationLink", "bundled_network", "topic_for"]

DEFAULT_TOPIC = "aqnet/{sensor_id}/readings"

#: simulated analyser profile → the variables it measures, in unit-id order (unit id = position + 1)
ANALYSERS: dict[str, tuple[str, ...]] = {
    "sim-pm": ("pm10", "pm25"),
    "sim-nox": ("no", "no2", "nox"),
    "sim-o3": ("o3",),
    "sim-so2": ("so2",),
    "sim-co": ("co",),
    "sim-met": ("temperature", "temperature_8m", "temperature_20m", "relativehumidity", "pressure", "wind_speed",
                "wind_direction", "precipitation", "solar_radiation"),
    "sim-aeth": ("bc", "bbp"),
    "sim-co2": ("co2",),
}


@dataclass(frozen=True, slots=True)
class StationLink:
    """How a station's analysers are reached: a Modbus TCP gateway, RTU framed over TCP, or an RS-485 bus."""

    protocol: str = "modbus-tcp"  #: modbus-tcp | modbus-rtu-tcp | modbus-rtu
    host: str | None = None
    port: int | None = None
    serial_port: str | None = None  #: modbus-rtu: e.g. /dev/ttyUSB0
    baudrate: int | None = None
    parity: str | None = None
    stopbits: int | None = None
    bytesize: int | None = None


@dataclass(frozen=True, slots=True)
class MicrosensorLink:
    """How a microsensor reports: its payload format, the identity it gives itself, how its channels split."""

    format: str = "aqnet-json"  #: sensors.mqtt.payloads format name
    transport: str = "mqtt"  #: mqtt, or http (airrohr's "send to own API")
    hardware_serial: str | None = None  #: required by the self-identifying formats (airrohr, purpleair)
    #: device suffix → payload channels; empty: one device taking every channel
    devices: tuple[tuple[str, tuple[str, ...]], ...] = ()


def topic_for(sensor_id: str, pattern: str = DEFAULT_TOPIC) -> str:
    """The MQTT topic a microsensor publishes to."""
    return pattern.format(sensor_id=sensor_id)


def _codes(names: list[str]) -> list[str]:
    # reference.json appends a note to some names ("BBP_percent (label as shown ...)"): the first word is the name
    return [BY_REFERENCE_NAME[n.split(" ", 1)[0]] for n in names if n.split(" ", 1)[0] in BY_REFERENCE_NAME]


def bundled_network(
    station_endpoints: Mapping[str, tuple[str, int] | StationLink] | None = None,
    topic_pattern: str = DEFAULT_TOPIC,
    microsensor_links: Mapping[str, MicrosensorLink] | None = None,
) -> list[Sensor]:
    """The 19 stations and 25 microsensors; `station_endpoints` maps station code → (host, port) of its Modbus
    TCP gateway, or a StationLink (RTU over TCP, or a serial bus)."""
    ref = load("reference")
    endpoints = station_endpoints or {}
    sensors: list[Sensor] = []
    for st in ref["stations"]:
        code = st["code"]
        link = endpoints.get(code, ("127.0.0.1", 502))
        if isinstance(link, tuple):
            link = StationLink(host=link[0], port=link[1])
        measured = set(_codes(st["pollutants"] + st["met"] + st.get("other", [])))
        devices: list[Device] = []
        for unit_id, (profile, variables) in enumerate(ANALYSERS.items(), start=1):
            here = tuple(v for v in variables if v in measured)
            if not here:
                continue
            devices.append(Device(id=f"{code}-{profile.removeprefix('sim-')}", sensor_id=code,
                                  protocol=link.protocol, profile=profile, variables=here,  # type: ignore[arg-type]
                                  host=link.host, port=link.port, unit_id=unit_id, primary=here,
                                  serial_port=link.serial_port, baudrate=link.baudrate, parity=link.parity,
                                  stopbits=link.stopbits, bytesize=link.bytesize))
        sensors.append(Sensor(id=code, name=st["name"], kind="station", lat=st["lat"], lon=st["lon"],
                              locality=st["locality"], devices=tuple(devices)))
    links = microsensor_links or {}
    for ms in ref["microsensors"]:
        sid = ms["id"]
        variables = tuple(_codes(ms["variables"]))
        devices = _microsensor_devices(sid, variables, links.get(sid, MicrosensorLink()), topic_pattern)
        sensors.append(Sensor(id=sid, name=f"Microsensor {sid} ({ms['locality']})", kind="microsensor",
                              lat=ms["lat"], lon=ms["lon"], locality=ms["locality"], devices=devices))
    return sensors


def _microsensor_devices(sid: str, variables: tuple[str, ...], link: MicrosensorLink,
                         topic_pattern: str) -> tuple[Device, ...]:
    """One device per declared channel group (the first is primary), or one device taking every channel."""
    if link.format != "aqnet-json" and not link.hardware_serial:
        raise ValueError(f"microsensor {sid}: format {link.format} identifies devices by hardware_serial; "
                         "none given")
    topic = topic_for(sid, topic_pattern) if link.format == "aqnet-json" else None
    if link.transport == "mqtt" and topic is None:
        topic = f"{link.format}/+/data"  # self-identifying formats: identity from the payload, not the topic
    serial = link.hardware_serial.lower() if link.hardware_serial else None
    groups = link.devices or (("", ()),)
    return tuple(Device(id=f"{sid}-{suffix}" if suffix else sid, sensor_id=sid,
                        protocol=link.transport,  # type: ignore[arg-type]
                        profile=link.format, variables=variables, topic=topic if link.transport == "mqtt" else None,
                        primary=variables if i == 0 else (), hardware_serial=serial, channels=channels)
                 for i, (suffix, channels) in enumerate(groups))
