"""Supervision of the daemon's long-running asyncio tasks: no task dies silently. Shell (aqnet), over the pure
restart policy of `sensors.restart` (`RestartPolicy`, `next_restart`).

`TaskSupervisor.start(name, factory, restart=...)` runs `await factory()` in a task of its own. When the
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

from sensors.restart import GiveUp, RestartPolicy, next_restart

__all__ = ["TaskDown", "TaskSupervisor"]

log = logging.getLogger(__name__)


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

    @property
    def policy(self) -> RestartPolicy:
        """The default restart policy."""
        return self._policy

    def start(self, name: str, factory: Callable[[], Awaitable[None]], *, restart: bool = True,
              policy: RestartPolicy | None = None) -> asyncio.Task[None]:
        """Run `await factory()` supervised, as task `name`; returns the supervising task."""
        if name in self._tasks:
            raise ValueError(f"TaskSupervisor: a task named {name!r} is already supervised")
        entry = _Supervised(name, factory, restart, policy or self._policy)
        self._tasks[name] = entry
        entry.task = asyncio.get_running_loop().create_task(self._supervise(entry), name=name)
        return entry.task

    def __contains__(self, name: object) -> bool:
        """A task called `name` was started."""
        return name in self._tasks

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
