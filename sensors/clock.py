"""The injected clock every stage reads instead of the wall clock: real time, or simulated time running `speed`
times faster from an agreed origin. Pure (the wall clock itself is injected).

`aqnet up --speed X` runs the simulators and the daemon in separate processes; they share one simulated time by
sharing the same `SimClock` parameters (simulated origin, wall-clock origin, speed), so a device's timestamp,
the daemon's `received_at` and the scheduler's "now" agree. Intervals in simulated seconds become
`real_seconds(s)` of sleeping. Once simulated time has caught up with the wall clock (`catch_up=True`), the clock
runs at real time from there on, so no timestamp ever lies in the future.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "SimClock", "realtime"]

#: A clock: returns an aware UTC datetime.
Clock = Callable[[], datetime]


def realtime() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SimClock:
    """Simulated time: `sim_origin` at wall-clock `wall_origin` (Unix seconds), advancing `speed`× real time.

    With `catch_up`, once simulated time reaches the wall clock it follows the wall clock (speed 1).
    """

    sim_origin: datetime
    wall_origin: float
    speed: float = 1.0
    catch_up: bool = True
    wall: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.sim_origin.tzinfo is None:
            raise ValueError(f"SimClock.sim_origin: expected an aware datetime, got naive {self.sim_origin}")
        if not self.speed >= 1:
            raise ValueError(f"SimClock.speed: expected >= 1, got {self.speed}")

    def __call__(self) -> datetime:
        wall = self.wall()
        t = self.sim_origin + timedelta(seconds=(wall - self.wall_origin) * self.speed)
        if self.catch_up:
            real = datetime.fromtimestamp(wall, UTC)
            if t > real:
                return real
        return t.astimezone(UTC)

    def accelerated(self) -> bool:
        """Whether simulated time is still running faster than the wall clock."""
        return self.speed > 1 and self() < datetime.fromtimestamp(self.wall(), UTC)

    def real_seconds(self, simulated_s: float) -> float:
        """How long to sleep for `simulated_s` of simulated time, now."""
        return simulated_s / self.speed if self.accelerated() else simulated_s
