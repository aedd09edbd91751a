"""ingest.qc: clock skew and stale flags on an injected clock, and the per-series state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.qc import QCState, check
from ingest.reading import QC, Reading

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NO_FLAGS = QC(0)


def reading(time: datetime, received_at: datetime = NOW, value: float = 10.0,
            flags: QC = NO_FLAGS) -> Reading:
    return Reading("USQ", "USQ-nox", "no2", time, value, "µg/m³", flags, value, "ppb", received_at)


def test_fresh_reading_unflagged() -> None:
    r, state = check(reading(NOW - timedelta(seconds=30)), None, NOW)
    assert r.flags == QC(0)
    assert state == QCState(NOW - timedelta(seconds=30), 10.0)


def test_clock_skew_beyond_tolerance() -> None:
    at_limit, _ = check(reading(NOW + timedelta(seconds=300)), None, NOW)
    assert at_limit.flags == QC(0)
    ahead, _ = check(reading(NOW + timedelta(seconds=301)), None, NOW)
    assert ahead.flags == QC.CLOCK_SKEW
    assert not ahead.valid
    custom, _ = check(reading(NOW + timedelta(seconds=61)), None, NOW, skew_tolerance_s=60)
    assert custom.flags == QC.CLOCK_SKEW


def test_clock_skew_judged_against_receive_time_on_reprocessing() -> None:
    # received at 10:00 with a device time of 10:20; checked again at noon: still skewed
    received = NOW - timedelta(hours=2)
    r, _ = check(reading(received + timedelta(minutes=20), received_at=received), None, NOW)
    assert QC.CLOCK_SKEW in r.flags


def test_stale_beyond_limit() -> None:
    old, _ = check(reading(NOW - timedelta(hours=2)), None, NOW)
    assert old.flags == QC.STALE
    assert old.valid  # stale is suspect, not excluded
    within, _ = check(reading(NOW - timedelta(minutes=59)), None, NOW)
    assert within.flags == QC(0)
    custom, _ = check(reading(NOW - timedelta(minutes=11)), None, NOW, stale_after_s=600)
    assert custom.flags == QC.STALE


def test_existing_flags_kept_and_value_unchanged() -> None:
    r, _ = check(reading(NOW + timedelta(hours=1), flags=QC.NEGATIVE | QC.RECEIVE_TIME), None, NOW)
    assert r.flags == QC.NEGATIVE | QC.RECEIVE_TIME | QC.CLOCK_SKEW
    assert r.value == 10.0


def test_state_advances_only_forward_and_not_on_skew() -> None:
    _, s1 = check(reading(NOW - timedelta(minutes=2), value=1.0), None, NOW)
    _, s2 = check(reading(NOW - timedelta(minutes=1), value=2.0), s1, NOW)
    assert s2 == QCState(NOW - timedelta(minutes=1), 2.0)
    _, s3 = check(reading(NOW - timedelta(minutes=5), value=3.0), s2, NOW)  # late arrival
    assert s3 == s2
    _, s4 = check(reading(NOW + timedelta(hours=3), value=4.0), s3, NOW)  # skewed
    assert s4 == s3
    _, s5 = check(reading(NOW + timedelta(hours=3), value=4.0), None, NOW)
    assert s5 == QCState()


def test_rejects_naive_now_and_bad_parameters() -> None:
    with pytest.raises(ValueError):
        check(reading(NOW), None, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError):
        check(reading(NOW), None, NOW, skew_tolerance_s=-1)
    with pytest.raises(ValueError):
        check(reading(NOW), None, NOW, stale_after_s=float("nan"))


@given(offset_s=st.integers(min_value=-10 * 86400, max_value=10 * 86400),
       delay_s=st.integers(min_value=0, max_value=3600))
def test_flags_follow_definitions(offset_s: int, delay_s: int) -> None:
    received = NOW - timedelta(seconds=delay_s)
    time = received + timedelta(seconds=offset_s)
    r, _ = check(reading(time, received_at=received), None, NOW)
    assert (QC.CLOCK_SKEW in r.flags) == (offset_s > 300)
    assert (QC.STALE in r.flags) == (-offset_s > 3600)
