"""sensors.mqtt.payloads.airrohr: every real sample decodes into the values and units it shows; rules and fuzzing.

The expected values below were read by hand from the JSON files in tests/data/samples/airrohr/ (unchanged copies
of the project's shared samples; README.md there names each file's public source).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.mqtt.payloads import FORMATS, TOPICS, DecodedMessage, PayloadError, airrohr
from sensors.mqtt.payloads.airrohr import VALUE_TYPES, decode, hardware_id
from sensors.variables import VARIABLES

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples" / "airrohr"
SHARED = Path(__file__).resolve().parents[4].parent / "shared" / "samples" / "airrohr"
BOGOTA = ZoneInfo("America/Bogota")
NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
TOPIC = "airrohr/777/data"  # chip id in the topic: used only when the payload has no esp8266id
UG, C, RH, PA = "µg/m³", "°C", "%", "Pa"

#: file → (hardware_id, [(channel, variable, value, unit), ...] in payload order)
EXPECTED: dict[str, tuple[str, list[tuple[str, str, float, str]]]] = {
    "airrohr-prometheus-exporter_README_post_body.json": ("12331981", [
        ("SDS011", "pm10", 0.40, UG), ("SDS011", "pm25", 0.20, UG),
        ("BME280", "temperature", 20.47, C), ("BME280", "pressure", 100613.25, PA),
        ("BME280", "relativehumidity", 69.02, RH),
    ]),
    "ha-core_nam_data.json": ("777", [
        ("PMS", "pm1", 6.00, UG), ("PMS", "pm10", 10.00, UG), ("PMS", "pm25", 11.00, UG),
        ("SDS011", "pm10", 18.65, UG), ("SDS011", "pm25", 11.03, UG),
        ("SPS30", "pm1", 31.23, UG), ("SPS30", "pm10", 21.23, UG), ("SPS30", "pm25", 34.32, UG),
        ("SPS30", "pm4", 24.72, UG),
        ("MHZ14A", "co2", 865, "ppm"),
        ("BME280", "temperature", 7.56, C), ("BME280", "relativehumidity", 45.69, RH),
        ("BME280", "pressure", 101101.17, PA),
        ("DS18B20", "temperature", 12.56, C),
        ("BMP180", "temperature", 7.56, C), ("BMP180", "pressure", 103201.18, PA),
        ("BMP280", "temperature", 5.56, C), ("BMP280", "pressure", 102201.18, PA),
        ("SHT3X", "temperature", 6.28, C), ("SHT3X", "relativehumidity", 34.69, RH),
        ("DHT22", "relativehumidity", 46.23, RH), ("DHT22", "temperature", 6.26, C),
        # HECA_temperature 7.95 / HECA_humidity 49.97 (heated inlet) and signal -72: ignored
    ]),
    "homebridge-airrohr_data.json": ("777", [
        ("SDS011", "pm10", 27.73, UG), ("SDS011", "pm25", 19.43, UG),
        ("DHT22", "temperature", 17.00, C), ("DHT22", "relativehumidity", 34.10, RH),
    ]),
    "homebridge-airrohr_data_BME280.json": ("777", [
        ("SDS011", "pm10", 6.50, UG), ("SDS011", "pm25", 3.20, UG),
        ("BME280", "temperature", 6.86, C), ("BME280", "relativehumidity", 86.66, RH),
        ("BME280", "pressure", 100003.54, PA),
    ]),
    "luftdaten-server_README_dht22_post.json": ("1234567", [
        ("DHT22", "relativehumidity", 37.10, RH),
        ("SDS011", "pm10", 4.05, UG), ("SDS011", "pm25", 2.25, UG),
        ("DHT22", "temperature", 28.90, C),
    ]),
    "opensensemap-api_luftdaten_example_data_NRZ-2018-121.json": ("777", [
        ("SDS011", "pm10", 1.87, UG), ("SDS011", "pm25", 1.05, UG),
        ("BMP180", "pressure", 100659.00, PA), ("BMP180", "temperature", 26.80, C),
    ]),
}


def run(doc: dict | bytes, topic: str = TOPIC) -> DecodedMessage:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return decode(topic, payload, now=NOW, tz=BOGOTA)


def reason(doc: dict | bytes, topic: str = TOPIC) -> str:
    with pytest.raises(PayloadError) as err:
        run(doc, topic)
    assert err.value.topic == topic
    assert str(err.value).startswith(f"{topic}: ")
    return err.value.reason


def _doc(*pairs: tuple[str, object], **top: object) -> dict:
    return {"esp8266id": "12345", **top,
            "sensordatavalues": [{"value_type": t, "value": v} for t, v in pairs]}


# -- the real samples ------------------------------------------------------------------------------------------

def test_sample_count() -> None:
    files = sorted(p.name for p in SAMPLES.glob("*.json"))
    assert len(files) == 6
    assert set(files) == set(EXPECTED)
    if SHARED.is_dir():  # the copies are the whole shared folder
        assert len(list(SHARED.glob("*.json"))) == len(files)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_decodes_to_the_values_and_units_it_shows(name: str) -> None:
    ident, expected = EXPECTED[name]
    message = run((SAMPLES / name).read_bytes())
    assert message.hardware_id == ident
    assert [(v.channel, v.variable, v.value, v.unit) for v in message.values] == expected
    for v in message.values:
        assert (v.time, v.time_source) == (NOW, "received")  # airrohr sends no time
        assert v.conditions == ("local" if v.unit == UG else None)
        assert isinstance(v.value, float)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_is_the_same_through_the_format_table(name: str) -> None:
    payload = (SAMPLES / name).read_bytes()
    assert FORMATS["airrohr"](TOPIC, payload, now=NOW, tz=BOGOTA) == run(payload)


# -- value types -------------------------------------------------------------------------------------------------

def test_p1_is_pm10_p2_is_pm25_p0_is_pm1_p4_is_pm4() -> None:
    for prefix in ("SDS", "PMS", "HPM", "SPS30", "NPM", "IPS"):
        for suffix, code in (("P0", "pm1"), ("P1", "pm10"), ("P2", "pm25"), ("P4", "pm4")):
            if f"{prefix}_{suffix}" in VALUE_TYPES:
                assert VALUE_TYPES[f"{prefix}_{suffix}"][1:] == (code, UG)
    assert "SPS30_P4" in VALUE_TYPES and "PMS_P0" in VALUE_TYPES and "HPM_P2" in VALUE_TYPES


def test_table_uses_vocabulary_codes_and_units_ingest_converts() -> None:
    for value_type, (channel, code, unit) in VALUE_TYPES.items():
        assert channel, value_type
        assert code in VARIABLES, value_type
        assert unit in {UG, C, RH, PA, "ppm"}, value_type


def test_every_firmware_sensor() -> None:
    message = run(_doc(("HPM_P1", "5"), ("HPM_P2", "4"), ("NPM_P0", "1.5"), ("NPM_P1", "3.5"), ("NPM_P2", "2.5"),
                       ("IPS_P0", "1"), ("IPS_P1", "3"), ("IPS_P2", "2"), ("HTU21D_temperature", "21.5"),
                       ("HTU21D_humidity", "40"), ("SCD30_temperature", "22"), ("SCD30_humidity", "41"),
                       ("SCD30_co2_ppm", "612"), ("BME280_pressure", "74850.5")))
    assert [(v.channel, v.variable, v.value, v.unit) for v in message.values] == [
        ("HPM", "pm10", 5.0, UG), ("HPM", "pm25", 4.0, UG),
        ("NPM", "pm1", 1.5, UG), ("NPM", "pm10", 3.5, UG), ("NPM", "pm25", 2.5, UG),
        ("IPS", "pm1", 1.0, UG), ("IPS", "pm10", 3.0, UG), ("IPS", "pm25", 2.0, UG),
        ("HTU21D", "temperature", 21.5, C), ("HTU21D", "relativehumidity", 40.0, RH),
        ("SCD30", "temperature", 22.0, C), ("SCD30", "relativehumidity", 41.0, RH), ("SCD30", "co2", 612.0, "ppm"),
        ("BME280", "pressure", 74850.5, PA),  # pressure stays in Pa as sent (Bogotá ≈ 748.5 hPa)
    ]


def test_ignored_value_types_are_not_values() -> None:
    ignored = ["SPS30_N05", "SPS30_N1", "SPS30_N25", "SPS30_N4", "SPS30_N10", "SPS30_TS", "NPM_N1", "NPM_N10",
               "NPM_N25", "IPS_P01", "IPS_P03", "IPS_P05", "IPS_P5", "IPS_N1", "P1", "P2", "durP1", "ratioP1",
               "durP2", "ratioP2", "DNMS_noise_LAeq", "HECA_temperature", "HECA_humidity", "samples",
               "min_micro", "max_micro", "signal", "interval", "GPS_lat", "GPS_lon", "GPS_height", "GPS_timestamp",
               "a_future_sensor_P9"]
    message = run(_doc(*[(t, "1970-01-01T00:00:00.000" if t == "GPS_timestamp" else "12.5") for t in ignored],
                       ("SDS_P2", "3")))
    assert [(v.channel, v.variable, v.value) for v in message.values] == [("SDS011", "pm25", 3.0)]
    # ignored types are not even parsed: non-numbers there are no error
    assert run(_doc(("signal", "n/a"), ("GPS_lat", None), ("SDS_P1", "2"))).values[0].value == 2.0


@pytest.mark.parametrize(("raw", "expected"), [
    ("12.30", 12.3), (" 7 ", 7.0), ("-94", -94.0), ("+1.5", 1.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0),
    (12.3, 12.3), (7, 7.0),  # bridges that convert to JSON numbers
])
def test_values_as_strings_or_numbers(raw: object, expected: float) -> None:
    (v,) = run(_doc(("SDS_P2", raw))).values
    assert v.value == expected


def test_null_value_skipped_and_empty_list_is_empty() -> None:
    assert [v.variable for v in run(_doc(("SDS_P1", None), ("SDS_P2", "1"))).values] == ["pm25"]
    assert run(_doc()).values == ()


# -- identity ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("12331981", "12331981"), ("esp8266-12331981", "12331981"), (12331981, "12331981"),
    ("esp32-A4CF12FE34", "a4cf12fe34"), (" 1234567 ", "1234567"),
    ("", None), ("esp8266-", None), ("kitchen", None), ("12 34", None), (True, None), (-5, None), (None, None),
    ("1" * 17, None), ({"id": 1}, None),
])
def test_hardware_id_forms(raw: object, expected: str | None) -> None:
    assert hardware_id(raw) == expected


def test_identity_payload_wins_over_topic() -> None:
    assert run(_doc(("SDS_P1", "1")), topic="airrohr/999/data").hardware_id == "12345"
    assert run({"X-Sensor": "esp8266-4242", "sensordatavalues": []}, topic="airrohr/999/data").hardware_id == "4242"


@pytest.mark.parametrize(("topic", "expected"), [
    ("airrohr/15071178/data", "15071178"),
    ("airrohr/esp8266-15071178/data", "15071178"),
    ("bridge/esp8266-15071178", "15071178"),  # the X-Sensor form anywhere: what the HTTP intake can pass
    ("http/airrohr/esp32-a4cf12fe34", "a4cf12fe34"),
    ("POST /intake/airrohr (X-Sensor esp8266-15071178)", "15071178"),
])
def test_identity_from_topic_when_payload_has_none(topic: str, expected: str) -> None:
    assert run({"sensordatavalues": []}, topic=topic).hardware_id == expected


@pytest.mark.parametrize(("doc", "topic"), [
    ({"sensordatavalues": []}, "airrohr/kitchen/data"),
    ({"sensordatavalues": []}, "sensors/15071178/data"),
    ({"sensordatavalues": []}, "airrohr/+/data"),
    ({"sensordatavalues": []}, "POST /intake/airrohr (X-Sensor -)"),
    ({"sensordatavalues": []}, "bridge/myesp8266-15071178/data"),
    ({"sensordatavalues": []}, "bridge/esp8266-15071178x/data"),
    ({"esp8266id": "", "sensordatavalues": []}, TOPIC),
    ({"esp8266id": None, "sensordatavalues": []}, TOPIC),
    ({"esp8266id": "my sensor", "sensordatavalues": []}, TOPIC),
])
def test_no_identity(doc: dict, topic: str) -> None:
    assert reason(doc, topic) == "no_identity"


# -- rejections ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("doc", "expected"), [
    (b"\xff", "not_json"),
    (b"", "not_json"),
    (b"[]", "schema"),
    (b"x" * (64 * 1024 + 1), "too_large"),
    ({"esp8266id": "1"}, "schema"),
    ({"esp8266id": "1", "sensordatavalues": {"SDS_P1": "1"}}, "schema"),
    ({"esp8266id": "1", "sensordatavalues": ["SDS_P1"]}, "schema"),
    ({"esp8266id": "1", "sensordatavalues": [{"value": "1"}]}, "schema"),
    ({"esp8266id": "1", "sensordatavalues": [{"value_type": 3, "value": "1"}]}, "schema"),
    (_doc(("SDS_P1", "1"), ("SDS_P1", "2")), "schema"),
    (_doc(("SDS_P1", "nan")), "bad_value"),
    (_doc(("SDS_P1", "inf")), "bad_value"),
    (_doc(("SDS_P1", "1_000")), "bad_value"),
    (_doc(("SDS_P1", "")), "bad_value"),
    (_doc(("SDS_P1", "12,3")), "bad_value"),
    (_doc(("SDS_P1", "1e999")), "bad_value"),
    (_doc(("SDS_P1", True)), "bad_value"),
    (_doc(("SDS_P1", ["1"])), "bad_value"),
])
def test_rejections(doc: dict | bytes, expected: str) -> None:
    assert reason(doc) == expected


def test_bad_value_names_entry_and_type() -> None:
    with pytest.raises(PayloadError, match=r"sensordatavalues\[1\] \(BME280_pressure\)\.value: expected a decimal "
                                           r"number, got 'ovf'"):
        run(_doc(("SDS_P1", "1"), ("BME280_pressure", "ovf")))


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        decode(TOPIC, json.dumps(_doc()).encode(), now=NOW.replace(tzinfo=None), tz=BOGOTA)


def test_format_table_and_topic() -> None:
    assert FORMATS["airrohr"] is airrohr.decode
    assert TOPICS["airrohr"] == "airrohr/+/data"


# -- fuzzing -------------------------------------------------------------------------------------------------------

_FUZZ = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
_TYPES = st.sampled_from([*VALUE_TYPES, "samples", "signal", "P1", "GPS_timestamp", "", "x"])
_VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) \
    | st.from_regex(r"-?\d{1,6}(\.\d{1,3})?", fullmatch=True) | st.lists(st.integers(), max_size=2)
_ENTRY = st.fixed_dictionaries({}, optional={"value_type": _TYPES | st.integers(), "value": _VALUES})
_DOCS = st.fixed_dictionaries({}, optional={
    "esp8266id": st.none() | st.integers() | st.text(max_size=12) | st.from_regex(r"\d{1,8}", fullmatch=True),
    "software_version": st.text(max_size=8),
    "sensordatavalues": st.lists(_ENTRY, max_size=6) | _VALUES,
})
_TOPICS = st.sampled_from([TOPIC, "airrohr/kitchen/data", "x/esp8266-1/y", ""]) | st.text(max_size=20)


def _decodes_or_payload_error(topic: str, payload: bytes) -> None:
    try:
        message = decode(topic, payload, now=NOW, tz=BOGOTA)
    except PayloadError as exc:
        assert exc.reason in {"not_json", "schema", "bad_value", "too_large", "no_identity"}
        return
    assert message.hardware_id
    for v in message.values:
        assert v.variable in VARIABLES
        assert v.time == NOW


@settings(_FUZZ, max_examples=300)
@given(_TOPICS, st.binary(max_size=300))
def test_fuzz_bytes(topic: str, payload: bytes) -> None:
    _decodes_or_payload_error(topic, payload)


@settings(_FUZZ, max_examples=300)
@given(_TOPICS, _DOCS)
def test_fuzz_structured(topic: str, doc: dict) -> None:
    _decodes_or_payload_error(topic, json.dumps(doc, allow_nan=True).encode())


@_FUZZ
@given(st.sampled_from(sorted(EXPECTED)), st.integers(min_value=0, max_value=1500), st.binary(max_size=3))
def test_fuzz_corrupted_samples(name: str, cut: int, junk: bytes) -> None:
    payload = (SAMPLES / name).read_bytes()
    _decodes_or_payload_error(TOPIC, payload[:cut] + junk + payload[cut:])
