"""Each station's polling cadence: read every device through its link, emit RawReadings or a Gap. I/O.

One read of one device is `sensors.modbus.read.read_device` (a failed read is a `Gap` with its reason, never
a zero or a repeated value).

`StationPoller` polls every Modbus device of one `Sensor`, each device in its own task on its own interval (a
hung device costs the others on its link one timeout per attempt, and nothing to other stations). After a
failed read it retries with exponential backoff and jitter (`retry_initial_s` doubling, ±`jitter`), never later
than the device's next regular tick; successes keep the cadence's phase. Results go to `on_readings` /
`on_gap` (sync or async callables; awaited, so a slow consumer slows the poller down instead of piling up
readings), and every failed read and every recovery to `on_status` as a `StatusEvent`. Log lines name the
sensor, device and address: the first failure at ERROR, repeats at DEBUG, the recovery at INFO.

Backfill: when a device's profile has a `history:` section, the first successful read after failures also
reads the logger's history ring (`sensors.modbus.history`) and emits the records it holds for the outage,
between the newest reading emitted before it and this read, with the records' own times
(`time_source="device"`). Nothing emitted before is emitted again; a ring read that fails is retried at the
next successful poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sensors.modbus.link import ModbusReadError
from sensors.modbus.profile import Profile
from sensors.modbus.read import Clock, Link, read_device_failure, read_history, resolve_conditions
from sensors.modbus.replay import history_readings
from sensors.reading import Conditions, Gap, RawReading
from sensors.sensor import Device, Sensor
from sensors.zero_span import StatusPurge

__all__ = ["StationPoller", "StatusEvent"]

_log = logging.getLogger(__name__)

ReadingsCallback = Callable[[list[RawReading]], Awaitable[Any] | Any]
GapCallback = Callable[[Gap], Awaitable[Any] | Any]
StatusCallback = Callable[["StatusEvent"], Awaitable[Any] | Any]
#: pending backfill windows kept per device (older ones are given up, with a warning)
_MAX_WINDOWS = 16


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A failed read of one device, or its first good read after failures (`recovered`), for metrics."""

    sensor_id: str
    device_id: str
    endpoint: str  #: the link, as log lines write it (host:port, or a serial port)
    host: str | None
    port: int | None
    unit_id: int
    table: str | None  #: what failed: the request's table (None when no request failed, e.g. every value NaN)
    address: int | None  #: its 0-based address
    count: int
    reason: str  #: the Gap's reason (timeout, connection, exception_response, protocol, decode, not_finite), or
    #: "recovered"
    detail: str
    time: datetime
    first_failure: bool  #: the first failure after a success (or since start): logged at ERROR
    recovered: bool  #: the first success after failures: logged at INFO


@dataclass(slots=True)
class _DeviceState:
    failing: bool = False
    failures: int = 0  # consecutive failed reads
    last_time: datetime | None = None  # newest reading time emitted
    outage_after: datetime | None = None  # during an outage: readings newer than this are missing
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)  # backfills pending: (after, before)
    retry_in_s: float | None = None  # after a failure: when to try again
    dropped_after: datetime | None = None  # readings newer than this were refused downstream (ingest full)


@dataclass(slots=True)
class _Entry:
    device: Device
    link: Link
    profile: Profile
    interval_s: float
    state: _DeviceState = field(default_factory=_DeviceState)


class StationPoller:
    """Polls every Modbus device of one sensor (station), each on its own interval.

    Args:
        sensor: the station; its Modbus devices (every protocol "modbus-…") are polled.
        links: the station's link; or (host, port) → the link that owns that endpoint (links are shared
            between pollers; a single TCP link must match every device's host and port); or a callable
            device → link (e.g. `sensors.modbus.link.LinkRegistry.link_for`).
        profiles: profile name → Profile, for every device's profile.
        clock: aware-UTC wall clock for reading and gap timestamps.
        interval_s: polling period of every device not in `intervals`; a read that overruns skips the
            missed ticks, keeping the phase.
        intervals: device id → its own polling period, in s.
        on_readings: called with each device's readings (awaited if it returns an awaitable); returning False
            means ingest refused them (full): they are read back from the logger's history later; backfilled
            readings come in a call of their own, before the live ones of the read that found them.
        on_gap: called with each failed read's Gap (awaited likewise).
        on_status: called with a StatusEvent for every failed read and every recovery (awaited likewise).
        conditions: device id → "local"/"reference", for devices whose profile says conditions: required.
        retry_initial_s: first retry delay after a failure, doubled per consecutive failure; a retry never
            comes later than the device's next tick.
        jitter: each retry delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter], so devices
            that failed together (a gateway reboot) do not retry in lockstep.
        rng: the randomness for the jitter (inject a seeded `random.Random` in tests).
        backfill: read the logger history after an outage, for profiles that have one.
        real_seconds: simulated seconds → real seconds to wait (`sensors.clock.SimClock.real_seconds`), when
            the clock runs faster than the wall clock; intervals are then in simulated seconds.
    """

    def __init__(self, sensor: Sensor, links: Link | Mapping[tuple[str, int], Link] | Callable[[Device], Link],
                 profiles: Mapping[str, Profile], clock: Clock, *, interval_s: float,
                 on_readings: ReadingsCallback, on_gap: GapCallback, on_status: StatusCallback | None = None,
                 intervals: Mapping[str, float] | None = None, conditions: Mapping[str, Conditions] | None = None,
                 retry_initial_s: float = 1.0, jitter: float = 0.2, rng: random.Random | None = None,
                 backfill: bool = True, real_seconds: Callable[[float], float] | None = None,
                 status_purge: StatusPurge | None = None) -> None:
        errors: list[str] = []
        if not interval_s > 0:
            errors.append(f"interval_s: expected > 0, got {interval_s}")
        if not retry_initial_s > 0:
            errors.append(f"retry_initial_s: expected > 0, got {retry_initial_s}")
        if not 0 <= jitter < 1:
            errors.append(f"jitter: expected 0 <= jitter < 1, got {jitter}")
        self.sensor = sensor
        self.interval_s = interval_s
        self._clock = clock
        self._on_readings = on_readings
        self._on_gap = on_gap
        self._on_status = on_status
        self._conditions = dict(conditions or {})
        #: the purge after an analyser's own zero/span status bit clears (sensors.zero_span.StatusPurge)
        self._status_purge = status_purge
        self._retry_initial_s = retry_initial_s
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._backfill = backfill
        self._real_seconds = real_seconds or (lambda simulated_s: simulated_s)
        own = dict(intervals or {})
        self._devices: list[_Entry] = []
        modbus = [d for d in sensor.devices if d.protocol.startswith("modbus")]
        unknown = sorted(set(own) - {d.id for d in modbus})
        if unknown:
            errors.append(f"intervals: no Modbus device {', '.join(unknown)} in this sensor")
        for device in modbus:
            device_interval = own.get(device.id, interval_s)
            if not device_interval > 0:
                errors.append(f"device {device.id}: interval: expected > 0, got {device_interval}")
            link = self._link_for(device, links, errors)
            profile = profiles.get(device.profile)
            if profile is None:
                errors.append(f"device {device.id}: profile {device.profile!r} not loaded")
            if link is None or profile is None:
                continue
            missing = [v for v in device.variables if v not in profile.variable_names]
            if missing:
                errors.append(
                    f"device {device.id}: profile {profile.name} has no variable(s) {', '.join(missing)}")
            try:
                resolve_conditions(device, profile, self._conditions.get(device.id))
            except ValueError as exc:
                errors.append(str(exc))
            self._devices.append(_Entry(device, link, profile, device_interval))
        if errors:
            raise ValueError(f"sensor {sensor.id}: cannot poll:\n  " + "\n  ".join(errors))
        self._stopping = False
        self._sleepers: set[asyncio.Future[None]] = set()  # the device loops' waits for their next tick
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _link_for(device: Device, links: Any, errors: list[str]) -> Link | None:
        endpoint = (device.host or "", device.port or 0)
        if isinstance(links, Mapping):
            link = links.get(endpoint)
            if link is None:
                errors.append(f"device {device.id}: no ModbusLink for {device.host}:{device.port}")
            return link
        if callable(links) and not hasattr(links, "read"):
            return links(device)  # type: ignore[no-any-return]
        host, port = getattr(links, "host", None), getattr(links, "port", None)
        if device.host is not None and (host, port) != endpoint:
            errors.append(f"device {device.id}: is at {endpoint[0]}:{endpoint[1]}, its link at {links.endpoint}")
            return None
        return links  # type: ignore[no-any-return]

    @property
    def intervals(self) -> dict[str, float]:
        """device id → its polling period, in s."""
        return {e.device.id: e.interval_s for e in self._devices}

    async def poll_once(self) -> list[list[RawReading] | Gap]:
        """Read every device once (in order), dispatch the results, and return them (device order)."""
        return [await self._poll(entry) for entry in self._devices]

    async def run(self) -> None:
        """Poll every device on its interval, one task per device, until `stop()` or cancellation."""
        self._task = asyncio.current_task()
        self._stopping = False
        async with asyncio.TaskGroup() as group:
            for entry in self._devices:
                group.create_task(self._device_loop(entry), name=f"poll-{entry.device.id}")

    async def stop(self) -> None:
        """Ask `run()` to return after the reads in progress, and wait for it."""
        self._stopping = True
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            await asyncio.wait([task])

    async def _device_loop(self, entry: _Entry) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while not self._stopping:
            await self._poll(entry)
            interval = self._real_seconds(entry.interval_s)
            now = loop.time()
            if next_tick <= now:
                missed = math.floor((now - next_tick) / interval) + 1
                if missed > 1:
                    _log.debug("sensor %s device %s: read overran, skipping %d tick(s)", self.sensor.id,
                               entry.device.id, missed - 1)
                next_tick += missed * interval
            wake = next_tick
            if entry.state.retry_in_s is not None:
                wake = min(wake, now + entry.state.retry_in_s)
            if self._stopping:
                break
            # until `wake`, or until stop(): a future and one timer (no asyncio.timeout and no TimeoutError per
            # tick); a cancel ends the wait at once
            sleeper: asyncio.Future[None] = loop.create_future()
            timer = loop.call_at(wake, _wake, sleeper)
            self._sleepers.add(sleeper)
            try:
                await sleeper
            finally:
                timer.cancel()
                self._sleepers.discard(sleeper)

    async def _poll(self, entry: _Entry) -> list[RawReading] | Gap:
        device, state = entry.device, entry.state
        result, failed = await read_device_failure(entry.link, device, entry.profile, self._clock,
                                            self._conditions.get(device.id))
        if isinstance(result, Gap):
            first = not state.failing
            state.failing = True
            state.failures += 1
            if first:
                # what is missing starts after the newest reading emitted (or with this read, at start)
                state.outage_after = state.last_time or (result.time - timedelta(microseconds=1))
            state.retry_in_s = self._retry_delay(entry)
            self._log_failure(entry, result, failed, first)
            await _call(self._on_gap, result)
            if self._on_status is not None:
                table, address, count = failed or (None, None, 0)
                await _call(self._on_status, self._event(entry, result.reason, result.detail, result.time,
                                                         table, address, count, first=first, recovered=False))
            return result
        if self._status_purge is not None:
            result = _purged(result, self._status_purge)
        recovered = state.failing
        live_time = result[0].time
        if recovered:
            _log.info("%s: reading again (%d value(s))", self._where(entry), len(result))
            if state.outage_after is not None and entry.profile.history is not None and self._backfill:
                state.windows.append((state.outage_after, live_time))
                del state.windows[:-_MAX_WINDOWS]
            state.failing, state.failures, state.outage_after, state.retry_in_s = False, 0, None, None
            if self._on_status is not None:
                await _call(self._on_status, self._event(entry, "recovered", f"{len(result)} value(s)", live_time,
                                                         None, None, 0, first=False, recovered=True))
        can_backfill = entry.profile.history is not None and self._backfill
        if state.dropped_after is not None and can_backfill:
            # what ingest refused while it was full is read back from the logger's history, like an outage
            state.windows.append((state.dropped_after, live_time))
            del state.windows[:-_MAX_WINDOWS]
        refused_after: datetime | None = None
        if state.windows:
            first_after = min(after for after, _ in state.windows)
            backfilled = await self._fill_windows(entry)
            if backfilled and await _call(self._on_readings, backfilled) is False:
                refused_after = first_after  # refused again: the whole range stays to be read back
        if refused_after is None:
            outcome = self._on_readings(result)  # `_call`, inline: the one callback of every good poll
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome is False:
                refused_after = state.last_time or (live_time - timedelta(microseconds=1))
                if state.dropped_after is not None and can_backfill:
                    refused_after = live_time - timedelta(microseconds=1)  # the older range was just read back
        if refused_after is not None:
            state.dropped_after = refused_after
            return result
        state.dropped_after = None
        state.last_time = live_time if state.last_time is None else max(state.last_time, live_time)
        return result

    async def _fill_windows(self, entry: _Entry) -> list[RawReading]:
        """The history records inside the pending windows, as RawReadings; the windows are then done."""
        device, profile, state = entry.device, entry.profile, entry.state
        oldest = min(after for after, _ in state.windows)
        try:
            records = await read_history(entry.link, device, profile, after=oldest)
        except (ModbusReadError, ValueError) as exc:
            _log.warning("%s: history read failed, backfill of %d outage(s) retried at the next read: %s",
                         self._where(entry), len(state.windows), exc)
            return []
        received = self._clock()
        conditions = resolve_conditions(device, profile, self._conditions.get(device.id))
        capacity = profile.history.layout.capacity if profile.history else 0
        out: list[RawReading] = []
        for after, before in state.windows:
            if len(records) >= capacity and not any(r.time <= after for r in records):
                _log.warning("%s: the logger history (%d records) begins at %s, after the outage began (%s): "
                             "the start of the outage stays a gap", self._where(entry), capacity,
                             records[0].time.isoformat(), after.isoformat())
            found = history_readings(records, device, profile, after=after, before=before, received=received,
                                     conditions=conditions)
            _log.log(logging.INFO if found else logging.DEBUG,
                     "%s: backfilled %d reading(s) of the outage %s .. %s from the logger history",
                     self._where(entry), len(found), after.isoformat(), before.isoformat())
            out.extend(found)
        state.windows.clear()
        return out

    def _retry_delay(self, entry: _Entry) -> float:
        base: float = min(self._retry_initial_s * 2 ** min(entry.state.failures - 1, 30), entry.interval_s)
        return base * self._rng.uniform(1 - self._jitter, 1 + self._jitter)

    def _event(self, entry: _Entry, reason: str, detail: str, at: datetime, table: str | None,
               address: int | None, count: int, *, first: bool, recovered: bool) -> StatusEvent:
        d = entry.device
        return StatusEvent(d.sensor_id, d.id, entry.link.endpoint, d.host, d.port, d.unit_id or 0, table, address,
                           count, reason, detail, at, first, recovered)

    def _where(self, entry: _Entry) -> str:
        d = entry.device
        return f"sensor {self.sensor.id} device {d.id} (modbus {entry.link.endpoint} unit {d.unit_id})"

    def _log_failure(self, entry: _Entry, gap: Gap, failed: tuple[str, int, int] | None, first: bool) -> None:
        retry = min(entry.state.retry_in_s or entry.interval_s, entry.interval_s)
        _log.log(logging.ERROR if first else logging.DEBUG, "%s: %s: %s; gap recorded, retry in %.3g s",
                 self._where(entry), gap.reason, gap.detail, retry)


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)


async def _call(callback: Callable[[Any], Any], value: Any) -> Any:
    outcome = callback(value)
    if inspect.isawaitable(outcome):
        return await outcome
    return outcome


def _purged(readings: list[RawReading], purge: StatusPurge) -> list[RawReading]:
    """A live read's readings with the maintenance bit of a status-bit check's purge (`StatusPurge`) added."""
    out = []
    for r in readings:
        bits = purge.apply(r.device_id, r.time, r.device_status)
        out.append(r if bits == r.device_status else dataclasses.replace(r, device_status=bits))
    return out
