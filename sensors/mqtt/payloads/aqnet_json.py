"""Decoder of the aqnet JSON microsensor payload (sensors stage). Pure: `now` and the time zone are passed in.

Payload (UTF-8 JSON object, at most 64 KiB), one reading::

    {"time": "2026-03-02T07:15:00-05:00", "values": {"pm25": 12.3, "pm10": 20.1, "temperature": 14.2,
     "relativehumidity": 71}}

or a batch (e.g. what a device buffered while offline), each entry of the same shape::

    {"readings": [{"time": "2026-03-02T07:10:00-05:00", "values": {"pm25": 11.0}},
                  {"time": "2026-03-02T07:15:00-05:00", "values": {"pm25": 12.3}}]}

- The device's identity is the topic (`aqnet/<sensor_id>/readings`), so `hardware_id` is None and every value
  has channel "" (one instrument per payload).
- `values` maps `sensors.variables` codes to numbers in the variable's canonical unit (VARIABLES.md):
  PM in µg/m³ measured per actual m³ (low-cost sensors sample the air as it is, so mass concentrations
  carry `conditions="local"`), temperature in °C, humidity in %.
- `time` is ISO 8601 or epoch seconds/milliseconds (`_time`). Without an offset it is read in `tz`, the network's
  zone, never as UTC. Missing or null in the single form: the receive time `now` is used and the values say
  `time_source="received"`. Choice: in the batch form every entry needs its time (`schema` otherwise), since
  stamping several buffered readings with one receive time would make them collide.
- A null value is skipped (the sensor has no value for it). Booleans, strings, NaN and ±inf are `bad_value`.
- Choice: an unknown variable code rejects the WHOLE message (`unknown_variable`), not just that entry: a
  misconfigured or wrong-firmware device should be dead-lettered and seen, not half-stored.
- Other top-level keys are ignored, so firmware may add metadata (e.g. "fw", "rssi") without breaking ingest;
  a document with both "values" and "readings" is ambiguous and refused (`schema`).

`decode_readings` is the pre-issue-5 interface (RawReadings for a known sensor/device), kept so callers can move
to `decode` in one step.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sensors.mqtt.payloads._json import MAX_PAYLOAD_BYTES, load_object, number, short
from sensors.mqtt.payloads._message import DecodedMessage, DecodedValue, PayloadError
from sensors.mqtt.payloads._time import device_time
from sensors.reading import Conditions, RawReading, TimeSource
from sensors.variables import VARIABLES, Kind

__all__ = ["MAX_PAYLOAD_BYTES", "decode", "decode_readings"]


def _entry(topic: str, where: str, entry: Any, *, batch: bool, now: datetime,
           tz: tzinfo) -> list[DecodedValue]:
    """One `{"time": ..., "values": {...}}` object → its DecodedValues; `where` prefixes field names in errors."""
    if not isinstance(entry, dict):
        raise PayloadError(topic, "schema", f"{where.rstrip('.') or 'payload'}: expected an object, "
                                            f"got {short(entry)}")
    values = entry.get("values")
    if not isinstance(values, dict):
        raise PayloadError(topic, "schema",
                           f"{where}values: expected an object of code → number, got {short(values)}")
    unknown = sorted(code for code in values if code not in VARIABLES)
    if unknown:
        raise PayloadError(topic, "unknown_variable",
                           f"{where}values: unknown variable code(s) {', '.join(map(short, unknown))}; "
                           "expected sensors.variables codes such as pm25, pm10, temperature")
    raw_time = entry.get("time")
    time_source: TimeSource
    if raw_time is None:
        if batch:
            raise PayloadError(topic, "schema", f"{where}time: required in the batch form, got {short(raw_time)}")
        when, time_source = now, "received"
    else:
        when, time_source = device_time(topic, f"{where}time", raw_time, tz), "device"
    out: list[DecodedValue] = []
    for code, value in values.items():
        if value is None:
            continue
        is_mass = VARIABLES[code].kind in (Kind.MASS, Kind.GAS)  # reported in µg/m³, so conditions apply
        out.append(DecodedValue(
            channel="", variable=code, value=number(topic, f"{where}values.{code}", value),
            unit=VARIABLES[code].unit, time=when, time_source=time_source, conditions="local" if is_mass else None,
        ))
    return out


def decode(topic: str, payload: bytes, *, now: datetime, tz: tzinfo) -> DecodedMessage:
    """Decode one aqnet JSON message (single or batch) into values in payload order; raise PayloadError if bad."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("aqnet_json.decode: `now` must be timezone-aware")
    doc = load_object(topic, payload)
    if "readings" not in doc:
        return DecodedMessage(None, tuple(_entry(topic, "", doc, batch=False, now=now, tz=tz)))
    readings = doc["readings"]
    if "values" in doc:
        raise PayloadError(topic, "schema", "expected either values (one reading) or readings (a batch), got both")
    if not isinstance(readings, list):
        raise PayloadError(topic, "schema", f"readings: expected a list of readings, got {short(readings)}")
    values: list[DecodedValue] = []
    for i, entry in enumerate(readings):
        values.extend(_entry(topic, f"readings[{i}].", entry, batch=True, now=now, tz=tz))
    return DecodedMessage(None, tuple(values))


def decode_readings(topic: str, payload: bytes, *, sensor_id: str, device_id: str, now: datetime, tz: tzinfo,
                    conditions: Conditions = "local") -> list[RawReading]:
    """Pre-issue-5 interface: `decode` as RawReadings of `sensor_id`/`device_id`, received at `now`.

    `conditions` replaces the "local" of mass concentrations (temperature, humidity etc. stay None).
    """
    if conditions not in ("local", "reference"):
        raise ValueError(f"aqnet_json.decode_readings: conditions must be local or reference, got {conditions!r}")
    message = decode(topic, payload, now=now, tz=tz)
    return [
        RawReading(sensor_id=sensor_id, device_id=device_id, variable=v.variable, value=v.value, unit=v.unit,
                   time=v.time, received_at=now, conditions=None if v.conditions is None else conditions,
                   time_source=v.time_source)
        for v in message.values
    ]
