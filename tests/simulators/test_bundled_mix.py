"""sensors.network: the bundled microsensors' models, payload formats and hardware serials, and that the daemon's
Intake built from the same network attributes what every simulated microsensor sends."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sensors.mqtt.subscriber import Intake
from sensors.network import (
    MICROSENSOR_MODELS,
    MicrosensorLink,
    bundled_microsensor_links,
    bundled_network,
    model_of,
)
from simulators.microsensor import SimulatedMicrosensor, microsensors_of
from simulators.signals import CitySignals

BOGOTA = ZoneInfo("America/Bogota")
T = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def test_every_microsensor_has_a_model_format_and_identity() -> None:
    links = bundled_microsensor_links()
    assert len(links) == 25
    formats = Counter(link.format for link in links.values())
    assert set(formats) == {"aqnet-json", "airrohr", "purpleair"} and min(formats.values()) >= 5
    assert sum(1 for link in links.values() if link.transport == "http") >= 2
    assert all(link.format == "airrohr" for link in links.values() if link.transport == "http")
    for sid, link in links.items():
        assert model_of(link).name == link.model and model_of(link).format == link.format, sid
        if link.format == "airrohr":
            assert re.fullmatch(r"[1-9][0-9]{0,7}", link.hardware_serial or ""), sid  # decimal ESP8266 chip id
        elif link.format == "purpleair":
            assert re.fullmatch(r"84:f3:eb(:[0-9a-f]{2}){3}", link.hardware_serial or ""), sid
        else:
            assert link.hardware_serial is None
    serials = [link.hardware_serial for link in links.values() if link.hardware_serial]
    assert len(serials) == len(set(serials))
    # the mix is fixed: the sensors other tests publish aqnet JSON for stay aqnet boards
    assert all(links[f"MS{i:02d}"].format == "aqnet-json" for i in range(1, 11))
    assert bundled_microsensor_links() == links


def test_network_devices_follow_the_links() -> None:
    network = {s.id: s for s in bundled_network()}
    links = bundled_microsensor_links()
    for sid, link in links.items():
        devices = network[sid].devices
        assert {d.protocol for d in devices} == {link.transport}
        assert {d.profile for d in devices} == {link.format}
        assert devices[0].primary == network[sid].variables
    pa = next(sid for sid, link in links.items() if link.format == "purpleair")
    a, b = network[pa].devices
    assert (a.id, a.channels, b.id, b.channels) == (pa, ("a", "bme"), f"{pa}-b", ("b",))
    assert b.variables == ("pm25", "pm10") and b.primary == ()


def test_caller_links_override_the_bundled_ones() -> None:
    network = {s.id: s for s in bundled_network(microsensor_links={"MS12": MicrosensorLink()})}
    assert network["MS12"].devices[0].profile == "aqnet-json"
    assert network["MS12"].devices[0].topic == "aqnet/MS12/readings"


def test_model_must_match_format() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        model_of(MicrosensorLink("airrohr", hardware_serial="1", model="purpleair-pa-ii"))
    assert set(MICROSENSOR_MODELS) >= {"aqnet-board", "airrohr-sds011-bme280", "purpleair-pa-ii"}


def test_intake_of_the_bundled_network_attributes_every_simulated_message() -> None:
    """What the daemon builds from the bundled network decodes and attributes what each microsensor sends."""
    network = bundled_network()
    intake = Intake(network, tz=BOGOTA)
    signals = CitySignals(4)
    seen: set[str] = set()
    for sensor in microsensors_of(network):
        sim = SimulatedMicrosensor(sensor, signals, seed=4)
        for k in range(3):
            t = T + timedelta(minutes=k)
            (message,) = sim.step(t)
            fmt = "airrohr" if message.transport == "http" else None
            where = message.topic if message.transport == "mqtt" else \
                f"POST /intake/airrohr (X-Sensor {dict(message.headers)['X-Sensor']})"
            resolved = intake.resolve(where, message.payload, None, fmt=fmt, received_at=t + timedelta(seconds=1))
            assert resolved.sensor_id == sensor.id
            variables = {r.variable for r in resolved.readings}
            assert {"pm25", "pm10", "temperature", "relativehumidity"} <= variables, sensor.id
            times = {r.time for r in resolved.readings}
            assert times == {t} if sim.format != "airrohr" else {t + timedelta(seconds=1)}
            seen.add(sim.format + "/" + sim.transport)
    assert seen == {"aqnet-json/mqtt", "airrohr/mqtt", "airrohr/http", "purpleair/mqtt"}
