"""Alert rules: the pydantic model of the rules file and the level lookup. Pure (parsing text, no file I/O
except reading the rules bundled in this package and the bundled domain data for the index categories).

A rule has a `kind`:
- ``threshold``: one variable's average over one `period` — '1h', '8h' or '24h' rolling (stamped with its end,
  see `alerts.averaging.averages`) or 'day' (the calendar-day average in the network's time zone) — against levels
  in the variable's canonical unit (µg/m³ at 25 °C and 760 mmHg for the norm's pollutants);
- ``index``: an index VALUE (`index` 'iboca' in unit "IBOCA", 'us_aqi' in unit "AQI") against category levels
  named by the index's categories (e.g. "Moderado", "Regular"); `variable` is the index's pollutant (pm25 for
  IBOCA) or None for the overall (dominant) index;
- equipment kinds ``no_data`` (minutes since the sensor's last reading), ``flatline`` (minutes the variable
  stayed within `flatline_tolerance`) and ``device_fault`` (minutes the readings are flagged DEVICE_INVALID),
  levels in unit "min", and ``zero_span`` (the latest zero/span check's worse error as a percentage of its
  acceptance limit, `ingest.zero_span_eval`; levels in unit "%", 100 being the limit), always for the technicians.

`sensors` says whose data (reference stations, microsensors: indicative, or all for equipment rules), `scope`
whether one alert is kept per sensor, per locality or for the network (the value of a locality / the network is
the max over its sensors' valid values: the evaluation's business, `alerts.rules.evaluate`). Every level carries its
unit, its source and, where the domain data has one, its verification status; its `severity` and, for IBOCA, the
`action` level the resolution associates with the category (informational only).

A level is met when ``value > threshold`` (comparison ">", the norm's exceedance rule, an aqnet convention) or
``value >= threshold`` (comparison ">=", the half-open prevention/alert/emergency bands), always on the
unrounded value (norms.json `band_rule`). An active alert clears only when the value falls below the clear
threshold: `clear_below` if given, else `clear_fraction` × the lowest level's threshold (hysteresis).
`min_duration` is the number of consecutive valid evaluations a level must hold before the alert is raised or
escalated. `escalate_unacknowledged_after_min` overrides the configured delay after which a firing alert nobody
acknowledged is escalated (None: the configuration's default; 0: never). The state machine is `alerts.rules.state`.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sensors.domain import load
from sensors.variables import VARIABLES

__all__ = [
    "EQUIPMENT_KINDS",
    "INDEX_UNITS",
    "SEVERITIES",
    "Audience",
    "ClearThreshold",
    "IndexName",
    "Level",
    "Period",
    "Rule",
    "RuleKind",
    "RulesError",
    "RulesFile",
    "Scope",
    "SensorsSelection",
    "Severity",
    "Status",
    "default_rules",
    "index_categories",
    "parse_rules",
]

Audience = Literal["officers", "technicians"]  #: who an alert is for (routing, the notice)
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")  #: ascending
Period = Literal["1h", "8h", "24h", "day"]
RuleKind = Literal["threshold", "index", "no_data", "flatline", "device_fault", "zero_span"]
IndexName = Literal["iboca", "us_aqi"]
Scope = Literal["sensor", "locality", "network"]
SensorsSelection = Literal["reference", "microsensor", "all"]
Status = Literal["verified_primary", "verified_secondary", "secondary_single", "unverified"]

EQUIPMENT_KINDS: frozenset[str] = frozenset({"no_data", "flatline", "device_fault", "zero_span"})
INDEX_UNITS: dict[str, str] = {"iboca": "IBOCA", "us_aqi": "AQI"}
MINUTES = "min"  #: the unit of the timed equipment rules' levels (no_data, flatline, device_fault)
PERCENT_OF_LIMIT = "%"  #: the unit of a zero_span rule's levels: the check's error as % of its acceptance limit

DEFAULT_RULES_RESOURCE = "default_rules.yaml"


def index_categories(index: str) -> tuple[str, ...]:
    """The category names of `index` in ascending order (indices.json: IBOCA `name_es`, US AQI `name`)."""
    data = load("indices")
    if index == "iboca":
        return tuple(c["name_es"] for c in data["iboca"]["categories"])
    if index == "us_aqi":
        return tuple(c["name"] for c in data["us_epa_aqi"]["categories"])
    raise ValueError(f"unknown index {index!r}: expected one of {sorted(INDEX_UNITS)}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Level(_Model):
    """One named level of a rule, e.g. 'prevention' at 38 µg/m³ (Res. 2254/2017), severity 'warning'."""

    name: str = Field(min_length=1)
    threshold: float
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)  #: the norm, article and table the number comes from
    comparison: Literal[">", ">="] = ">="
    status: Status | None = None  #: verification status of the number (norms.json legend)
    severity: Severity = "warning"  #: how urgent an alert at this level is (routing, Alertmanager label)
    action: str | None = Field(default=None, min_length=1)  #: IBOCA: the associated action level (information)

    def met_by(self, value: float) -> bool:
        """True when `value` (unrounded, in `unit`) reaches this level."""
        return value > self.threshold if self.comparison == ">" else value >= self.threshold


class ClearThreshold(_Model):
    """An explicit clear threshold: an active alert resolves when the value is strictly below it."""

    threshold: float
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)


class Rule(_Model):
    """A rule with levels and hysteresis over one kind of evaluated value (see the module docstring)."""

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    kind: RuleKind = "threshold"
    audience: Audience = "officers"  #: default: officers, technicians for the equipment kinds
    sensors: SensorsSelection = "reference"
    variable: str | None = None
    period: Period | None = None
    index: IndexName | None = None
    scope: Scope = "sensor"
    levels: tuple[Level, ...] = Field(min_length=1)
    clear_fraction: float | None = Field(default=None, gt=0, le=1)
    clear_below: ClearThreshold | None = None
    min_duration: int = Field(default=1, ge=1)
    escalate_unacknowledged_after_min: float | None = Field(default=None, ge=0)
    flatline_tolerance: float | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _default_audience(cls, data: Any) -> Any:
        if isinstance(data, dict) and "audience" not in data and data.get("kind") in EQUIPMENT_KINDS:
            return {**data, "audience": "technicians"}
        return data

    @model_validator(mode="after")
    def _check(self) -> Rule:
        problems = [*self._check_kind(), *self._check_levels()]
        if problems:
            raise ValueError("\n".join(f"rule {self.id!r}: {p}" for p in problems))
        return self

    def _check_kind(self) -> list[str]:
        problems: list[str] = []
        kind = self.kind
        if self.variable is not None and self.variable not in VARIABLES:
            problems.append(f"variable: expected one of {', '.join(sorted(VARIABLES))}, got {self.variable!r}")
        if kind == "threshold" and self.variable is None:
            problems.append("variable: required for kind 'threshold'")
        if kind == "threshold" and self.period is None:
            problems.append("period: required for kind 'threshold' (1h, 8h, 24h or day)")
        if kind != "threshold" and self.period is not None:
            problems.append(f"period: only for kind 'threshold', got {self.period!r} for kind {kind!r}")
        if kind == "index" and self.index is None:
            problems.append("index: required for kind 'index' (iboca or us_aqi)")
        if kind != "index" and self.index is not None:
            problems.append(f"index: only for kind 'index', got {self.index!r} for kind {kind!r}")
        if self.index == "iboca" and self.variable not in (None, "pm25"):
            problems.append(f"variable: IBOCA is defined for pm25 only (indices.json), got {self.variable!r}")
        if kind in EQUIPMENT_KINDS and self.audience != "technicians":
            problems.append(f"audience: kind {kind!r} is an equipment rule, expected 'technicians', "
                            f"got {self.audience!r}")
        if kind not in EQUIPMENT_KINDS and self.sensors == "all":
            problems.append(f"sensors: 'all' only for the equipment kinds, got it for kind {kind!r} "
                            "(reference and microsensor data are alerted on apart)")
        if kind != "flatline" and self.flatline_tolerance is not None:
            problems.append(f"flatline_tolerance: only for kind 'flatline', got it for kind {kind!r}")
        return problems

    def _expected_unit(self) -> str | None:
        if self.kind == "zero_span":
            return PERCENT_OF_LIMIT
        if self.kind in EQUIPMENT_KINDS:
            return MINUTES
        if self.kind == "index":
            return INDEX_UNITS.get(self.index or "")
        return VARIABLES[self.variable].unit if self.variable in VARIABLES else None

    def _check_levels(self) -> list[str]:
        problems: list[str] = []
        unit = self._expected_unit()
        if unit is not None:
            what = {"index": f"the {self.index} index", "threshold": f"canonical unit of {self.variable}",
                    "zero_span": "percent of the check's acceptance limit"}.get(self.kind, "minutes, equipment rules")
            for i, lv in enumerate(self.levels):
                if lv.unit != unit:
                    problems.append(f"levels[{i}].unit: expected {unit!r} ({what}), got {lv.unit!r}")
            if self.clear_below is not None and self.clear_below.unit != unit:
                problems.append(f"clear_below.unit: expected {unit!r}, got {self.clear_below.unit!r}")
        if self.kind == "index" and self.index is not None:
            categories = index_categories(self.index)
            for i, lv in enumerate(self.levels):
                if lv.name not in categories:
                    problems.append(f"levels[{i}].name: expected a {self.index} category "
                                    f"({', '.join(categories)}), got {lv.name!r}")
        if self.kind in EQUIPMENT_KINDS:
            for i, lv in enumerate(self.levels):
                if lv.threshold <= 0:
                    problems.append(f"levels[{i}].threshold: expected > 0 {'minutes' if unit == MINUTES else unit}, "
                                    f"got {lv.threshold}")
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            problems.append(f"levels: names must be unique, got {names}")
        for i in range(1, len(self.levels)):
            if not self.levels[i].threshold > self.levels[i - 1].threshold:
                problems.append(f"levels[{i}].threshold: expected above levels[{i - 1}] "
                                f"({self.levels[i - 1].threshold}), got {self.levels[i].threshold}")
        if (self.clear_fraction is None) == (self.clear_below is None):
            problems.append("clear_fraction / clear_below: expected exactly one of them")
        elif self.clear_below is not None and self.clear_below.threshold > self.levels[0].threshold:
            problems.append(f"clear_below.threshold: expected <= the lowest level "
                            f"({self.levels[0].threshold}), got {self.clear_below.threshold}")
        return problems

    @property
    def unit(self) -> str:
        """The unit of every threshold of this rule (canonical unit, 'IBOCA', 'AQI' or 'min')."""
        return self.levels[0].unit

    @property
    def indicative(self) -> bool:
        """True for rules on microsensor data: indicative, not compliance data, routed apart."""
        return self.sensors == "microsensor"

    @property
    def equipment(self) -> bool:
        """True for the technicians' equipment kinds (no_data, flatline, device_fault, zero_span)."""
        return self.kind in EQUIPMENT_KINDS

    @property
    def clear_threshold(self) -> float:
        """An active alert resolves when the value is strictly below this (hysteresis)."""
        if self.clear_below is not None:
            return self.clear_below.threshold
        assert self.clear_fraction is not None  # guaranteed by _check
        return self.clear_fraction * self.levels[0].threshold

    def level_index(self, value: float) -> int | None:
        """Index of the highest level `value` reaches, or None when it reaches none."""
        reached = None
        for i, lv in enumerate(self.levels):
            if lv.met_by(value):
                reached = i
        return reached

    def level_named(self, name: str) -> int:
        """Index of the level called `name` (ValueError naming the rule otherwise)."""
        for i, lv in enumerate(self.levels):
            if lv.name == name:
                return i
        names = [lv.name for lv in self.levels]
        raise ValueError(f"rule {self.id!r}: no level named {name!r}; expected one of {names}")


class RulesFile(_Model):
    """The rules file: a list of rules with unique ids."""

    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique(self) -> RulesFile:
        ids = [r.id for r in self.rules]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"rules: duplicate ids {dup}")
        return self


class RulesError(ValueError):
    """The rules file is invalid (permanent: fix the file). `problems` lists every error found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + f"\n{source}: ".join(problems))
        self.source = source
        self.problems = problems


def _rule_id(data: Any, loc: tuple[int | str, ...]) -> str | None:
    """The id written in the rule that error location `loc` points into, if any."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(data, dict):
        rules = data.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rule_id = rules[loc[1]].get("id")
            return str(rule_id) if rule_id is not None else None
    return None


def _problems(exc: ValidationError, data: Any) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
        rule_id = _rule_id(data, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error":
            for line in msg.split("\n"):  # a rule's cross-checks: one line per problem, 'rule 'x': key: ...'
                problems.append(f"{path or '<root>'}: {line}")
            continue
        got = f", got {err['input']!r}" if "input" in err else ""
        named = f" (rule {rule_id!r})" if rule_id is not None else ""
        problems.append(f"{path or '<root>'}{named}: {msg}{got}")
    return problems


def parse_rules(text: str, *, source: str) -> tuple[Rule, ...]:
    """Parse and validate a YAML rules file; RulesError lists every problem as `source: key.path: message`
    (naming the rule id)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(source, [f"not valid YAML: {exc}"]) from None
    try:
        return RulesFile.model_validate(data).rules
    except ValidationError as exc:
        raise RulesError(source, _problems(exc, data)) from None


def default_rules() -> tuple[Rule, ...]:
    """The rules bundled with aqnet (`alerts/rules/default_rules.yaml`: Res. 2254/2017, IBOCA, equipment)."""
    res = resources.files(__package__).joinpath(DEFAULT_RULES_RESOURCE)
    return parse_rules(res.read_text(encoding="utf-8"), source=f"alerts/rules/{DEFAULT_RULES_RESOURCE}")
