"""simulators.payloads: every body decodes with the driver's decoder to the values put in; the documented shapes
(copied from real devices); garbage and truncated bodies are always rejected."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensors.mqtt.payloads import FORMATS, PayloadError, airrohr, aqnet_json, purpleair
from simulators.payloads import (
    airrohr_payload,
    aqnet_json_batch,
    aqnet_json_payload,
    garbage,
    purpleair_payload,
    truncated,
)

BOGOTA = ZoneInfo("America/Bogota")
T = datetime(2026, 3, 2, 12, 15, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 12, 15, 3, tzinfo=UTC)
values_st = st.floats(min_value=-50, max_value=2000, allow_nan=False)


def test_aqnet_json_documented_shape_and_round_trip() -> None:
    body = aqnet_json_payload(T, {"pm25": 12.345, "pm10": 20.1, "temperature": 14.2, "relativehumidity": None},
                              BOGOTA)
    assert json.loads(body) == {"time": "2026-03-02T07:15:00-05:00",
                                "values": {"pm25": 12.35, "pm10": 20.1, "temperature": 14.2,
                                           "relativehumidity": None}}
    decoded = aqnet_json.decode("aqnet/MS01/readings", body, now=NOW, tz=BOGOTA)
    assert [(v.variable, v.value, v.time, v.time_source) for v in decoded.values] == [
        ("pm25", 12.35, T, "device"), ("pm10", 20.1, T, "device"), ("temperature", 14.2, T, "device")]


def test_aqnet_json_batch_round_trip() -> None:
    body = aqnet_json_batch([(T, {"pm25": 1.0}), (NOW, {"pm25": 2.0})], BOGOTA)
    assert list(json.loads(body)) == ["readings"]
    decoded = aqnet_json.decode("aqnet/MS01/readings", body, now=NOW, tz=BOGOTA)
    assert [(v.value, v.time) for v in decoded.values] == [(1.0, T), (2.0, NOW)]


def test_airrohr_documented_shape() -> None:
    body = airrohr_payload("3836641", ("SDS011", "BME280"), {"pm10": 20.5, "pm25": 9.25, "temperature": 14.0,
                                                             "relativehumidity": 80.0, "pressure": 75213.7},
                           random.Random(1))
    doc = json.loads(body)
    assert doc["esp8266id"] == "3836641" and doc["software_version"].startswith("NRZ-")
    data = {e["value_type"]: e["value"] for e in doc["sensordatavalues"]}
    assert all(isinstance(v, str) for v in data.values())  # the firmware sends strings
    assert {k: data[k] for k in ("SDS_P1", "SDS_P2", "BME280_temperature", "BME280_humidity", "BME280_pressure")} \
        == {"SDS_P1": "20.50", "SDS_P2": "9.25", "BME280_temperature": "14.00", "BME280_humidity": "80.00",
            "BME280_pressure": "75213.70"}
    assert {"samples", "min_micro", "max_micro", "signal"} <= set(data)


@given(pm10=values_st, pm25=values_st, t=st.floats(-20, 40), rh=st.floats(0, 100))
def test_airrohr_round_trip(pm10: float, pm25: float, t: float, rh: float) -> None:
    body = airrohr_payload("12", ("SDS011", "DHT22"), {"pm10": pm10, "pm25": pm25, "temperature": t,
                                                       "relativehumidity": rh}, random.Random(0))
    decoded = airrohr.decode("airrohr/12/data", body, now=NOW, tz=BOGOTA)
    assert decoded.hardware_id == "12"
    got = {(v.channel, v.variable): v.value for v in decoded.values}
    assert got == pytest.approx({("SDS011", "pm10"): round(pm10, 2), ("SDS011", "pm25"): round(pm25, 2),
                                 ("DHT22", "temperature"): round(t, 2), ("DHT22", "relativehumidity"): round(rh, 2)},
                                abs=0.006)


def test_airrohr_leaves_out_missing_values_and_refuses_unknown_instruments() -> None:
    body = airrohr_payload("12", ("SDS011",), {"pm10": None, "pm25": 3.0}, random.Random(0))
    assert [v.variable for v in airrohr.decode("airrohr/12/data", body, now=NOW, tz=BOGOTA).values] == ["pm25"]
    with pytest.raises(ValueError, match="instrument"):
        airrohr_payload("12", ("XYZ",), {}, random.Random(0))


def test_purpleair_documented_shape_and_round_trip() -> None:
    a = {"pm1": 7.0, "pm25": 10.0, "pm10": 40.0}
    b = {"pm1": 7.5, "pm25": 10.5, "pm10": 41.0}
    body = purpleair_payload("84:f3:eb:00:00:01", T, a, b, {"temperature": 64.6, "relativehumidity": 51.4,
                                                           "pressure": 752.04}, random.Random(3))
    doc = json.loads(body)
    assert doc["SensorId"] == "84:f3:eb:00:00:01" and doc["DateTime"] == "2026/03/02T12:15:00z"
    assert (doc["current_temp_f"], doc["current_humidity"], doc["pressure"]) == (65, 51, 752.04)
    assert doc["pm2_5_atm"] == 10.0 and doc["pm2_5_atm_b"] == 10.5 and doc["pm10_0_cf_1"] == 47.5
    assert "pm2.5_aqi" in doc and "p_0_3_um" in doc  # fields the decoder must ignore
    decoded = purpleair.decode("purpleair/84f3eb000001/data", body, now=NOW, tz=BOGOTA)
    got = {(v.channel, v.variable): (v.value, v.unit) for v in decoded.values}
    assert got[("a", "pm25")] == (10.0, "µg/m³") and got[("b", "pm10")] == (41.0, "µg/m³")
    assert got[("bme", "temperature")] == (65, "°F") and got[("bme", "pressure")] == (752.04, "hPa")
    assert {v.time for v in decoded.values} == {T}


def test_purpleair_single_laser_has_no_b_fields() -> None:
    body = purpleair_payload("84:f3:eb:00:00:01", T, {"pm25": 1.0}, None, {}, random.Random(3))
    assert not any(key.endswith("_b") for key in json.loads(body))


@given(seed=st.integers(0, 2**32), length=st.integers(1, 300))
def test_garbage_is_never_a_payload(seed: int, length: int) -> None:
    body = garbage(random.Random(seed), length)
    for name, decode in FORMATS.items():
        with pytest.raises(PayloadError) as info:
            decode(f"{name}/x/data", body, now=NOW, tz=BOGOTA)
        assert info.value.reason == "not_json"


@given(seed=st.integers(0, 2**32))
def test_truncated_is_never_a_payload(seed: int) -> None:
    rng = random.Random(seed)
    bodies = {"aqnet-json": aqnet_json_payload(T, {"pm25": 1.0}, BOGOTA),
              "airrohr": airrohr_payload("1", ("SDS011",), {"pm25": 1.0}, rng),
              "purpleair": purpleair_payload("84:f3:eb:00:00:01", T, {"pm25": 1.0}, None, {}, rng)}
    for name, body in bodies.items():
        cut = truncated(body, rng)
        assert 0 < len(cut) < len(body)
        with pytest.raises(PayloadError):
            FORMATS[name](f"{name}/1/data", cut, now=NOW, tz=BOGOTA)
