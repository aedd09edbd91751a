"""The station pollers of the running daemon, started, stopped and restarted as the registry says. I/O glue (sensors).

`PollerSupervisor` owns one `StationPoller` task per station: `plan_pollers` (pure) compares what runs with what
the registry wants; new stations start, retired or removed ones stop (after the read in progress), changed ones
(a device added, swapped, moved to another endpoint, another poll interval) restart, and the others keep their
connection and polling phase. A station that cannot be polled (a profile that does not load, a device the poller
refuses) is logged with the reason and skipped; it is tried again when its registry entry changes. A poller
that dies (raises, or returns without being stopped) is logged with its traceback and restarted with a fresh
poller after a jittered exponential delay (`sensors.restart.RestartPolicy`; by default it never gives up: one
station's crash loop costs a log line per delay and shows in `aqnet_task_up{task="poll-<id>"}`, it never takes
the daemon down). `storage.live_network` decides what is wanted; this module only runs it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from sensors.restart import GiveUp, RestartPolicy, next_restart
from sensors.sensor import MODBUS_PROTOCOLS, Device, Sensor

__all__ = ["PollTarget", "PollerPlan", "PollerSupervisor", "plan_pollers", "poll_targets"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ pure part

@dataclass(frozen=True, slots=True)
class PollTarget:
    """What one station poller polls: the station with its Modbus devices only, and its poll interval (s).

    Two targets are equal when their devices and interval are: a renamed or moved station keeps its poller."""

    sensor: Sensor
    interval_s: float

    @property
    def devices(self) -> tuple[Device, ...]:
        """The Modbus devices polled."""
        return self.sensor.devices

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PollTarget):
            return NotImplemented
        return (self.sensor.id, self.devices, self.interval_s) == (other.sensor.id, other.devices, other.interval_s)

    def __hash__(self) -> int:
        return hash((self.sensor.id, self.devices, self.interval_s))


def poll_targets(network: Iterable[Sensor], interval_of: Callable[[str], float]) -> dict[str, PollTarget]:
    """sensor id → PollTarget for every sensor with at least one Modbus device."""
    targets: dict[str, PollTarget] = {}
    for sensor in network:
        modbus = tuple(d for d in sensor.devices if d.protocol in MODBUS_PROTOCOLS)
        if modbus:
            targets[sensor.id] = PollTarget(replace(sensor, devices=modbus), interval_of(sensor.id))
    return targets


@dataclass(frozen=True, slots=True)
class PollerPlan:
    """Pollers to stop (retired, removed or changed) and to start (new or changed), by sensor id."""

    stop: tuple[str, ...]
    start: tuple[str, ...]

    @property
    def restart(self) -> tuple[str, ...]:
        """Sensors both stopped and started: their devices, endpoints or interval changed."""
        return tuple(s for s in self.stop if s in self.start)


def plan_pollers(running: Mapping[str, PollTarget], wanted: Mapping[str, PollTarget]) -> PollerPlan:
    """Which pollers to stop and start to go from `running` to `wanted` (unchanged ones are left alone)."""
    stop = tuple(sorted(sid for sid, t in running.items() if wanted.get(sid) != t))
    start = tuple(sorted(sid for sid, t in wanted.items() if running.get(sid) != t))
    return PollerPlan(stop, start)


# ---------------------------------------------------------------------------------------------- the shell

class _Poller(Protocol):
    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class _Running:
    target: PollTarget
    poller: _Poller
    task: asyncio.Task[None]
    stopping: bool = False


#: pollers are restarted for as long as the registry wants them (doubling up to a minute between attempts)
POLLER_RESTARTS = RestartPolicy(min_s=1.0, max_s=60.0, max_restarts=None)


class PollerSupervisor:
    """One poller task per station, started, stopped and restarted as the registry says, and restarted with
    backoff when it dies.

    Args:
        make_poller: builds a station's poller from its target (raises ValueError when it cannot be polled).
        policy: how a poller that died is restarted.
        on_state: `(task name, up)` when a poller task starts, dies or is restarted (task name `poll-<id>`).
        on_restart: `(task name)` at each restart after a death.
        on_removed: `(task name)` when the registry stops a station's poller.
    """

    def __init__(self, make_poller: Callable[[PollTarget], _Poller], *, policy: RestartPolicy = POLLER_RESTARTS,
                 on_state: Callable[[str, bool], None] | None = None,
                 on_restart: Callable[[str], None] | None = None,
                 on_removed: Callable[[str], None] | None = None, rng: random.Random | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._make = make_poller
        self._policy = policy
        self._on_state = on_state or (lambda name, up: None)
        self._on_restart = on_restart or (lambda name: None)
        self._on_removed = on_removed or (lambda name: None)
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._running: dict[str, _Running] = {}
        self._refused: dict[str, PollTarget] = {}  # targets that could not be polled, not retried until changed
        self._down: dict[str, str] = {}  # sensor id → why its poller is down (waiting for its restart)

    @property
    def running(self) -> dict[str, PollTarget]:
        """sensor id → what its poller polls."""
        return {sid: r.target for sid, r in self._running.items()}

    def down(self) -> dict[str, str]:
        """Task name (`poll-<id>`) → why, for every poller that died and waits for its restart."""
        return {f"poll-{sid}": why for sid, why in self._down.items()}

    async def apply(self, wanted: Mapping[str, PollTarget]) -> PollerPlan:
        """Stop, start and restart pollers so that exactly `wanted` is polled; returns what was done."""
        plan = plan_pollers(self.running, wanted)
        await asyncio.gather(*(self._stop(sid) for sid in plan.stop))
        for sid in [s for s in self._refused if wanted.get(s) != self._refused[s]]:
            del self._refused[sid]
        for sid in plan.start:
            target = wanted[sid]
            if self._refused.get(sid) == target:
                continue
            poller = self._build(sid, target)
            if poller is None:
                continue
            task = asyncio.create_task(self._supervise(sid), name=f"poll-{sid}")
            self._running[sid] = _Running(target, poller, task)
        return plan

    def _build(self, sid: str, target: PollTarget) -> _Poller | None:
        try:
            return self._make(target)
        except ValueError as exc:
            self._refused[sid] = target
            log.error("sensor %s: not polled: %s; fix its registry entry (it is tried again when it changes)",
                      sid, exc)
            return None

    async def _supervise(self, sid: str) -> None:
        name = f"poll-{sid}"
        failures: tuple[float, ...] = ()
        self._on_state(name, True)
        while True:
            running = self._running[sid]
            try:
                await running.poller.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if running.stopping:
                    return
                cause = f"{type(exc).__name__}: {exc}"
                log.error("sensor %s: poller died: %s", sid, cause, exc_info=exc)
            else:
                if running.stopping:
                    return
                cause = "returned without being stopped"
                log.error("sensor %s: poller %s", sid, cause)
            self._down[sid] = cause
            self._on_state(name, False)
            failures, decision = next_restart(self._policy, failures, self._monotonic(), self._rng.random())
            if isinstance(decision, GiveUp):
                self._down[sid] = f"{cause}; {decision.reason}; polled again when its registry entry changes"
                log.error("sensor %s: poller given up: %s", sid, self._down[sid])
                return
            log.warning("sensor %s: poller restarted in %.1f s (failure %d within %g s)", sid, decision.delay_s,
                        decision.attempt, self._policy.window_s)
            await asyncio.sleep(decision.delay_s)
            poller = self._build(sid, running.target)
            if poller is None:
                return
            running.poller = poller
            del self._down[sid]
            self._on_restart(name)
            self._on_state(name, True)

    async def _stop(self, sensor_id: str) -> None:
        running = self._running.pop(sensor_id)
        running.stopping = True
        dead = self._down.pop(sensor_id, None) is not None  # waiting for its restart, or given up
        try:
            if not dead:  # a dead poller's stop() would wait for this supervising task: cancel it instead
                await running.poller.stop()
        finally:
            if not running.task.done():
                running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
            self._on_removed(f"poll-{sensor_id}")

    async def close(self) -> None:
        """Stop every poller."""
        await asyncio.gather(*(self._stop(sid) for sid in list(self._running)))

    def cancel(self) -> None:
        """Cancel every poller task at once (shutdown: the reads in progress are not awaited)."""
        for running in self._running.values():
            running.stopping = True
            running.task.cancel()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The running poller tasks."""
        return [r.task for r in self._running.values()]
