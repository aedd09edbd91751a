"""One read of one Modbus device through its link: its variables as RawReadings, or a Gap; its history ring.
I/O (through the `Link` it is given).

`read_device` runs the device's read plan on its link, decodes each variable with its profile and stamps them
with the injected clock. A failed read is a `Gap` with its reason, never a zero or a repeated value. Modbus
analysers have no usable clock of their own, so live readings carry the receive time (`time_source="received"`).
`read_history` reads the logger's history ring (`sensors.modbus.history`). `sensors.modbus.poller` runs these
on each device's cadence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from sensors.modbus.history import HEADER_REGISTERS, HistoryRecord, decode_slots, parse_header, read_chunks
from sensors.modbus.link import ModbusReadError
from sensors.modbus.plan import DevicePlan, device_plan
from sensors.modbus.profile import STATUS_FIELD, Profile
from sensors.reading import Conditions, Gap, RawReading
from sensors.sensor import Device

__all__ = ["Clock", "Link", "read_device", "read_device_failure", "read_history", "resolve_conditions"]

_log = logging.getLogger("sensors.modbus.poller")  # the reads log under the poller's name, as before

Clock = Callable[[], datetime]


class Link(Protocol):
    """What the poller needs of a link (sensors.modbus.link's links satisfy it)."""

    @property
    def endpoint(self) -> str: ...

    async def read(self, table: str, address: int, count: int, unit_id: int) -> list[int] | list[bool]: ...


def resolve_conditions(device: Device, profile: Profile,
                       override: Conditions | None = None) -> Conditions | None:
    """The device's conditions: the technician's `override`, else the profile's ("required" needs one)."""
    if override is not None:
        return override
    if profile.conditions == "required":
        raise ValueError(f"device {device.id}: profile {profile.name} ships with conditions: required: "
                         f"state local or reference for this device")
    return profile.conditions  # type: ignore[return-value]


async def read_device(link: Link, device: Device, profile: Profile, clock: Clock, *,
                      conditions: Conditions | None = None) -> list[RawReading] | Gap:
    """Read every variable of `device` once: RawReadings (as reported, in the profile's unit) or a Gap."""
    result, _ = await read_device_failure(link, device, profile, clock, conditions)
    return result


#: (id of the profile, variables) → (that profile, its plan): a poll plans nothing; bounded, cleared when full
_PLANS: dict[tuple[int, tuple[str, ...]], tuple[Profile, DevicePlan]] = {}
_MAX_PLANS = 4096


def _plan(device: Device, profile: Profile) -> DevicePlan:
    key = (id(profile), device.variables)
    cached = _PLANS.get(key)
    if cached is not None and cached[0] is profile:
        return cached[1]
    missing = [v for v in device.variables if v not in profile.variable_names]
    if missing:
        raise ValueError(
            f"device {device.id}: profile {profile.name} has no variable(s) {', '.join(missing)}")
    plan = device_plan(profile, device.variables)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = (profile, plan)
    return plan


async def read_device_failure(link: Link, device: Device, profile: Profile, clock: Clock,
                       conditions: Conditions | None) -> tuple[list[RawReading] | Gap, tuple[str, int, int] | None]:
    """`read_device`, plus (table, address, count) of what failed when it is a Gap."""
    unit_id = device.unit_id
    if unit_id is None:
        raise ValueError(f"device {device.id}: not a Modbus device (no unit_id)")
    plan = _plan(device, profile)
    resolved = resolve_conditions(device, profile, conditions)
    fields: dict[str, Sequence[int | bool]] = {}
    for request, cuts in zip(plan.requests, plan.cuts, strict=True):
        try:
            values = await link.read(request.table, request.address, request.count, unit_id)
        except ModbusReadError as exc:
            return (Gap(device.sensor_id, device.id, clock(), exc.reason,
                        f"{exc.table} {exc.address}×{exc.count}: {exc.detail}"),
                    (request.table, request.address, request.count))
        if len(values) < request.count:  # as split_response refuses it
            raise ValueError(f"{request.table} {request.address}×{request.count}: response has only "
                             f"{len(values)} value(s)")
        for name, first, end in cuts:
            fields[name] = values[first:end]
    received = clock()
    status_bits = plan.status_bits(fields[STATUS_FIELD]) if plan.status is not None else 0
    readings: list[RawReading] = []
    skipped: list[str] = []
    sensor_id, device_id = device.sensor_id, device.id
    for name, spec, decode in plan.variables:
        try:
            value = decode(fields[name])
        except ValueError as exc:
            return (Gap(sensor_id, device_id, received, "decode", f"{name}: {exc}"),
                    (spec.table, spec.pdu_address, spec.count))
        if not math.isfinite(value):
            skipped.append(name)  # a NaN/inf float is the device saying "no value": no reading, never a zero
            continue
        readings.append(RawReading(sensor_id, device_id, name, value, spec.unit, received, received,
                                   conditions=resolved, device_status=status_bits, time_source="received"))
    if skipped:
        _log.debug("device %s: non-finite value(s) for %s: no reading", device.id, ", ".join(skipped))
    if not readings:
        return (Gap(device.sensor_id, device.id, received, "not_finite",
                    f"every value was NaN or infinite ({', '.join(skipped)})"), None)
    return readings, None


async def read_history(link: Link, device: Device, profile: Profile, *,
                       after: datetime | None = None) -> list[HistoryRecord]:
    """The records read from `device`'s history ring, oldest first, one per time.

    Reads the header, then whole records newest first, and stops after the first read that reaches back to
    `after` (None: reads the whole ring); so the result holds every record newer than `after`, and, when the
    ring reaches back that far, some older ones. Raises ModbusReadError (the link) or ValueError (a header or
    record that does not fit the profile).
    """
    if profile.history is None:
        raise ValueError(f"device {device.id}: profile {profile.name} has no history section")
    if device.unit_id is None:
        raise ValueError(f"device {device.id}: not a Modbus device (no unit_id)")
    layout = profile.history.layout
    head = await link.read(layout.table, layout.pdu_address, HEADER_REGISTERS, device.unit_id)
    header = parse_header([int(r) for r in head], layout)
    records: dict[datetime, HistoryRecord] = {}
    for first, slots in read_chunks(header, layout):
        words = await link.read(layout.table, layout.slot_address(first), slots * layout.record_size, device.unit_id)
        chunk = decode_slots([int(w) for w in words], layout)
        for record in chunk:
            records.setdefault(record.time, record)
        if after is not None and any(r.time <= after for r in chunk):
            break
    return sorted(records.values(), key=lambda r: r.time)
