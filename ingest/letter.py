"""`Letter`: input that produced no measurement, kept as a dead letter durably with the batch it came in. Pure.

A message or reading that aqnet refuses (a payload it cannot decode, an unknown sensor, a unit it cannot convert)
is still accepted input: the broker or the device is told "received" only once a record of it is durable. So the
refusal travels through the pipeline as a `Letter`, in the same batch as the readings around it, and the sink
stores it in the batch's transaction (`storage.writer`) or spools it with the batch (`storage.spool`) while the
database is down; the message is acknowledged after that, never on a log line alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["MAX_PAYLOAD_BYTES", "Letter", "cap_payload"]

#: payload bytes a dead letter keeps: the decoders' limit (sensors.mqtt.payloads: a larger payload is refused as
#: too_large and could never be replayed), so a flood of large refused messages cannot fill the database
MAX_PAYLOAD_BYTES = 64 * 1024


def cap_payload(payload: bytes) -> tuple[bytes, int, str]:
    """(the first MAX_PAYLOAD_BYTES of `payload`, its original size, the SHA-256 hex digest of all of it). Pure."""
    return payload[:MAX_PAYLOAD_BYTES], len(payload), hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True, slots=True)
class Letter:
    """One future `dead_letters` row (columns: storage/migrations/0003_dead_letters.sql)."""

    source: str  #: mqtt, http, modbus, pipeline, ...
    reason: str  #: short machine-readable code (the metrics label)
    detail: str  #: the error, for a person
    received_at: datetime  #: when aqnet received the input (kept across a spool and replay)
    sensor_id: str | None = None
    payload: bytes | None = None  #: the raw bytes as received (MQTT payload, HTTP body): replayable
    reading: dict[str, Any] | None = None  #: the refused reading (pipeline letters)
    topic: str | None = None  #: MQTT topic, or the HTTP method and path
    endpoint: str | None = None  #: Modbus endpoint of a failing device
    fmt: str | None = None  #: payload format, when the receiver knows it
    #: the payload's original size and SHA-256 (set from `payload`, which is cut to MAX_PAYLOAD_BYTES)
    payload_size: int | None = None
    payload_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.payload is not None and self.payload_size is None:  # a new letter: keep at most the cap
            kept, size, digest = cap_payload(self.payload)
            object.__setattr__(self, "payload", kept)
            object.__setattr__(self, "payload_size", size)
            object.__setattr__(self, "payload_sha256", digest)
        if not self.source or not self.reason:
            raise ValueError(f"dead letter needs a source and a reason, got source={self.source!r} "
                             f"reason={self.reason!r}")
        if self.received_at.tzinfo is None:
            raise ValueError(f"dead letter {self.source}/{self.reason}: received_at must be timezone-aware")
