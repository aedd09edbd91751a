"""storage.live_network's pure part: MQTT devices nobody would hear, and the plausible ranges of a network."""

from __future__ import annotations

from sensors.modbus.profile import load_profile
from sensors.network import bundled_network
from sensors.sensor import Device, Sensor
from storage.live_network import network_ranges, unsubscribed_devices

NETWORK = bundled_network()
KEN = next(s for s in NETWORK if s.id == "KEN")
MS01 = next(s for s in NETWORK if s.id == "MS01")


def test_unsubscribed_devices_are_the_mqtt_topics_no_filter_matches() -> None:
    odd = Sensor("ODD", "odd", "microsensor", 4.6, -74.1,
                 devices=(Device("ODD", "ODD", "mqtt", "aqnet-json", ("pm25",), topic="city/ODD/pm"),))
    filters = ["aqnet/+/readings", "airrohr/+/data"]
    assert unsubscribed_devices([MS01, odd, KEN], filters) == list(odd.devices)
    assert unsubscribed_devices([odd], [*filters, "city/#"]) == []


def test_ranges_come_from_the_loaded_profiles_of_modbus_devices_only() -> None:
    profiles = {name: load_profile(name) for name in {d.profile for d in KEN.devices}}
    ranges = network_ranges([KEN, MS01], profiles)
    nox = next(d for d in KEN.devices if d.profile == "sim-nox")
    assert ranges[(nox.id, "no2")] == profiles["sim-nox"].variable("no2").range
    assert {device for device, _ in ranges} == {d.id for d in KEN.devices}
    assert not any(device == "MS01" for device, _ in ranges)
    # a profile that did not load gives no ranges (its devices are not polled either)
    assert not any(device == nox.id for device, _ in network_ranges([KEN], {}))
