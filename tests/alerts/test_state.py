"""Tests for alerts.state: min_duration, escalation of the same alert, hysteresis, invalid data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.rules import default_rules, parse_rules
from alerts.state import AlertEscalated, AlertRaised, AlertResolved, AlertState, step

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
PM25 = next(r for r in default_rules() if r.variable == "pm25")

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
      - {name: high, threshold: 30, unit: µg/m³, source: test}
""", source="test")[0]


def run(rule, values, *, state=None, start=T0, sensor="KEN"):
    """Feed (value, valid) or value items hour by hour; return the final state and all events."""
    events = []
    for i, item in enumerate(values):
        value, valid = item if isinstance(item, tuple) else (item, True)
        state, ev = step(state, value, valid, start + i * H, rule, sensor_id=sensor)
        events.extend(ev)
    return state, events


def test_below_every_level_stays_quiet():
    assert run(PM25, [10.0, 37.0, 33.0]) == (None, [])


def test_raise_at_the_level_reached_and_carry_unit_and_source():
    state, events = run(PM25, [45.0])
    assert state.status == "firing" and state.level == "prevention" and state.started_at == T0
    (ev,) = events
    assert isinstance(ev, AlertRaised) and ev.kind == "raised"
    assert (ev.level, ev.value, ev.threshold, ev.unit, ev.sensor_id, ev.rule_id) == (
        "prevention", 45.0, 38.0, "µg/m³", "KEN", PM25.id)
    assert "Res. 2254/2017" in ev.source and ev.time == T0


def test_limit_is_strict_greater():
    assert run(PM25, [37.0]) == (None, [])
    state, events = run(PM25, [37.1])
    assert state.level == "limit" and len(events) == 1


def test_escalation_is_the_same_alert():
    state, events = run(PM25, [40.0, 60.0, 160.0])
    assert [type(e) for e in events] == [AlertRaised, AlertEscalated, AlertEscalated]
    assert [(e.from_level, e.level) for e in events[1:]] == [("prevention", "alert"), ("alert", "emergency")]
    assert state.level == "emergency" and state.started_at == T0 and state.threshold == 151


def test_no_deescalation_and_hysteresis_before_resolving():
    # 0.9 × 37 = 33.3: 35 is below every level but above the clear threshold → still firing
    state, events = run(PM25, [60.0, 45.0, 35.0, 33.4])
    assert [e.kind for e in events] == ["raised"] and state.status == "firing" and state.level == "alert"
    assert state.value == 33.4
    state, events = run(PM25, [33.2], state=state, start=T0 + 4 * H)
    (ev,) = events
    assert isinstance(ev, AlertResolved) and ev.level == "alert" and ev.threshold == pytest.approx(33.3)
    assert state.status == "resolved" and state.resolved_at == T0 + 4 * H


def test_after_resolution_a_new_episode_is_a_new_alert():
    state, _ = run(PM25, [40.0, 20.0])
    assert state.status == "resolved"
    state, events = run(PM25, [40.0], state=state, start=T0 + 2 * H)
    assert [e.kind for e in events] == ["raised"]
    assert state.status == "firing" and state.started_at == T0 + 2 * H and state.resolved_at is None


@pytest.mark.parametrize("bad", [(500.0, False), (None, False), (None, True), (float("nan"), True)])
def test_invalid_values_never_raise(bad):
    assert run(PM25, [bad, bad]) == (None, [])


@pytest.mark.parametrize("bad", [(0.0, False), (None, False), (float("nan"), True)])
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


def test_acknowledged_alert_escalates_back_to_firing_and_resolves():
    firing, _ = run(PM25, [40.0])
    acked = AlertState(**{**{f: getattr(firing, f) for f in firing.__slots__}, "status": "acknowledged"})
    state, events = run(PM25, [39.0], state=acked, start=T0 + H)
    assert state.status == "acknowledged" and events == []
    state, events = run(PM25, [60.0], state=acked, start=T0 + H)
    assert state.status == "firing" and events[0].kind == "escalated"
    state, events = run(PM25, [1.0], state=acked, start=T0 + H)
    assert state.status == "resolved" and events[0].kind == "resolved"


def test_wrong_state_or_naive_time_is_refused():
    state, _ = run(PM25, [40.0])
    with pytest.raises(ValueError, match="state is for"):
        step(state, 40.0, True, T0 + H, PM25, sensor_id="OTHER")
    with pytest.raises(ValueError, match="aware"):
        step(None, 40.0, True, datetime(2026, 1, 1), PM25, sensor_id="KEN")
