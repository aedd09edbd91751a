"""Identity and channel attribution of decoded messages (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sensors.mqtt.directory import DeviceDirectory, UnknownDeviceError, topic_matches
from sensors.mqtt.payloads import DecodedMessage, DecodedValue
from sensors.network import MicrosensorLink, bundled_network

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)


def _value(channel: str, variable: str, value: float, unit: str = "µg/m³") -> DecodedValue:
    return DecodedValue(channel=channel, variable=variable, value=value, unit=unit, time=NOW,
                        time_source="device", conditions="local" if variable.startswith("pm") else None)


NETWORK = bundled_network(microsensor_links={
    "MS06": MicrosensorLink("purpleair", hardware_serial="AA:BB:CC:00:00:02", devices=(("a", ("a",)), ("b", ("b",)))),
    "MS07": MicrosensorLink("airrohr", hardware_serial="1234567"),
    "MS08": MicrosensorLink("airrohr", hardware_serial="7654321",
                            devices=(("sds", ("SDS011", "BME280")), ("pms", ("PMS",)))),
})
DIRECTORY = DeviceDirectory(NETWORK)


@pytest.mark.parametrize(("filter_", "topic", "matches"), [
    ("aqnet/+/readings", "aqnet/MS01/readings", True),
    ("aqnet/+/readings", "aqnet/MS01/readings/x", False),
    ("aqnet/#", "aqnet/MS01/readings", True),
    ("$share/aqnet/aqnet/+/readings", "aqnet/MS01/readings", True),
    ("airrohr/+/data", "aqnet/MS01/readings", False),
    ("a/b", "a", False),
])
def test_topic_matches(filter_: str, topic: str, matches: bool) -> None:
    assert topic_matches(filter_, topic) is matches


def test_aqnet_json_identity_comes_from_the_topic() -> None:
    resolved = DIRECTORY.resolve("aqnet/MS01/readings", DecodedMessage(None, (_value("", "pm25", 12.0),)), NOW)
    assert [(r.sensor_id, r.device_id, r.variable, r.value) for r in resolved.readings] == [
        ("MS01", "MS01", "pm25", 12.0)]
    assert resolved.readings[0].received_at == NOW and resolved.readings[0].conditions == "local"


def test_unknown_topic_and_unknown_hardware_are_refused_with_their_reason() -> None:
    with pytest.raises(UnknownDeviceError) as topic_err:
        DIRECTORY.resolve("aqnet/XX99/readings", DecodedMessage(None, (_value("", "pm25", 1.0),)), NOW)
    assert topic_err.value.reason == "unknown_sensor" and topic_err.value.sensor_id == "XX99"
    with pytest.raises(UnknownDeviceError) as hw_err:
        DIRECTORY.resolve("airrohr/1/data", DecodedMessage("999", (_value("SDS011", "pm25", 1.0),)), NOW)
    assert hw_err.value.reason == "unknown_device" and "'999'" in str(hw_err.value)


def test_hardware_serial_is_case_insensitive_and_a_single_device_takes_every_channel() -> None:
    msg = DecodedMessage("1234567", (_value("SDS011", "pm10", 4.0), _value("DHT22", "temperature", 28.9, "°C")))
    resolved = DIRECTORY.resolve("airrohr/MS07/data", msg, NOW)
    assert {(r.device_id, r.variable) for r in resolved.readings} == {("MS07", "pm10"), ("MS07", "temperature")}
    pa = DIRECTORY.resolve("purpleair/MS06/data", DecodedMessage("aa:bb:cc:00:00:02", ()), NOW)
    assert pa.sensor_id == "MS06"


def test_an_unpadded_mac_matches_its_zero_padded_registration_both_ways() -> None:
    """Issue 24: "real PurpleAir firmware prints MAC octets without zero padding (an octet such as `9` rather than
    `09`) ... Accept one or two digits per octet and normalise to the zero-padded form, in decoding and in registry
    matching."""
    unpadded = DecodedMessage("aa:bb:cc:0:0:2", ())
    assert DIRECTORY.resolve("purpleair/MS06/data", unpadded, NOW).sensor_id == "MS06"
    registered_unpadded = DeviceDirectory(bundled_network(microsensor_links={
        "MS06": MicrosensorLink("purpleair", hardware_serial="AA:BB:CC:0:0:2", devices=(("a", ("a",)),))}))
    padded = DecodedMessage("aa:bb:cc:00:00:02", ())
    assert registered_unpadded.resolve("purpleair/MS06/data", padded, NOW).sensor_id == "MS06"
    assert registered_unpadded.resolve("purpleair/MS06/data", unpadded, NOW).sensor_id == "MS06"


def test_each_channel_goes_to_its_device_payload_wide_values_to_the_first_and_the_rest_is_counted() -> None:
    msg = DecodedMessage("aa:bb:cc:00:00:02", (
        _value("a", "pm25", 10.0), _value("b", "pm25", 11.0), _value("", "temperature", 80.0, "°F"),
        _value("a/cf_1", "pm25", 15.0)))
    resolved = DIRECTORY.resolve("purpleair/MS06/data", msg, NOW)
    assert [(r.device_id, r.variable, r.value) for r in resolved.readings] == [
        ("MS06-a", "pm25", 10.0), ("MS06-b", "pm25", 11.0), ("MS06-a", "temperature", 80.0)]
    assert resolved.unmapped == ("a/cf_1",)
    split = DIRECTORY.resolve("airrohr/MS08/data", DecodedMessage("7654321", (
        _value("SDS011", "pm10", 1.0), _value("PMS", "pm10", 2.0), _value("BME280", "pressure", 75000, "Pa"))), NOW)
    assert [(r.device_id, r.value) for r in split.readings] == [("MS08-sds", 1.0), ("MS08-pms", 2.0),
                                                                ("MS08-sds", 75000)]


def test_a_device_taking_every_channel_keeps_one_value_per_variable() -> None:
    msg = DecodedMessage("1234567", (_value("SDS011", "pm10", 4.0), _value("PMS", "pm10", 5.0)))
    resolved = DIRECTORY.resolve("airrohr/MS07/data", msg, NOW)
    assert [(r.device_id, r.value) for r in resolved.readings] == [("MS07", 4.0)]
    assert resolved.unmapped == ("PMS",)


def test_self_identifying_format_without_a_serial_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="MS09: format airrohr identifies devices by hardware_serial"):
        bundled_network(microsensor_links={"MS09": MicrosensorLink("airrohr")})


# ------------------------------------------------------------------------------ identity bound to the topic (16)


@pytest.mark.parametrize(("topic", "hardware_id", "claimed"), [
    ("airrohr/MS08/data", "1234567", "MS07"),  # MS08's login, MS07's chip id in the payload
    ("purpleair/MS07/data", "aa:bb:cc:00:00:02", "MS06"),  # MS07's login, MS06's MAC
    ("airrohr/1234567/data", "1234567", "MS07"),  # a chip id as the topic level: not a login, not MS07's topic
])
def test_a_payload_naming_another_sensor_than_its_topic_is_refused(topic: str, hardware_id: str,
                                                                     claimed: str) -> None:
    owner = topic.split("/")[1]
    with pytest.raises(UnknownDeviceError) as exc:
        DIRECTORY.resolve(topic, DecodedMessage(hardware_id, (_value("SDS011", "pm25", 1.0),)), NOW)
    assert exc.value.reason == "identity_mismatch"
    assert exc.value.sensor_id == owner  # the sender (the login the broker tied to the topic), not the victim
    assert f"sensor {claimed}" in exc.value.detail and repr(topic) in exc.value.detail


def test_the_topic_level_is_the_sensor_for_both_self_identifying_formats() -> None:
    msg = DecodedMessage("1234567", (_value("SDS011", "pm25", 1.0),))
    assert DIRECTORY.resolve("airrohr/MS07/data", msg, NOW).sensor_id == "MS07"
    # not an MQTT format topic (the HTTP intake's "POST /intake/airrohr ..."): no topic identity to compare
    assert DIRECTORY.resolve("POST /intake/airrohr X-Sensor esp8266-1234567", msg, NOW).sensor_id == "MS07"
