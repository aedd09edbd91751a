"""alerts/health/reliability.py: transitions from receive times, incremental runs, and the window figures, against
a minute-by-minute brute force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.health.reliability import Transition, Watch, reliability, step

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def brute_transitions(heard: list[int], end: int, down_after: int) -> list[Transition]:
    """Outages by definition: every silence longer than down_after between the watch's start (minute 0) or a
    reading and the next reading, or `end`."""
    out: list[Transition] = []
    prev = 0
    for t in sorted(set(heard)):
        if t - prev > down_after:
            out += [Transition(at(prev), "down"), Transition(at(t), "up")]
        prev = t
    if end - prev > down_after:
        out.append(Transition(at(prev), "down"))
    return out


def test_a_short_silence_is_no_outage_and_a_long_one_is() -> None:
    watch = Watch(at(0), at(0))
    watch, events = step(watch, [at(1), at(2), at(3)], at(5), timedelta(minutes=5))
    assert events == []
    watch, events = step(watch, [], at(9), timedelta(minutes=5))
    assert events == [Transition(at(3), "down")] and watch.down_since == at(3)
    watch, events = step(watch, [at(20)], at(21), timedelta(minutes=5))
    assert events == [Transition(at(20), "up")] and watch.down_since is None and watch.last_heard == at(20)


def test_a_device_never_heard_is_down_since_the_watch_began() -> None:
    _, events = step(Watch(at(0), at(0)), [], at(60), timedelta(minutes=10))
    assert events == [Transition(at(0), "down")]


def test_times_already_accounted_for_are_ignored() -> None:
    watch = Watch(at(0), at(10), last_heard=at(9))
    _, events = step(watch, [at(2), at(12)], at(13), timedelta(minutes=5))
    assert events == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="down_after"):
        step(Watch(at(0), at(0)), [], at(1), timedelta(0))
    with pytest.raises(ValueError, match="before checked_until"):
        step(Watch(at(0), at(5)), [], at(1), timedelta(minutes=1))
    with pytest.raises(ValueError, match="checked_until"):
        Watch(at(5), at(0))
    with pytest.raises(ValueError, match="after its start"):
        reliability([], at(5), at(5), watched_from=at(0))


@settings(max_examples=300)
@given(heard=st.lists(st.integers(1, 600), max_size=40), down_after=st.integers(1, 60),
       cuts=st.lists(st.integers(1, 600), max_size=6), end=st.integers(600, 700))
def test_incremental_runs_give_the_definition(heard: list[int], down_after: int, cuts: list[int], end: int) -> None:
    """However the job's runs split time, the transitions are those of the definition, once each."""
    watch = Watch(at(0), at(0))
    events: list[Transition] = []
    for cut in [*sorted(set(cuts)), end]:
        # each run sees the readings received up to its `now` that it has not seen yet
        watch, new = step(watch, [at(t) for t in heard if t <= cut], at(cut), timedelta(minutes=down_after))
        events += new
    key = lambda ev: ev.order  # noqa: E731
    assert sorted(events, key=key) == sorted(brute_transitions(heard, end, down_after), key=key)


@settings(max_examples=300)
@given(heard=st.lists(st.integers(1, 600), max_size=40), down_after=st.integers(1, 60),
       start=st.integers(0, 600), length=st.integers(1, 200), watched_from=st.integers(0, 100))
def test_window_figures_match_a_minute_by_minute_count(heard: list[int], down_after: int, start: int, length: int,
                                                       watched_from: int) -> None:
    heard = [t for t in heard if t > watched_from]
    end = start + length
    horizon = 800
    # transitions as the definition gives them, with the watch starting at `watched_from`
    shifted = brute_transitions([t - watched_from for t in heard], horizon - watched_from, down_after)
    events = [Transition(ev.time + timedelta(minutes=watched_from), ev.state) for ev in shifted]
    before = [ev for ev in events if ev.time < at(start)]
    down_at_start = bool(before) and before[-1].state == "down"
    given_events = [ev for ev in events if at(start) <= ev.time < at(end)]
    if down_at_start:
        given_events.append(before[-1])
    rel = reliability(given_events, at(start), at(end), watched_from=at(watched_from), down_at_start=down_at_start)

    def down_at(minute: float) -> bool:
        state = False
        for ev in events:
            if ev.time <= at(minute):
                state = ev.state == "down"
        return state

    lo = max(start, watched_from)
    # half-minute samples: transitions fall on whole minutes
    samples = [lo + (i + 0.5) for i in range(max(end - lo, 0))]
    assert rel.observed_s == pytest.approx(60.0 * len(samples))
    assert rel.down_s == pytest.approx(60.0 * sum(down_at(m) for m in samples))
    downs = [ev for ev in events if ev.state == "down" and at(lo) <= ev.time < at(end)]
    ups = [ev for ev in events if ev.state == "up" and at(lo) <= ev.time < at(end)]
    assert rel.failures == (len(downs) if end > lo else 0)
    assert rel.repairs == (len(ups) if end > lo else 0)
    if rel.failures:
        assert rel.mtbf_s == pytest.approx(rel.up_s / rel.failures)
    else:
        assert rel.mtbf_s is None
    if rel.repairs:
        durations = []
        for up in ups:
            opened = max(ev.time for ev in events if ev.state == "down" and ev.time < up.time)
            durations.append((up.time - opened).total_seconds())
        assert rel.mttr_s == pytest.approx(sum(durations) / len(durations))
    else:
        assert rel.mttr_s is None
    if rel.uptime is not None:
        assert 0.0 <= rel.uptime <= 1.0


def test_worked_example() -> None:
    """A day with two outages: 02:00-03:00 (repaired) and from 22:00 on (open)."""
    events = [Transition(at(120), "down"), Transition(at(180), "up"), Transition(at(1320), "down")]
    rel = reliability(events, at(0), at(1440), watched_from=at(-10_000))
    assert rel.down_s == 3 * 3600 and rel.failures == 2 and rel.repairs == 1
    assert rel.uptime == pytest.approx(21 / 24)
    assert rel.mtbf_s == pytest.approx(21 * 3600 / 2) and rel.mttr_s == 3600
