"""Stage 1 — what a sensor is and how to read it: the variable vocabulary, Sensor/Device records, device
profiles, the Modbus codec and driver, the MQTT client, subscriber and payload formats. Emits `RawReading`s.
Pure, except the drivers (`sensors.modbus`, `sensors.mqtt`). Imports no other aqnet package.

Index: `sensors.reading` (RawReading, Gap), `sensors.variables`, `sensors.sensor` (Sensor, Device),
`sensors.network` (the bundled network), `sensors.hardware_id` (MAC / serial normalisation), `sensors.clock`,
`sensors.delivery`, `sensors.redact`; the subpackages
`sensors.modbus` (profiles, codec, links, poller), `sensors.mqtt` (client, subscriber, payloads) and
`sensors.domain` (bundled domain data) have their own indexes.
"""

from __future__ import annotations

from sensors.clock import Clock, SimClock, realtime
from sensors.delivery import Delivery, http_delivery
from sensors.hardware_id import hardware_serial_key, mac
from sensors.network import MicrosensorLink, StationLink, bundled_network
from sensors.reading import Conditions, Gap, RawReading
from sensors.redact import redact_url
from sensors.sensor import MODBUS_PROTOCOLS, Device, Sensor
from sensors.variables import VARIABLES, Kind, UnknownVariableError, Variable, variable

__all__ = ["MODBUS_PROTOCOLS", "VARIABLES", "Clock", "Conditions", "Delivery", "Device", "Gap", "Kind",
           "MicrosensorLink", "RawReading", "Sensor", "SimClock", "StationLink", "UnknownVariableError", "Variable",
           "bundled_network", "hardware_serial_key", "http_delivery", "mac", "realtime", "redact_url", "variable"]
