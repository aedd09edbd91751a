"""The MQTT payload formats: name → decoder, name → default topic, and what decoders return or raise. Pure.

A decoder turns one message (topic, payload bytes, receive time `now`, network zone `tz`) into a
`DecodedMessage` (the device's self-given identity, if any, and `DecodedValue`s tagged with the instrument
`channel` inside the payload), or raises `PayloadError` whose `reason` (one of `PAYLOAD_ERROR_REASONS`) is a
metrics label and whose message names the topic and what is wrong. It never raises anything else for bad input:
the subscriber dead-letters the message on `PayloadError`. Decoders know nothing of the registry.

Formats (a device's `profile` names its format):
- "aqnet-json" (`aqnet_json.decode`): aqnet's own JSON, one reading or a batch; identity from the topic.
- "airrohr" (`airrohr.decode`): Sensor.Community airrohr / NAM JSON; identity `esp8266id` (chip id).
- "purpleair" (`purpleair.decode`): PurpleAir local `/json`; identity `SensorId` (MAC).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sensors.mqtt.payloads import airrohr, aqnet_json, purpleair
from sensors.mqtt.payloads._message import (
    PAYLOAD_ERROR_REASONS,
    DecodedMessage,
    DecodedValue,
    Decoder,
    PayloadError,
    PayloadErrorReason,
)

__all__ = ["FORMATS", "PAYLOAD_ERROR_REASONS", "TOPICS", "DecodedMessage", "DecodedValue", "Decoder",
           "PayloadError", "PayloadErrorReason"]

#: format name (a device's `profile`) → decoder
FORMATS: Mapping[str, Decoder] = MappingProxyType({
    "aqnet-json": aqnet_json.decode,
    "airrohr": airrohr.decode,
    "purpleair": purpleair.decode,
})

#: format name → default topic template. "{sensor_id}" is filled from the registry (aqnet JSON identifies by
#: topic); the self-identifying formats subscribe to a wildcard, and airrohr also reads the chip id from the `+`
#: level when the payload has no esp8266id (a bridge republishing the local /data.json).
TOPICS: Mapping[str, str] = MappingProxyType({
    "aqnet-json": "aqnet/{sensor_id}/readings",
    "airrohr": "airrohr/+/data",
    "purpleair": "purpleair/+/data",
})
