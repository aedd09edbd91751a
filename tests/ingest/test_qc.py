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
    assert (state.last_time, state.last_value) == (NOW - timedelta(seconds=30), 10.0)
    assert (state.last_raw_value, state.run_start) == (10.0, NOW - timedelta(seconds=30))


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
    assert (s2.last_time, s2.last_value) == (NOW - timedelta(minutes=1), 2.0)
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


# ------------------------------------------------------------------------------------------ spike, flatline

def pm(minute: float, value: float, raw: float | None = None, variable: str = "pm25") -> Reading:
    t = NOW - timedelta(days=30) + timedelta(minutes=minute)  # far enough back for any series: no skew
    return Reading("MS01", "MS01-pm", variable, t, value, "µg/m³", NO_FLAGS, value if raw is None else raw,
                   "ug/m3", t)


def run(readings: list[Reading], **kw: object) -> list[Reading]:
    state: QCState | None = None
    out = []
    for r in readings:
        checked, state = check(r, state, NOW, **kw)  # type: ignore[arg-type]
        out.append(checked)
    return out


def test_spike_above_the_variables_limit_per_minute() -> None:
    # pm25 default: 500 µg/m³ per minute (aqnet convention)
    flagged = run([pm(0, 10.0), pm(1, 511.0)])
    assert QC.SPIKE in flagged[1].flags and QC.SPIKE not in flagged[0].flags
    assert flagged[1].valid  # suspect, not excluded
    assert flagged[1].value == 511.0
    assert run([pm(0, 10.0), pm(1, 509.0)])[1].flags == NO_FLAGS


def test_spike_rate_uses_a_floor_interval_and_long_intervals() -> None:
    # 1 s apart: judged as a step over 60 s (400 < 500), not as 24 000 per minute
    assert run([pm(0, 10.0), pm(1 / 60, 410.0)])[1].flags == NO_FLAGS
    assert QC.SPIKE in run([pm(0, 10.0), pm(1 / 60, 600.0)])[1].flags
    # 10 min apart: 4000 µg/m³ is 400 per minute
    assert run([pm(0, 10.0), pm(10, 4010.0)])[1].flags == NO_FLAGS


def test_both_edges_of_an_isolated_outlier_are_spikes() -> None:
    flags = [r.flags for r in run([pm(0, 10.0), pm(1, 999.9), pm(2, 11.0), pm(3, 12.0)])]
    assert flags == [NO_FLAGS, QC.SPIKE, QC.SPIKE, NO_FLAGS]


def test_spike_limits_are_parameters_and_absent_variables_unchecked() -> None:
    assert QC.SPIKE in run([pm(0, 10.0), pm(1, 31.0)], spike_limits={"pm25": 20.0})[1].flags
    assert run([pm(0, 10.0), pm(1, 5000.0)], spike_limits={})[1].flags == NO_FLAGS
    wind = [pm(0, 0.0, variable="wind_speed"), pm(1, 40.0, variable="wind_speed")]
    assert run(wind)[1].flags == NO_FLAGS
    with pytest.raises(ValueError, match="spike limit of pm25"):
        run([pm(0, 10.0), pm(1, 31.0)], spike_limits={"pm25": -1.0})


def test_flatline_after_the_variables_duration() -> None:
    # pm25 default: 6 h of the identical reported value (aqnet convention); every 30 min
    series = run([pm(30 * i, 12.0) for i in range(14)])
    assert [QC.FLATLINE in r.flags for r in series] == [False] * 13 + [True]  # 6.5 h > 6 h; 6 h is not "longer"
    assert all(r.valid for r in series)
    custom = run([pm(0, 12.0), pm(10, 12.0), pm(20, 12.0)], flatline_after_s={"pm25": 900.0})
    assert [QC.FLATLINE in r.flags for r in custom] == [False, False, True]


def test_flatline_compares_the_reported_value_and_resets_on_change() -> None:
    # a stuck sensor: raw 12 while the T/P-corrected value drifts
    stuck = run([pm(0, 15.0, raw=12.0), pm(10, 15.1, raw=12.0), pm(20, 15.2, raw=12.0)],
                flatline_after_s={"pm25": 900.0})
    assert QC.FLATLINE in stuck[2].flags
    moving = run([pm(0, 12.0), pm(10, 12.0), pm(15, 13.0), pm(25, 13.0)], flatline_after_s={"pm25": 900.0})
    assert all(QC.FLATLINE not in r.flags for r in moving)


def test_late_reading_not_spike_checked_and_state_kept() -> None:
    state: QCState | None = None
    for r in (pm(0, 10.0), pm(2, 11.0)):
        _, state = check(r, state, NOW)
    late, after = check(pm(1, 9999.0), state, NOW)
    assert late.flags == NO_FLAGS and after == state


def test_redelivery_gets_the_same_stateful_bits() -> None:
    _, s1 = check(pm(0, 10.0), None, NOW)
    first, s2 = check(pm(1, 999.0), s1, NOW)
    again, s3 = check(pm(1, 999.0), s2, NOW)
    assert first.flags == again.flags == QC.SPIKE and s3 == s2


_STEPS = st.lists(st.tuples(st.integers(min_value=1, max_value=7200),
                            st.sampled_from([0.0, 5.0, 12.0, 12.0, 12.0, 400.0, 900.0, 3000.0])),
                  min_size=1, max_size=40)


@given(steps=_STEPS, limit=st.sampled_from([5.0, 100.0, 500.0]),
       after=st.sampled_from([600.0, 3600.0, 6 * 3600.0]))
def test_spike_and_flatline_follow_their_definitions(steps: list[tuple[int, float]], limit: float,
                                                     after: float) -> None:
    readings, t = [], 0
    for dt, value in steps:
        t += dt
        readings.append(pm(t / 60, value))
    out = run(readings, spike_limits={"pm25": limit}, flatline_after_s={"pm25": after})
    run_start = readings[0].time
    for i, (r, c) in enumerate(zip(readings, out, strict=True)):
        assert c.value == r.value and c.flags & r.flags == r.flags  # value kept, no flag removed
        if i == 0:
            assert c.flags == NO_FLAGS
            continue
        prev = readings[i - 1]
        interval = max((r.time - prev.time).total_seconds(), 60.0)
        assert (QC.SPIKE in c.flags) == (abs(r.value - prev.value) / interval * 60 > limit)
        if r.raw_value != prev.raw_value:
            run_start = r.time
        assert (QC.FLATLINE in c.flags) == ((r.time - run_start).total_seconds() > after)
