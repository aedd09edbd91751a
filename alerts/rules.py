"""Alert rules: the pydantic model of the rules file and the level lookup. Pure (parsing text, no file I/O
except reading the rules bundled in this package).

A rule watches one variable's average over one period ('1h', '8h' or '24h' rolling, stamped with its end; see
`alerts.averages`) for every sensor (scope 'sensor': levels are evaluated per station, norms.json
`prevention_alert_emergency.notes`). It has ascending levels; each level's threshold carries its unit, its
source and, where the domain data has one, its verification status. A level is met when ``value > threshold``
(comparison ">", the norm's exceedance rule, an aqnet convention) or ``value >= threshold`` (comparison ">=",
the half-open prevention/alert/emergency bands), always on the unrounded average (norms.json `band_rule`).
An active alert clears only when the value falls below the clear threshold: `clear_below` if given, else
`clear_fraction` × the lowest level's threshold (hysteresis). `min_duration` is the number of consecutive
valid evaluations a level must hold before the alert is raised or escalated. The state machine is
`alerts.state`.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sensors.variables import VARIABLES

__all__ = [
    "ClearThreshold",
    "Level",
    "Period",
    "Rule",
    "RulesError",
    "RulesFile",
    "default_rules",
    "parse_rules",
]

Period = Literal["1h", "8h", "24h"]
Status = Literal["verified_primary", "verified_secondary", "secondary_single", "unverified"]

DEFAULT_RULES_RESOURCE = "default_rules.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Level(_Model):
    """One named level of a rule, e.g. 'prevention' at 38 µg/m³ (Res. 2254/2017)."""

    name: str = Field(min_length=1)
    threshold: float
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)  #: the norm, article and table the number comes from
    comparison: Literal[">", ">="] = ">="
    status: Status | None = None  #: verification status of the number (norms.json legend)

    def met_by(self, value: float) -> bool:
        """True when `value` (unrounded, in `unit`) reaches this level."""
        return value > self.threshold if self.comparison == ">" else value >= self.threshold


class ClearThreshold(_Model):
    """An explicit clear threshold: an active alert resolves when the value is strictly below it."""

    threshold: float
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)


class Rule(_Model):
    """A threshold rule with hysteresis over one variable's average (see the module docstring)."""

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    variable: str
    period: Period
    scope: Literal["sensor"] = "sensor"
    levels: tuple[Level, ...] = Field(min_length=1)
    clear_fraction: float | None = Field(default=None, gt=0, le=1)
    clear_below: ClearThreshold | None = None
    min_duration: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Rule:
        problems: list[str] = []
        if self.variable not in VARIABLES:
            known = ", ".join(sorted(VARIABLES))
            problems.append(f"variable: expected one of {known}, got {self.variable!r}")
        else:
            unit = VARIABLES[self.variable].unit
            for i, lv in enumerate(self.levels):
                if lv.unit != unit:
                    problems.append(f"levels[{i}].unit: expected {unit!r} (canonical unit of "
                                    f"{self.variable}), got {lv.unit!r}")
            if self.clear_below is not None and self.clear_below.unit != unit:
                problems.append(f"clear_below.unit: expected {unit!r}, got {self.clear_below.unit!r}")
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
        if problems:
            raise ValueError(f"rule {self.id!r}: " + "; ".join(problems))
        return self

    @property
    def unit(self) -> str:
        """The unit of every threshold of this rule (the variable's canonical unit)."""
        return self.levels[0].unit

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


def parse_rules(text: str, *, source: str) -> tuple[Rule, ...]:
    """Parse and validate a YAML rules file; RulesError lists every problem as `source: key.path: message`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(source, [f"not valid YAML: {exc}"]) from None
    try:
        return RulesFile.model_validate(data).rules
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
            got = f", got {err['input']!r}" if err["type"] not in ("value_error",) and "input" in err else ""
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{path or '<root>'}: {msg}{got}")
        raise RulesError(source, problems) from None


def default_rules() -> tuple[Rule, ...]:
    """The Res. 2254/2017 rules bundled with aqnet (`alerts/default_rules.yaml`)."""
    res = resources.files(__package__).joinpath(DEFAULT_RULES_RESOURCE)
    return parse_rules(res.read_text(encoding="utf-8"), source=f"alerts/{DEFAULT_RULES_RESOURCE}")
