"""Configuration errors name the file and the key path; every problem is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from aqnet.config import ConfigError, load_settings, settings_from_dict

MINIMAL = {"database": {"url": "postgresql://aqnet@127.0.0.1:1/aqnet"}, "mqtt": {"url": "mqtt://127.0.0.1:1"}}


def test_minimal_config_gets_documented_defaults() -> None:
    s = settings_from_dict(MINIMAL)
    assert s.network.timezone == "America/Bogota"
    assert s.mqtt.topics == ["aqnet/+/readings", "airrohr/+/data", "purpleair/+/data"]
    assert s.modbus.poll_interval_s == 10.0


def test_every_problem_is_listed_with_file_and_key_path(tmp_path: Path) -> None:
    path = tmp_path / "aqnet.yaml"
    path.write_text("database: {url: x}\nmqtt: {url: 'http://x'}\nnetwork:\n  timezone: Mars/Olympus\n"
                    "  stations: {USQ: {host: h, port: 70000}}\nbogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    lines = err.value.errors
    assert f"{path}: mqtt.url: expected mqtt://host:port or mqtts://host:port, got 'http://x'" in lines
    assert f"{path}: network.timezone: unknown time zone 'Mars/Olympus'" in lines
    assert any(line.startswith(f"{path}: network.stations.USQ.port: ") for line in lines)
    assert f"{path}: bogus: unknown key" in lines
    assert len(lines) == 4


def test_missing_file_and_bad_yaml_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("database: [\n")
    with pytest.raises(ConfigError, match=f"{bad}: not valid YAML"):
        load_settings(bad)


def test_station_links_tcp_rtu_over_tcp_and_serial() -> None:
    from aqnet.daemon import Daemon

    s = settings_from_dict({**MINIMAL, "network": {"stations": {
        "USQ": {"host": "10.0.0.1", "port": 502},
        "KEN": {"protocol": "modbus-rtu-tcp", "host": "10.0.0.2", "port": 4001, "poll_interval_s": 30},
        "TUN": {"protocol": "modbus-rtu", "serial_port": "/dev/ttyUSB0", "baudrate": 9600, "parity": "N"}}}})
    network = {sensor.id: sensor for sensor in Daemon(s).network}
    assert {d.protocol for d in network["USQ"].devices} == {"modbus-tcp"}
    assert {(d.protocol, d.host, d.port) for d in network["KEN"].devices} == {("modbus-rtu-tcp", "10.0.0.2", 4001)}
    tun = network["TUN"].devices
    assert {(d.protocol, d.serial_port, d.baudrate, d.parity) for d in tun} == {
        ("modbus-rtu", "/dev/ttyUSB0", 9600, "N")}
    assert len({d.unit_id for d in tun}) == len(tun) > 1  # several units on one bus, one id each


def test_station_link_errors_name_the_station() -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict({**MINIMAL, "network": {"stations": {
            "USQ": {"protocol": "modbus-rtu", "host": "10.0.0.1", "port": 502},
            "KEN": {"protocol": "modbus-rtu-tcp", "serial_port": "/dev/ttyUSB1"}}}}, "a.yaml")
    assert any(line.startswith("a.yaml: network.stations.USQ: ") and "modbus-rtu needs serial_port" in line
               for line in err.value.errors)
    assert any(line.startswith("a.yaml: network.stations.KEN: ") and "needs host and port" in line
               for line in err.value.errors)


def _zero_span(**section: object) -> dict[str, object]:
    return {**MINIMAL, "zero_span": section}


CHECK = {"sensor": "KEN", "device": "KEN-o3", "variable": "o3", "at": "01:00", "zero_min": 15, "span_min": 15,
         "purge_min": 20, "span_value": 400, "unit": "ppb"}


def test_zero_span_checks_become_schedules_in_the_network_zone() -> None:
    from zoneinfo import ZoneInfo

    s = settings_from_dict(_zero_span(checks=[CHECK, {**CHECK, "device": "KEN-so2", "variable": "so2",
                                                      "at": "23:30", "every_days": 2}]))
    first, second = s.zero_span.schedules(ZoneInfo(s.network.timezone))
    assert (first.at_minute, first.every_days, first.span_value) == (60, 1, 400.0)
    assert (second.device_id, second.at_minute, second.every_days) == ("KEN-so2", 23 * 60 + 30, 2)


@pytest.mark.parametrize(("section", "message"), [
    ({"checks": [{**CHECK, "at": "25:00"}]}, "zero_span.checks.0.at"),
    ({"checks": [{**CHECK, "variable": "ozone"}]}, "zero_span.checks.0.variable"),
    ({"checks": [{**CHECK, "variable": "pm25", "unit": "µg/m³"}]}, "no acceptance limits for pm25"),
    ({"checks": [{**CHECK, "unit": "ppm"}]}, "unit 'ppm' differs from the o3 limits' unit 'ppb'"),
    ({"limits": {"o3x": {"zero": 1, "span_pct": 5, "unit": "ppb", "source": "SOP-7"}}}, "unknown vocabulary"),
    ({"checks": [{**CHECK, "zero_min": 800, "span_min": 700}]}, "shorter than the schedule"),
])
def test_zero_span_errors_name_the_check(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_dict(_zero_span(**section))
