"""ingest.validation, pure: requests that make a decision and those that do not (naming the field), scopes, how a
set of decisions resolves per value (the latest in force decides; an undo removes exactly its decision), and the
e-Reporting state of each combination of levels."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.reading import EXCLUDED, QC
from ingest.validation import (
    Decision,
    DecisionError,
    Period,
    Scope,
    Validity,
    Verification,
    check_request,
    in_force,
    resolve,
    state_of,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(("action", "reason", "text", "undoes", "field"), [
    ("invalidate", None, "", None, "reason"),
    ("invalidate", "vandalism", "", None, "reason"),
    ("invalidate", "other", "  ", None, "text"),
    ("validate", "maintenance", "", None, "reason"),
    ("undo", None, "", None, "undoes"),
    ("validate", None, "", 3, "undoes"),
    ("undo", None, "", 0, "undoes"),
    ("approve", None, "", None, "action"),
    ("validate", None, "x" * 2001, None, "text"),
])
def test_requests_that_make_no_decision_name_the_field(action, reason, text, undoes, field):
    with pytest.raises(DecisionError) as refused:
        check_request(action, reason, text, undoes)
    assert refused.value.field == field


def test_requests_that_make_a_decision():
    check_request("invalidate", "other", "a bus idling by the inlet", None)
    check_request("invalidate", "calibration", "", None)
    check_request("validate", None, "", None)
    check_request("undo", None, "", 4)


def test_scope_and_period():
    assert Scope("KEN").covers("KEN", "KEN-pm", "pm25") and not Scope("KEN").covers("CSE", "CSE-pm", "pm25")
    assert Scope("KEN", "KEN-pm").covers("KEN", "KEN-pm", "no2") and not Scope("KEN", "KEN-pm").covers(
        "KEN", "KEN-gas", "no2")
    assert Scope("KEN", None, "pm25").covers("KEN", "KEN-spare", "pm25")
    assert [Scope("KEN").level, Scope("KEN", "d").level, Scope("KEN", None, "pm25").level] == [
        "sensor", "device", "variable"]
    for bad in ("", " KEN", None):
        with pytest.raises(DecisionError):
            Scope(bad)  # type: ignore[arg-type]
    with pytest.raises(DecisionError, match="before"):
        Period(T0, T0)
    with pytest.raises(DecisionError, match="UTC offset"):
        Period(datetime(2026, 3, 2), datetime(2026, 3, 3))
    assert Period(T0, T0 + H).covers(T0) and not Period(T0, T0 + H).covers(T0 + H)


def _decision(i: int, action: str, scope: Scope, start: int, end: int) -> Decision:
    return Decision(i, action, scope, Period(T0 + start * H, T0 + end * H),  # type: ignore[arg-type]
                    reason="maintenance" if action == "invalidate" else None)


def test_the_latest_in_force_decides_and_undo_restores_what_was_before():
    wide = _decision(1, "invalidate", Scope("KEN"), 0, 10)
    narrow = _decision(2, "validate", Scope("KEN", "KEN-pm", "pm25"), 2, 4)
    assert resolve([wide, narrow], "KEN", "KEN-pm", "pm25", T0 + 3 * H) == narrow
    assert resolve([wide, narrow], "KEN", "KEN-pm", "no2", T0 + 3 * H) == wide
    assert resolve([wide, narrow], "KEN", "KEN-pm", "pm25", T0 + 4 * H) == wide
    undo = Decision(3, "undo", narrow.scope, narrow.period, undoes=2)
    assert resolve([wide, narrow, undo], "KEN", "KEN-pm", "pm25", T0 + 3 * H) == wide
    assert in_force([wide, narrow, undo]) == [wide]
    assert resolve([wide], "CSE", "CSE-pm", "pm25", T0) is None


decisions = st.lists(st.tuples(st.sampled_from(["validate", "invalidate"]),
                               st.sampled_from([Scope("KEN"), Scope("KEN", "a"), Scope("KEN", "a", "pm25"),
                                                Scope("KEN", None, "pm10"), Scope("CSE")]),
                               st.integers(0, 5), st.integers(1, 4), st.booleans()), max_size=8)


@given(decisions, st.sampled_from(["a", "b"]), st.sampled_from(["pm25", "pm10"]), st.integers(0, 8))
def test_resolve_is_the_last_covering_decision_not_undone(steps, device, variable, hour):
    taken: list[Decision] = []
    undone: set[int] = set()
    for action, scope, start, length, undo in steps:
        d = _decision(len(taken) + 1, action, scope, start, start + length)
        taken.append(d)
        if undo:
            taken.append(Decision(len(taken) + 1, "undo", scope, d.period, undoes=d.id))
            undone.add(d.id)
    t = T0 + hour * H + timedelta(minutes=30)
    covering = [d for d in taken if d.action != "undo" and d.id not in undone
                and d.scope.covers("KEN", device, variable) and d.period.covers(t)]
    assert resolve(taken, "KEN", device, variable, t) == (covering[-1] if covering else None)


@given(st.integers(0, 1023), st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       st.sampled_from([None, "validate", "maintenance", "calibration", "analyser_fault", "local_source"]))
def test_state_of_every_combination_of_levels(flags, value, decided):
    decision = None
    if decided == "validate":
        decision = Decision(1, "validate", Scope("KEN"), Period(T0, T0 + H))
    elif decided is not None:
        decision = Decision(1, "invalidate", Scope("KEN"), Period(T0, T0 + H), reason=decided)  # type: ignore[arg-type]
    state = state_of(flags, value, decision)
    qc_ok = not QC(flags) & EXCLUDED
    assert state.verification == (Verification.NOT_VERIFIED if decision is None else Verification.VERIFIED)
    if decision is not None and decision.action == "invalidate":
        assert not state.counts and state.human == "invalidated"
        assert state.validity == (Validity.NOT_VALID_MAINTENANCE if decided in ("maintenance", "calibration")
                                  else Validity.NOT_VALID)
        return
    finite = value is not None and math.isfinite(value)
    assert state.counts == (qc_ok and finite)
    if qc_ok:
        assert state.validity == Validity.VALID
    else:
        assert state.validity == (Validity.NOT_VALID_MAINTENANCE if QC(flags) & QC.MAINTENANCE else Validity.NOT_VALID)
    assert [Verification(1).label, Validity(-99).label] == [
        "verified", "not valid due to station maintenance or calibration in progress"]
