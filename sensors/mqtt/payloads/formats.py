"""The payload format tables: format name (a device's `profile`) → decoder, and → default topic. Pure data.

Part of `sensors.mqtt.payloads`, which re-exports both.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sensors.mqtt.payloads import airrohr, aqnet_json, purpleair
from sensors.mqtt.payloads._message import Decoder

__all__ = ["FORMATS", "TOPICS"]

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
