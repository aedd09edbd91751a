"""sensors.clock: simulated time from an origin, accelerated, catching up with the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sensors.clock import SimClock, realtime


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_accelerated_time_runs_speed_times_faster_from_its_origin() -> None:
    wall = Wall(1_900_000_000.0)  # 2030: simulated 2026 lies in its past
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    clock = SimClock(origin, wall.t, speed=120, wall=wall)
    assert clock() == origin
    wall.t += 30
    assert clock() == origin + timedelta(hours=1)
    assert clock.accelerated()
    assert clock.real_seconds(60) == pytest.approx(0.5)


def test_catching_up_with_the_wall_clock_then_real_time_never_the_future() -> None:
    start = 1_800_000_000.0
    wall = Wall(start)
    clock = SimClock(datetime.fromtimestamp(start, UTC) - timedelta(hours=1), start, speed=120, wall=wall)
    wall.t += 29
    assert clock() < datetime.fromtimestamp(wall.t, UTC)
    wall.t += 10  # 39 s × 120 = 78 min simulated: past now
    assert clock() == datetime.fromtimestamp(wall.t, UTC)
    assert not clock.accelerated()
    assert clock.real_seconds(60) == 60


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(datetime(2026, 1, 1, tzinfo=UTC), 0.0, speed=0.5)
    with pytest.raises(ValueError, match="sim_origin"):
        SimClock(datetime(2026, 1, 1), 0.0, speed=2)


def test_realtime_is_aware_utc() -> None:
    assert realtime().tzinfo is UTC
