"""The bundled network (19 RMCAB reference stations and 25 microsensors) built from reference.json. Pure.

Each station is composed of the simulated analysers of `sensors/profiles/sim-*.yaml`, one Modbus unit id each
behind the station's gateway: PM monitor (pm10, pm25), NOx analyser (no, no2, nox), O3, SO2 and CO analysers and
a weather station, limited to the variables reference.json lists for that station.

Each microsensor gets a model, a payload format and a hardware serial (`bundled_microsensor_links`), unless the
caller's `microsensor_links` say otherwise. The mix is fixed (not random), so every run and every test sees the
same network (reference.json's microsensors are illustrative placements; so is this assignment):
- MS01–MS10, MS20, MS23: aqnet's own board (model "aqnet-board"), aqnet JSON on `aqnet/<id>/readings`;
- MS11, MS14, MS17, MS21: airrohr kits (SDS011 with a BME280 or a DHT22) publishing over MQTT through a bridge
  on `airrohr/<sensor id>/data`; MS13, MS19, MS24: airrohr kits POSTing to aqnet's `/intake/airrohr` ("send to own
  API"); identity: the ESP8266 chip id (decimal, `esp8266id`);
- MS12, MS15, MS16, MS18, MS22, MS25: PurpleAir PA-II (two laser counters A and B and a BME280) on
  `purpleair/<sensor id>/data`; identity: the MAC (`SensorId`). Laser A with the BME280 is the primary device
  `<id>`, laser B the secondary device `<id>-b` (the A/B agreement is PurpleAir's own quality check).
Hardware serials are derived from the sensor id (a hash), so they are stable and unique.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from sensors.domain import load
from sensors.mqtt.payloads import airrohr, purpleair
from sensors.sensor import Device, Sensor
from sensors.variables import BY_REFERENCE_NAME

__all__ = ["ANALYSERS", "DEFAULT_TOPIC", "MICROSENSOR_MODELS", "MicrosensorLink", "MicrosensorModel", "StationLink",
           "bundled_microsensor_links", "bundled_network", "model_of", "topic_for"]

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
    model: str | None = None  #: a MICROSENSOR_MODELS name (what the simulators emit); None: the format's default


@dataclass(frozen=True, slots=True)
class MicrosensorModel:
    """A low-cost sensor build: its payload format and which instruments (payload channels) it carries."""

    name: str
    format: str  #: sensors.mqtt.payloads format name
    #: the instruments inside its payload: airrohr sensor models ("SDS011", "BME280", "DHT22"); PurpleAir "a",
    #: "b" (laser counters), "bme"; "" for aqnet JSON (one instrument)
    channels: tuple[str, ...]
    #: device suffix → channels, as bundled (the first is the primary device); empty: one device, every channel
    devices: tuple[tuple[str, tuple[str, ...]], ...] = ()


#: the builds the bundled network uses (and the simulators emit), by name
MICROSENSOR_MODELS: dict[str, MicrosensorModel] = {m.name: m for m in (
    MicrosensorModel("aqnet-board", "aqnet-json", ("",)),
    MicrosensorModel("airrohr-sds011-bme280", "airrohr", ("SDS011", "BME280")),
    MicrosensorModel("airrohr-sds011-dht22", "airrohr", ("SDS011", "DHT22")),
    MicrosensorModel("purpleair-pa-ii", "purpleair", ("a", "b", "bme"), devices=(("", ("a", "bme")), ("b", ("b",)))),
)}
#: a format's model when a link names none
_DEFAULT_MODEL = {"aqnet-json": "aqnet-board", "airrohr": "airrohr-sds011-bme280", "purpleair": "purpleair-pa-ii"}

#: the bundled assignment: microsensor id → (model, transport); the rest are aqnet boards over MQTT
_BUNDLED_MIX: dict[str, tuple[str, str]] = {
    "MS11": ("airrohr-sds011-bme280", "mqtt"), "MS14": ("airrohr-sds011-dht22", "mqtt"),
    "MS17": ("airrohr-sds011-bme280", "mqtt"), "MS21": ("airrohr-sds011-dht22", "mqtt"),
    "MS13": ("airrohr-sds011-bme280", "http"), "MS19": ("airrohr-sds011-dht22", "http"),
    "MS24": ("airrohr-sds011-bme280", "http"),
    **dict.fromkeys(("MS12", "MS15", "MS16", "MS18", "MS22", "MS25"), ("purpleair-pa-ii", "mqtt")),
}


def _serial(sensor_id: str, fmt: str) -> str:
    """A stable hardware serial for a bundled microsensor: an ESP8266 chip id or a MAC (Espressif OUI)."""
    digest = hashlib.blake2b(f"aqnet-bundled|{sensor_id}".encode(), digest_size=3).digest()
    if fmt == "airrohr":
        # the ESP8266 chip id is the last three bytes of its MAC, printed in decimal (airrohr-firmware esp_chipid)
        return str(int.from_bytes(digest, "big"))
    return "84:f3:eb:" + ":".join(f"{b:02x}" for b in digest)  # 84:F3:EB is an Espressif Inc. OUI (IEEE registry)


def bundled_microsensor_links() -> dict[str, MicrosensorLink]:
    """The bundled model, format, transport and hardware serial of every microsensor of reference.json."""
    links = {}
    for ms in load("reference")["microsensors"]:
        sid = ms["id"]
        model_name, transport = _BUNDLED_MIX.get(sid, ("aqnet-board", "mqtt"))
        model = MICROSENSOR_MODELS[model_name]
        serial = None if model.format == "aqnet-json" else _serial(sid, model.format)
        links[sid] = MicrosensorLink(model.format, transport, serial, model.devices, model.name)
    return links


def model_of(link: MicrosensorLink) -> MicrosensorModel:
    """The model a link names, or its format's default; ValueError for an unknown or mismatched one."""
    name = link.model or _DEFAULT_MODEL.get(link.format)
    model = MICROSENSOR_MODELS.get(name or "")
    if model is None or model.format != link.format:
        raise ValueError(f"microsensor model {name!r} for format {link.format!r}: expected one of "
                         f"{', '.join(m.name for m in MICROSENSOR_MODELS.values() if m.format == link.format)}")
    return model


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
    TCP gateway, or a StationLink (RTU over TCP, or a serial bus); `microsensor_links` replace the bundled
    `bundled_microsensor_links()` of the microsensors they name."""
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
    links = {**bundled_microsensor_links(), **(microsensor_links or {})}
    for ms in ref["microsensors"]:
        sid = ms["id"]
        variables = tuple(_codes(ms["variables"]))
        ms_devices = _microsensor_devices(sid, variables, links[sid], topic_pattern)
        sensors.append(Sensor(id=sid, name=f"Microsensor {sid} ({ms['locality']})", kind="microsensor",
                              lat=ms["lat"], lon=ms["lon"], locality=ms["locality"], devices=ms_devices))
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
    devices = []
    for i, (suffix, channels) in enumerate(groups):
        # a device taking some channels measures what those instruments report (PurpleAir laser B: PM only)
        measured = _channel_variables(link.format, channels)
        here = tuple(v for v in variables if measured is None or v in measured) or variables
        devices.append(Device(id=f"{sid}-{suffix}" if suffix else sid, sensor_id=sid,
                              protocol=link.transport,  # type: ignore[arg-type]
                              profile=link.format, variables=here,
                              topic=topic if link.transport == "mqtt" else None,
                              primary=here if i == 0 else (), hardware_serial=serial, channels=channels))
    return tuple(devices)


def _channel_variables(fmt: str, channels: tuple[str, ...]) -> set[str] | None:
    """The variables the given payload channels can carry (the decoders' tables); None: every variable."""
    if not channels:
        return None
    table = {"airrohr": airrohr.VALUE_TYPES, "purpleair": purpleair.FIELDS}.get(fmt)
    if table is None:
        return None
    return {code for channel, code, _unit in table.values() if channel in channels}
