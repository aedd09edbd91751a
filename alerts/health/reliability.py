"""Device up/down transitions from the times aqnet heard each device, and the reliability figures over a window
(uptime, failures, mean time between failures, mean time to repair). Pure (alerts stage): the caller passes
`now`, the watch state and the receive times; `alerts.health.job` keeps the state in the database.

Definitions (aqnet's, documented in docs/operators/device-health.md; no norm defines them for this use):

- A device is **heard** when aqnet stores a reading from it; the time is the reading's `received_at` (when aqnet
  received it), not its measurement time, so a device's own clock and a logger's backfill do not hide an outage.
- A device is **down** from the last time it was heard when it then stays silent for more than `down_after`
  (a configured length, `health.down_after_s`); it is **up** again at the next time it is heard. A silence
  shorter than `down_after` is no outage. A device never heard since the watch began is silent since then.
- Transitions are stamped with those times: `down` at the start of the silence, `up` at the first reading
  after it. Each is recorded once (the `device_status_events` table).
- Over a window [start, end) (clipped to when the watch began): **down time** is the part of the window inside
  outages (an outage still open counts up to `end`); **uptime** = 1 − down time / observed time; **failures**
  = `down` transitions in the window; **MTBF** = up time in the window / failures (None without failures);
  **MTTR** = mean full duration of the outages that ended (`up`) in the window, including any part before
  the window (None without repairs). These are the usual operating-time-over-failures estimates.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["Heard", "Reliability", "Transition", "Watch", "reliability", "step", "step_heard", "summarise"]

State = Literal["down", "up"]


@dataclass(frozen=True, slots=True)
class Watch:
    """What the health job knows of one device between runs."""

    watched_from: datetime  #: when aqnet began watching it (silence before this is not an outage)
    checked_until: datetime  #: receive times up to this are accounted for
    last_heard: datetime | None = None  #: the latest receive time seen
    down_since: datetime | None = None  #: set while an outage is open (its start)

    def __post_init__(self) -> None:
        if self.checked_until < self.watched_from:
            raise ValueError(f"watch: checked_until {self.checked_until.isoformat()} is before watched_from "
                             f"{self.watched_from.isoformat()}")


@dataclass(frozen=True, slots=True)
class Transition:
    """A device going down (at the start of its silence) or coming back up (at its first reading after it)."""

    time: datetime
    state: State

    @property
    def order(self) -> tuple[datetime, int]:
        """Chronological; at one instant the `up` closing an outage comes before the `down` opening the next."""
        return (self.time, 0 if self.state == "up" else 1)


@dataclass(frozen=True, slots=True)
class Heard:
    """The receive times of one device since the last run, summarised: the first, the last, and every silence
    longer than `down_after` between two consecutive ones (what `storage.health_store` computes in SQL)."""

    first: datetime
    last: datetime
    gaps: tuple[tuple[datetime, datetime], ...] = ()  #: (heard, next heard) pairs further apart than down_after


def summarise(heard: Iterable[datetime], down_after: timedelta) -> Heard | None:
    """`heard` (any order) as a Heard; None when empty."""
    times = sorted(set(heard))
    if not times:
        return None
    gaps = tuple((a, b) for a, b in itertools.pairwise(times) if b - a > down_after)
    return Heard(times[0], times[-1], gaps)


def step(watch: Watch, heard: Iterable[datetime], now: datetime, down_after: timedelta
         ) -> tuple[Watch, list[Transition]]:
    """The watch after the receive times `heard` (those after `watch.checked_until` and up to `now` count, any
    order), and the transitions they make (module docstring)."""
    if down_after <= timedelta(0):
        raise ValueError(f"down_after must be positive, got {down_after}")
    return step_heard(watch, summarise((t for t in heard if watch.checked_until < t <= now), down_after), now,
                      down_after)


def step_heard(watch: Watch, heard: Heard | None, now: datetime, down_after: timedelta
               ) -> tuple[Watch, list[Transition]]:
    """`step` over summarised receive times (all after `watch.checked_until` and up to `now`)."""
    if down_after <= timedelta(0):
        raise ValueError(f"down_after must be positive, got {down_after}")
    if now < watch.checked_until:
        raise ValueError(f"now {now.isoformat()} is before checked_until {watch.checked_until.isoformat()}")
    events: list[Transition] = []
    last, down_since = watch.last_heard, watch.down_since
    if heard is not None:
        silent_since = last if last is not None else watch.watched_from
        if down_since is None and heard.first - silent_since > down_after:
            down_since = silent_since
            events.append(Transition(silent_since, "down"))
        if down_since is not None:
            events.append(Transition(heard.first, "up"))
            down_since = None
        for before, after in heard.gaps:
            events += [Transition(before, "down"), Transition(after, "up")]
        last = heard.last
    silent_since = last if last is not None else watch.watched_from
    if down_since is None and now - silent_since > down_after:
        down_since = silent_since
        events.append(Transition(silent_since, "down"))
    return replace(watch, checked_until=now, last_heard=last, down_since=down_since), events


@dataclass(frozen=True, slots=True)
class Reliability:
    """A device's reliability figures over one window (module docstring); seconds and a fraction."""

    observed_s: float  #: the window's length after clipping to the watch's start (0: nothing to judge)
    down_s: float
    failures: int
    repairs: int
    mtbf_s: float | None
    mttr_s: float | None

    @property
    def up_s(self) -> float:
        """Up time in the window, s."""
        return self.observed_s - self.down_s

    @property
    def uptime(self) -> float | None:
        """Up time over observed time, 0..1; None when nothing was observed."""
        return None if self.observed_s <= 0 else self.up_s / self.observed_s


def reliability(events: Sequence[Transition], start: datetime, end: datetime, *, watched_from: datetime,
                down_at_start: bool = False) -> Reliability:
    """Reliability over [start, end) from the device's transitions (module docstring).

    `events` are every transition of the device that ended or began in the window, plus the `down` of an
    outage that is open at `start` (its duration counts for MTTR); `down_at_start` says whether the device was
    down at `start` (given separately so callers need not send older history).
    """
    if end <= start:
        raise ValueError(f"window end {end.isoformat()} must be after its start {start.isoformat()}")
    lo = max(start, watched_from)
    if end <= lo:
        return Reliability(0.0, 0.0, 0, 0, None, None)
    ordered = sorted(events, key=lambda ev: ev.order)
    down_s = 0.0
    failures = repairs = 0
    repair_s = 0.0
    opened: datetime | None = None  # start of the outage being walked through
    is_down = down_at_start
    # the outage open at `start` began at the latest `down` before it, when given
    for ev in ordered:
        if ev.time < lo and ev.state == "down" and down_at_start:
            opened = ev.time
    cursor = lo
    for ev in ordered:
        if ev.time < lo or ev.time >= end:
            continue
        if ev.state == "down" and not is_down:
            is_down, opened, cursor = True, ev.time, ev.time
            failures += 1
        elif ev.state == "up" and is_down:
            down_s += (ev.time - cursor).total_seconds()
            if opened is not None:
                repairs += 1
                repair_s += (ev.time - opened).total_seconds()
            is_down, opened = False, None
    if is_down:
        down_s += (end - cursor).total_seconds()
    observed = (end - lo).total_seconds()
    up = observed - down_s
    return Reliability(observed, down_s, failures, repairs, up / failures if failures else None,
                       repair_s / repairs if repairs else None)
