"""What simulated microsensors send, byte for byte: aqnet JSON, airrohr and PurpleAir payloads. Pure.

Each builder takes values already in the unit the format carries and returns the message body; each body
decodes with the matching `sensors.mqtt.payloads` decoder. The shapes copy real devices (samples under
/work/shared/samples, summarised in the docstrings below); metadata fields a real device sends and aqnet ignores
(airrohr `samples`/`signal`, PurpleAir `rssi`/`uptime`/particle counts...) are included, so the decoders meet
what they will meet in the field. Metadata comes from an injected `random.Random`, so a payload is a
deterministic function of its arguments. `garbage` and `truncated` build the broken payloads of the message
faults.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo

__all__ = [
    "AIRROHR_SOFTWARE_VERSION",
    "airrohr_payload",
    "aqnet_json_batch",
    "aqnet_json_payload",
    "garbage",
    "purpleair_payload",
    "truncated",
]

#: the firmware version the simulated airrohr kits claim (the release the decoder's table was written from)
AIRROHR_SOFTWARE_VERSION = "NRZ-2024-135"

#: airrohr instrument → (variable code → value_type), for the instruments the bundled models carry
#: (airrohr-firmware.ino: SDS_P1 is PM10, SDS_P2 is PM2.5; BME280 pressure in Pa; DHT22 sends bare names)
_AIRROHR_FIELDS: dict[str, dict[str, str]] = {
    "SDS011": {"pm10": "SDS_P1", "pm25": "SDS_P2"},
    "PMS": {"pm1": "PMS_P0", "pm10": "PMS_P1", "pm25": "PMS_P2"},
    "BME280": {"temperature": "BME280_temperature", "pressure": "BME280_pressure",
               "relativehumidity": "BME280_humidity"},
    "DHT22": {"temperature": "temperature", "relativehumidity": "humidity"},
}


def _entry(t: datetime, values: Mapping[str, float | None], tz: tzinfo) -> dict[str, object]:
    return {"time": t.astimezone(tz).isoformat(timespec="seconds"),
            "values": {code: None if v is None else round(v, 2) for code, v in values.items()}}


def aqnet_json_payload(t: datetime, values: Mapping[str, float | None], tz: tzinfo) -> bytes:
    """aqnet JSON, one reading: `{"time": "<ISO 8601, local offset>", "values": {code: number}}`.

    `values` are sensors.variables codes in their canonical unit (PM per actual m³); None is sent as null (the
    sensor has no value for it).
    """
    return json.dumps(_entry(t, values, tz), ensure_ascii=False).encode()


def aqnet_json_batch(entries: Sequence[tuple[datetime, Mapping[str, float | None]]], tz: tzinfo) -> bytes:
    """aqnet JSON, a batch of buffered readings: `{"readings": [{"time": ..., "values": {...}}, ...]}`."""
    return json.dumps({"readings": [_entry(t, v, tz) for t, v in entries]}, ensure_ascii=False).encode()


def airrohr_payload(chip_id: str, instruments: Sequence[str], values: Mapping[str, float | None],
                    rng: random.Random, *, software_version: str = AIRROHR_SOFTWARE_VERSION) -> bytes:
    """airrohr "send to own API" body: `{"esp8266id", "software_version", "sensordatavalues": [...]}`.

    `values` are variable codes in the airrohr units (PM in µg/m³, temperature °C, humidity %, pressure **Pa**);
    each instrument of `instruments` ("SDS011", "PMS", "BME280", "DHT22") contributes its value_types, with the
    firmware's two-decimal strings. A None value is left out (the firmware skips a sensor that did not answer).
    The firmware's own counters (samples, min_micro, max_micro) and the Wi-Fi signal follow.
    """
    data: list[dict[str, str]] = []
    for instrument in instruments:
        fields = _AIRROHR_FIELDS.get(instrument)
        if fields is None:
            raise ValueError(f"airrohr_payload: instrument {instrument!r}: expected one of "
                             f"{', '.join(_AIRROHR_FIELDS)}")
        for code, value_type in fields.items():
            value = values.get(code)
            if value is not None:
                data.append({"value_type": value_type, "value": f"{value:.2f}"})
    data += [{"value_type": "samples", "value": str(rng.randint(600_000, 5_000_000))},
             {"value_type": "min_micro", "value": str(rng.randint(25, 80))},
             {"value_type": "max_micro", "value": str(rng.randint(20_000, 3_500_000))},
             {"value_type": "signal", "value": str(rng.randint(-90, -45))}]
    doc = {"esp8266id": chip_id, "software_version": software_version, "sensordatavalues": data}
    return json.dumps(doc).encode()


def _cf_1(atm: float) -> float:
    """PurpleAir's CF=1 value from its ATM one: equal at low loads, higher above (Plantower's two calibrations
    diverge above ~25 µg/m³; the 0.5 slope is a simulator choice, not a measured ratio)."""
    return atm if atm <= 25 else atm + 0.5 * (atm - 25)


def _laser(values: Mapping[str, float | None], suffix: str, rng: random.Random) -> dict[str, object]:
    out: dict[str, object] = {}
    for size, code in (("1_0", "pm1"), ("2_5", "pm25"), ("10_0", "pm10")):
        atm = values.get(code)
        out[f"pm{size}_cf_1{suffix}"] = None if atm is None else round(_cf_1(atm), 2)
        out[f"pm{size}_atm{suffix}"] = None if atm is None else round(atm, 2)
    pm25 = values.get("pm25") or 0.0
    for size, per_ugm3 in (("0_3", 60.0), ("0_5", 17.0), ("1_0", 3.0), ("2_5", 0.4), ("5_0", 0.1), ("10_0", 0.03)):
        out[f"p_{size}_um{suffix}"] = round(per_ugm3 * pm25 * rng.uniform(0.9, 1.1), 2)  # counts: ignored by aqnet
    out[f"pm2.5_aqi{suffix}"] = 0  # a computed index the decoder ignores (the literal dot is real)
    out[f"p25aqic{suffix}"] = "rgb(0,228,0)"
    return out


def purpleair_payload(mac: str, t: datetime, laser_a: Mapping[str, float | None],
                      laser_b: Mapping[str, float | None] | None, met: Mapping[str, float | None],
                      rng: random.Random) -> bytes:
    """PurpleAir local `/json` of a PA-II: `SensorId` (MAC), `DateTime` "YYYY/MM/DDTHH:MM:SSz" (UTC), per laser
    `pm1_0_atm`, `pm2_5_atm`, `pm10_0_atm` and their `_cf_1` twins (laser B with a `_b` suffix), and the BME280's
    `current_temp_f` (°F), `current_humidity` (%), `pressure` (hPa), with the firmware's metadata.

    `laser_a`/`laser_b` map pm1, pm25, pm10 to µg/m³; `met` maps temperature (°F), relativehumidity (%) and
    pressure (hPa) to the values inside the housing (the firmware prints temperature and humidity as integers).
    `laser_b` None: a single-laser unit (no `_b` fields).
    """
    temp_f, rh, hpa = met.get("temperature"), met.get("relativehumidity"), met.get("pressure")
    doc: dict[str, object] = {
        "SensorId": mac, "DateTime": t.astimezone(UTC).strftime("%Y/%m/%dT%H:%M:%Sz"),
        "Geo": f"PurpleAir-{mac.replace(':', '')[-4:]}", "Mem": rng.randint(15_000, 20_000),
        "Id": rng.randint(1, 99_999), "lat": 0.0, "lon": 0.0, "Adc": 0.05, "loggingrate": 15, "place": "outside",
        "version": "7.02", "uptime": rng.randint(1_000, 900_000), "rssi": rng.randint(-80, -40), "period": 120,
        "hardwareversion": "2.0",
        "hardwarediscovered": "2.0+BME280+PMSX003-B+PMSX003-A" if laser_b is not None else "2.0+BME280+PMSX003-A",
        "current_temp_f": None if temp_f is None else round(temp_f),
        "current_humidity": None if rh is None else round(rh),
        "pressure": None if hpa is None else round(hpa, 2),
    }
    if laser_b is not None:
        doc.update(_laser(laser_b, "_b", rng))
    doc.update(_laser(laser_a, "", rng))
    doc.update({"pa_latency": rng.randint(200, 500), "wlstate": "Connected", "status_0": 2, "ssid": "aqnet-sim"})
    return json.dumps(doc).encode()


def garbage(rng: random.Random, length: int = 48) -> bytes:
    """Line noise: bytes that are not UTF-8 JSON (a 0xFF lead byte is never valid UTF-8)."""
    return b"\xff" + bytes(rng.randrange(256) for _ in range(max(0, length - 1)))


def truncated(payload: bytes, rng: random.Random) -> bytes:
    """`payload` cut short somewhere before its last byte (a JSON document so cut never parses)."""
    if len(payload) < 2:
        return b""
    return payload[:rng.randint(1, len(payload) - 1)]
