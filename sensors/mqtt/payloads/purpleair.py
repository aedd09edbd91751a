"""Decoder of the PurpleAir local JSON, the sensor's `/json` response as republished (sensors stage). Pure.

Fields read (names as in the sensor's own response; samples in tests/data/samples/purpleair/)::

    {"SensorId": "02:00:00:00:ab:c9", "DateTime": "2026/09/29T15:20:07z",
     "current_temp_f": 57, "current_humidity": 24, "pressure": 748.73,
     "pm1_0_atm": 0.0, "pm2_5_atm": 0.0, "pm10_0_atm": 0.0, "pm1_0_cf_1": 0.0, "pm2_5_cf_1": 0.0, ...,
     "pm1_0_atm_b": 0.0, "pm2_5_atm_b": 0.0, ...}

- Identity (`hardware_id`): `SensorId`, the MAC, as `sensors.hardware_id.mac` normalises it: lower-cased
  "aa:bb:cc:dd:ee:ff", one or two hex digits per octet ("84:f3:eb:9:1:a", as real firmware prints it, is
  "84:f3:eb:09:01:0a"), "-" separators accepted. Missing or not a MAC → `no_identity`.
- Time: `DateTime` ("2026/05/17T22:23:04z", UTC) or any form `_time` reads; missing or null → `now`, "received".
- PM in µg/m³ per actual m³ (`conditions="local"`), one channel per laser and correction: "a" and "b" for the
  `*_atm` values (the PMS5003's "atmospheric" estimate), "a/cf_1" and "b/cf_1" for the `*_cf_1` values (CF=1,
  the factory calibration factor). Fields without `_b` are laser A; `_b` fields exist only on dual-laser units.
  Which channel becomes which device or variable is the device model's choice (subscriber).
- Meteorology, channel "bme" (the unit's BME280/BME68X): `current_temp_f` in °F, `current_humidity` in %,
  `pressure` in hPa, as reported. Note: PurpleAir's temperature and humidity are measured inside the housing
  (warmer and drier than the ambient air); correcting them is calibration, not decoding.
- Ignored: particle counts (`p_0_3_um` ...), `pm2.5_aqi` (a computed index, with a literal dot) and `p25aqic`,
  dew point, the `*_680` duplicates of the BME68X, `gas_680` (VOC resistance), and metadata (Geo, rssi, uptime, ...).
- A field that is present but not a finite number (JSON numbers only) is `bad_value` for the whole message;
  null skips the field.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sensors.hardware_id import mac
from sensors.mqtt.payloads._json import load_object, number, short
from sensors.mqtt.payloads._message import DecodedMessage, DecodedValue, PayloadError
from sensors.mqtt.payloads._time import device_time
from sensors.reading import TimeSource

__all__ = ["FIELDS", "decode"]

_UGM3 = "µg/m³"


def _pm_fields() -> dict[str, tuple[str, str, str]]:
    out = {}
    for laser, suffix in (("a", ""), ("b", "_b")):
        for correction, channel in (("atm", laser), ("cf_1", f"{laser}/cf_1")):
            for size, code in (("1_0", "pm1"), ("2_5", "pm25"), ("10_0", "pm10")):
                out[f"pm{size}_{correction}{suffix}"] = (channel, code, _UGM3)
    return out


#: field → (channel, variable code, unit as sent), in the order values are emitted
FIELDS: dict[str, tuple[str, str, str]] = {
    **_pm_fields(),
    "current_temp_f": ("bme", "temperature", "°F"),
    "current_humidity": ("bme", "relativehumidity", "%"),
    "pressure": ("bme", "pressure", "hPa"),
}

def _identity(topic: str, doc: dict[str, Any]) -> str:
    raw = doc.get("SensorId")
    ident = mac(raw) if isinstance(raw, str) else None
    if ident is None:
        raise PayloadError(topic, "no_identity",
                           f"SensorId: expected the sensor's MAC such as \"aa:bb:cc:dd:ee:ff\", got {short(raw)}")
    return ident


def decode(topic: str, payload: bytes, *, now: datetime, tz: tzinfo) -> DecodedMessage:
    """Decode one PurpleAir local JSON document into values (A, then B, then met); raise PayloadError if bad."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("purpleair.decode: `now` must be timezone-aware")
    doc = load_object(topic, payload)
    ident = _identity(topic, doc)
    time_source: TimeSource
    if doc.get("DateTime") is None:
        when, time_source = now, "received"
    else:
        when, time_source = device_time(topic, "DateTime", doc["DateTime"], tz), "device"
    values = []
    for field, (channel, code, unit) in FIELDS.items():
        if doc.get(field) is None:
            continue
        values.append(DecodedValue(channel=channel, variable=code, value=number(topic, field, doc[field]),
                                   unit=unit, time=when, time_source=time_source,
                                   conditions="local" if unit == _UGM3 else None))
    return DecodedMessage(ident, tuple(values))
