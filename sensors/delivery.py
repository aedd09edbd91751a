"""The identity of a delivered message, for readings stamped with aqnet's receive time. Pure.

A reading with a device time has a key that survives redelivery: (sensor, device, variable, device time). A reading
without one (airrohr, aqnet JSON without `time`) is stamped with the time aqnet received it, and a message that was
committed but not acknowledged — a kill between the commit and the PUBACK, a late ack dropped after a reconnect,
an HTTP retry after a 503 — comes back later with a *new* receive time. Keyed by time alone it would be stored
twice. So each such reading carries a `Delivery`: an identity of the message that the redelivery shares, and how
far back a receipt with that identity may lie and still be the same message. The writer keeps one receipt per
identity (`delivery_receipts`, in the batch's transaction) and gives a redelivered reading the time its first
delivery was stored with, so it is classified as a duplicate (storage.deliveries).

- **MQTT** (`mqtt_delivery`): the broker resends an unacknowledged QoS 1 PUBLISH with its original packet
  identifier and the DUP flag set (MQTT 3.1.1 §4.4, MQTT 5.0 §4.4: "MUST resend any unacknowledged PUBLISH packets
  … using their original Packet Identifiers"), on the same session, so the identity is
  (session client id, packet id, digest of topic and payload). A first delivery (DUP 0) is a new message even when
  a receipt with the same identity exists (packet ids are reused once acknowledged; a flat-lining sensor repeats
  payloads): it never takes an earlier time (`reuse_s` 0). A redelivery (DUP 1) takes the time of the receipt
  whatever its age (`reuse_s` infinite); with no receipt (the first delivery never committed) it is new.
- **HTTP** (`http_delivery`): a POST has no packet id and no DUP flag. The identity is (sensor, digest of the
  body), and a receipt counts as the same message only within `window_s` (configurable: `http.redelivery_window_s`).
  Limit: two different POSTs of one device with byte-identical bodies inside the window are stored once; the
  airrohr firmware sends every 145 s by default, and its bodies carry every value, so the window must stay
  below the device's send interval.

Readings that have a device time carry no Delivery (their key already survives redelivery).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

__all__ = ["Delivery", "http_delivery", "mqtt_delivery"]

_DIGEST_BYTES = 16  # 128 bits of SHA-256: collisions between two payloads of one sensor are not a concern


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a receive-time reading's message is recognised when it comes again."""

    key: str  #: identity of the message, the same on every delivery of it
    reuse_s: float  #: a receipt of `key` recorded at most this long before (≥ 0) is this message; 0: never reuse

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("Delivery: key must not be empty")
        if not self.reuse_s >= 0:  # also refuses NaN
            raise ValueError(f"Delivery {self.key}: reuse_s must be >= 0, got {self.reuse_s}")


def _digest(*parts: bytes) -> str:
    framed = b"".join(len(part).to_bytes(8, "big") + part for part in parts)  # one update: the same digest
    return hashlib.sha256(framed).hexdigest()[: 2 * _DIGEST_BYTES]


def mqtt_delivery(client_id: str, packet_id: int, topic: str, payload: bytes, *, dup: bool) -> Delivery:
    """The identity of an MQTT QoS 1/2 message received on the session `client_id` (see the module docstring)."""
    if not client_id:
        raise ValueError("mqtt_delivery: client_id must not be empty")
    if not 0 < packet_id < 65536:
        raise ValueError(f"mqtt_delivery: packet id {packet_id} outside 1..65535 (a QoS 0 message has none)")
    key = f"mqtt:{client_id}:{packet_id}:{_digest(topic.encode(), payload)}"
    return Delivery(key, math.inf if dup else 0.0)


def http_delivery(sensor_id: str, path: str, body: bytes, *, window_s: float) -> Delivery:
    """The identity of an HTTP POST of `body` to `path` by `sensor_id`, recognised again within `window_s`."""
    if not sensor_id:
        raise ValueError("http_delivery: sensor_id must not be empty")
    if not 0 <= window_s < math.inf:
        raise ValueError(f"http_delivery: window_s must be finite and >= 0, got {window_s}")
    return Delivery(f"http:{sensor_id}:{_digest(path.encode(), body)}", float(window_s))
