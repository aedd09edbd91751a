"""Liveness and readiness of the running daemon, kept apart. Pure verdicts + a thin shell (aqnet).

- Liveness (`/healthz`): the process can make progress by itself. It fails when a supervised task is down
  (`aqnet.tasks.TaskSupervisor.down()`) or when a stage has had work pending without advancing for `stall_s`
  (a stuck await, a dead consumer). Spooling during a database outage is progress (the pipeline advances into the
  spool), so it never fails liveness. A failing liveness answer means: restart me.
- Readiness (`/readyz`): the database answers now. A failing readiness answer means: do not count on me to
  store right now (the spool keeps what arrives); never a reason to restart.

Pure part: `ProgressState` and `step_progress(state, pending, advanced, now)`: a stage is sampled as (work
pending, a counter of work done); the stall clock restarts whenever nothing is pending or the counter moved, so
`stalled_s` is how long work has been waiting with no step forward (over-estimated by at most the time between
samples). `blocked` (e.g. the next stage's queue is full: backpressure is that stage's to report) also restarts
it. `liveness(down, stalls, stall_s)` turns that into a `Verdict`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["CountedSink", "HealthMonitor", "ProgressState", "Verdict", "liveness", "step_progress"]


# ------------------------------------------------------------------------------------------------ pure part

@dataclass(frozen=True, slots=True)
class ProgressState:
    """One stage's last sample: its work counter and since when (monotonic s) it has not advanced with work
    pending."""

    advanced: int
    since: float

    def stalled_s(self, now: float) -> float:
        """Seconds with work pending and no step forward."""
        return max(0.0, now - self.since)


def step_progress(state: ProgressState | None, *, pending: int, advanced: int, now: float,
                  blocked: bool = False) -> ProgressState:
    """The state after a sample: the stall clock restarts when nothing is pending, the counter moved or the
    stage is blocked by the next one."""
    if state is None or pending <= 0 or blocked or advanced != state.advanced:
        return ProgressState(advanced, now)
    return state


@dataclass(frozen=True, slots=True)
class Verdict:
    """A health answer: ok, and the reasons when not (task or stage → why)."""

    ok: bool
    reasons: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        """The JSON body of the answer."""
        return {"status": "ok" if self.ok else "fail", "reasons": dict(self.reasons)}


def liveness(down: Mapping[str, str], stalled: Mapping[str, float], stall_s: float) -> Verdict:
    """Live unless a task is down or a stage has been stalled (work pending, no progress) for `stall_s` or more."""
    reasons = {f"task {name}": why for name, why in sorted(down.items())}
    for name, seconds in sorted(stalled.items()):
        if seconds >= stall_s:
            reasons[f"stage {name}"] = (f"work pending and no progress for {seconds:.0f} s "
                                        f"(limit supervision.intake_stall_s = {stall_s:g} s)")
    return Verdict(not reasons, reasons)


# ---------------------------------------------------------------------------------------------- the shell

class _Sink(Protocol):
    async def write(self, batch: Sequence[Any], letters: Sequence[Any] = ()) -> object: ...


@dataclass(slots=True)
class _Watch:
    pending: Callable[[], int]
    advanced: Callable[[], int]
    blocked: Callable[[], bool]
    state: ProgressState | None = None


class HealthMonitor:
    """Answers liveness (supervised tasks + stage progress) and readiness (a database probe).

    Args:
        down: the supervised tasks that are down, with why (`TaskSupervisor.down`).
        probe: an awaitable check that the database answers (raises when it does not).
        intake_stall_s: work pending this long without progress fails liveness.
        readiness_timeout_s: the database probe's time limit.
    """

    def __init__(self, down: Callable[[], Mapping[str, str]], probe: Callable[[], Awaitable[None]], *,
                 intake_stall_s: float, readiness_timeout_s: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._down = down
        self._probe = probe
        self._stall_s = intake_stall_s
        self._probe_timeout_s = readiness_timeout_s
        self._monotonic = monotonic
        self._watches: dict[str, _Watch] = {}

    def watch(self, name: str, *, pending: Callable[[], int], advanced: Callable[[], int],
              blocked: Callable[[], bool] = lambda: False) -> None:
        """Watch stage `name`: its pending work, a counter of work done, and when it waits on the next stage."""
        self._watches[name] = _Watch(pending, advanced, blocked)

    def sample(self) -> dict[str, float]:
        """Sample every stage now; stage → seconds stalled."""
        now = self._monotonic()
        stalled = {}
        for name, w in self._watches.items():
            w.state = step_progress(w.state, pending=w.pending(), advanced=w.advanced(), now=now, blocked=w.blocked())
            stalled[name] = w.state.stalled_s(now)
        return stalled

    def liveness(self) -> Verdict:
        """The `/healthz` verdict."""
        return liveness(self._down(), self.sample(), self._stall_s)

    async def readiness(self) -> Verdict:
        """The `/readyz` verdict: the database answers within `readiness_timeout_s`."""
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                await self._probe()
        except Exception as exc:  # any failure to answer is "not ready"; the reason is in the body
            return Verdict(False, {"database": f"{type(exc).__name__}: {exc}".rstrip(": ")})
        return Verdict(True)


class CountedSink:
    """A pipeline `Sink` that counts finished write attempts (stored, spooled or failed): the pipeline's progress.

    A write that hangs is the one thing this does not count, which is what liveness must see."""

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self.attempts = 0

    async def write(self, batch: Sequence[Any], letters: Sequence[Any] = ()) -> object:
        """`sink.write(batch, letters)`, counted once it returns or raises."""
        try:
            return await self._sink.write(batch, letters)
        finally:
            self.attempts += 1
