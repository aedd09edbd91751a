"""The restart policy of supervised tasks: jittered exponential backoff with a restart budget per window. Pure
(sensors: the lowest stage whose long-running tasks are supervised, the station pollers; the shell's
`aqnet.tasks.TaskSupervisor` uses the same policy).

`RestartPolicy` and `next_restart(policy, failures, now, u)`. A task that fails is restarted after a jittered
exponential delay (`min_s` doubling up to `max_s`, the delay drawn from `[d·(1-jitter), d]` with `u` in [0, 1)); the
exponent is the number of failures within the last `window_s`, so a task that ran well for a window starts again
from `min_s`. A task that failed more than `max_restarts` times within `window_s` is given up (`GiveUp`);
`max_restarts=None` never gives up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GiveUp", "Restart", "RestartPolicy", "next_restart"]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a failed task is restarted: jittered exponential backoff, with a restart budget per window."""

    min_s: float = 1.0  #: first delay (s)
    max_s: float = 60.0  #: delay cap (s)
    jitter: float = 0.5  #: the delay is drawn from [d·(1 - jitter), d]; 0: no jitter
    max_restarts: int | None = 5  #: more failures than this within window_s: give up (None: never)
    window_s: float = 300.0  #: failures older than this are forgotten (s)

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError(f"RestartPolicy: expected 0 < min_s <= max_s, got min_s={self.min_s}, "
                             f"max_s={self.max_s}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RestartPolicy: jitter: expected 0..1, got {self.jitter}")
        if self.max_restarts is not None and self.max_restarts < 0:
            raise ValueError(f"RestartPolicy: max_restarts: expected >= 0 or None, got {self.max_restarts}")
        if self.window_s <= 0:
            raise ValueError(f"RestartPolicy: window_s: expected > 0, got {self.window_s}")

    def delay_s(self, attempt: int, u: float) -> float:
        """Delay before restart number `attempt` (1-based, counted within the window); `u` in [0, 1)."""
        if attempt < 1:
            raise ValueError(f"RestartPolicy.delay_s: attempt: expected >= 1, got {attempt}")
        if not 0 <= u < 1:
            raise ValueError(f"RestartPolicy.delay_s: u: expected 0 <= u < 1, got {u}")
        ceiling = min(self.max_s, self.min_s * 2.0 ** min(attempt - 1, 64))
        return ceiling * (1 - self.jitter * u)


@dataclass(frozen=True, slots=True)
class Restart:
    """Restart after `delay_s`; `attempt` counts the failures within the window, this one included."""

    delay_s: float
    attempt: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Do not restart: `reason` says why (for the log and the liveness answer)."""

    reason: str


def next_restart(policy: RestartPolicy, failures: tuple[float, ...], now: float,
                 u: float) -> tuple[tuple[float, ...], Restart | GiveUp]:
    """A failure at `now` (monotonic s): the failures still within the window (this one included) and what to do.

    `failures` are the earlier failure times returned by the previous call (empty at first)."""
    recent = (*(t for t in failures if now - t < policy.window_s), now)
    if policy.max_restarts is not None and len(recent) > policy.max_restarts:
        return recent, GiveUp(f"failed {len(recent)} times within {policy.window_s:g} s "
                              f"(at most {policy.max_restarts} restarts)")
    return recent, Restart(policy.delay_s(len(recent), u), len(recent))
