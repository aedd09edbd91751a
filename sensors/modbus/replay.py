"""A logger's history records turned into readings, stamped with the records' own times. Pure, no I/O.

Apart from `sensors.modbus.history` (the ring's register layout, which `sensors.modbus.profile` uses) because
it needs the device's profile: the poller's backfill calls it once it has read and decoded the records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from sensors.modbus.decode import device_status, status_flags
from sensors.modbus.history import HistoryRecord
from sensors.modbus.profile import Profile
from sensors.reading import Conditions, RawReading
from sensors.sensor import Device

__all__ = ["history_readings"]


def history_readings(records: Sequence[HistoryRecord], device: Device, profile: Profile, *, after: datetime,
                     before: datetime, received: datetime, conditions: Conditions | None) -> list[RawReading]:
    """`device`'s readings in the records strictly between `after` and `before`, stamped with the records' times.

    One RawReading per variable of the device that the record holds (`time_source="device"`), in the profile's
    unit, with the record's status word turned into `device_status` bits; a NaN or infinite value gives none.
    """
    held = {f.name for f in profile.history.layout.fields} if profile.history is not None else set()
    out: list[RawReading] = []
    for record in records:
        if not after < record.time < before:
            continue
        bits = 0
        if profile.status is not None:
            bits = device_status(status_flags(record.status, profile.status))
        for name in device.variables:
            value = record.values.get(name)
            if name not in held or value is None or not math.isfinite(value):
                continue
            out.append(RawReading(device.sensor_id, device.id, name, value, profile.variable(name).unit,
                                  record.time, received, conditions=conditions, device_status=bits,
                                  time_source="device"))
    return out
