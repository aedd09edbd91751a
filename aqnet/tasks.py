"""Supervision of the daemon's long-running asyncio tasks: no task dies silently. Pure policy + a small shell.

Pure part: `RestartPolicy` and `next_restart(policy, failures, now, u)`. A task that fails is restarted after a
jittered exponential delay (`min_s` doubling up to `max_s`, the delay drawn from `[d·(1-jitter), d]` with `u` in
[0, 1)); the exponent is the number of failures within the last `window_s`, so a task that ran well for a window
starts again from `min_s`. A task that failed more than `max_restarts` times within `window_s` is given up
(`GiveUp`); `max_restarts=None` never gives up.

Shell: `TaskSupervisor.start(name, factory, restart=...)` runs `await factory()` in a task of its own. When the
coroutine raises (or returns while the supervisor is not stopping: a long-running task never ends by itself) the
cause is logged with its traceback, the task is marked down (`on_state(name, False)`), and then either:
- restartable: after the policy's delay, `factory()` is called again (`on_restart(name)`, then `on_state(name,
  True)`);
- not restartable (state that cannot be rebuilt safely), or given up: `on_fatal(name, reason)` is called once
  (the daemon stops, flushes what it can, and exits non-zero so systemd or the container starts it again).
`down()` says which tasks are down and why (liveness). `stopping()` marks the shutdown: from then on a task
that returns is done, not dead; `cancel()` ends every supervised task.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["GiveUp", "Restart", "RestartPolicy", "TaskDown", "TaskSupervisor", "next_restart"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ pure part

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


class TaskDown(Exception):
    """Raised by a watchdog coroutine when what it watches is down (`reason` says what)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------- the shell

@dataclass(slots=True)
class _Supervised:
    name: str
    factory: Callable[[], Awaitable[None]]
    restart: bool
    policy: RestartPolicy
    task: asyncio.Task[None] | None = None
    down: str | None = None  #: why it is down, None while it runs
    restarts: int = 0


class TaskSupervisor:
    """Runs named long-running coroutines, restarting or escalating their failures (see the module docstring).

    Args:
        policy: the default restart policy (each task may have its own).
        on_state: `(name, up)` whenever a task starts, restarts or goes down (the up/down gauge).
        on_restart: `(name)` at each restart (the restarts counter).
        on_fatal: `(name, reason)` once, when a task is down for good; the owner stops the daemon.
        rng: randomness for the jitter.
        monotonic: the clock of the restart window.
        sleep: waits out a restart delay (tests hold a task down with it).
    """

    def __init__(self, policy: RestartPolicy, *, on_state: Callable[[str, bool], None] | None = None,
                 on_restart: Callable[[str], None] | None = None,
                 on_fatal: Callable[[str, str], None] | None = None, rng: random.Random | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._policy = policy
        self._sleep = sleep
        self._on_state = on_state or (lambda name, up: None)
        self._on_restart = on_restart or (lambda name: None)
        self._on_fatal = on_fatal or (lambda name, reason: None)
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._tasks: dict[str, _Supervised] = {}
        self._stopping = False
        self.fatal: tuple[str, str] | None = None  #: (task, reason) of the first task down for good

    def start(self, name: str, factory: Callable[[], Awaitable[None]], *, restart: bool = True,
              policy: RestartPolicy | None = None) -> asyncio.Task[None]:
        """Run `await factory()` supervised, as task `name`; returns the supervising task."""
        if name in self._tasks:
            raise ValueError(f"TaskSupervisor: a task named {name!r} is already supervised")
        entry = _Supervised(name, factory, restart, policy or self._policy)
        self._tasks[name] = entry
        entry.task = asyncio.get_running_loop().create_task(self._supervise(entry), name=name)
        return entry.task

    def task(self, name: str) -> asyncio.Task[None]:
        """The supervising task of `name` (await it to wait for the end of a task asked to finish)."""
        task = self._tasks[name].task
        assert task is not None
        return task

    def restarts(self, name: str) -> int:
        """How often `name` was restarted."""
        return self._tasks[name].restarts

    def down(self) -> dict[str, str]:
        """Task name → why it is down, for every supervised task not running now."""
        return {name: e.down for name, e in self._tasks.items() if e.down is not None}

    def stopping(self) -> None:
        """Shutdown has begun: a task that returns from now on has finished, it did not die."""
        self._stopping = True

    def cancel(self, *, except_: tuple[str, ...] = ()) -> list[asyncio.Task[None]]:
        """Stop supervising and cancel every task but `except_`; returns the supervising tasks cancelled."""
        self._stopping = True
        cancelled = []
        for name, entry in self._tasks.items():
            if name not in except_ and entry.task is not None and not entry.task.done():
                entry.task.cancel()
                cancelled.append(entry.task)
        return cancelled

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """Every supervising task."""
        return [e.task for e in self._tasks.values() if e.task is not None]

    async def _supervise(self, entry: _Supervised) -> None:
        failures: tuple[float, ...] = ()
        self._on_state(entry.name, True)
        while True:
            try:
                await entry.factory()
            except asyncio.CancelledError:
                raise
            except (Exception, SystemExit) as exc:  # uvicorn ends a failed start with SystemExit
                if self._stopping:
                    log.warning("task %s: ended with an error during shutdown: %r", entry.name, exc)
                    return
                cause = f"{type(exc).__name__}: {exc}"
                log.error("task %s died: %s", entry.name, cause, exc_info=exc)
            else:
                if self._stopping:
                    return
                cause = "returned although it runs until the daemon stops"
                log.error("task %s ended: %s", entry.name, cause)
            entry.down = cause
            self._on_state(entry.name, False)
            if not entry.restart:
                self._give_up(entry, f"{cause} (not restartable: the daemon exits so that it is started afresh)")
                return
            failures, decision = next_restart(entry.policy, failures, self._monotonic(), self._rng.random())
            if isinstance(decision, GiveUp):
                self._give_up(entry, f"{cause}; {decision.reason}")
                return
            log.warning("task %s: restart %d within %g s, in %.1f s", entry.name, decision.attempt,
                        entry.policy.window_s, decision.delay_s)
            await self._sleep(decision.delay_s)
            if self._stopping:
                return
            entry.restarts += 1
            entry.down = None
            self._on_restart(entry.name)
            self._on_state(entry.name, True)
            log.info("task %s restarted (restart %d since start)", entry.name, entry.restarts)

    def _give_up(self, entry: _Supervised, reason: str) -> None:
        entry.down = reason
        log.critical("task %s is down for good: %s", entry.name, reason)
        if self.fatal is None:
            self.fatal = (entry.name, reason)
            self._on_fatal(entry.name, reason)
