"""The station pollers of the running daemon, started, stopped and restarted as the registry says. I/O glue (aqnet).

`PollerSupervisor` owns one `StationPoller` task per station: `plan_pollers` (pure) compares what runs with what
the registry wants; new stations start, retired or removed ones stop (after the read in progress), changed ones
(a device added, swapped, moved to another endpoint, another poll interval) restart, and the others keep their
connection and polling phase. A station that cannot be polled (a profile that does not load, a device the poller
refuses) is logged with the reason and skipped; it is tried again when its registry entry changes.
`aqnet.live_network` decides what is wanted; this module only runs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

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


class PollerSupervisor:
    """One poller task per station, started, stopped and restarted as the registry says.

    Args:
        make_poller: builds a station's poller from its target (raises ValueError when it cannot be polled).
    """

    def __init__(self, make_poller: Callable[[PollTarget], _Poller]) -> None:
        self._make = make_poller
        self._running: dict[str, _Running] = {}
        self._refused: dict[str, PollTarget] = {}  # targets that could not be polled, not retried until changed

    @property
    def running(self) -> dict[str, PollTarget]:
        """sensor id → what its poller polls."""
        return {sid: r.target for sid, r in self._running.items()}

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
            try:
                poller = self._make(target)
            except ValueError as exc:
                self._refused[sid] = target
                log.error("sensor %s: not polled: %s; fix its registry entry (it is tried again when it changes)",
                          sid, exc)
                continue
            task = asyncio.create_task(poller.run(), name=f"poll-{sid}")
            task.add_done_callback(lambda t, sid=sid: self._ended(sid, t))
            self._running[sid] = _Running(target, poller, task)
        return plan

    def _ended(self, sensor_id: str, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("sensor %s: poller stopped on an error: %r; polled again when its registry entry changes",
                      sensor_id, exc)

    async def _stop(self, sensor_id: str) -> None:
        running = self._running.pop(sensor_id)
        try:
            await running.poller.stop()
        finally:
            if not running.task.done():
                running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)

    async def close(self) -> None:
        """Stop every poller."""
        await asyncio.gather(*(self._stop(sid) for sid in list(self._running)))

    def cancel(self) -> None:
        """Cancel every poller task at once (shutdown: the reads in progress are not awaited)."""
        for running in self._running.values():
            running.task.cancel()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The running poller tasks."""
        return [r.task for r in self._running.values()]
