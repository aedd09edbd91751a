"""Decoder of the aqnet JSON microsensor payload (sensors stage). Pure: `now` and the time zone are passed in.

Payload (UTF-8 JSON object, at most 64 KiB)::

    {"time": "2026-03-02T07:15:00-05:00", "values": {"pm25": 12.3, "pm10": 20.1, "temperature": 14.2,
     "relativehumidity": 71}}

- `values` maps `sensors.variables` codes to numbers in the variable's canonical unit (VARIABLES.md):
  PM in µg/m³ measured per actual m³ (low-cost sensors sample the air as it is, so mass concentrations
  carry `conditions="local"` unless the caller says otherwise), temperature in °C, humidity in %.
- `time` is ISO 8601. Without an offset it is read in `tz`, the network's zone (America/Bogota), never as UTC.
  Missing or null: the receive time `now` is used and the readings say `time_source="received"`.
- A null value is skipped (the sensor has no value for it). Booleans, strings, NaN and ±inf are `bad_value`.
- Choice: an unknown variable code rejects the WHOLE message (`unknown_variable`), not just that entry: a
  misconfigured or wrong-firmware device should be dead-lettered and seen, not half-stored.
- Other top-level keys are ignored, so firmware may add metadata (e.g. "fw", "rssi") without breaking ingest.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, tzinfo
from typing import Any

from sensors.mqtt.payloads import PayloadError
from sensors.reading import Conditions, RawReading, TimeSource
from sensors.variables import VARIABLES, Kind

__all__ = ["MAX_PAYLOAD_BYTES", "decode"]

#: largest accepted payload (aqnet convention): a real message is a few hundred bytes; bounds parsing cost
MAX_PAYLOAD_BYTES = 64 * 1024


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse(topic: str, payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(topic, "too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError(topic, "not_json", f"payload is not UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise PayloadError(topic, "schema", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def _parse_time(topic: str, doc: dict[str, Any], now: datetime, tz: tzinfo) -> tuple[datetime, TimeSource]:
    raw = doc.get("time")
    if raw is None:
        return now, "received"
    if not isinstance(raw, str):
        raise PayloadError(topic, "bad_time", f"time: expected an ISO 8601 string, got {_short(raw)}")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise PayloadError(topic, "bad_time", f"time: expected ISO 8601, got {_short(raw)}") from None
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=tz)  # a local time of the network's zone, never UTC (VARIABLES.md)
    return when, "device"


def _number(topic: str, code: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(topic, "bad_value", f"values.{code}: expected a number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        raise PayloadError(topic, "bad_value", f"values.{code}: {_short(value)} is out of range") from None
    if not math.isfinite(number):
        raise PayloadError(topic, "bad_value", f"values.{code}: expected a finite number, got {number}")
    return number


def decode(topic: str, payload: bytes, *, sensor_id: str, device_id: str, now: datetime, tz: tzinfo,
           conditions: Conditions = "local") -> list[RawReading]:
    """Decode one aqnet JSON message into RawReadings in payload order; raise PayloadError if it is bad."""
    if now.tzinfo is None:
        raise ValueError("aqnet_json.decode: `now` must be timezone-aware")
    if conditions not in ("local", "reference"):
        raise ValueError(f"aqnet_json.decode: conditions must be local or reference, got {conditions!r}")
    doc = _parse(topic, payload)
    values = doc.get("values")
    if not isinstance(values, dict):
        raise PayloadError(topic, "schema",
                           f"values: expected an object of code → number, got {_short(values)}")
    unknown = sorted(code for code in values if code not in VARIABLES)
    if unknown:
        raise PayloadError(topic, "unknown_variable",
                           f"values: unknown variable code(s) {', '.join(map(_short, unknown))}; "
                           "expected sensors.variables codes such as pm25, pm10, temperature")
    when, time_source = _parse_time(topic, doc, now, tz)
    readings: list[RawReading] = []
    for code, value in values.items():
        if value is None:
            continue
        var = VARIABLES[code]
        is_mass = var.kind in (Kind.MASS, Kind.GAS)  # reported in µg/m³, so conditions apply
        readings.append(RawReading(
            sensor_id=sensor_id, device_id=device_id, variable=code, value=_number(topic, code, value),
            unit=var.unit, time=when, received_at=now, conditions=conditions if is_mass else None,
            time_source=time_source,
        ))
    return readings
