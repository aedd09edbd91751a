"""sensors.mqtt.payloads.aqnet_json: explicit cases and fuzzing (a DecodedMessage or PayloadError, nothing else)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.mqtt.payloads import FORMATS, PAYLOAD_ERROR_REASONS, DecodedValue, PayloadError, aqnet_json
from sensors.mqtt.payloads.aqnet_json import MAX_PAYLOAD_BYTES, decode, decode_readings
from sensors.variables import VARIABLES

BOGOTA = ZoneInfo("America/Bogota")
NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
TOPIC = "aqnet/MS01/readings"


def _bytes(payload: bytes | str | dict) -> bytes:
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return payload


def run(payload: bytes | str | dict, **kw: object) -> tuple[DecodedValue, ...]:
    args: dict[str, object] = {"now": NOW, "tz": BOGOTA}
    args.update(kw)
    message = decode(TOPIC, _bytes(payload), **args)  # type: ignore[arg-type]
    assert message.hardware_id is None  # identity comes from the topic
    assert all(v.channel == "" for v in message.values)
    return message.values


def reason(payload: bytes | str | dict) -> str:
    with pytest.raises(PayloadError) as err:
        run(payload)
    assert str(err.value).startswith(f"{TOPIC}: ")
    assert err.value.topic == TOPIC
    return err.value.reason


def test_format_table() -> None:
    assert FORMATS["aqnet-json"] is aqnet_json.decode
    assert issubclass(PayloadError, ValueError)
    assert "no_identity" in PAYLOAD_ERROR_REASONS


DOCUMENTED = {"time": "2026-03-02T07:15:00-05:00",
              "values": {"pm25": 12.3, "pm10": 20.1, "temperature": 14.2, "relativehumidity": 71}}


def test_documented_example() -> None:
    out = run(DOCUMENTED)
    assert [(r.variable, r.value, r.unit) for r in out] == [
        ("pm25", 12.3, "µg/m³"), ("pm10", 20.1, "µg/m³"), ("temperature", 14.2, "°C"),
        ("relativehumidity", 71.0, "%")]
    when = datetime(2026, 3, 2, 12, 15, tzinfo=UTC)
    for r in out:
        assert r.time == when
        assert r.time_source == "device"
        assert isinstance(r.value, float)
    assert [r.conditions for r in out] == ["local", "local", None, None]


def test_batch_form() -> None:
    out = run({"readings": [
        {"time": "2026-03-02T07:10:00-05:00", "values": {"pm25": 11.0, "temperature": 14.0}},
        {"time": 1772453700, "values": {"pm25": 12.3, "pm10": None}},
        {"time": "2026-03-02T07:20:00", "values": {}},
    ]})
    assert [(r.variable, r.value, r.time, r.time_source, r.conditions) for r in out] == [
        ("pm25", 11.0, datetime(2026, 3, 2, 12, 10, tzinfo=UTC), "device", "local"),
        ("temperature", 14.0, datetime(2026, 3, 2, 12, 10, tzinfo=UTC), "device", None),
        ("pm25", 12.3, datetime(2026, 3, 2, 12, 15, tzinfo=UTC), "device", "local"),
    ]
    assert run({"readings": []}) == ()


@pytest.mark.parametrize(("doc", "expected", "where"), [
    ({"readings": {"time": "2026-03-02T07:10:00"}}, "schema", "readings: expected a list"),
    ({"readings": [1]}, "schema", "readings[0]: expected an object"),
    ({"readings": [{"time": "2026-03-02T07:10:00-05:00"}]}, "schema", "readings[0].values: expected"),
    ({"readings": [{"time": "2026-03-02T07:10:00-05:00", "values": {"pm25": 1}}, {"values": {"pm25": 2}}]},
     "schema", "readings[1].time: required in the batch form"),
    ({"readings": [{"time": "2026-03-02T07:10:00-05:00", "values": {"pm25": 1}}], "values": {"pm25": 1}},
     "schema", "got both"),
    ({"readings": [{"time": "2026-03-02T07:10:00-05:00", "values": {"pm25": 1}},
                   {"time": "2026-03-02T07:15:00-05:00", "values": {"h2s": 1}}]},
     "unknown_variable", "readings[1].values: unknown variable code(s) 'h2s'"),
    ({"readings": [{"time": "soon", "values": {"pm25": 1}}]}, "bad_time", "readings[0].time: "),
    ({"readings": [{"time": 1772453700, "values": {"pm25": "1"}}]}, "bad_value", "readings[0].values.pm25: "),
])
def test_batch_rejections_say_which_entry(doc: dict, expected: str, where: str) -> None:
    with pytest.raises(PayloadError) as err:
        run(doc)
    assert err.value.reason == expected
    assert where in str(err.value)


def test_decode_readings_keeps_the_old_interface() -> None:
    out = decode_readings(TOPIC, _bytes(DOCUMENTED), sensor_id="MS01", device_id="MS01-D", now=NOW, tz=BOGOTA)
    assert [(r.variable, r.value, r.unit) for r in out] == [
        ("pm25", 12.3, "µg/m³"), ("pm10", 20.1, "µg/m³"), ("temperature", 14.2, "°C"),
        ("relativehumidity", 71.0, "%")]
    for r in out:
        assert r.time == datetime(2026, 3, 2, 12, 15, tzinfo=UTC)
        assert r.received_at == NOW
        assert r.time_source == "device"
        assert (r.sensor_id, r.device_id) == ("MS01", "MS01-D")
    assert [r.conditions for r in out] == ["local", "local", None, None]
    (r,) = decode_readings(TOPIC, b'{"values": {"pm25": 1}}', sensor_id="MS01", device_id="MS01", now=NOW,
                           tz=BOGOTA)
    assert (r.time, r.time_source) == (NOW, "received")
    with pytest.raises(PayloadError):
        decode_readings(TOPIC, b"{", sensor_id="MS01", device_id="MS01", now=NOW, tz=BOGOTA)


def test_decode_readings_conditions_parameter_applies_to_mass_concentrations() -> None:
    out = decode_readings(TOPIC, _bytes({"values": {"pm25": 1, "temperature": 2}}), sensor_id="MS01",
                          device_id="MS01", now=NOW, tz=BOGOTA, conditions="reference")
    assert [r.conditions for r in out] == ["reference", None]
    with pytest.raises(ValueError):
        decode_readings(TOPIC, _bytes({"values": {"pm25": 1}}), sensor_id="MS01", device_id="MS01", now=NOW,
                        tz=BOGOTA, conditions="actual")  # type: ignore[arg-type]


def test_time_without_offset_is_network_local_not_utc() -> None:
    (r,) = run({"time": "2026-03-02T07:15:00", "values": {"pm25": 1}})
    assert r.time == datetime(2026, 3, 2, 12, 15, tzinfo=UTC)
    assert r.time.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize("stamp", ["2026-03-02T12:15:00Z", "2026-03-02T12:15:00+00:00",
                                   "2026-03-02T07:15:00.000-05:00", "2026-03-02 07:15:00-0500"])
def test_time_with_offset(stamp: str) -> None:
    (r,) = run({"time": stamp, "values": {"pm25": 1}})
    assert r.time == datetime(2026, 3, 2, 12, 15, tzinfo=UTC)


@pytest.mark.parametrize("stamp", [1772453700, 1772453700.0, 1772453700000])
def test_time_as_epoch_seconds_or_milliseconds(stamp: float) -> None:
    (r,) = run({"time": stamp, "values": {"pm25": 1}})
    assert r.time == datetime(2026, 3, 2, 12, 15, tzinfo=UTC)
    assert r.time_source == "device"


@pytest.mark.parametrize("doc", [{"values": {"pm25": 1}}, {"time": None, "values": {"pm25": 1}}])
def test_missing_time_uses_receive_time(doc: dict) -> None:
    (r,) = run(doc)
    assert r.time == NOW
    assert r.time_source == "received"


def test_null_values_skipped_and_empty_is_empty() -> None:
    out = run({"values": {"pm25": None, "pm10": 3, "temperature": None}})
    assert [r.variable for r in out] == ["pm10"]
    assert run({"values": {}}) == ()


def test_extra_top_level_keys_ignored() -> None:
    assert len(run({"fw": "1.2", "rssi": -70, "values": {"pm25": 1}})) == 1


@pytest.mark.parametrize(("payload", "expected"), [
    (b"\xff\xfe\x00garbage", "not_json"),
    ("{not json", "not_json"),
    ("", "not_json"),
    ("[" * 100_000 + "]" * 100_000, "too_large"),
    ("[" * 30_000 + "]" * 30_000, "not_json"),  # nesting deeper than the parser allows
    ("[]", "schema"),
    ("42", "schema"),
    ('"values"', "schema"),
    ({"time": "2026-03-02T07:15:00"}, "schema"),
    ({"values": [1, 2]}, "schema"),
    ({"values": None}, "schema"),
    ({"time": "yesterday", "values": {"pm25": 1}}, "bad_time"),
    ({"time": True, "values": {"pm25": 1}}, "bad_time"),
    ({"time": 1e20, "values": {"pm25": 1}}, "bad_time"),
    ({"time": "2026-03-02", "values": {"pm25": 1}}, "bad_time"),
    ({"time": "2026-13-02T07:15:00", "values": {"pm25": 1}}, "bad_time"),
    ({"values": {"pm25": 1, "pm2_5": 2}}, "unknown_variable"),
    ({"values": {"PM25": 1}}, "unknown_variable"),
    ({"values": {"pm25": "12.3"}}, "bad_value"),
    ({"values": {"pm25": True}}, "bad_value"),
    ({"values": {"pm25": [1]}}, "bad_value"),
    ({"values": {"pm25": {"v": 1}}}, "bad_value"),
    ('{"values": {"pm25": NaN}}', "bad_value"),
    ('{"values": {"pm25": Infinity}}', "bad_value"),
    ('{"values": {"pm25": -Infinity}}', "bad_value"),
    ('{"values": {"pm25": 1e999}}', "bad_value"),
    ('{"values": {"pm25": 1' + "0" * 400 + "}}", "bad_value"),
])
def test_rejections(payload: bytes | str | dict, expected: str) -> None:
    assert reason(payload) == expected


def test_unknown_variable_rejects_whole_message_and_names_code() -> None:
    with pytest.raises(PayloadError) as err:
        run({"values": {"pm25": 1, "h2s": 2}})
    assert err.value.reason == "unknown_variable"
    assert "'h2s'" in str(err.value)


def test_bad_value_names_the_code() -> None:
    with pytest.raises(PayloadError, match=r"values\.pm10: expected a number, got 'abc'"):
        run({"values": {"pm10": "abc"}})


def test_size_limit_boundary() -> None:
    body = json.dumps({"values": {"pm25": 1}, "pad": ""}).encode()
    pad = MAX_PAYLOAD_BYTES - len(body)
    exact = json.dumps({"values": {"pm25": 1}, "pad": "x" * pad}).encode()
    assert len(exact) == MAX_PAYLOAD_BYTES
    assert len(run(exact)) == 1
    assert reason(exact[:-1] + b" }") == "too_large"


def test_every_vocabulary_code_decodes_in_its_canonical_unit() -> None:
    out = run({"values": dict.fromkeys(VARIABLES, 1.5)})
    assert {r.variable: r.unit for r in out} == {v.code: v.unit for v in VARIABLES.values()}


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        run({"values": {"pm25": 1}}, now=NOW.replace(tzinfo=None))


# -- fuzzing -------------------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
_CODES = st.sampled_from([*VARIABLES, "pm2_5", "", "PM25"])
_TIMES = st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=30),
    st.datetimes(timezones=st.none() | st.just(UTC) | st.just(timezone(timedelta(hours=5, minutes=30))))
    .map(lambda d: d.isoformat()),
)
_DOCS = st.fixed_dictionaries({}, optional={
    "time": _TIMES,
    "values": st.dictionaries(_CODES, st.none() | st.floats() | st.integers() | st.booleans() | _JSON,
                              max_size=6) | _JSON,
    "extra": _JSON,
})
_BATCHES = st.fixed_dictionaries({"readings": st.lists(_DOCS, max_size=4) | _JSON}, optional={"values": _JSON})


# generating nested documents can be slow on a loaded machine: that is not a decoder failure
_FUZZ = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


def _decodes_or_payload_error(payload: bytes) -> None:
    try:
        out = run(payload)
    except PayloadError as exc:
        assert exc.reason in {"not_json", "schema", "bad_time", "unknown_variable", "bad_value", "too_large"}
        return
    assert isinstance(out, tuple)
    for r in out:
        assert r.time.tzinfo is not None
        assert r.variable in VARIABLES
        assert r.value == r.value and abs(r.value) != float("inf")


@settings(_FUZZ, max_examples=400)
@given(st.binary(max_size=300))
def test_fuzz_bytes(payload: bytes) -> None:
    _decodes_or_payload_error(payload)


@settings(_FUZZ, max_examples=400)
@given(_DOCS)
def test_fuzz_structured(doc: dict) -> None:
    _decodes_or_payload_error(json.dumps(doc, allow_nan=True).encode())


@_FUZZ
@given(_DOCS, st.integers(min_value=0, max_value=200), st.binary(max_size=3))
def test_fuzz_corrupted(doc: dict, cut: int, junk: bytes) -> None:
    payload = json.dumps(doc, allow_nan=True).encode()
    _decodes_or_payload_error(payload[:cut] + junk + payload[cut:])


@settings(_FUZZ, max_examples=200)
@given(_BATCHES)
def test_fuzz_batches(doc: dict) -> None:
    _decodes_or_payload_error(json.dumps(doc, allow_nan=True).encode())
