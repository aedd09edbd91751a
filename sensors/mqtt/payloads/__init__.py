"""The MQTT payload formats: name → decoder, and the one error every decoder raises. Pure.

A decoder turns one message (topic, payload bytes) into RawReadings, or raises `PayloadError` whose
`reason` is a short slug used as a metrics label and whose message names the topic and what is wrong. It
never raises anything else for bad input: the subscriber dead-letters the message on `PayloadError`.

Formats: "aqnet-json" (`aqnet_json.decode`). A device's `profile` field names its format.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Literal, Protocol

from sensors.reading import Conditions, RawReading

__all__ = ["FORMATS", "Decoder", "PayloadError", "PayloadErrorReason"]

PayloadErrorReason = Literal["not_json", "schema", "bad_time", "unknown_variable", "bad_value", "too_large"]


class PayloadError(ValueError):
    """A message that cannot be decoded (permanent: dead-letter it); `reason` is its metrics label."""

    def __init__(self, topic: str, reason: PayloadErrorReason, detail: str) -> None:
        super().__init__(f"{topic}: {detail}")
        self.topic = topic
        self.reason = reason
        self.detail = detail


class Decoder(Protocol):
    """Signature shared by every payload format's `decode`."""

    def __call__(self, topic: str, payload: bytes, *, sensor_id: str, device_id: str, now: datetime,
                 tz: tzinfo, conditions: Conditions = "local") -> list[RawReading]: ...


# imported after PayloadError is defined: the format modules import it from this package
from sensors.mqtt.payloads import aqnet_json  # noqa: E402

#: format name (a device's `profile`) → decoder
FORMATS: Mapping[str, Decoder] = {
    "aqnet-json": aqnet_json.decode,
}
