"""sensors.mqtt.payloads.purpleair: every real sample decodes into the values and units it shows; rules and fuzzing.

The expected values below were read by hand from the JSON files in tests/data/samples/purpleair/ (unchanged
copies of the project's shared samples; README.md there names each file's public source).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.mqtt.payloads import FORMATS, TOPICS, DecodedMessage, PayloadError, purpleair
from sensors.mqtt.payloads.purpleair import FIELDS, decode
from sensors.variables import VARIABLES

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples" / "purpleair"
SHARED = Path(__file__).resolve().parents[4].parent / "shared" / "samples" / "purpleair"
BOGOTA = ZoneInfo("America/Bogota")
NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
TOPIC = "purpleair/garden/data"
UG = "µg/m³"


def _pm(channel: str, pm1: float, pm25: float, pm10: float) -> list[tuple[str, str, float, str]]:
    return [(channel, "pm1", pm1, UG), (channel, "pm25", pm25, UG), (channel, "pm10", pm10, UG)]


def _met(temp_f: float, rh: float, hpa: float) -> list[tuple[str, str, float, str]]:
    return [("bme", "temperature", temp_f, "°F"), ("bme", "relativehumidity", rh, "%"), ("bme", "pressure", hpa, "hPa")]


#: file → (hardware_id, DateTime as UTC, [(channel, variable, value, unit), ...] A, then B, then met)
EXPECTED: dict[str, tuple[str, datetime, list[tuple[str, str, float, str]]]] = {
    "ha-purpleair-local_outdoor.json": (
        "02:00:00:00:ab:c9", datetime(2026, 9, 29, 15, 20, 7, tzinfo=UTC),
        _pm("a", 0.0, 0.0, 0.0) + _pm("a/cf_1", 0.0, 0.0, 0.0)
        + _pm("b", 0.0, 0.0, 0.09) + _pm("b/cf_1", 0.0, 0.0, 0.09)
        + _met(57, 24, 748.73)),
    "homebridge-purpleair-sensor_test-local-inside.json": (  # single laser: no _b fields
        "12:34:56:78:90:aa", datetime(2022, 4, 29, 3, 53, 26, tzinfo=UTC),
        _pm("a", 4.56, 6.67, 6.79) + _pm("a/cf_1", 4.56, 6.67, 6.79)
        + _met(79, 27, 970.67)),
    "purpleair-local_pa2_outdoor_dual_laser.json": (
        "00:00:00:00:00:02", datetime(2026, 5, 17, 22, 23, 6, tzinfo=UTC),
        _pm("a", 0.0, 0.0, 0.0) + _pm("a/cf_1", 0.0, 0.0, 0.0)
        + _pm("b", 0.0, 0.0, 0.0) + _pm("b/cf_1", 0.0, 0.0, 0.0)
        + _met(80, 14, 933.9)),
}


def run(doc: dict | bytes, topic: str = TOPIC) -> DecodedMessage:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return decode(topic, payload, now=NOW, tz=BOGOTA)


def reason(doc: dict | bytes) -> str:
    with pytest.raises(PayloadError) as err:
        run(doc)
    assert err.value.topic == TOPIC
    assert str(err.value).startswith(f"{TOPIC}: ")
    return err.value.reason


BASE = {"SensorId": "AA:BB:CC:DD:EE:FF", "DateTime": "2026/05/17T22:23:04z"}


# -- the real samples ------------------------------------------------------------------------------------------

def test_sample_count() -> None:
    files = sorted(p.name for p in SAMPLES.glob("*.json"))
    assert len(files) == 3
    assert set(files) == set(EXPECTED)
    if SHARED.is_dir():  # the copies are the whole shared folder
        assert len(list(SHARED.glob("*.json"))) == len(files)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_decodes_to_the_values_and_units_it_shows(name: str) -> None:
    ident, when, expected = EXPECTED[name]
    message = run((SAMPLES / name).read_bytes())
    assert message.hardware_id == ident
    assert [(v.channel, v.variable, v.value, v.unit) for v in message.values] == expected
    for v in message.values:
        assert (v.time, v.time_source) == (when, "device")
        assert v.time.utcoffset().total_seconds() == 0  # the "z": UTC, not the network's zone
        assert v.conditions == ("local" if v.unit == UG else None)
        assert isinstance(v.value, float)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_is_the_same_through_the_format_table(name: str) -> None:
    payload = (SAMPLES / name).read_bytes()
    assert FORMATS["purpleair"](TOPIC, payload, now=NOW, tz=BOGOTA) == run(payload)


def test_b_laser_differs_from_a_in_a_sample() -> None:
    """The dual-laser outdoor sample has pm10_0_atm 0.0 (A) but pm10_0_atm_b 0.09 (B): channels are not mixed."""
    values = run((SAMPLES / "ha-purpleair-local_outdoor.json").read_bytes()).values
    pm10 = {v.channel: v.value for v in values if v.variable == "pm10"}
    assert pm10 == {"a": 0.0, "a/cf_1": 0.0, "b": 0.09, "b/cf_1": 0.09}


# -- fields ----------------------------------------------------------------------------------------------------

def test_atm_and_cf1_of_each_laser_are_separate_channels() -> None:
    doc = {**BASE, "pm2_5_atm": 10.5, "pm2_5_cf_1": 12.25, "pm2_5_atm_b": 11.0, "pm2_5_cf_1_b": 13.0,
           "pm1_0_atm": 7, "pm10_0_atm_b": 20}
    assert [(v.channel, v.variable, v.value) for v in run(doc).values] == [
        ("a", "pm1", 7.0), ("a", "pm25", 10.5), ("a/cf_1", "pm25", 12.25),
        ("b", "pm25", 11.0), ("b", "pm10", 20.0), ("b/cf_1", "pm25", 13.0)]


def test_field_table() -> None:
    assert len(FIELDS) == 2 * 2 * 3 + 3
    for field, (channel, code, unit) in FIELDS.items():
        assert unit in {UG, "°F", "%", "hPa"}, field
        assert code in VARIABLES, field
        assert channel in {"a", "b", "a/cf_1", "b/cf_1", "bme"}, field
        assert field.endswith("_b") == (channel in ("b", "b/cf_1")), field
    assert FIELDS["pm10_0_cf_1_b"] == ("b/cf_1", "pm10", UG)
    assert FIELDS["current_temp_f"] == ("bme", "temperature", "°F")


def test_ignored_fields() -> None:
    doc = {**BASE, "pm2.5_aqi": 28, "pm2.5_aqi_b": 30, "p25aqic": "rgb(45,233,0)", "p_0_3_um": 1037.78,
           "p_2_5_um_b": 2.1, "current_dewpoint_f": 42, "current_temp_f_680": 57, "current_humidity_680": 24,
           "pressure_680": 748.73, "gas_680": 51.01, "rssi": -57, "Geo": "PurpleAir-ebbe", "pm2_5_atm": 1.5}
    assert [(v.channel, v.variable, v.value) for v in run(doc).values] == [("a", "pm25", 1.5)]


def test_null_skipped_and_no_values_is_empty() -> None:
    assert [v.variable for v in run({**BASE, "pm2_5_atm": None, "pm10_0_atm": 3}).values] == ["pm10"]
    assert run(BASE).values == ()


# -- identity and time -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"), ("02:00:00:00:ab:c9", "02:00:00:00:ab:c9"),
    ("aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:ff"), (" 12:34:56:78:90:aa ", "12:34:56:78:90:aa"),
])
def test_sensor_id_is_the_lower_case_mac(raw: str, expected: str) -> None:
    assert run({**BASE, "SensorId": raw}).hardware_id == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("2:0:0:0:ab:c9", "02:00:00:00:ab:c9"), ("84:F3:EB:9:1:A", "84:f3:eb:09:01:0a"),
    ("0-0-0-0-0-2", "00:00:00:00:00:02"), ("a:b:c:d:e:f", "0a:0b:0c:0d:0e:0f"),
])
def test_sensor_id_octets_without_zero_padding_are_the_zero_padded_mac(raw: str, expected: str) -> None:
    """Issue 24: "real PurpleAir firmware prints MAC octets without zero padding (an octet such as `9` rather than
    `09`); aqnet's pattern needs two hex digits, so such a device is rejected as unidentified forever. Accept one or
    two digits per octet and normalise to the zero-padded form, in decoding and in registry matching."""
    assert run({**BASE, "SensorId": raw}).hardware_id == expected


@pytest.mark.parametrize("raw", [None, "", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa-bb:cc:dd:ee:ff",
                                 "gg:bb:cc:dd:ee:ff", "aabbccddeeff", 12345, ["aa:bb:cc:dd:ee:ff"],
                                 "aa:bb:cc:dd:ee:", "aaa:bb:cc:dd:ee:ff", "a::b:c:d:e"])
def test_bad_or_missing_sensor_id_is_no_identity(raw: object) -> None:
    assert reason({**BASE, "SensorId": raw}) == "no_identity"
    doc = dict(BASE)
    del doc["SensorId"]
    assert reason(doc) == "no_identity"


def test_missing_datetime_uses_receive_time() -> None:
    for doc in ({"SensorId": BASE["SensorId"], "pm2_5_atm": 1}, {**BASE, "DateTime": None, "pm2_5_atm": 1}):
        (v,) = run(doc).values
        assert (v.time, v.time_source) == (NOW, "received")


def test_other_time_forms_and_naive_is_network_zone() -> None:
    (v,) = run({**BASE, "DateTime": 1772453700, "pm2_5_atm": 1}).values
    assert v.time == datetime(2026, 3, 2, 12, 15, tzinfo=UTC)
    (v,) = run({**BASE, "DateTime": "2026/03/02T07:15:00", "pm2_5_atm": 1}).values  # no "z": Bogotá
    assert v.time == datetime(2026, 3, 2, 12, 15, tzinfo=UTC)


# -- rejections ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("doc", "expected"), [
    (b"\xff", "not_json"),
    (b"{", "not_json"),
    (b"[1]", "schema"),
    (b" " * (64 * 1024 + 1), "too_large"),
    ({**BASE, "DateTime": "2026/05/17 22:23"}, "bad_time"),
    ({**BASE, "DateTime": "2026/02/30T22:23:04z"}, "bad_time"),
    ({**BASE, "DateTime": True}, "bad_time"),
    ({**BASE, "pm2_5_atm": "6.67"}, "bad_value"),
    ({**BASE, "pm2_5_atm_b": True}, "bad_value"),
    ({**BASE, "current_temp_f": [79]}, "bad_value"),
    (b'{"SensorId": "aa:bb:cc:dd:ee:ff", "pressure": NaN}', "bad_value"),
    (b'{"SensorId": "aa:bb:cc:dd:ee:ff", "pressure": -Infinity}', "bad_value"),
])
def test_rejections(doc: dict | bytes, expected: str) -> None:
    assert reason(doc) == expected


def test_bad_value_names_the_field() -> None:
    with pytest.raises(PayloadError, match=r"pm2_5_cf_1_b: expected a number, got 'x'"):
        run({**BASE, "pm2_5_cf_1_b": "x"})


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        decode(TOPIC, json.dumps(BASE).encode(), now=NOW.replace(tzinfo=None), tz=BOGOTA)


def test_format_table_and_topic() -> None:
    assert FORMATS["purpleair"] is purpleair.decode
    assert TOPICS["purpleair"] == "purpleair/+/data"


# -- fuzzing -----------------------------------------------------------------------------------------------------

_FUZZ = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_DOCS = st.fixed_dictionaries({}, optional={
    "SensorId": st.sampled_from(["aa:bb:cc:dd:ee:ff", "02:00:00:00:ab:c9"]) | _SCALARS,
    "DateTime": st.sampled_from(["2026/05/17T22:23:04z", "2026-05-17T22:23:04"]) | _SCALARS
    | st.datetimes().map(lambda d: d.strftime("%Y/%m/%dT%H:%M:%Sz")),
    **{field: _SCALARS | st.lists(st.integers(), max_size=2) for field in FIELDS},
})


def _decodes_or_payload_error(payload: bytes) -> None:
    try:
        message = run(payload)
    except PayloadError as exc:
        assert exc.reason in {"not_json", "schema", "bad_time", "bad_value", "too_large", "no_identity"}
        return
    assert message.hardware_id
    for v in message.values:
        assert v.variable in VARIABLES
        assert v.time.utcoffset() is not None


@settings(_FUZZ, max_examples=300)
@given(st.binary(max_size=300))
def test_fuzz_bytes(payload: bytes) -> None:
    _decodes_or_payload_error(payload)


@settings(_FUZZ, max_examples=300)
@given(_DOCS)
def test_fuzz_structured(doc: dict) -> None:
    _decodes_or_payload_error(json.dumps(doc, allow_nan=True).encode())


@_FUZZ
@given(st.sampled_from(sorted(EXPECTED)), st.integers(min_value=0, max_value=1600), st.binary(max_size=3))
def test_fuzz_corrupted_samples(name: str, cut: int, junk: bytes) -> None:
    payload = (SAMPLES / name).read_bytes()
    _decodes_or_payload_error(payload[:cut] + junk + payload[cut:])
