"""The alert state machine: pending → firing (→ acknowledged) → resolved, with minimum duration, escalation
and hysteresis. Pure: `step` takes the current state, one evaluated average and its time, and returns the new
state and the events it caused; persistence and delivery belong to `alerts.jobs`.

Contract of `step(state, value, valid, now, rule, sensor_id=...)`:
- `now` is the END of the period whose average is evaluated (averages are stamped with their end). A step at
  or before the state's `updated_at` changes nothing, so re-running a job for the same hour is idempotent.
- An invalid average (valid False, value None or not finite) never raises, escalates or clears an alert, and
  does not break or extend a streak: the state is returned unchanged (no alert from invalid data).
- A level is raised after `rule.min_duration` consecutive valid evaluations that all reach it; until then
  the state is `pending` (no event). A pending state lapses (returns None, no event) on a value below every
  level. The raised level is the lowest level held through the whole streak.
- While firing, reaching a higher level for `min_duration` consecutive evaluations escalates the SAME alert
  (one `AlertEscalated` event); the alert keeps its highest level until it resolves (no de-escalation).
- A firing or acknowledged alert resolves only when the value is strictly below `rule.clear_threshold`
  (hysteresis); between that and the lowest level it stays firing.
- A resolved state is history: the next step starts afresh, as from None, and a new episode is a new alert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar, Literal

from alerts.rules import Rule

__all__ = [
    "AlertEscalated",
    "AlertEvent",
    "AlertRaised",
    "AlertResolved",
    "AlertState",
    "AlertStatus",
    "step",
]

AlertStatus = Literal["pending", "firing", "acknowledged", "resolved"]
ACTIVE: frozenset[str] = frozenset({"firing", "acknowledged"})


@dataclass(frozen=True, slots=True)
class AlertState:
    """The state of one alert of one rule at one sensor (persisted by `alerts.jobs` in the `alerts` table)."""

    rule_id: str
    sensor_id: str
    variable: str
    status: AlertStatus
    level: str  #: firing: the level raised or escalated to; pending: the level that would be raised
    threshold: float  #: threshold of `level`, in `unit`
    unit: str
    source: str  #: the source of `threshold` (norm, article, table)
    value: float  #: the last valid value evaluated, in `unit`
    started_at: datetime  #: end of the first period of the streak that raised (or is raising) it
    updated_at: datetime  #: end of the last period evaluated with a valid value
    streak: int = 0  #: consecutive valid evaluations toward `candidate` (pending: toward `level`)
    candidate: str | None = None  #: firing: the higher level an escalation streak holds
    resolved_at: datetime | None = None

    def __post_init__(self) -> None:
        where = f"AlertState {self.rule_id}/{self.sensor_id}"
        for name in ("started_at", "updated_at", "resolved_at"):
            t = getattr(self, name)
            if t is not None and t.tzinfo is None:
                raise ValueError(f"{where}: {name}: expected an aware datetime")
        if self.streak < 0:
            raise ValueError(f"{where}: streak: expected >= 0, got {self.streak}")
        if (self.status == "resolved") != (self.resolved_at is not None):
            raise ValueError(f"{where}: resolved_at: expected a time exactly when resolved")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A transition of an alert, for the history and for delivery. `time` is the evaluated period's end."""

    kind: ClassVar[str] = "event"
    rule_id: str
    sensor_id: str
    variable: str
    level: str
    value: float
    threshold: float  #: the level's threshold (resolved: the clear threshold)
    unit: str
    source: str
    time: datetime


@dataclass(frozen=True, slots=True)
class AlertRaised(AlertEvent):
    """A new alert started firing at `level`."""

    kind: ClassVar[str] = "raised"


@dataclass(frozen=True, slots=True)
class AlertEscalated(AlertEvent):
    """A firing alert moved up from `from_level` to `level` (the same alert, not a new one)."""

    kind: ClassVar[str] = "escalated"
    from_level: str


@dataclass(frozen=True, slots=True)
class AlertResolved(AlertEvent):
    """A firing alert resolved: the value fell below the clear threshold (`threshold`) at last `level`."""

    kind: ClassVar[str] = "resolved"


def _event(cls: type[AlertEvent], state: AlertState, now: datetime, **extra: object) -> AlertEvent:
    return cls(rule_id=state.rule_id, sensor_id=state.sensor_id, variable=state.variable, level=state.level,
               value=state.value, threshold=state.threshold, unit=state.unit, source=state.source, time=now,
               **extra)  # type: ignore[arg-type]


def _at_level(state: AlertState, rule: Rule, index: int) -> AlertState:
    lv = rule.levels[index]
    return replace(state, level=lv.name, threshold=lv.threshold, source=lv.source)


def step(
    state: AlertState | None, value: float | None, valid: bool, now: datetime, rule: Rule, *, sensor_id: str
) -> tuple[AlertState | None, tuple[AlertEvent, ...]]:
    """Advance one alert by one evaluated average (see the module docstring for the contract)."""
    where = f"step {rule.id}/{sensor_id}"
    if now.tzinfo is None:
        raise ValueError(f"{where}: now: expected an aware datetime, got {now.isoformat()}")
    if state is not None and (state.rule_id != rule.id or state.sensor_id != sensor_id):
        raise ValueError(f"{where}: state is for {state.rule_id}/{state.sensor_id}")
    if state is not None and state.status == "resolved":
        state = None
    if state is not None and now <= state.updated_at:
        return state, ()
    if not valid or value is None or not math.isfinite(value):
        return state, ()

    reached = rule.level_index(value)
    min_duration = rule.min_duration

    if state is None or state.status == "pending":
        if reached is None:
            return None, ()  # a pending streak lapses silently; nothing was announced
        if state is None:
            lv = rule.levels[reached]
            pending = AlertState(rule_id=rule.id, sensor_id=sensor_id, variable=rule.variable,
                                 status="pending", level=lv.name, threshold=lv.threshold, unit=rule.unit,
                                 source=lv.source, value=value, started_at=now, updated_at=now, streak=1)
        else:
            held = min(rule.level_named(state.level), reached)
            longer = replace(state, value=value, updated_at=now, streak=state.streak + 1)
            pending = _at_level(longer, rule, held)
        if pending.streak < min_duration:
            return pending, ()
        firing = replace(pending, status="firing", streak=0, candidate=None)
        return firing, (_event(AlertRaised, firing, now),)

    # firing or acknowledged
    if value < rule.clear_threshold:
        resolved = replace(state, status="resolved", value=value, updated_at=now, resolved_at=now, streak=0,
                           candidate=None)
        return resolved, (_event(AlertResolved, replace(resolved, threshold=rule.clear_threshold), now),)
    current = rule.level_named(state.level)
    if reached is None or reached <= current:
        return replace(state, value=value, updated_at=now, streak=0, candidate=None), ()
    held = reached if state.candidate is None else min(rule.level_named(state.candidate), reached)
    streak = state.streak + 1 if state.candidate is not None else 1
    if streak < min_duration:
        candidate = rule.levels[held].name
        return replace(state, value=value, updated_at=now, streak=streak, candidate=candidate), ()
    moved = replace(state, status="firing", value=value, updated_at=now, streak=0, candidate=None)
    escalated = _at_level(moved, rule, held)
    return escalated, (_event(AlertEscalated, escalated, now, from_level=state.level),)
