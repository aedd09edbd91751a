"""`Letter`: input that produced no measurement, kept as a dead letter durably with the batch it came in. Pure.

A message or reading that aqnet refuses (a payload it cannot decode, an unknown sensor, a unit it cannot convert)
is still accepted input: the broker or the device is told "received" only once a record of it is durable. So the
refusal travels through the pipeline as a `Letter`, in the same batch as the readings around it, and the sink
stores it in the batch's transaction (`storage.writer`) or spools it with the batch (`storage.spool`) while the
database is down; the message is acknowledged after that, never on a log line alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Letter"]


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

    def __post_init__(self) -> None:
        if not self.source or not self.reason:
            raise ValueError(f"dead letter needs a source and a reason, got source={self.source!r} "
                             f"reason={self.reason!r}")
        if self.received_at.tzinfo is None:
            raise ValueError(f"dead letter {self.source}/{self.reason}: received_at must be timezone-aware")
