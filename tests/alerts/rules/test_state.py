"""Tests for alerts.rules.state: min_duration, escalation of the same alert, hysteresis, invalid data, acknowledgement,
escalation for want of an acknowledgement, manual resolution; hypothesis properties over random sequences."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.rules.model import default_rules, parse_rules
from alerts.rules.state import (
    AlertAcknowledged,
    AlertEscalated,
    AlertRaised,
    AlertResolved,
    AlertUnacknowledged,
    acknowledge,
    mark_unacknowledged,
    overdue,
    resolve_manually,
    step,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
PM25 = next(r for r in default_rules() if r.id == "pm25-24h-levels")  # 38 / 56 / 151, clear < 34.2
LIMIT = next(r for r in default_rules() if r.id == "pm25-day-limit")  # > 37, clear < 33.3

RULE2 = parse_rules("""
rules:
  - id: r2
    variable: pm25
    period: 1h
    min_duration: 2
    clear_fraction: 0.5
    levels:
      - {name: low, threshold: 10, unit: µg/m³, source: test}
      - {name: mid, threshold: 20, unit: µg/m³, source: test}
      - {name: high, threshold: 30, unit: µg/m³, source: test, severity: critical}
""", source="test")[0]


def run(rule, values, *, state=None, start=T0, sensor="KEN"):
    """Feed (value, valid) or value items hour by hour; return the final state and all events."""
    events = []
    for i, item in enumerate(values):
        value, valid = item if isinstance(item, tuple) else (item, True)
        state, ev = step(state, value, valid, start + i * H, rule, sensor_id=sensor)
        events.extend(ev)
    return state, events


# ------------------------------------------------------------------------------------------------ step

def test_below_every_level_stays_quiet():
    assert run(PM25, [10.0, 37.9, 33.0]) == (None, [])


def test_raise_at_the_level_reached_and_carry_unit_source_and_severity():
    state, events = run(PM25, [45.0])
    assert state.status == "firing" and state.level == "prevention" and state.started_at == T0
    assert state.level_since == T0 and state.severity == "warning"
    (ev,) = events
    assert isinstance(ev, AlertRaised) and ev.kind == "raised"
    assert (ev.level, ev.value, ev.threshold, ev.unit, ev.sensor_id, ev.rule_id, ev.severity) == (
        "prevention", 45.0, 38.0, "µg/m³", "KEN", PM25.id, "warning")
    assert "Res. 2254/2017" in ev.source and ev.time == T0


def test_limit_is_strict_greater():
    assert run(LIMIT, [37.0]) == (None, [])
    state, events = run(LIMIT, [37.1])
    assert state.level == "limit" and len(events) == 1


def test_escalation_is_the_same_alert_and_carries_the_new_severity():
    state, events = run(PM25, [40.0, 60.0, 160.0])
    assert [type(e) for e in events] == [AlertRaised, AlertEscalated, AlertEscalated]
    assert [(e.from_level, e.level, e.severity) for e in events[1:]] == [
        ("prevention", "alert", "critical"), ("alert", "emergency", "critical")]
    assert state.level == "emergency" and state.started_at == T0 and state.threshold == 151
    assert state.level_since == T0 + 2 * H


def test_no_deescalation_and_hysteresis_before_resolving():
    # 0.9 × 38 = 34.2: 35 is below every level but above the clear threshold → still firing
    state, events = run(PM25, [60.0, 45.0, 35.0, 34.3])
    assert [e.kind for e in events] == ["raised"] and state.status == "firing" and state.level == "alert"
    assert state.value == 34.3
    state, events = run(PM25, [34.1], state=state, start=T0 + 4 * H)
    (ev,) = events
    assert isinstance(ev, AlertResolved) and ev.level == "alert" and ev.threshold == pytest.approx(34.2)
    assert ev.actor is None and ev.severity == "critical"
    assert state.status == "resolved" and state.resolved_at == T0 + 4 * H and not state.manual


def test_after_resolution_a_new_episode_is_a_new_alert():
    state, _ = run(PM25, [40.0, 20.0])
    assert state.status == "resolved"
    state, events = run(PM25, [40.0], state=state, start=T0 + 2 * H)
    assert [e.kind for e in events] == ["raised"]
    assert state.status == "firing" and state.started_at == T0 + 2 * H and state.resolved_at is None


@pytest.mark.parametrize("bad", [(500.0, False), (None, False), (None, True), (float("nan"), True)])
def test_invalid_values_never_raise(bad):
    assert run(PM25, [bad, bad]) == (None, [])


@pytest.mark.parametrize("bad", [(0.0, False), (None, False), (float("nan"), True), (float("inf"), True)])
def test_invalid_values_never_clear_or_escalate(bad):
    firing, _ = run(PM25, [40.0])
    state, events = run(PM25, [bad, (500.0, False)], state=firing, start=T0 + H)
    assert state == firing and events == []


def test_min_duration_needs_consecutive_valid_evaluations():
    state, events = run(RULE2, [25.0])
    assert state.status == "pending" and events == []
    state, events = run(RULE2, [25.0, 5.0, 25.0])  # broken streak: pending lapsed then restarted
    assert state.status == "pending" and state.started_at == T0 + 2 * H and events == []
    state, events = run(RULE2, [35.0, 15.0])  # the level held through the whole streak is raised
    assert state.status == "firing" and [e.level for e in events] == ["low"] and state.started_at == T0
    assert state.level_since == T0 + H  # the raise happened at the second evaluation


def test_invalid_evaluation_neither_breaks_nor_extends_a_streak():
    state, events = run(RULE2, [25.0, (None, False), 25.0])
    assert [e.kind for e in events] == ["raised"] and state.level == "mid"
    state, _ = run(RULE2, [25.0, (None, False)])
    assert state.status == "pending" and state.streak == 1


def test_escalation_also_needs_min_duration():
    state, events = run(RULE2, [15.0, 15.0, 35.0])
    assert state.level == "low" and state.candidate == "high" and [e.kind for e in events] == ["raised"]
    state, events = run(RULE2, [15.0, 15.0, 35.0, 25.0])
    assert state.level == "mid" and [e.kind for e in events] == ["raised", "escalated"]
    state, events = run(RULE2, [15.0, 15.0, 35.0, 12.0, 35.0])
    assert state.level == "low" and state.candidate == "high" and len(events) == 1


def test_same_period_twice_is_idempotent():
    state, _ = run(PM25, [40.0])
    again, events = step(state, 200.0, True, T0, PM25, sensor_id="KEN")
    assert again == state and events == ()
    pending, _ = run(RULE2, [25.0])
    again, events = step(pending, 25.0, True, T0, RULE2, sensor_id="KEN")
    assert again == pending and events == ()


def test_wrong_state_or_naive_time_is_refused():
    state, _ = run(PM25, [40.0])
    with pytest.raises(ValueError, match="state is for"):
        step(state, 40.0, True, T0 + H, PM25, sensor_id="OTHER")
    with pytest.raises(ValueError, match="aware"):
        step(None, 40.0, True, datetime(2026, 1, 1), PM25, sensor_id="KEN")


def test_equipment_rule_has_no_variable_and_minutes():
    rule = next(r for r in default_rules() if r.id == "station-no-data")
    state, events = run(rule, [5.0, 31.0, 40.0, 3.0])
    assert [e.kind for e in events] == ["raised", "resolved"]
    assert events[0].variable is None and events[0].unit == "min" and state.variable is None


# ------------------------------------------------------------------------------------ acknowledgement

def test_acknowledge_records_who_and_when():
    firing, _ = run(PM25, [40.0])
    at = T0 + 5 * M
    acked, ev = acknowledge(firing, "ana", at)
    assert (acked.status, acked.acknowledged_at, acked.acknowledged_by) == ("acknowledged", at, "ana")
    assert isinstance(ev, AlertAcknowledged) and ev.kind == "acknowledged"
    assert (ev.actor, ev.time, ev.level, ev.severity) == ("ana", at, "prevention", "warning")
    assert acked.updated_at == firing.updated_at  # the next evaluation is not skipped


def test_acknowledged_alert_escalates_back_to_firing_and_resolves():
    firing, _ = run(PM25, [40.0])
    acked, _ = acknowledge(firing, "ana", T0 + 5 * M)
    state, events = run(PM25, [39.0], state=acked, start=T0 + H)
    assert state.status == "acknowledged" and events == []
    state, events = run(PM25, [60.0], state=acked, start=T0 + H)
    assert state.status == "firing" and events[0].kind == "escalated"
    assert state.acknowledged_at is None and state.acknowledged_by is None
    acknowledge(state, "ana", T0 + 2 * H)  # the worse level needs (and accepts) a new acknowledgement
    state, events = run(PM25, [1.0], state=acked, start=T0 + H)
    assert state.status == "resolved" and events[0].kind == "resolved"


@pytest.mark.parametrize("how", ["pending", "acknowledged", "resolved", "manual"])
def test_illegal_acknowledgement_names_alert_and_state(how):
    state = {"pending": run(RULE2, [25.0])[0], "acknowledged": acknowledge(run(PM25, [40.0])[0], "a", T0)[0],
             "resolved": run(PM25, [40.0, 1.0])[0], "manual": resolve_manually(run(PM25, [40.0])[0], "a", T0)[0]
             }[how]
    with pytest.raises(ValueError, match=rf"acknowledge alert {state.rule_id}/KEN: illegal in state"):
        acknowledge(state, "ana", T0 + H)


def test_acknowledge_needs_a_name_and_an_aware_time():
    firing, _ = run(PM25, [40.0])
    with pytest.raises(ValueError, match="officer's name"):
        acknowledge(firing, " ", T0)
    with pytest.raises(ValueError, match="aware"):
        acknowledge(firing, "ana", datetime(2026, 3, 1))


# -------------------------------------------------------------------------------- manual resolution

def test_manual_resolution_is_kept_until_below_the_clear_threshold():
    firing, _ = run(PM25, [60.0])
    at = T0 + 10 * M
    resolved, ev = resolve_manually(firing, "ana", at)
    assert isinstance(ev, AlertResolved) and (ev.actor, ev.time, ev.level, ev.threshold) == ("ana", at, "alert", 56)
    assert (resolved.status, resolved.manual, resolved.resolved_by, resolved.resolved_at) == (
        "resolved", True, "ana", at)
    # values at or above the clear threshold (even higher levels): same episode, still resolved, no event
    state, events = run(PM25, [60.0, 200.0, 34.2, (None, False)], state=resolved, start=T0 + H)
    assert events == [] and state.status == "resolved" and state.manual and state.value == 34.2
    # the first valid value below the clear threshold forgets it; the next episode is a new alert
    state, events = run(PM25, [34.1], state=state, start=T0 + 5 * H)
    assert state is None and events == []
    state, events = run(PM25, [40.0], state=state, start=T0 + 6 * H)
    assert [e.kind for e in events] == ["raised"] and state.started_at == T0 + 6 * H


def test_manual_resolution_of_an_acknowledged_alert():
    acked, _ = acknowledge(run(PM25, [40.0])[0], "ana", T0 + M)
    resolved, ev = resolve_manually(acked, "luis", T0 + 2 * M)
    assert resolved.manual and ev.actor == "luis" and resolved.acknowledged_by == "ana"


@pytest.mark.parametrize("how", ["pending", "resolved", "manual"])
def test_illegal_manual_resolution(how):
    state = {"pending": run(RULE2, [25.0])[0], "resolved": run(PM25, [40.0, 1.0])[0],
             "manual": resolve_manually(run(PM25, [40.0])[0], "a", T0)[0]}[how]
    with pytest.raises(ValueError, match=r"resolve alert .*: illegal in state"):
        resolve_manually(state, "ana", T0 + H)


# ----------------------------------------------------------------------- unacknowledged escalation

def test_overdue_once_per_level_and_reset_by_escalation():
    firing, _ = run(PM25, [40.0])
    assert overdue(firing, T0 + 59 * M, 60) is None
    ev = overdue(firing, T0 + 60 * M, 60)
    assert isinstance(ev, AlertUnacknowledged) and ev.kind == "unacknowledged"
    assert (ev.level, ev.time, ev.after_min, ev.severity) == ("prevention", T0 + 60 * M, 60, "warning")
    marked = mark_unacknowledged(firing, ev)
    assert marked.escalated_at == T0 + 60 * M
    assert overdue(marked, T0 + 10 * H, 60) is None  # once per level
    escalated, events = run(PM25, [60.0], state=marked, start=T0 + 2 * H)
    assert events[0].kind == "escalated"
    assert overdue(escalated, T0 + 2 * H + 59 * M, 60) is None
    again = overdue(escalated, T0 + 3 * H, 60)
    assert again is not None and again.level == "alert" and again.severity == "critical"


def test_overdue_never_for_acknowledged_resolved_pending_or_zero():
    firing, _ = run(PM25, [40.0])
    late = T0 + 100 * H
    assert overdue(firing, late, 0) is None
    assert overdue(acknowledge(firing, "ana", T0 + M)[0], late, 60) is None
    assert overdue(run(PM25, [40.0, 1.0])[0], late, 60) is None
    assert overdue(run(RULE2, [25.0])[0], late, 60) is None
    assert overdue(None, late, 60) is None
    with pytest.raises(ValueError, match="after_min"):
        overdue(firing, late, -1)
    with pytest.raises(ValueError, match="aware"):
        overdue(firing, datetime(2026, 3, 2), 60)


def test_escalation_after_acknowledgement_can_become_overdue_again():
    acked, _ = acknowledge(run(PM25, [40.0])[0], "ana", T0 + M)
    state, _ = run(PM25, [60.0], state=acked, start=T0 + H)
    assert overdue(state, T0 + 2 * H, 60) is not None


def test_mark_unacknowledged_refuses_another_alert():
    firing, _ = run(PM25, [40.0])
    other, _ = run(PM25, [40.0], sensor="USM")
    ev = overdue(other, T0 + 2 * H, 60)
    with pytest.raises(ValueError, match="event is for"):
        mark_unacknowledged(firing, ev)


# ------------------------------------------------------------------------------------- properties

ITEMS = st.one_of(
    st.floats(min_value=0, max_value=400, allow_nan=False),
    st.tuples(st.one_of(st.none(), st.floats(allow_nan=True)), st.just(False)),
    st.just((float("nan"), True)),
)


def _check_episodes(rule, events):
    active = False
    level = -1
    for e in events:
        if e.kind == "raised":
            assert not active, "two raised events without a resolution in between"
            active, level = True, rule.level_named(e.level)
        elif e.kind == "escalated":
            assert active and rule.level_named(e.level) > level == rule.level_named(e.from_level)
            level = rule.level_named(e.level)
        else:
            assert e.kind == "resolved" and active
            active = False


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([PM25, RULE2, LIMIT]), st.lists(ITEMS, max_size=40))
def test_random_sequences_give_well_formed_episodes(rule, values):
    state, events = run(rule, values)
    _check_episodes(rule, events)
    assert (state is not None and state.status in ("firing", "acknowledged")) == (
        bool(events) and events[-1].kind != "resolved")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([PM25, RULE2]), st.lists(ITEMS, max_size=30), st.lists(st.booleans(), max_size=30))
def test_random_sequences_with_officers_acting(rule, values, acts):
    """Acknowledging and resolving by hand at random never breaks an episode's shape."""
    state, events = None, []
    for i, item in enumerate(values):
        value, valid = item if isinstance(item, tuple) else (item, True)
        state, ev = step(state, value, valid, T0 + i * H, rule, sensor_id="KEN")
        events.extend(ev)
        if state is not None and i < len(acts) and state.status in ("firing", "acknowledged"):
            if acts[i] and state.status == "firing":
                state, ack = acknowledge(state, "ana", T0 + i * H + M)
                assert ack.kind == "acknowledged"
            elif not acts[i]:
                state, res = resolve_manually(state, "ana", T0 + i * H + M)
                events.append(res)
    _check_episodes(rule, events)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=34.2, max_value=37.99), min_size=1, max_size=40))
def test_flapping_between_clear_threshold_and_level_yields_no_events(values):
    firing, _ = run(PM25, [40.0])
    state, events = run(PM25, values, state=firing, start=T0 + H)
    assert events == [] and state.status == "firing" and state.level == "prevention"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=400, allow_nan=False), max_size=20))
def test_rerunning_a_step_for_the_same_time_changes_nothing(values):
    state, _ = run(PM25, values)
    if state is None:
        return
    again, events = step(state, 1000.0, True, state.updated_at, PM25, sensor_id="KEN")
    assert again == state and events == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=30), st.integers(1, 240))
def test_overdue_fires_once_per_level(minutes, after_min):
    firing, _ = run(PM25, [40.0])
    state, fired = firing, 0
    for m in sorted(minutes):
        ev = overdue(state, T0 + m * M, after_min)
        if ev is not None:
            assert m >= after_min
            state, fired = mark_unacknowledged(state, ev), fired + 1
    assert fired == (1 if max(minutes) >= after_min else 0)


def test_states_are_frozen():
    firing, _ = run(PM25, [40.0])
    with pytest.raises(AttributeError):
        firing.level = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="manual"):
        replace(firing, manual=True)
    with pytest.raises(ValueError, match="acknowledged_at"):
        replace(firing, status="acknowledged")
