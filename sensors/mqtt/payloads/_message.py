"""What every payload decoder returns or raises: `DecodedMessage` of `DecodedValue`s, or `PayloadError`. Pure.

A decoder knows the payload format only, not the registry: it says which instrument (`channel`) inside the
payload measured each value and, for self-identifying devices, the identity the device gives itself
(`hardware_id`). The subscriber maps identity and channel to a sensor and device (sensors.sensor.Device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal, Protocol, get_args

from sensors.reading import Conditions, TimeSource
from sensors.variables import VARIABLES

__all__ = ["PAYLOAD_ERROR_REASONS", "DecodedMessage", "DecodedValue", "Decoder", "PayloadError",
           "PayloadErrorReason"]

#: metrics label of a rejected payload:
#: not_json (not UTF-8 JSON), schema (JSON of the wrong shape), bad_time (a timestamp that cannot be read),
#: unknown_variable (aqnet JSON: a code outside sensors.variables), bad_value (a value that is not a finite number),
#: too_large (over the size bound), no_identity (a self-identifying format without a usable device identity)
PayloadErrorReason = Literal["not_json", "schema", "bad_time", "unknown_variable", "bad_value", "too_large",
                             "no_identity"]
#: every reason, for registering the metric's label values up front
PAYLOAD_ERROR_REASONS: tuple[str, ...] = get_args(PayloadErrorReason)


class PayloadError(ValueError):
    """A message that cannot be decoded (permanent: dead-letter it); `reason` is its metrics label."""

    def __init__(self, topic: str, reason: PayloadErrorReason, detail: str) -> None:
        super().__init__(f"{topic}: {detail}")
        self.topic = topic
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DecodedValue:
    """One value of one variable from one instrument of a payload, with the unit the payload uses."""

    #: instrument/channel inside the payload; "" when the payload has one instrument (aqnet JSON).
    #: airrohr: the sensor model ("SDS011", "PMS", "SPS30", "BME280", "DHT22", ...);
    #: PurpleAir: "a", "b" (atm values), "a/cf_1", "b/cf_1" (CF=1 values), "bme" (its T/RH/P sensor)
    channel: str
    variable: str  #: vocabulary code (sensors.variables); airrohr P1 is pm10, P2 is pm25, P0 is pm1
    value: float  #: as reported, in `unit`
    unit: str  #: as reported ("µg/m³", "Pa", "°F", "%", "°C", "hPa", "ppm")
    time: datetime  #: measurement time, timezone-aware
    time_source: TimeSource  #: "device" (the payload's clock) or "received" (aqnet's `now`)
    conditions: Conditions | None  #: "local" for mass concentrations of low-cost sensors, None for the rest

    def __post_init__(self) -> None:
        if self.variable not in VARIABLES:
            raise ValueError(f"{self._where()}: variable must be a sensors.variables code")
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError(f"{self._where()}: time must be timezone-aware, got {self.time!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"{self._where()}: value must be finite, got {self.value!r}")
        if self.time_source not in ("device", "received"):
            raise ValueError(f"{self._where()}: time_source must be device or received, got {self.time_source!r}")

    def _where(self) -> str:
        return f"DecodedValue {self.channel or '-'}/{self.variable}"


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """Everything one message says: who sent it (when the device says so) and its values, in payload order."""

    #: the identity the device gives itself: airrohr chip id ("12331981"), PurpleAir MAC ("aa:bb:cc:dd:ee:ff");
    #: None when the identity comes from the topic (aqnet JSON)
    hardware_id: str | None
    values: tuple[DecodedValue, ...]

    def __post_init__(self) -> None:
        if self.hardware_id == "":
            raise ValueError("DecodedMessage: hardware_id must be None or non-empty")


class Decoder(Protocol):
    """Signature shared by every payload format's `decode`: `now` is the receive time, `tz` the network's zone."""

    def __call__(self, topic: str, payload: bytes, *, now: datetime, tz: tzinfo) -> DecodedMessage: ...
