"""Stage 1, the MQTT payload formats: name → decoder, name → default topic, and what decoders return or raise. Pure.

A decoder turns one message (topic, payload bytes, receive time `now`, network zone `tz`) into a
`DecodedMessage` (the device's self-given identity, if any, and `DecodedValue`s tagged with the instrument
`channel` inside the payload), or raises `PayloadError` whose `reason` (one of `PAYLOAD_ERROR_REASONS`) is a
metrics label and whose message names the topic and what is wrong. It never raises anything else for bad input:
the subscriber dead-letters the message on `PayloadError`. Decoders know nothing of the registry.

Formats (a device's `profile` names its format):
- "aqnet-json" (`aqnet_json.decode`): aqnet's own JSON, one reading or a batch; identity from the topic.
- "airrohr" (`airrohr.decode`): Sensor.Community airrohr / NAM JSON; identity `esp8266id` (chip id).
- "purpleair" (`purpleair.decode`): PurpleAir local `/json`; identity `SensorId` (MAC).

Index: `FORMATS` and `TOPICS` (`sensors.mqtt.payloads.formats`), the decoders' types (`_message`).
"""

from __future__ import annotations

from sensors.mqtt.payloads._message import (
    PAYLOAD_ERROR_REASONS,
    DecodedMessage,
    DecodedValue,
    Decoder,
    PayloadError,
    PayloadErrorReason,
)
from sensors.mqtt.payloads.formats import FORMATS, TOPICS

__all__ = ["FORMATS", "PAYLOAD_ERROR_REASONS", "TOPICS", "DecodedMessage", "DecodedValue", "Decoder",
           "PayloadError", "PayloadErrorReason"]
