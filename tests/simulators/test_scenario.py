"""Scenario files: parsing, errors naming the file and key, the shipped scenarios, determinism from the seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sensors.network import bundled_network
from simulators.faults import FaultKind
from simulators.network_sim import SimulatedNetwork, synthetic_network
from simulators.scenario import (
    Scenario,
    ScenarioError,
    available_scenarios,
    load_scenario,
    parse_duration,
    scenario_from_text,
)
from simulators.signals import CitySignals

START = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # 00:00 in Bogotá, a Monday
NETWORK = bundled_network()


def parse(text: str) -> Scenario:
    return scenario_from_text(text, name="t", source="t.yaml")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400),
                                               ("1h30m", 5400), ("0.5h", 1800), (45, 45), (2.5, 2.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "2 hours", "h", "-5m", "", True, -3])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_shipped_scenarios_load_and_fit_the_bundled_network() -> None:
    assert {"normal", "pm25-episode", "faults"} <= set(available_scenarios())
    for name in available_scenarios():
        scenario = load_scenario(name)
        scenario.check(NETWORK)
        assert scenario.name == name and scenario.duration_s > 0


def test_the_faults_scenario_has_every_kind() -> None:
    kinds = {f.kind for f in load_scenario("faults").model.faults}
    assert kinds == set(FaultKind)


def test_times_are_relative_to_the_start() -> None:
    s = parse("faults: [{kind: modbus_hang, sensors: [KEN], devices: [KEN-nox], at: 2h, for: 30m}]\n"
              "episodes: [{variable: pm25, at: 6h, for: 10h, localities: [Kennedy], factor: 3}]")
    (f,) = s.fault_plan(START).faults
    assert (f.kind, f.start, f.end) == (FaultKind.MODBUS_HANG, START + timedelta(hours=2),
                                        START + timedelta(hours=2, minutes=30))
    assert f.sensors == {"KEN"} and f.devices == {"KEN-nox"}
    (e,) = s.episodes(START)
    assert (e.start, e.end, e.localities, e.factor) == (START + timedelta(hours=6), START + timedelta(hours=16),
                                                        {"Kennedy"}, 3.0)
    assert s.episodes(START + timedelta(days=1))[0].start == START + timedelta(days=1, hours=6)


def test_defaults_and_overrides() -> None:
    s = parse("{}")
    assert (s.seed, s.speed, s.duration_s, s.poll_interval_s, s.publish_interval_s, s.scale) == \
        (1, 1.0, 86400.0, 60.0, 60.0, (0, 0))
    o = s.with_overrides(seed=9, speed=240, stations=3)
    assert (o.seed, o.speed, o.scale) == (9, 240, (3, 0))
    assert s.seed == 1  # the original is unchanged
    with pytest.raises(ScenarioError, match="speed: expected >= 1"):
        s.with_overrides(speed=0.5)


@pytest.mark.parametrize(("text", "message"), [
    ("seed: x", "t.yaml: seed: Input should be a valid integer"),
    ("speed: 0.5", "t.yaml: speed: Input should be greater than or equal to 1"),
    ("duration: soon", "t.yaml: duration: expected a duration like 90s, 30m, 2h or 1d, got 'soon'"),
    ("colour: red", "t.yaml: colour: unknown key"),
    ("faults: [{kind: melt, at: 1h, for: 1h}]", "t.yaml: faults[0].kind: Input should be"),
    ("faults: [{kind: spike, at: 1h, for: soon}]", "t.yaml: faults[0].for: expected a duration"),
    ("faults: [{kind: spike, at: 1h, for: 1h, params: {factr: 3}}]",
     "t.yaml: faults[0]: params: spike takes every_s, factor, width_s; unknown factr"),
    ("faults: [{kind: dropout, at: 1h, for: 0s}]", "t.yaml: faults[0]: for: expected a duration > 0"),
    ("faults: [{kind: dropout, at: 1h, for: 1h, variable: smog}]", "t.yaml: faults[0]: variable: unknown"),
    ("episodes: [{variable: pm25, at: 1h, for: 1h, centre: [4.6, -74.1], localities: [Bosa]}]",
     "t.yaml: episodes[0]: give either centre"),
    ("episodes: [{variable: pm25, at: 1h, for: 1h, radius_km: 3}]", "t.yaml: episodes[0]: radius_km needs"),
    ("scale: {stations: -1}", "t.yaml: scale.stations: Input should be greater than or equal to 0"),
    ("- a list", "t.yaml: expected a mapping of scenario keys, got list"),
    ("seed: [", "t.yaml: not valid YAML"),
])
def test_errors_name_the_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse(text)
    assert any(line.startswith(message) for line in info.value.errors), info.value.errors


def test_every_error_is_listed_at_once() -> None:
    with pytest.raises(ScenarioError) as info:
        parse("seed: x\nspeed: 0\nfaults: [{kind: melt, at: 1h, for: 1h}]")
    assert len(info.value.errors) == 3


def test_check_against_the_network() -> None:
    s = parse("faults:\n"
              "  - {kind: garbage, sensors: [KEN], at: 1h, for: 1h}\n"
              "  - {kind: modbus_hang, sensors: [MS01], at: 1h, for: 1h}\n"
              "  - {kind: dropout, sensors: [NOPE], at: 1h, for: 1h}\n"
              "  - {kind: modbus_hang, sensors: [KEN], devices: [USM-nox], at: 1h, for: 1h}\n"
              "  - {kind: negative, sensors: [MS01], variable: no2, at: 1h, for: 1h}\n"
              "episodes: [{variable: pm25, at: 1h, for: 1h, localities: [Atlantis]}]\n"
              "rtu_station: MS01\n")
    with pytest.raises(ScenarioError) as info:
        s.check(NETWORK)
    text = str(info.value)
    for part in ("faults[0].sensors: garbage is a message fault; KEN is a station",
                 "faults[1].sensors: modbus_hang is a Modbus fault; MS01 is a microsensor",
                 "faults[2].sensors: no sensor 'NOPE'", "faults[3].devices: no device 'USM-nox' in KEN",
                 "faults[4].variable: MS01 does not measure no2", "episodes[0].localities: no locality 'Atlantis'",
                 "rtu_station: no station 'MS01'"):
        assert f"t.yaml: {part}" in text


def test_unknown_scenario_names_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="shipped scenarios: .*faults.*normal"):
        load_scenario("nope")
    own = tmp_path / "mine.yaml"
    own.write_text("seed: 3\n")
    assert load_scenario(own).seed == 3 and load_scenario(str(own)).name == "mine"


def _values(scenario: Scenario, start: datetime) -> list[float]:
    signals = CitySignals(scenario.seed, episodes=scenario.episodes(start))
    net = SimulatedNetwork(NETWORK, signals, lambda: start, plan=scenario.fault_plan(start))
    return [net.value(s.id, v, start + timedelta(minutes=m))
            for s in NETWORK if s.kind == "station" for v in s.variables for m in range(0, 24 * 60, 181)]


def test_a_scenario_is_deterministic_from_its_seed() -> None:
    s = load_scenario("pm25-episode")
    assert _values(s, START) == _values(load_scenario("pm25-episode"), START)
    assert _values(s.with_overrides(seed=12), START) != _values(s, START)


def test_the_episode_raises_pm25_only_inside_its_window_and_area() -> None:
    s = load_scenario("pm25-episode")
    with_episode = CitySignals(s.seed, episodes=s.episodes(START))
    without = CitySignals(s.seed)
    inside, outside = START + timedelta(hours=11), START + timedelta(hours=20)
    for sid in ("KEN", "CSE", "CBV", "TUN"):  # the south-west
        assert with_episode.value(sid, "pm25", inside) >= 2.5 * without.value(sid, "pm25", inside)
        assert with_episode.value(sid, "pm25", outside) == without.value(sid, "pm25", outside)
    for sid in ("USQ", "GYR", "SUB", "MAM"):  # the north and the centre
        assert with_episode.value(sid, "pm25", inside) == without.value(sid, "pm25", inside)


def test_synthetic_network_for_scale_mode() -> None:
    net = synthetic_network(3, 2, ports={"SYN-S0002": 15020})
    assert [s.id for s in net] == ["SYN-S0001", "SYN-S0002", "SYN-S0003", "SYN-M0001", "SYN-M0002"]
    assert {d.port for d in net[1].devices} == {15020}
    assert [d.unit_id for d in net[0].devices] == list(range(1, len(net[0].devices) + 1))
    assert net[3].devices[0].topic == "aqnet/SYN-M0001/readings"
    assert all(4.5 < s.lat < 4.8 and -74.2 < s.lon < -74.0 for s in net)
    assert synthetic_network(3, 2) == synthetic_network(3, 2)  # deterministic placement
    with pytest.raises(ValueError, match=">= 0"):
        synthetic_network(-1, 0)
