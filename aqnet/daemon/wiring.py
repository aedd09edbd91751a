"""What every start step of the daemon takes from it. Shell (aqnet), pure.

The settings, clock, metrics, exit stack and task supervisor; a leaf of `aqnet.daemon`, so the steps never import
the `Daemon` itself."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aqnet.config import Settings
from aqnet.metrics import Metrics
from aqnet.tasks import TaskSupervisor
from sensors.clock import Clock

__all__ = ["Wiring"]


@dataclass(frozen=True)
class Wiring:
    """The daemon's shared parts, as its start steps use them.

    `start(name, factory)` runs a supervised task and pushes its cancellation on the exit stack, so a failed start
    (or the exit after a clean stop) cancels the tasks of later steps before the resources of earlier ones close."""

    settings: Settings
    clock: Clock
    metrics: Metrics
    stack: contextlib.AsyncExitStack
    tasks: TaskSupervisor

    def start(self, name: str, factory: Callable[[], Awaitable[None]], *, restart: bool = True) -> None:
        """Run `factory()` supervised as task `name`; cancelled at exit."""
        self.stack.callback(self.tasks.start(name, factory, restart=restart).cancel)
