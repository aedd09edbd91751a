"""Scenario files: what a simulated run does — seed, speed, duration, episodes, faults, scale. Pure (parsing and
validation; reading the file is the caller's `load_scenario`).

A scenario is a YAML file (`simulators/scenarios/<name>.yaml`, or any path) validated with pydantic, every
error naming the file and the key (`faults.yaml: faults[2].for: expected a duration like 90s, 30m, 2h or 1d,
got 'soon'`). Times inside a scenario are relative to its start (`at: 2h, for: 30m`), so one file replays the
same way whenever it is run: `Scenario.fault_plan(start)` and `Scenario.episodes(start)` turn them into the
absolute `simulators.faults.FaultSpec`s and `simulators.signals.Episode`s of one run. The values themselves are
deterministic from `seed` (`simulators.signals.CitySignals`).

    seed: 7
    speed: 120               # simulated seconds per real second (the default of `aqnet up --scenario`)
    duration: 1d             # simulated span: an accelerated run starts this long before now
    poll_interval: 60s       # stations polled every simulated minute
    publish_interval: 60s    # microsensors publish every simulated minute
    episodes:
      - {variable: pm25, at: 6h, for: 10h, centre: [4.63, -74.17], radius_km: 6, factor: 3}
    faults:
      - {kind: modbus_hang, sensors: [KEN], devices: [KEN-nox], at: 2h, for: 30m}
      - {kind: spike, sensors: [MS03], variable: pm25, at: 3h, for: 1h, params: {factor: 8}}
    scale: {stations: 0, microsensors: 0}   # synthetic SYN-S0001…, SYN-M0001… added to the bundled network
    rtu_station: null        # a station code served over Modbus RTU on a pseudo-terminal pair
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from sensors.sensor import Sensor
from sensors.variables import VARIABLES
from simulators.faults import MESSAGE_ONLY, MODBUS_ONLY, FaultKind, FaultPlan, FaultSpec
from simulators.signals import Episode

__all__ = ["SCENARIOS_DIR", "Scenario", "ScenarioError", "available_scenarios", "load_scenario", "parse_duration",
           "scenario_from_text"]

#: the scenarios shipped with aqnet
SCENARIOS_DIR = Path(__file__).with_name("scenarios")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[smhd])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")

#: the params each fault kind understands (anything else is a typo, refused)
FAULT_PARAMS: dict[FaultKind, frozenset[str]] = {
    FaultKind.SPIKE: frozenset({"factor", "every_s", "width_s"}),
    FaultKind.NEGATIVE: frozenset({"value"}),
    FaultKind.OUT_OF_ORDER: frozenset({"delay_s"}),
    FaultKind.CLOCK_SKEW: frozenset({"skew_s"}),
    FaultKind.MODBUS_EXCEPTION: frozenset({"code"}),
}


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number of seconds, or text like "90s", "30m", "2h", "1d", "1h30m"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 30m, 2h or 1d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value.strip()))
    else:
        raise ValueError(f"expected a duration like 90s, 30m, 2h or 1d, got {value!r}")
    if seconds < 0:
        raise ValueError(f"expected a duration >= 0, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EpisodeModel(_Model):
    """A spatially correlated episode: `variable` × `factor` inside an area, during [at, at + for).

    The area is a circle (`centre` [lat, lon] and `radius_km`, default 5 km), or `localities` (reference.json
    names), or the whole city when neither is given; `ramp` is the build-up and clearing time at each end.
    """

    variable: str
    at: Duration
    for_: Duration = Field(alias="for")
    centre: tuple[float, float] | None = None  #: (lat, lon) of the area's centre
    radius_km: Annotated[float, Field(gt=0)] | None = None
    localities: list[str] = []  #: or the localities (reference.json) it covers
    factor: Annotated[float, Field(gt=0)] = 2.0
    ramp: Duration = 3600.0

    @model_validator(mode="after")
    def _area(self) -> EpisodeModel:
        if self.variable not in VARIABLES:
            raise ValueError(f"variable: unknown variable {self.variable!r}; expected a VARIABLES.md code")
        if self.centre is not None and self.localities:
            raise ValueError("give either centre (with radius_km) or localities, not both")
        if self.radius_km is not None and self.centre is None:
            raise ValueError("radius_km needs a centre: [lat, lon]")
        if not self.for_ > 0:
            raise ValueError("for: expected a duration > 0")
        return self


class FaultModel(_Model):
    """One fault of a scenario; see simulators.faults.FaultKind for the kinds and their params."""

    kind: FaultKind
    at: Duration
    for_: Duration = Field(alias="for")
    sensors: list[str] = []  #: sensor ids; empty: every sensor
    devices: list[str] = []  #: device ids (Modbus faults on one analyser); empty: every device
    variable: str | None = None
    params: dict[str, float | int | str] = {}

    @model_validator(mode="after")
    def _check(self) -> FaultModel:
        if not self.for_ > 0:
            raise ValueError("for: expected a duration > 0")
        if self.variable is not None and self.variable not in VARIABLES:
            raise ValueError(f"variable: unknown variable {self.variable!r}; expected a VARIABLES.md code")
        unknown = set(self.params) - FAULT_PARAMS.get(self.kind, frozenset())
        if unknown:
            known = ", ".join(sorted(FAULT_PARAMS.get(self.kind, ()))) or "none"
            raise ValueError(f"params: {self.kind} takes {known}; unknown {', '.join(sorted(unknown))}")
        return self


class ScaleModel(_Model):
    stations: Annotated[int, Field(ge=0)] = 0  #: synthetic stations SYN-S0001…
    microsensors: Annotated[int, Field(ge=0)] = 0  #: synthetic microsensors SYN-M0001…


class ScenarioModel(_Model):
    description: str = ""
    seed: int = 1
    speed: Annotated[float, Field(ge=1)] = 1.0
    duration: Duration = 86400.0
    poll_interval: Duration = 60.0
    publish_interval: Duration = 60.0
    episodes: list[EpisodeModel] = []
    faults: list[FaultModel] = []
    scale: ScaleModel = ScaleModel()
    rtu_station: str | None = None

    @model_validator(mode="after")
    def _positive(self) -> ScenarioModel:
        for name in ("duration", "poll_interval", "publish_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a duration > 0")
        return self


class ScenarioError(ValueError):
    """An invalid scenario; `errors` holds one `file: key.path: message` line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario (times relative to its start, in simulated seconds)."""

    name: str
    source: str  #: the file it came from (for error messages)
    model: ScenarioModel

    @property
    def seed(self) -> int:
        return self.model.seed

    @property
    def speed(self) -> float:
        return self.model.speed

    @property
    def duration_s(self) -> float:
        return self.model.duration

    @property
    def poll_interval_s(self) -> float:
        return self.model.poll_interval

    @property
    def publish_interval_s(self) -> float:
        return self.model.publish_interval

    @property
    def scale(self) -> tuple[int, int]:
        """(synthetic stations, synthetic microsensors)."""
        return self.model.scale.stations, self.model.scale.microsensors

    @property
    def rtu_station(self) -> str | None:
        return self.model.rtu_station

    def with_overrides(self, *, seed: int | None = None, speed: float | None = None,
                       stations: int | None = None, microsensors: int | None = None) -> Scenario:
        """This scenario with the command line's options in place of the file's."""
        changes: dict[str, Any] = {}
        if seed is not None:
            changes["seed"] = seed
        if speed is not None:
            if not speed >= 1:
                raise ScenarioError([f"{self.source}: speed: expected >= 1, got {speed}"])
            changes["speed"] = speed
        if stations is not None or microsensors is not None:
            changes["scale"] = ScaleModel(
                stations=self.model.scale.stations if stations is None else stations,
                microsensors=self.model.scale.microsensors if microsensors is None else microsensors)
        return replace(self, model=self.model.model_copy(update=changes))

    def fault_plan(self, start: datetime) -> FaultPlan:
        """The faults with absolute times, for a run whose simulated time begins at `start`."""
        return FaultPlan(FaultSpec(kind=f.kind, start=start + timedelta(seconds=f.at),
                                   end=start + timedelta(seconds=f.at + f.for_), sensors=frozenset(f.sensors),
                                   variable=f.variable, params=dict(f.params), devices=frozenset(f.devices))
                         for f in self.model.faults)

    def episodes(self, start: datetime) -> list[Episode]:
        """The episodes with absolute times, for a run whose simulated time begins at `start`."""
        return [Episode(variable=e.variable, start=start + timedelta(seconds=e.at),
                        end=start + timedelta(seconds=e.at + e.for_), factor=e.factor, centre=e.centre,
                        radius_km=(e.radius_km or 5.0) if e.centre is not None else None,
                        localities=frozenset(e.localities), ramp_s=e.ramp)
                for e in self.model.episodes]

    def check(self, network: Sequence[Sensor]) -> None:
        """Cross-check the scenario against the network it runs on; raise ScenarioError listing every problem."""
        errors: list[str] = []
        by_id = {s.id: s for s in network}
        localities = {s.locality for s in network}
        for i, f in enumerate(self.model.faults):
            where = f"{self.source}: faults[{i}]"
            for sid in f.sensors:
                sensor = by_id.get(sid)
                if sensor is None:
                    errors.append(f"{where}.sensors: no sensor {sid!r} in the network")
                    continue
                if f.kind in MODBUS_ONLY and sensor.kind != "station":
                    errors.append(f"{where}.sensors: {f.kind} is a Modbus fault; {sid} is a {sensor.kind}")
                if f.kind in MESSAGE_ONLY and sensor.kind != "microsensor":
                    errors.append(f"{where}.sensors: {f.kind} is a message fault; {sid} is a {sensor.kind}")
                if f.variable is not None and f.variable not in sensor.variables:
                    errors.append(f"{where}.variable: {sid} does not measure {f.variable} (it measures "
                                  f"{', '.join(sensor.variables)})")
            devices = {d.id for s in (by_id[x] for x in f.sensors if x in by_id) for d in s.devices} \
                if f.sensors else {d.id for s in network for d in s.devices}
            for did in f.devices:
                if did not in devices:
                    errors.append(f"{where}.devices: no device {did!r} in {', '.join(f.sensors) or 'the network'}")
        for i, e in enumerate(self.model.episodes):
            for loc in e.localities:
                if loc not in localities:
                    errors.append(f"{self.source}: episodes[{i}].localities: no locality {loc!r} in the network "
                                  f"(expected one of {', '.join(sorted(x for x in localities if x))})")
        rtu = self.model.rtu_station
        if rtu is not None and (rtu not in by_id or by_id[rtu].kind != "station"):
            errors.append(f"{self.source}: rtu_station: no station {rtu!r} in the network")
        if errors:
            raise ScenarioError(errors)


def scenario_from_text(text: str, *, name: str, source: str) -> Scenario:
    """Parse and validate a scenario's YAML text; raise ScenarioError naming `source` and each key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{source}: not valid YAML: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError([f"{source}: expected a mapping of scenario keys, got {type(data).__name__}"])
    try:
        model = ScenarioModel.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ""
            for part in err["loc"]:
                where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"{source}: {where or '(root)'}: {msg}")
        raise ScenarioError(lines) from None
    return Scenario(name, source, model)


def available_scenarios(directory: Path | None = None) -> list[str]:
    """The names of the scenarios in `directory` (default: the shipped ones)."""
    return sorted(p.stem for p in (directory or SCENARIOS_DIR).glob("*.yaml"))


def load_scenario(name_or_path: str | Path, *, directory: Path | None = None) -> Scenario:
    """A shipped scenario by name (`normal`, `pm25-episode`, `faults`), or a scenario file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = (directory or SCENARIOS_DIR) / f"{name_or_path}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        known = ", ".join(available_scenarios(directory))
        raise ScenarioError([f"{path}: cannot read scenario ({exc.strerror}); shipped scenarios: {known}"]) from None
    return scenario_from_text(text, name=path.stem, source=str(path))
