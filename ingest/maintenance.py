"""Maintenance windows and the book that says whether a reading falls in one (ingest stage). Pure.

A technician puts a whole sensor, one of its devices, or one variable in maintenance for a period
(`aqnet sensors maintenance ID --from --to --reason`); every reading inside it is stored with QC.MAINTENANCE,
which keeps it out of averages, indices and alerts (ingest.reading.EXCLUDED) — the readings are kept, never
dropped (VARIABLES.md, "Which readings count").

Contract:
- A window covers `[starts_at, ends_at)` of the reading's *measurement* time (`Reading.time`), not its receive
  time: a reading logged during the work and read back later from a logger's history is still flagged.
- Scope: `device_id` None and `variable` None → every reading of the sensor; `device_id` set → only that
  device's readings; `variable` set → only that variable (of that device when both are set).
- A sensor whose lifecycle is `maintenance` (the registry's state) is in maintenance for all its readings, at
  any time, for as long as the state lasts: `MaintenanceBook(windows, sensors_in_maintenance=...)`.
- Scheduled zero/span checks (`sensors.zero_span.CheckSchedule`, from the `zero_span.checks` settings) of
  analysers without a zero/span status bit: every run of a schedule, from its start to the end of its purge
  time, is a window of that device (`reason` "zero/span check (scheduled)"), so the check's readings and those
  of the purge after it are flagged QC.MAINTENANCE like any other maintenance.
- The book is immutable once built; the daemon builds a new one from the registry on each change and hands it
  to the pipeline, like the calibration book.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ingest.reading import QC, Reading
from sensors.zero_span import CheckSchedule, CheckWindow, occurrences, window_at

__all__ = ["CHECK_REASON", "MaintenanceBook", "MaintenanceWindow", "flag_maintenance"]

#: the reason of the windows a scheduled zero/span check makes
CHECK_REASON = "zero/span check (scheduled)"


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """One maintenance period of a sensor, or of one device or variable of it (see the module docstring)."""

    sensor_id: str
    starts_at: datetime  #: inclusive, aware
    ends_at: datetime  #: exclusive, aware, after starts_at
    device_id: str | None = None  #: None: every device of the sensor
    variable: str | None = None  #: None: every variable
    id: int | None = None  #: maintenance_windows.id, when it comes from the registry
    reason: str = ""

    def __post_init__(self) -> None:
        where = f"maintenance window {self.id if self.id is not None else '(new)'} of sensor {self.sensor_id}"
        for name in ("starts_at", "ends_at"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{where}: {name}: expected an aware datetime, got naive {value.isoformat()}")
        if not self.starts_at < self.ends_at:
            raise ValueError(f"{where}: ends_at {self.ends_at.isoformat()} must be after starts_at "
                             f"{self.starts_at.isoformat()}")

    def covers(self, sensor_id: str, device_id: str, variable: str, time: datetime) -> bool:
        """True when a reading of (sensor, device, variable) measured at `time` falls in this window."""
        return (sensor_id == self.sensor_id
                and (self.device_id is None or device_id == self.device_id)
                and (self.variable is None or variable == self.variable)
                and self.starts_at <= time < self.ends_at)


class MaintenanceBook:
    """The maintenance windows in force, indexed by sensor and start time, plus sensors in maintenance."""

    def __init__(self, windows: Iterable[MaintenanceWindow] = (), *,
                 sensors_in_maintenance: Iterable[str] = (), checks: Iterable[CheckSchedule] = ()) -> None:
        by_sensor: dict[str, list[MaintenanceWindow]] = {}
        for window in windows:
            by_sensor.setdefault(window.sensor_id, []).append(window)
        self._index: dict[str, tuple[tuple[datetime, ...], tuple[MaintenanceWindow, ...]]] = {}
        for sensor_id, found in by_sensor.items():
            found.sort(key=lambda w: (w.starts_at, w.ends_at))
            self._index[sensor_id] = (tuple(w.starts_at for w in found), tuple(found))
        self._sensors = frozenset(sensors_in_maintenance)
        self._checks: dict[str, tuple[CheckSchedule, ...]] = {}
        for check in checks:
            self._checks[check.sensor_id] = (*self._checks.get(check.sensor_id, ()), check)

    @property
    def checks(self) -> tuple[CheckSchedule, ...]:
        """The scheduled zero/span checks the book flags."""
        return tuple(c for found in self._checks.values() for c in found)

    def with_checks(self, checks: Iterable[CheckSchedule]) -> MaintenanceBook:
        """This book with `checks` as its scheduled zero/span checks (a new book; this one is unchanged)."""
        return MaintenanceBook(self, sensors_in_maintenance=self._sensors, checks=checks)

    def windows_between(self, sensor_id: str, start: datetime, end: datetime) -> tuple[MaintenanceWindow, ...]:
        """Every window of `sensor_id` that may cover a time in [start, end]: its stored windows and the runs of
        its scheduled checks overlapping that range."""
        runs = [_as_window(run) for check in self._checks.get(sensor_id, ())
                for run in occurrences(check, start, end + _TICK)]
        return (*self.windows_of(sensor_id), *runs)

    @property
    def sensors_in_maintenance(self) -> frozenset[str]:
        """Sensors whose lifecycle state is maintenance (every reading flagged)."""
        return self._sensors

    def windows_of(self, sensor_id: str) -> tuple[MaintenanceWindow, ...]:
        """Every window of `sensor_id` (of any device or variable), by start."""
        entry = self._index.get(sensor_id)
        return () if entry is None else entry[1]

    def window_for(self, sensor_id: str, device_id: str, variable: str, time: datetime
                   ) -> MaintenanceWindow | None:
        """The first window (by start) covering a reading of (sensor, device, variable) at `time`, or None."""
        entry = self._index.get(sensor_id)
        if entry is not None:
            starts, windows = entry
            # only windows starting at or before `time` can cover it; windows may overlap, so look at all of them
            for window in windows[:bisect.bisect_right(starts, time)]:
                if window.covers(sensor_id, device_id, variable, time):
                    return window
        for check in self._checks.get(sensor_id, ()):
            if check.covers(device_id):
                run = window_at(check, time)
                if run is not None:
                    return _as_window(run)
        return None

    def in_maintenance(self, sensor_id: str, device_id: str, variable: str, time: datetime) -> bool:
        """True when the sensor is in the maintenance state or a window covers the reading."""
        return sensor_id in self._sensors or self.window_for(sensor_id, device_id, variable, time) is not None

    def __iter__(self) -> Iterator[MaintenanceWindow]:
        for _, windows in self._index.values():
            yield from windows

    def __len__(self) -> int:
        return sum(len(windows) for _, windows in self._index.values())


_TICK = timedelta(microseconds=1)


def _as_window(run: CheckWindow) -> MaintenanceWindow:
    """A scheduled check's run, purge included, as a maintenance window of its device."""
    return MaintenanceWindow(sensor_id=run.schedule.sensor_id, starts_at=run.starts_at, ends_at=run.purge_ends_at,
                             device_id=run.schedule.device_id, reason=CHECK_REASON)


def flag_maintenance(reading: Reading, book: MaintenanceBook | None) -> Reading:
    """`reading` with QC.MAINTENANCE added when `book` puts it in maintenance; unchanged otherwise."""
    if book is None or reading.flags & QC.MAINTENANCE:
        return reading
    if book.in_maintenance(reading.sensor_id, reading.device_id, reading.variable, reading.time):
        return replace(reading, flags=reading.flags | QC.MAINTENANCE)
    return reading
