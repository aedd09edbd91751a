"""Scheduled zero/span checks of reference analysers: when each check runs and what phase a time falls in. Pure.

Reference analysers check themselves on a schedule (nightly, as a rule): they sample zero air, then span gas of a
known concentration, then ambient air again. An analyser whose profile has a zero/span status bit says so itself
(e.g. `teledyne-t400.yaml` bits 20-23 → QC.MAINTENANCE); for one without, the network's configured schedule says
when its readings are not ambient air. This module is that schedule's arithmetic, shared by the ingest stage (which
flags the readings, `ingest.maintenance`), the recording job (which measures each check's responses) and the
simulators (whose analysers run the same checks).

A `CheckSchedule` runs every `every_days` days (counted from 1970-01-01 in the schedule's time zone, so "every 2
days" is the same days whatever the start) at `at_minute` minutes after local midnight:

    starts_at ── zero phase (zero_min) ──▶ span_at ── span phase (span_min) ──▶ ends_at ── purge (purge_min) ──▶
    purge_ends_at

Readings in [starts_at, purge_ends_at) are not ambient air: the check itself, then the purge time while the
analyser's cell and lines flush the span gas (`CheckWindow.phase`). Times are aware datetimes; phases are half-open.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

__all__ = ["CheckSchedule", "CheckWindow", "Phase", "occurrences", "window_at"]

Phase = Literal["zero", "span", "purge"]
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class CheckSchedule:
    """One device's scheduled zero/span check (module docstring), with the span gas it expects."""

    sensor_id: str
    device_id: str
    variable: str  #: vocabulary code whose responses are recorded (e.g. o3)
    tz: tzinfo  #: the time zone `at_minute` is read in (the network's)
    at_minute: int  #: start, minutes after local midnight (0..1439)
    zero_min: float  #: minutes on zero air
    span_min: float  #: minutes on span gas
    purge_min: float  #: minutes after the span phase still excluded (flushing)
    span_value: float  #: the span gas concentration the analyser should read, in `unit`
    unit: str  #: the unit of `span_value` and of the limits (ppb, ppm)
    every_days: int = 1  #: 1: nightly
    zero_value: float = 0.0  #: what the analyser should read on zero air, in `unit`

    def __post_init__(self) -> None:
        where = f"zero/span schedule of {self.sensor_id}/{self.device_id}"
        if not 0 <= self.at_minute < 24 * 60:
            raise ValueError(f"{where}: at_minute: expected 0..1439, got {self.at_minute}")
        if self.every_days < 1:
            raise ValueError(f"{where}: every_days: expected >= 1, got {self.every_days}")
        for name in ("zero_min", "span_min"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{where}: {name}: expected minutes > 0, got {value}")
        if not (math.isfinite(self.purge_min) and self.purge_min >= 0):
            raise ValueError(f"{where}: purge_min: expected minutes >= 0, got {self.purge_min}")
        if self.zero_min + self.span_min + self.purge_min >= self.every_days * 24 * 60:
            raise ValueError(f"{where}: the check and its purge ({self.zero_min + self.span_min + self.purge_min:g} "
                             f"min) must be shorter than the schedule's period ({self.every_days} day(s))")
        if not (math.isfinite(self.span_value) and self.span_value != self.zero_value):
            raise ValueError(f"{where}: span_value: expected a finite value other than zero_value "
                             f"({self.zero_value:g}), got {self.span_value}")

    @property
    def length(self) -> timedelta:
        """From the check's start to the end of its purge."""
        return timedelta(minutes=self.zero_min + self.span_min + self.purge_min)

    def covers(self, device_id: str) -> bool:
        """True for readings of `device_id` (a check takes the whole analyser off ambient air)."""
        return device_id == self.device_id


@dataclass(frozen=True, slots=True)
class CheckWindow:
    """One run of a schedule: its phases' bounds (aware, half-open)."""

    schedule: CheckSchedule
    starts_at: datetime
    span_at: datetime
    ends_at: datetime
    purge_ends_at: datetime

    def phase(self, t: datetime) -> Phase | None:
        """'zero', 'span' or 'purge' when `t` falls in this run, else None."""
        if t < self.starts_at or t >= self.purge_ends_at:
            return None
        if t < self.span_at:
            return "zero"
        return "span" if t < self.ends_at else "purge"


def _run(schedule: CheckSchedule, day: date) -> CheckWindow:
    local = datetime.combine(day, time(), tzinfo=schedule.tz) + timedelta(minutes=schedule.at_minute)
    start = local.astimezone(UTC)
    span_at = start + timedelta(minutes=schedule.zero_min)
    ends_at = span_at + timedelta(minutes=schedule.span_min)
    return CheckWindow(schedule, start, span_at, ends_at, ends_at + timedelta(minutes=schedule.purge_min))


def _days(schedule: CheckSchedule, first: date, last: date) -> Iterator[date]:
    offset = (first - _EPOCH).days % schedule.every_days
    day = first if offset == 0 else first + timedelta(days=schedule.every_days - offset)
    while day <= last:
        yield day
        day += timedelta(days=schedule.every_days)


def occurrences(schedule: CheckSchedule, since: datetime, until: datetime) -> list[CheckWindow]:
    """The runs whose [starts_at, purge_ends_at) overlaps [since, until), by start."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("occurrences: since and until must be aware datetimes")
    if until <= since:
        return []
    first = (since - schedule.length).astimezone(schedule.tz).date() - timedelta(days=1)
    last = until.astimezone(schedule.tz).date() + timedelta(days=1)
    return [w for w in (_run(schedule, d) for d in _days(schedule, first, last))
            if w.starts_at < until and w.purge_ends_at > since]


def window_at(schedule: CheckSchedule, t: datetime) -> CheckWindow | None:
    """The run `t` falls in (check or purge), or None."""
    found = occurrences(schedule, t, t + timedelta(microseconds=1))
    return found[0] if found else None


class StatusPurge:
    """The purge after a check an analyser reports with its own status bit (a zero/span or calibration mode).

    Such readings already carry the device's maintenance bit while the bit is set; for `purge_s[device]` seconds
    from the first reading without it (the bit seen clear: the lines are flushing) the readings keep it:
    `apply(device, at, bits)` returns `bits` with `maintenance_bit` added inside that purge. A device without a
    purge (not in `purge_s`, or 0) is left as it is. Readings come in time order (a poller's live reads); the state
    is per device and in memory: after a restart the purge of a check that ended before it is not known (the
    scheduled checks' windows are, `CheckSchedule`). Pure.
    """

    def __init__(self, purge_s: Mapping[str, float], maintenance_bit: int) -> None:
        for device, seconds in purge_s.items():
            if not (math.isfinite(seconds) and seconds >= 0):
                raise ValueError(f"status purge of {device}: expected seconds >= 0, got {seconds}")
        if maintenance_bit <= 0:
            raise ValueError(f"status purge: maintenance_bit must be a positive bit, got {maintenance_bit}")
        self._purge = {device: timedelta(seconds=s) for device, s in purge_s.items() if s > 0}
        self._bit = maintenance_bit
        self._in_check: set[str] = set()  #: devices whose last reading had the bit set
        self._cleared: dict[str, datetime] = {}  #: device → its first reading without the bit after a check

    def apply(self, device_id: str, at: datetime, bits: int) -> int:
        """`bits` of a reading of `device_id` measured at `at`, with the maintenance bit added during a purge."""
        purge = self._purge.get(device_id)
        if purge is None:
            return bits
        if bits & self._bit:
            self._in_check.add(device_id)
            self._cleared.pop(device_id, None)
            return bits
        if device_id in self._in_check:
            self._in_check.discard(device_id)
            self._cleared[device_id] = at
        cleared = self._cleared.get(device_id)
        if cleared is not None and cleared <= at < cleared + purge:
            return bits | self._bit
        return bits
