"""The registry's checks that need the database or the installed profiles, and the write transaction. I/O.

Part of `storage.registry` (psycopg 3 async). `transaction` opens one transaction (a savepoint when the caller
already has one) and turns the database's own refusals (a concurrent change beat these checks) into
`RegistryError`; the checks raise `RegistryError` naming the sensor, device and field at fault: a locked sensor
that must exist and not be retired, known device profiles or payload formats, unused device ids, topics and
hardware serials, legal lifecycle transitions (`TRANSITIONS`), a free primary role.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row

from sensors.modbus.profile import ProfileError, list_profiles, load_profile
from sensors.mqtt.payloads import FORMATS
from sensors.sensor import MODBUS_PROTOCOLS
from storage.registry.models import DeviceSpec, RegistryError

__all__ = ["TRANSITIONS", "check_devices", "check_transition", "lock_sensor", "not_retired", "primary_taken",
           "transaction"]

#: lifecycle → the states it may go to (retired is final)
TRANSITIONS: dict[str, frozenset[str]] = {
    "planned": frozenset({"commissioning", "retired"}),
    "commissioning": frozenset({"active", "retired"}),
    "active": frozenset({"maintenance", "retired"}),
    "maintenance": frozenset({"active", "retired"}),
    "retired": frozenset(),
}


@asynccontextmanager
async def transaction(conn: AsyncConnection[Any], where: str) -> AsyncIterator[AsyncCursor[Any]]:
    """One transaction (with its audit rows) and a dict-row cursor; the database's own refusals (a concurrent
    change beat our checks) become RegistryError conflict/duplicate naming `where`."""
    try:
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            yield cur
    except psycopg.errors.ExclusionViolation as exc:  # devices_topic_one_sensor, devices_hardware_serial_…
        raise RegistryError("conflict", f"{where}: {exc.diag.constraint_name}: {exc.diag.message_detail or exc}",
                            ) from None
    except psycopg.errors.UniqueViolation as exc:
        raise RegistryError("duplicate", f"{where}: {exc.diag.message_detail or exc}") from None


async def lock_sensor(cur: AsyncCursor[Any], sensor_id: str) -> dict[str, Any]:
    await cur.execute("SELECT * FROM sensors WHERE id = %s FOR UPDATE", (sensor_id,))
    row = await cur.fetchone()
    if row is None:
        raise RegistryError("not_found", f"sensor {sensor_id}: not in the registry (see `aqnet sensors list`)",
                            field="id", sensor_id=sensor_id)
    return dict(row)


def not_retired(row: dict[str, Any], doing: str) -> None:
    if row["lifecycle"] == "retired":
        raise RegistryError("conflict", f"sensor {row['id']}: retired on {row['retired_at']:%Y-%m-%d %H:%M %Z}; "
                                        f"a retired sensor cannot be {doing} (register a new sensor instead)",
                            sensor_id=row["id"])


def _check_profile(sensor_id: str, device: DeviceSpec, field: str) -> None:
    where = f"sensor {sensor_id} device {device.id}"
    if device.protocol in MODBUS_PROTOCOLS:
        known = list_profiles()
        if device.profile not in known:
            raise RegistryError("unknown_profile", f"{where}: profile {device.profile!r} is not a known device "
                                f"profile; expected one of {', '.join(known)} (see `aqnet profiles list`)",
                                field=f"{field}.profile", sensor_id=sensor_id)
        try:
            offered = load_profile(device.profile).variable_names
        except ProfileError as exc:
            raise RegistryError("unknown_profile", f"{where}: {exc}", field=f"{field}.profile",
                                sensor_id=sensor_id) from None
        missing = [v for v in device.variables if v not in offered]
        if missing:
            raise RegistryError("invalid", f"{where}: profile {device.profile} has no variable "
                                f"{', '.join(missing)}; it offers {', '.join(offered)}",
                                field=f"{field}.variables", sensor_id=sensor_id)
    elif device.profile not in FORMATS:
        raise RegistryError("unknown_profile", f"{where}: payload format {device.profile!r} is unknown for "
                            f"protocol {device.protocol}; expected one of {', '.join(FORMATS)}",
                            field=f"{field}.profile", sensor_id=sensor_id)


async def check_devices(cur: AsyncCursor[Any], sensor_id: str, devices: Sequence[DeviceSpec], *,
                         fields: Sequence[str], new_ids: Sequence[bool]) -> None:
    """Profiles known; new device ids unused; topics and hardware serials not used by another sensor."""
    for device, field, is_new in zip(devices, fields, new_ids, strict=True):
        _check_profile(sensor_id, device, field)
        if is_new:
            await cur.execute("SELECT sensor_id FROM devices WHERE id = %s", (device.id,))
            row = await cur.fetchone()
            if row is not None:
                raise RegistryError("duplicate", f"sensor {sensor_id}: device id {device.id} is already used "
                                    f"(by sensor {row['sensor_id']}); device ids are never reused",
                                    field=f"{field}.id", sensor_id=sensor_id)
        checks = (("topic", device.topic if device.topic and not any(c in device.topic for c in "+#") else None),
                  ("hardware_serial", device.hardware_serial))
        for column, value in checks:
            if value is None:
                continue
            await cur.execute(f"SELECT id, sensor_id FROM devices WHERE active AND sensor_id <> %s AND {column} = %s "
                              "ORDER BY id LIMIT 1", (sensor_id, value))
            row = await cur.fetchone()
            if row is not None:
                what = "topic" if column == "topic" else "hardware serial"
                raise RegistryError("conflict", f"sensor {sensor_id}: {what} {value} is already used by sensor "
                                    f"{row['sensor_id']} (device {row['id']})", field=f"{field}.{column}",
                                    sensor_id=sensor_id)


def check_transition(sensor_id: str, current: str, to: str, retired_at: datetime | None) -> None:
    if to in TRANSITIONS[current]:
        return
    if current == "retired":
        since = f" since {retired_at:%Y-%m-%d %H:%M %Z}" if retired_at else ""
        detail = f"it is already retired{since}; retired is final"
    elif current == to:
        detail = f"it is already {to}"
    else:
        detail = f"from {current} it can go to {' or '.join(sorted(TRANSITIONS[current]))}"
    raise RegistryError("illegal_transition", f"sensor {sensor_id}: cannot go from {current} to {to}: {detail}",
                        field="lifecycle", sensor_id=sensor_id)


async def primary_taken(cur: AsyncCursor[Any], sensor_id: str, device: DeviceSpec, field: str) -> None:
    if not device.primary:
        return
    await cur.execute("SELECT p.variable, p.device_id FROM primary_devices p JOIN devices d ON d.id = p.device_id "
                      "WHERE p.sensor_id = %s AND d.active AND p.variable = ANY(%s) ORDER BY p.variable",
                      (sensor_id, list(device.variables)))
    taken = await cur.fetchall()
    if taken:
        which = ", ".join(f"{r['variable']} (device {r['device_id']})" for r in taken)
        raise RegistryError("conflict", f"sensor {sensor_id} device {device.id}: the sensor already has a primary "
                            f"device for {which}; add it with primary: false, or swap the device",
                            field=f"{field}.primary", sensor_id=sensor_id)
