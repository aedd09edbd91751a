"""Who sent a message: topic or self-declared hardware id → sensor and devices, channel → device. Pure.

Identity comes from the topic for aqnet JSON (`aqnet/<sensor_id>/readings`) and from the payload for devices that
identify themselves (airrohr `esp8266id`, PurpleAir `SensorId`), looked up through the devices' `hardware_serial` —
never guessed (both sides in `sensors.hardware_id.hardware_serial_key` form: a MAC zero-padded, so "aa:bb:cc:0:0:2"
is "aa:bb:cc:00:00:02"). **The two must agree**: the broker lets a sensor's login publish only under its own id
(`airrohr/<sensor id>/data`, `purpleair/<sensor id>/data`: mqtt/broker/acl), so the topic's identity level is the
login; a payload naming a device of any other sensor is refused (`identity_mismatch`, naming the sending topic's
sensor), so no login can write readings as another sensor. (A chip id or MAC as the topic level is such a mismatch
too: it is no login.) Topics that are not a self-identifying format's MQTT topic (the HTTP intake's "POST
/intake/airrohr …") carry no topic identity and are not compared here.

Each channel of a multi-instrument payload goes to the device of that sensor
whose `channels` include it; a device with no `channels` takes every channel (but only the first value of each
variable: a second instrument for the same variable, like an airrohr's SDS011 beside a PMS, needs its own device);
payload-wide values (channel "") go to the sensor's first device. What no device takes is left out and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sensors.hardware_id import hardware_serial_key
from sensors.mqtt.payloads import DecodedMessage
from sensors.reading import RawReading
from sensors.sensor import Device, Sensor

__all__ = ["SELF_IDENTIFYING_PREFIXES", "DeviceDirectory", "Resolved", "UnknownDeviceError", "topic_identity",
           "topic_matches"]

#: first topic levels of the self-identifying formats' MQTT topics `<prefix>/<sensor id>/data`
SELF_IDENTIFYING_PREFIXES: tuple[str, ...] = ("airrohr", "purpleair")


def topic_identity(topic: str) -> str | None:
    """The sensor id a self-identifying format's MQTT topic names (`airrohr/MS11/data` → "MS11"), the login the
    broker's ACL ties it to; None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] in SELF_IDENTIFYING_PREFIXES and parts[2] == "data" and parts[1]:
        return parts[1]
    return None


def topic_matches(filter_: str, topic: str) -> bool:
    """MQTT topic filter matching with `+` and `#`; a `$share/<group>/` prefix is ignored."""
    if filter_.startswith("$share/"):
        filter_ = filter_.split("/", 2)[2] if filter_.count("/") >= 2 else ""
    f_parts, t_parts = filter_.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


class UnknownDeviceError(LookupError):
    """No registered device matches the message's identity (dead-letter it)."""

    def __init__(self, reason: str, detail: str, sensor_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason  #: unknown_sensor (topic identity), unknown_device (hardware id), identity_mismatch
        #: (the payload names another sensor's device than the topic's), unknown_format
        self.detail = detail
        self.sensor_id = sensor_id


@dataclass(frozen=True, slots=True)
class Resolved:
    """A message's readings, attributed to devices, and how many channel values no device took."""

    sensor_id: str
    readings: tuple[RawReading, ...]
    unmapped: tuple[str, ...]  #: channels left out


class DeviceDirectory:
    """Lookup tables over the registered network's message-sending devices."""

    def __init__(self, sensors: Iterable[Sensor]) -> None:
        self._by_topic: dict[str, list[Device]] = {}
        self._by_serial: dict[str, list[Device]] = {}
        for sensor in sensors:
            for device in sensor.devices:
                if device.protocol not in ("mqtt", "http"):
                    continue
                if device.hardware_serial:
                    self._by_serial.setdefault(hardware_serial_key(device.hardware_serial), []).append(device)
                elif device.topic:
                    self._by_topic.setdefault(device.topic, []).append(device)

    def sensor_for_topic(self, topic: str) -> str | None:
        """The sensor a topic names, when the topic identifies it (to name it in a rejection)."""
        devices = self._by_topic.get(topic)
        return devices[0].sensor_id if devices else None

    def devices_for(self, topic: str, message: DecodedMessage) -> list[Device]:
        """The devices the message belongs to; raises UnknownDeviceError."""
        if message.hardware_id is not None:
            devices = self._by_serial.get(hardware_serial_key(message.hardware_id))
            if not devices:
                raise UnknownDeviceError("unknown_device", f"no registered device has hardware serial "
                                         f"{message.hardware_id!r} (topic {topic!r})", topic_identity(topic))
            owner = topic_identity(topic)
            if owner is not None and devices[0].sensor_id != owner:
                raise UnknownDeviceError(
                    "identity_mismatch", f"the payload's hardware id {message.hardware_id!r} is a device of sensor "
                    f"{devices[0].sensor_id}, but topic {topic!r} belongs to sensor {owner} (a sensor publishes "
                    f"only as itself: <format>/<its sensor id>/data)", owner)
            return devices
        devices = self._by_topic.get(topic)
        if not devices:
            parts = topic.split("/")
            sid = parts[1] if len(parts) == 3 else None
            raise UnknownDeviceError("unknown_sensor", f"no registered sensor publishes to topic {topic!r}", sid)
        return devices

    def resolve(self, topic: str, message: DecodedMessage, received_at: datetime) -> Resolved:
        """RawReadings for every value some device of the message's sensor takes; raises UnknownDeviceError."""
        devices = self.devices_for(topic, message)
        readings: list[RawReading] = []
        unmapped: list[str] = []
        taken: set[tuple[str, str, object]] = set()
        for value in message.values:
            device = _device_for_channel(devices, value.channel)
            # one value per (device, variable, time): a second instrument for the same variable needs its own
            # device; a batch (a board's buffer after a disconnect) carries one value per time
            key = (device.id, value.variable, value.time) if device is not None else None
            if device is None or key is None or key in taken:
                unmapped.append(value.channel)
                continue
            taken.add(key)
            readings.append(RawReading(sensor_id=device.sensor_id, device_id=device.id, variable=value.variable,
                                       value=value.value, unit=value.unit, time=value.time,
                                       received_at=received_at, conditions=value.conditions,
                                       time_source=value.time_source))
        return Resolved(devices[0].sensor_id, tuple(readings), tuple(unmapped))


def _device_for_channel(devices: list[Device], channel: str) -> Device | None:
    for device in devices:
        if not device.channels or channel in device.channels:
            return device
    return devices[0] if channel == "" else None
