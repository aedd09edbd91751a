"""Each station's polling cadence: read every device through its link, emit RawReadings or a Gap. I/O.

`read_device` is one read of one device: it runs the device's read plan on its `ModbusLink`, decodes each
variable with its profile and stamps them with the injected clock. A failed read is a `Gap` with its reason,
never a zero or a repeated value. Modbus analysers have no usable clock of their own, so readings carry the
receive time (`time_source="received"`). `StationPoller` repeats that for every Modbus device of one `Sensor`
every `interval_s`, hands results to `on_readings` / `on_gap` (sync or async callables; awaited, so a slow
consumer slows the poller down instead of piling up readings), and logs per device: the first failure at
ERROR, repeats at DEBUG, the recovery at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from sensors.modbus.decode import decode_value, device_status, status_flags, status_word
from sensors.modbus.link import ModbusLink, ModbusReadError
from sensors.modbus.plan import plan_requests, split_response
from sensors.profile import STATUS_FIELD, Profile
from sensors.reading import Conditions, Gap, RawReading
from sensors.sensor import Device, Sensor

__all__ = ["StationPoller", "read_device", "resolve_conditions"]

_log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ReadingsCallback = Callable[[list[RawReading]], Awaitable[Any] | Any]
GapCallback = Callable[[Gap], Awaitable[Any] | Any]


def resolve_conditions(device: Device, profile: Profile,
                       override: Conditions | None = None) -> Conditions | None:
    """The device's conditions: the technician's `override`, else the profile's ("required" needs one)."""
    if override is not None:
        return override
    if profile.conditions == "required":
        raise ValueError(f"device {device.id}: profile {profile.name} ships with conditions: required: "
                         f"state local or reference for this device")
    return profile.conditions  # type: ignore[return-value]


async def read_device(link: ModbusLink, device: Device, profile: Profile, clock: Clock, *,
                      conditions: Conditions | None = None) -> list[RawReading] | Gap:
    """Read every variable of `device` once: RawReadings (as reported, in the profile's unit) or a Gap."""
    if device.unit_id is None:
        raise ValueError(f"device {device.id}: not a Modbus device (no unit_id)")
    missing = [v for v in device.variables if v not in profile.variable_names]
    if missing:
        raise ValueError(
            f"device {device.id}: profile {profile.name} has no variable(s) {', '.join(missing)}")
    resolved = resolve_conditions(device, profile, conditions)
    fields: dict[str, list[int | bool]] = {}
    for request in plan_requests(profile, device.variables):
        try:
            values = await link.read(request.table, request.address, request.count, device.unit_id)
        except ModbusReadError as exc:
            return Gap(device.sensor_id, device.id, clock(), exc.reason,
                       f"{exc.table} {exc.address}×{exc.count}: {exc.detail}")
        fields.update(split_response(request, values))  # type: ignore[arg-type]
    received = clock()
    flags: frozenset[str] = frozenset()
    if profile.status is not None:
        flags = status_flags(status_word(fields[STATUS_FIELD], profile.status), profile.status)
    status_bits = device_status(flags)
    readings: list[RawReading] = []
    skipped: list[str] = []
    for name in device.variables:
        spec = profile.variable(name)
        try:
            value = decode_value(fields[name], spec)
        except ValueError as exc:
            return Gap(device.sensor_id, device.id, received, "decode", f"{name}: {exc}")
        if not math.isfinite(value):
            skipped.append(name)  # a NaN/inf float is the device saying "no value": no reading, never a zero
            continue
        readings.append(RawReading(device.sensor_id, device.id, name, value, spec.unit, received, received,
                                   conditions=resolved, device_status=status_bits, time_source="received"))
    if skipped:
        _log.debug("device %s: non-finite value(s) for %s: no reading", device.id, ", ".join(skipped))
    if not readings:
        return Gap(device.sensor_id, device.id, received, "not_finite",
                   f"every value was NaN or infinite ({', '.join(skipped)})")
    return readings


class StationPoller:
    """Polls every Modbus device of one sensor (station) on a fixed interval.

    Args:
        sensor: the station; its devices with protocol "modbus-tcp" are polled, in order.
        links: the station's ModbusLink, or (host, port) → the ModbusLink that owns that endpoint (links are
            shared between pollers; a single link must match every device's host and port).
        profiles: profile name → Profile, for every device's profile.
        clock: aware-UTC wall clock for reading and gap timestamps.
        interval_s: polling period; a cycle that overruns skips the missed ticks, keeping the phase.
        on_readings: called with each device's readings (awaited if it returns an awaitable).
        on_gap: called with each failed read's Gap (awaited likewise).
        conditions: device id → "local"/"reference", for devices whose profile says conditions: required.
    """

    def __init__(self, sensor: Sensor, links: ModbusLink | Mapping[tuple[str, int], ModbusLink],
                 profiles: Mapping[str, Profile], clock: Clock, *, interval_s: float,
                 on_readings: ReadingsCallback, on_gap: GapCallback,
                 conditions: Mapping[str, Conditions] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"sensor {sensor.id}: interval_s: expected > 0, got {interval_s}")
        self.sensor = sensor
        self.interval_s = interval_s
        self._clock = clock
        self._on_readings = on_readings
        self._on_gap = on_gap
        self._conditions = dict(conditions or {})
        self._devices: list[tuple[Device, ModbusLink, Profile]] = []
        errors: list[str] = []
        for device in sensor.devices:
            if device.protocol != "modbus-tcp":
                continue
            endpoint = (device.host or "", device.port or 0)
            link = links.get(endpoint) if isinstance(links, Mapping) else links
            if link is not None and (link.host, link.port) != endpoint:
                errors.append(f"device {device.id}: is at {endpoint[0]}:{endpoint[1]}, "
                              f"its link at {link.endpoint}")
                continue
            profile = profiles.get(device.profile)
            if link is None:
                errors.append(f"device {device.id}: no ModbusLink for {device.host}:{device.port}")
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
            self._devices.append((device, link, profile))
        if errors:
            raise ValueError(f"sensor {sensor.id}: cannot poll:\n  " + "\n  ".join(errors))
        self._failing: dict[str, bool] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self) -> list[list[RawReading] | Gap]:
        """Read every device once, dispatch the results, and return them (device order)."""
        results: list[list[RawReading] | Gap] = []
        for device, link, profile in self._devices:
            result = await read_device(link, device, profile, self._clock,
                                       conditions=self._conditions.get(device.id))
            self._log_result(device, link, result)
            callback: Callable[[Any], Any] = self._on_gap if isinstance(result, Gap) else self._on_readings
            outcome = callback(result)
            if inspect.isawaitable(outcome):
                await outcome
            results.append(result)
        return results

    async def run(self) -> None:
        """Poll every `interval_s` until `stop()` or cancellation."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._stop.clear()
        next_tick = loop.time()
        while not self._stop.is_set():
            await self.poll_once()
            next_tick += self.interval_s
            now = loop.time()
            if next_tick <= now:
                missed = math.floor((now - next_tick) / self.interval_s) + 1
                _log.debug("sensor %s: cycle overran, skipping %d tick(s)", self.sensor.id, missed)
                next_tick += missed * self.interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=next_tick - now)

    async def stop(self) -> None:
        """Ask `run()` to return after the device being read, and wait for it."""
        self._stop.set()
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            await asyncio.wait([task])

    def _log_result(self, device: Device, link: ModbusLink, result: list[RawReading] | Gap) -> None:
        where = f"sensor {self.sensor.id} device {device.id} (modbus {link.endpoint} unit {device.unit_id})"
        was_failing = self._failing.get(device.id, False)
        if isinstance(result, Gap):
            level = logging.DEBUG if was_failing else logging.ERROR
            _log.log(level, "%s: %s: %s; gap recorded, retry in %s s", where, result.reason, result.detail,
                     self.interval_s)
            self._failing[device.id] = True
        elif was_failing:
            _log.info("%s: reading again (%d value(s))", where, len(result))
            self._failing[device.id] = False
