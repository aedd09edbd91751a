"""Decoder of the Sensor.Community airrohr JSON (sensors stage). Pure: `now` and the time zone are passed in.

The firmware (opendata-stuttgart/sensors-software, airrohr-firmware.ino, NRZ-2024-135) POSTs to a "custom API"::

    {"esp8266id": "12331981", "software_version": "NRZ-2020-129",
     "sensordatavalues": [{"value_type": "SDS_P1", "value": "0.40"}, {"value_type": "SDS_P2", "value": "0.20"},
                          {"value_type": "BME280_pressure", "value": "100613.25"}, ...]}

and serves the same list without `esp8266id` (with "age") at `/data.json`; bridges republish either to MQTT.
Nettigo Air Monitor (NAM), an airrohr derivative, sends the same shape.

- Values are JSON strings ("12.30"); JSON numbers are accepted too. A value that is not a finite decimal number
  rejects the whole message (`bad_value`), as in aqnet JSON: a broken device is dead-lettered and seen. null skips.
- `value_type` → (channel, variable, unit) is the table `VALUE_TYPES`. P0 is PM1, P1 is **PM10**, P2 is **PM2.5**,
  P4 is PM4 (firmware comments: "last_value_SPS30_P1 ... PM10"); PM is µg/m³ per actual m³ (`conditions="local"`).
  Temperature °C, humidity %, pressure **Pa** as the firmware sends it (ingest converts to hPa).
- Ignored on purpose (documented, not errors): number concentrations and typical particle size (SPS30_N05..N10,
  SPS30_TS, NPM_N*, IPS_N*: #/cm³ or µm, no vocabulary code); size fractions without a code (IPS_P01/P03/P05/P5:
  PM0.1/0.3/0.5/5); the PPD42NS fields P1, P2, durP1, ratioP1... (particle counts and pulse occupancy, not µg/m³,
  so a bare "P1" is never PM10); noise (DNMS_*); NAM's HECA_* (air inside its heated inlet, not ambient);
  metadata (samples, min_micro, max_micro, signal, interval, uptime, GPS_lat/lon/height/timestamp, ...);
  any value_type not in the table, so new firmware sensors never break ingest.
- Time: the payload carries none (GPS_timestamp is ignored: "1970-01-01T00:00:00.000" when the GPS has no fix),
  so every value is stamped `now` with `time_source="received"`. The /data.json "age" is ignored too.
- Identity (`hardware_id`): the chip id, from the payload's `esp8266id` (or an "X-Sensor" field), else from
  the topic: the firmware's X-Sensor form "esp8266-<id>" / "esp32-<id>" anywhere in it (so the HTTP intake can
  pass the X-Sensor header inside its topic string), else the `+` level of `airrohr/+/data`. The "esp8266-" or
  "esp32-" prefix is removed; the id is decimal on ESP8266 and hex on ESP32 (lower-cased here). The payload wins
  over the topic. Neither → `no_identity`.
- Several entries of one value_type are ambiguous and refused (`schema`).
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Any

from sensors.mqtt.payloads._json import load_object, number, short
from sensors.mqtt.payloads._message import DecodedMessage, DecodedValue, PayloadError

__all__ = ["VALUE_TYPES", "decode", "hardware_id"]

_UGM3 = "µg/m³"


def _pm(channel: str, prefix: str, sizes: str) -> dict[str, tuple[str, str, str]]:
    codes = {"0": "pm1", "1": "pm10", "2": "pm25", "4": "pm4"}  # P1 is PM10, P2 is PM2.5 (firmware, VARIABLES.md)
    return {f"{prefix}_P{s}": (channel, codes[s], _UGM3) for s in sizes}


def _met(channel: str, prefix: str, *, t: bool = True, rh: bool = True,
         p: bool = False) -> dict[str, tuple[str, str, str]]:
    out = {}
    if t:
        out[f"{prefix}temperature"] = (channel, "temperature", "°C")
    if rh:
        out[f"{prefix}humidity"] = (channel, "relativehumidity", "%")
    if p:
        out[f"{prefix}pressure"] = (channel, "pressure", "Pa")
    return out


#: value_type → (channel, variable code, unit as sent); names from airrohr-firmware.ino (NRZ-2024-135) and NAM
VALUE_TYPES: dict[str, tuple[str, str, str]] = {
    **_pm("SDS011", "SDS", "12"),  # SDS011/SDS021
    **_pm("PMS", "PMS", "012"),  # Plantower PMS1003..7003
    **_pm("HPM", "HPM", "12"),  # Honeywell HPMA115S0
    **_pm("SPS30", "SPS30", "0124"),  # Sensirion SPS30 (its N* number concentrations and TS are ignored)
    **_pm("NPM", "NPM", "012"),  # Tera Sensor Next PM
    **_pm("IPS", "IPS", "012"),  # Piera IPS-7100
    **_met("DHT22", ""),  # DHT22 sends bare "temperature"/"humidity"
    **_met("BME280", "BME280_", p=True),
    **_met("BMP180", "BMP_", rh=False, p=True),  # the firmware's BMP_ fields come from a BMP180
    **_met("BMP280", "BMP280_", rh=False, p=True),
    **_met("SHT3X", "SHT3X_"),
    **_met("HTU21D", "HTU21D_"),
    **_met("SCD30", "SCD30_"),
    "SCD30_co2_ppm": ("SCD30", "co2", "ppm"),
    **_met("DS18B20", "DS18B20_", rh=False),
    "conc_co2_ppm": ("MHZ14A", "co2", "ppm"),  # NAM's MH-Z14A (home-assistant/core nam fixture)
}

#: the firmware's X-Sensor prefixes (defines.h SENSOR_BASENAME) and the chip id: decimal (ESP8266) or hex (ESP32)
_CHIP_ID = re.compile(r"(?:esp8266-|esp32-)?([0-9A-Fa-f]{1,16})")
#: the X-Sensor form anywhere in a topic, e.g. "bridge/esp8266-123/x" or "POST /intake/airrohr (X-Sensor esp8266-123)"
_PREFIXED = re.compile(r"(?<![0-9A-Za-z])(?:esp8266-|esp32-)([0-9A-Fa-f]{1,16})(?![0-9A-Za-z])")


def hardware_id(raw: object) -> str | None:
    """A chip id as written in esp8266id or X-Sensor ("12331981", "esp8266-12331981") → "12331981", else None."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    match = _CHIP_ID.fullmatch(raw.strip())
    return match.group(1).lower() if match else None


def _identity(topic: str, doc: dict[str, Any]) -> str:
    for key in ("esp8266id", "X-Sensor", "x-sensor"):
        if key in doc:
            found = hardware_id(doc[key])
            if found is None:
                raise PayloadError(topic, "no_identity", f'{key}: expected a chip id such as "12331981" or '
                                                         f'"esp8266-12331981", got {short(doc[key])}')
            return found
    match = _PREFIXED.search(topic)
    if match:
        return match.group(1).lower()
    levels = topic.split("/")
    if len(levels) == 3 and levels[0] == "airrohr" and levels[2] == "data":
        found = hardware_id(levels[1])
        if found is not None:
            return found
    raise PayloadError(topic, "no_identity", "no esp8266id in the payload and no chip id in the topic "
                                             "(expected airrohr/<chip id>/data or esp8266-<chip id> in it)")


def decode(topic: str, payload: bytes, *, now: datetime, tz: tzinfo) -> DecodedMessage:
    """Decode one airrohr JSON message into values in payload order, stamped `now`; raise PayloadError if bad."""
    del tz  # airrohr sends no time: the receive time `now` is already aware
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("airrohr.decode: `now` must be timezone-aware")
    doc = load_object(topic, payload)
    entries = doc.get("sensordatavalues")
    if not isinstance(entries, list):
        raise PayloadError(topic, "schema", f"sensordatavalues: expected a list of {{value_type, value}}, "
                                            f"got {short(entries)}")
    ident = _identity(topic, doc)
    seen: set[str] = set()
    values: list[DecodedValue] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("value_type"), str):
            raise PayloadError(topic, "schema", f'sensordatavalues[{i}]: expected {{"value_type": str, '
                                                f'"value": str}}, got {short(entry)}')
        value_type = entry["value_type"]
        if value_type in seen:
            raise PayloadError(topic, "schema", f"sensordatavalues[{i}]: value_type {short(value_type)} repeated")
        seen.add(value_type)
        known = VALUE_TYPES.get(value_type)
        if known is None or entry.get("value") is None:
            continue  # not a measurement aqnet stores (see the module docstring), or no value
        channel, code, unit = known
        value = number(topic, f"sensordatavalues[{i}] ({value_type}).value", entry["value"], strings=True)
        values.append(DecodedValue(channel=channel, variable=code, value=value, unit=unit, time=now,
                                   time_source="received", conditions="local" if unit == _UGM3 else None))
    return DecodedMessage(ident, tuple(values))
