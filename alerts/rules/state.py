"""The alert state machine: pending → firing ⇄ acknowledged → resolved, with minimum duration, escalation,
hysteresis, escalation for want of an acknowledgement and manual resolution. Pure: every function takes the
current state and a time and returns the new state and the events it caused; persistence is `alerts.rules.evaluate`'s
and `storage.alerts_store`'s, delivery `alerts.delivery.dispatch`'s.

Contract of `step(state, value, valid, now, rule, sensor_id=...)` (`sensor_id` is the SCOPE KEY: a sensor id,
a locality name or 'network'):
- `now` is the END of the period whose value is evaluated (averages are stamped with their end). A step at
  or before the state's `updated_at` changes nothing (whatever the state, resolved included), so re-running a
  job for the same hour is idempotent.
- An invalid value (valid False, value None or not finite) never raises, escalates or clears an alert, and
  does not break or extend a streak: the state is returned unchanged (no alert from invalid data).
- A level is raised after `rule.min_duration` consecutive valid evaluations that all reach it; until then
  the state is `pending` (no event). A pending state lapses (returns None, no event) on a value below every
  level. The raised level is the lowest level held through the whole streak.
- While firing or acknowledged, reaching a higher level for `min_duration` consecutive evaluations escalates
  the SAME alert (one `AlertEscalated` event); an acknowledged alert goes back to `firing` (a worse level needs
  a new acknowledgement). The alert keeps its highest level until it resolves (no de-escalation).
- A firing or acknowledged alert resolves only when the value is strictly below `rule.clear_threshold`
  (hysteresis); between that and the lowest level it stays active.
- A resolved state is history: the next step starts afresh, as from None, and a new episode is a new alert —
  EXCEPT a state resolved by an officer (`manual`): while the values stay at or above the clear threshold it
  stays resolved (no new episode, no event; value and updated_at follow); the first valid value below the
  clear threshold forgets it (returns None, no event), so the next episode is a new alert.

`overdue(state, now, after_min)` yields one `AlertUnacknowledged` when a firing alert's current level was
reached `after_min` minutes or more before `now` and nobody acknowledged it — once per level (an escalation
resets it); the caller records it with `mark_unacknowledged`. `acknowledge` and `resolve_manually` are the
officer's transitions; an illegal one raises ValueError naming the alert and its state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from alerts.rules.model import Rule, Severity

__all__ = [
    "ACTIVE",
    "AlertAcknowledged",
    "AlertEscalated",
    "AlertEvent",
    "AlertRaised",
    "AlertResolved",
    "AlertState",
    "AlertStatus",
    "AlertUnacknowledged",
    "acknowledge",
    "mark_unacknowledged",
    "overdue",
    "resolve_manually",
    "step",
]

AlertStatus = Literal["pending", "firing", "acknowledged", "resolved"]
ACTIVE: frozenset[str] = frozenset({"firing", "acknowledged"})


@dataclass(frozen=True, slots=True)
class AlertState:
    """The state of one alert of one rule at one scope (persisted in the `alerts` table)."""

    rule_id: str
    sensor_id: str  #: the scope key (sensor id, locality name or 'network')
    variable: str | None  #: None: an equipment rule on any variable
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
    severity: Severity = "warning"  #: severity of `level` (rules file)
    level_since: datetime | None = None  #: when `level` was raised or escalated to (None: `started_at`)
    acknowledged_at: datetime | None = None  #: when the current level was acknowledged (None while firing)
    acknowledged_by: str | None = None
    escalated_at: datetime | None = None  #: when it was last escalated for want of an acknowledgement
    manual: bool = False  #: resolved by an officer (kept until a value below the clear threshold)
    resolved_by: str | None = None  #: the officer who resolved it (manual)

    def __post_init__(self) -> None:
        where = f"AlertState {self.rule_id}/{self.sensor_id}"
        for name in ("started_at", "updated_at", "resolved_at", "level_since", "acknowledged_at", "escalated_at"):
            t = getattr(self, name)
            if t is not None and t.tzinfo is None:
                raise ValueError(f"{where}: {name}: expected an aware datetime")
        if self.streak < 0:
            raise ValueError(f"{where}: streak: expected >= 0, got {self.streak}")
        if (self.status == "resolved") != (self.resolved_at is not None):
            raise ValueError(f"{where}: resolved_at: expected a time exactly when resolved")
        if self.status == "acknowledged" and self.acknowledged_at is None:
            raise ValueError(f"{where}: acknowledged_at: expected a time when acknowledged")
        if self.manual and self.status != "resolved":
            raise ValueError(f"{where}: manual: only for a resolved alert, got status {self.status!r}")

    @property
    def reached_at(self) -> datetime:
        """When the current level was raised or escalated to."""
        return self.level_since if self.level_since is not None else self.started_at


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """A transition of an alert, for the history and for delivery. `time` is the evaluated period's end for the
    rule's transitions, the officer's or the job's time for the others."""

    kind: ClassVar[str] = "event"
    rule_id: str
    sensor_id: str  #: the scope key
    variable: str | None
    level: str
    value: float
    threshold: float  #: the level's threshold (resolved by the rule: the clear threshold)
    unit: str
    source: str
    time: datetime
    severity: Severity  #: the level's severity


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRaised(AlertEvent):
    """A new alert started firing at `level`."""

    kind: ClassVar[str] = "raised"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEscalated(AlertEvent):
    """An active alert moved up from `from_level` to `level` (the same alert, not a new one)."""

    kind: ClassVar[str] = "escalated"
    from_level: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertUnacknowledged(AlertEvent):
    """A firing alert nobody acknowledged within `after_min` minutes of reaching `level`: escalate it."""

    kind: ClassVar[str] = "unacknowledged"
    after_min: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertAcknowledged(AlertEvent):
    """An officer (`actor`) acknowledged the firing alert at `level`."""

    kind: ClassVar[str] = "acknowledged"
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertResolved(AlertEvent):
    """An alert resolved: by the rule (`actor` None: the value fell below the clear threshold, `threshold`) or
    by an officer (`actor`: `threshold` is the level's)."""

    kind: ClassVar[str] = "resolved"
    actor: str | None = None


def _event(cls: type[AlertEvent], state: AlertState, now: datetime, **extra: object) -> AlertEvent:
    return cls(rule_id=state.rule_id, sensor_id=state.sensor_id, variable=state.variable, level=state.level,
               value=state.value, threshold=state.threshold, unit=state.unit, source=state.source, time=now,
               severity=state.severity, **extra)


def _at_level(state: AlertState, rule: Rule, index: int) -> AlertState:
    lv = rule.levels[index]
    return replace(state, level=lv.name, threshold=lv.threshold, source=lv.source, severity=lv.severity)


def _aware(where: str, name: str, t: datetime) -> None:
    if t.tzinfo is None:
        raise ValueError(f"{where}: {name}: expected an aware datetime, got {t.isoformat()}")


def step(
    state: AlertState | None, value: float | None, valid: bool, now: datetime, rule: Rule, *, sensor_id: str
) -> tuple[AlertState | None, tuple[AlertEvent, ...]]:
    """Advance one alert by one evaluated value (see the module docstring for the contract)."""
    where = f"step {rule.id}/{sensor_id}"
    _aware(where, "now", now)
    if state is not None and (state.rule_id != rule.id or state.sensor_id != sensor_id):
        raise ValueError(f"{where}: state is for {state.rule_id}/{state.sensor_id}")
    if state is not None and now <= state.updated_at:
        return state, ()
    if state is not None and state.status == "resolved" and not state.manual:
        state = None
    if not valid or value is None or not math.isfinite(value):
        return state, ()

    if state is not None and state.status == "resolved":  # resolved by an officer: wait for the clear level
        if value < rule.clear_threshold:
            return None, ()
        return replace(state, value=value, updated_at=now), ()

    reached = rule.level_index(value)
    min_duration = rule.min_duration

    if state is None or state.status == "pending":
        if reached is None:
            return None, ()  # a pending streak lapses silently; nothing was announced
        if state is None:
            lv = rule.levels[reached]
            pending = AlertState(rule_id=rule.id, sensor_id=sensor_id, variable=rule.variable,
                                 status="pending", level=lv.name, threshold=lv.threshold, unit=rule.unit,
                                 source=lv.source, value=value, started_at=now, updated_at=now, streak=1,
                                 severity=lv.severity)
        else:
            held = min(rule.level_named(state.level), reached)
            longer = replace(state, value=value, updated_at=now, streak=state.streak + 1)
            pending = _at_level(longer, rule, held)
        if pending.streak < min_duration:
            return pending, ()
        firing = replace(pending, status="firing", streak=0, candidate=None, level_since=now)
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
    moved = replace(state, status="firing", value=value, updated_at=now, streak=0, candidate=None,
                    level_since=now, acknowledged_at=None, acknowledged_by=None)
    escalated = _at_level(moved, rule, held)
    return escalated, (_event(AlertEscalated, escalated, now, from_level=state.level),)


def overdue(state: AlertState | None, now: datetime, after_min: float) -> AlertUnacknowledged | None:
    """The `AlertUnacknowledged` due at `now` for a firing alert nobody acknowledged within `after_min` minutes
    of reaching its level (once per level), else None; `after_min` 0 means never."""
    if state is None:
        return None
    _aware(f"overdue {state.rule_id}/{state.sensor_id}", "now", now)
    if after_min < 0 or not math.isfinite(after_min):
        raise ValueError(f"overdue {state.rule_id}/{state.sensor_id}: after_min: expected >= 0, got {after_min}")
    if after_min == 0 or state.status != "firing":
        return None
    reached = state.reached_at
    if state.escalated_at is not None and state.escalated_at >= reached:
        return None  # already escalated at this level
    if now - reached < timedelta(minutes=after_min):
        return None
    event = _event(AlertUnacknowledged, state, now, after_min=after_min)
    assert isinstance(event, AlertUnacknowledged)
    return event


def mark_unacknowledged(state: AlertState, event: AlertUnacknowledged) -> AlertState:
    """The state after recording `event` (from `overdue`): `escalated_at` = the event's time."""
    if (event.rule_id, event.sensor_id) != (state.rule_id, state.sensor_id):
        raise ValueError(f"mark_unacknowledged {state.rule_id}/{state.sensor_id}: event is for "
                         f"{event.rule_id}/{event.sensor_id}")
    return replace(state, escalated_at=event.time)


def _check_actor(where: str, by: str, at: datetime) -> None:
    if not by.strip():
        raise ValueError(f"{where}: by: expected the officer's name, got {by!r}")
    _aware(where, "at", at)


def acknowledge(state: AlertState, by: str, at: datetime) -> tuple[AlertState, AlertAcknowledged]:
    """An officer `by` acknowledges a firing alert at `at` (ValueError when it is not firing)."""
    where = f"acknowledge alert {state.rule_id}/{state.sensor_id}"
    _check_actor(where, by, at)
    if state.status != "firing":
        raise ValueError(f"{where}: illegal in state {state.status!r} (only a firing alert can be acknowledged)")
    acked = replace(state, status="acknowledged", acknowledged_at=at, acknowledged_by=by)
    event = _event(AlertAcknowledged, acked, at, actor=by)
    assert isinstance(event, AlertAcknowledged)
    return acked, event


def resolve_manually(state: AlertState, by: str, at: datetime) -> tuple[AlertState, AlertResolved]:
    """An officer `by` resolves a firing or acknowledged alert at `at` (ValueError otherwise); the state is
    kept (`manual`) until a value below the clear threshold, so the same episode is not raised again."""
    where = f"resolve alert {state.rule_id}/{state.sensor_id}"
    _check_actor(where, by, at)
    if state.status not in ACTIVE:
        raise ValueError(f"{where}: illegal in state {state.status!r} (only a firing or acknowledged alert "
                         "can be resolved)")
    resolved = replace(state, status="resolved", resolved_at=at, manual=True, resolved_by=by, streak=0,
                       candidate=None)
    event = _event(AlertResolved, resolved, at, actor=by)
    assert isinstance(event, AlertResolved)
    return resolved, event
