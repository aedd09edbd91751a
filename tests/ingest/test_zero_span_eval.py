"""Zero/span check responses, verdicts and drift (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.zero_span_eval import DEFAULT_LIMITS, Limits, drift, evaluate, responses
from sensors.zero_span import CheckSchedule, occurrences

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SCHEDULE = CheckSchedule("KEN", "KEN-o3", "o3", UTC, at_minute=60, zero_min=10, span_min=10, purge_min=10,
                         span_value=400.0, unit="ppb")
RUN = occurrences(SCHEDULE, T0, T0 + timedelta(days=1))[0]
LIMITS = Limits(zero=3.0, span_pct=7.0, unit="ppb", source="test procedure", status="unverified")


def test_responses_are_the_means_of_each_phases_settled_part() -> None:
    samples = [(RUN.starts_at + timedelta(minutes=m), v) for m, v in
               [(0, 50.0), (4, 9.0), (5, 1.0), (9, 2.0), (10, 300.0), (14, 380.0), (15, 398.0), (19, 402.0),
                (20, 600.0)]]
    (zero, zn), (span, sn) = responses(RUN, samples, 0.5)
    assert (zero, zn, span, sn) == (1.5, 2, 400.0, 2)
    assert responses(RUN, [], 0.5) == ((None, 0), (None, 0))
    assert responses(RUN, [(RUN.starts_at + timedelta(minutes=7), float("nan"))], 0.5)[0] == (None, 0)
    with pytest.raises(ValueError, match="stable_fraction"):
        responses(RUN, samples, 0.0)


@pytest.mark.parametrize(("zero", "span", "passed", "pct"), [
    (0.0, 400.0, True, 0.0), (3.0, 400.0, True, 100.0), (-3.0001, 400.0, False, pytest.approx(100.0033, abs=1e-4)),
    (0.0, 428.0, True, 100.0), (0.0, 371.9, False, pytest.approx(100.357, abs=1e-3)), (None, 400.0, None, 0.0),
    (None, 500.0, False, pytest.approx(357.14, abs=0.01)), (None, None, None, None)])
def test_verdict_at_and_beyond_the_limits(zero, span, passed, pct) -> None:
    result = evaluate((zero, 3 if zero is not None else 0), (span, 3 if span is not None else 0), zero_expected=0.0,
                      span_expected=400.0, limits=LIMITS)
    assert result.passed is passed and result.percent_of_limit == pct


@given(st.floats(-20, 20), st.floats(300, 500))
def test_verdict_is_both_errors_within_their_limits(zero: float, span: float) -> None:
    r = evaluate((zero, 1), (span, 1), zero_expected=0.0, span_expected=400.0, limits=LIMITS)
    assert r.zero_error == zero and r.span_error_pct == pytest.approx(100 * (span - 400) / 400)
    assert r.passed is (abs(zero) <= 3.0 and abs(100 * (span - 400) / 400) <= 7.0)
    assert r.passed is (r.percent_of_limit is not None and r.percent_of_limit <= 100.0)


@given(st.floats(-2, 2), st.floats(-3, 3), st.floats(-5, 5), st.integers(2, 20))
def test_drift_recovers_a_linear_trend(zero_rate: float, span_rate: float, base: float, n: int) -> None:
    history = [(T0 + timedelta(days=d), base + zero_rate * d, -base + span_rate * d) for d in range(n)]
    got = drift(history)
    assert got.checks == n
    assert got.zero_per_day == pytest.approx(zero_rate, abs=1e-9)
    assert got.span_pct_per_day == pytest.approx(span_rate, abs=1e-9)


def test_drift_needs_two_checks_with_the_error() -> None:
    assert drift([]).zero_per_day is None
    assert drift([(T0, 1.0, None), (T0 + timedelta(days=1), 2.0, None)]).span_pct_per_day is None


def test_default_limits_are_marked_unverified_and_cite_the_handbook() -> None:
    assert set(DEFAULT_LIMITS) == {"o3", "so2", "no2", "co"}
    for lim in DEFAULT_LIMITS.values():
        assert lim.status == "unverified" and "QA Handbook Vol. II, Appendix D" in lim.source
    with pytest.raises(ValueError, match="span_pct"):
        Limits(zero=1.0, span_pct=0.0, unit="ppb", source="x")
