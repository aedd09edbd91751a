"""The registry's edits technicians make: sensors, devices, lifecycle, swaps, calibrations, maintenance. I/O.

I/O (psycopg 3 async); part of `storage.registry`. Contract: each public write runs in ONE transaction (a savepoint
when the caller already has one) together with its audit_log row(s), so a change and its record commit or vanish
together; a refused change raises `RegistryError` (code, field, message naming what and where) and leaves nothing
behind. Checks that need only the value live in the pydantic models (`storage.registry.models`); those that need
the database or the installed profiles in `storage.registry.checks`: duplicate ids, unknown device profile, a topic
or hardware serial already used by another sensor, an invalid or overlapping calibration, an illegal lifecycle
transition.

Lifecycle: planned → commissioning → active ⇄ maintenance; any state but retired → retired, which is final and
takes the sensor's devices out of service. A device swap deactivates the old device from a given time and
records it in device_history; measurements are keyed by sensor_id, so the sensor's series stays continuous.
Reads (`list_sensors`, `get_sensor`, …) live in `storage.registry.read`; importing a whole network file in
`storage.registry.network_import`; the daemon's seeding from its configuration in `storage.registry.seed`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor

from ingest.calibration import CalibrationError, check_calibration
from storage.registry.calibrations import insert_calibration
from storage.registry.checks import check_devices, lock_sensor, not_retired, primary_taken, transaction
from storage.registry.models import (
    CalibrationSpec,
    DeviceSpec,
    Lifecycle,
    Location,
    MaintenanceSpec,
    MaintenanceWindow,
    RegistryError,
    SensorPatch,
    SensorRecord,
    SensorSpec,
)
from storage.registry.read import get_sensor
from storage.registry.rows import (
    audit_diff,
    audit_json,
    change_lifecycle,
    insert_audit,
    insert_device,
    insert_sensor,
    set_primaries,
)

__all__ = ["add_device", "add_maintenance", "add_sensor", "calibrate", "move_sensor", "set_lifecycle", "swap_device",
           "update_sensor"]


async def add_sensor(conn: AsyncConnection[Any], spec: SensorSpec, *, actor: str) -> SensorRecord:
    """Register a sensor with its devices; RegistryError duplicate, unknown_profile or conflict."""
    async with transaction(conn, f"sensor {spec.id}") as cur:
        await insert_sensor(cur, spec, actor=actor, action="sensor.add")
        return await get_sensor(conn, spec.id)


async def update_sensor(conn: AsyncConnection[Any], sensor_id: str, patch: SensorPatch, *, actor: str
                        ) -> SensorRecord:
    """Change name, notes, mobile, address or locality (the fields the patch sets); audited when anything changed."""
    async with transaction(conn, f"sensor {sensor_id}") as cur:
        row = await lock_sensor(cur, sensor_id)
        await _update_audited(cur, row, patch.model_dump(exclude_none=True), actor=actor, action="sensor.update")
        return await get_sensor(conn, sensor_id)


async def move_sensor(conn: AsyncConnection[Any], sensor_id: str, location: Location, *, actor: str
                      ) -> SensorRecord:
    """Set a sensor's location (coordinates, elevation, address, locality); audited with before and after."""
    async with transaction(conn, f"sensor {sensor_id}") as cur:
        row = await lock_sensor(cur, sensor_id)
        not_retired(row, "moved")
        await _update_audited(cur, row, location.model_dump(), actor=actor, action="sensor.move")
        return await get_sensor(conn, sensor_id)


async def set_lifecycle(conn: AsyncConnection[Any], sensor_id: str, to: Lifecycle, *, actor: str, reason: str = ""
                        ) -> SensorRecord:
    """Move a sensor along its lifecycle; RegistryError illegal_transition (e.g. retiring it twice)."""
    async with transaction(conn, f"sensor {sensor_id}") as cur:
        row = await lock_sensor(cur, sensor_id)
        await change_lifecycle(cur, row, to, actor=actor, reason=reason)
        return await get_sensor(conn, sensor_id)


async def add_device(conn: AsyncConnection[Any], sensor_id: str, device: DeviceSpec, *, actor: str
                     ) -> SensorRecord:
    """Add a device to a sensor; RegistryError duplicate, unknown_profile or conflict."""
    async with transaction(conn, f"sensor {sensor_id}") as cur:
        row = await lock_sensor(cur, sensor_id)
        not_retired(row, "given a device")
        await check_devices(cur, sensor_id, [device], fields=["device"], new_ids=[True])
        await primary_taken(cur, sensor_id, device, "device")
        await insert_device(cur, sensor_id, device, origin="registry")
        await set_primaries(cur, sensor_id, device)
        await insert_audit(cur, actor=actor, action="device.add", sensor_id=sensor_id, device_id=device.id,
                           after=audit_json(device))
        return await get_sensor(conn, sensor_id)


async def swap_device(conn: AsyncConnection[Any], sensor_id: str, old_device_id: str, new: DeviceSpec, *,
                      actor: str, at: datetime) -> SensorRecord:
    """Replace a device from `at`: the old one goes out of service, the new one measures its variables and takes
    its primary role; recorded in device_history and the audit log. The sensor's series is continuous."""
    if at.tzinfo is None:
        raise RegistryError("invalid", f"sensor {sensor_id}: swap time {at.isoformat()} must be timezone-aware",
                            field="at", sensor_id=sensor_id)
    async with transaction(conn, f"sensor {sensor_id}") as cur:
        row = await lock_sensor(cur, sensor_id)
        not_retired(row, "given a device")
        old = next((d for d in (await get_sensor(conn, sensor_id)).devices if d.id == old_device_id), None)
        if old is None:
            raise RegistryError("not_found", f"sensor {sensor_id}: has no device {old_device_id} in service; "
                                "see `aqnet sensors show " + sensor_id + "`", field="old_device_id",
                                sensor_id=sensor_id)
        await check_devices(cur, sensor_id, [new], fields=["device"], new_ids=[True])
        await cur.execute("SELECT variable FROM primary_devices WHERE device_id = %s", (old_device_id,))
        old_primary = [r["variable"] for r in await cur.fetchall()]
        await cur.execute("UPDATE devices SET active = false, retired_at = %s, updated_at = now() WHERE id = %s "
                          "RETURNING created_at", (at, old_device_id))
        created = (await cur.fetchone() or {}).get("created_at", at)
        await insert_device(cur, sensor_id, new, origin="registry", at=at)
        await cur.execute("UPDATE device_history SET removed_at = greatest(installed_at, %s), replaced_by = %s "
                          "WHERE device_id = %s AND removed_at IS NULL", (at, new.id, old_device_id))
        if cur.rowcount == 0:  # seeded from the configuration: no history row yet
            await cur.execute("INSERT INTO device_history (sensor_id, device_id, installed_at, removed_at, "
                              "replaced_by) VALUES (%s, %s, least(%s, %s), %s, %s)",
                              (sensor_id, old_device_id, created, at, at, new.id))
        takes = [v for v in old_primary if v in new.variables]
        await cur.execute("DELETE FROM primary_devices WHERE device_id = %s", (old_device_id,))
        if new.primary:
            await cur.execute("SELECT p.variable FROM primary_devices p JOIN devices d ON d.id = p.device_id "
                              "WHERE p.sensor_id = %s AND d.active", (sensor_id,))
            held = {r["variable"] for r in await cur.fetchall()}
            takes += [v for v in new.variables if v not in held and v not in takes]
        await cur.executemany("INSERT INTO primary_devices (sensor_id, variable, device_id) VALUES (%s, %s, %s) "
                              "ON CONFLICT (sensor_id, variable) DO UPDATE SET device_id = excluded.device_id",
                              [(sensor_id, v, new.id) for v in takes])
        await insert_audit(cur, actor=actor, action="device.swap", sensor_id=sensor_id, device_id=old_device_id,
                           before=audit_json(old), after={**audit_json(new), "at": at.isoformat()})
        return await get_sensor(conn, sensor_id)


async def calibrate(conn: AsyncConnection[Any], device_id: str, spec: CalibrationSpec, *, actor: str) -> int:
    """Add a calibration to a device (validated by ingest.calibration) and return its id; RegistryError
    not_found or invalid_calibration (malformed, a variable the device does not measure, overlapping one)."""
    async with transaction(conn, f"device {device_id}") as cur:
        await cur.execute("SELECT sensor_id, variables FROM devices WHERE id = %s", (device_id,))
        dev = await cur.fetchone()
        if dev is None:
            raise RegistryError("not_found", f"device {device_id}: not in the registry", field="device_id")
        where = f"sensor {dev['sensor_id']} device {device_id} calibration of {spec.variable}"
        if spec.variable not in dev["variables"]:
            raise RegistryError("invalid_calibration", f"{where}: the device does not measure {spec.variable}; it "
                                f"measures {', '.join(dev['variables'])}", field="variable",
                                sensor_id=dev["sensor_id"])
        try:
            check_calibration(where, spec.variable, spec.kind, spec.coefficients, spec.unit, spec.valid_from,
                              spec.valid_to)
            cal_id = await insert_calibration(
                conn, device_id=device_id, variable=spec.variable, kind=spec.kind, coefficients=spec.coefficients,
                unit=spec.unit, valid_from=spec.valid_from, valid_to=spec.valid_to, source=spec.source,
                note=spec.note, created_by=actor)
        except CalibrationError as exc:
            raise RegistryError("invalid_calibration", f"{where}: {exc.detail}", field="calibration",
                                sensor_id=dev["sensor_id"]) from None
        await insert_audit(cur, actor=actor, action="calibration.add", sensor_id=dev["sensor_id"],
                           device_id=device_id, after={"id": cal_id, **audit_json(spec)})
        return cal_id


async def add_maintenance(conn: AsyncConnection[Any], sensor_id: str, spec: MaintenanceSpec, *, actor: str
                          ) -> MaintenanceWindow:
    """Put a sensor, or one device or variable of it, in maintenance for [starts_at, ends_at)."""
    async with transaction(conn, f"sensor {sensor_id}") as cur:
        row = await lock_sensor(cur, sensor_id)
        not_retired(row, "put in maintenance")
        await cur.execute("SELECT id, variables FROM devices WHERE sensor_id = %s", (sensor_id,))
        devices = {r["id"]: r["variables"] for r in await cur.fetchall()}
        if spec.device_id is not None and spec.device_id not in devices:
            raise RegistryError("not_found", f"sensor {sensor_id}: has no device {spec.device_id}; its devices are "
                                f"{', '.join(sorted(devices)) or 'none'}", field="device_id", sensor_id=sensor_id)
        measured = set(devices[spec.device_id]) if spec.device_id else {v for vs in devices.values() for v in vs}
        if spec.variable is not None and spec.variable not in measured:
            raise RegistryError("invalid", f"sensor {sensor_id}: {spec.device_id or 'the sensor'} does not measure "
                                f"{spec.variable}; expected one of {', '.join(sorted(measured))}",
                                field="variable", sensor_id=sensor_id)
        await cur.execute("INSERT INTO maintenance_windows (sensor_id, device_id, variable, starts_at, ends_at, "
                          "reason, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
                          (sensor_id, spec.device_id, spec.variable, spec.starts_at, spec.ends_at, spec.reason,
                           actor))
        window = MaintenanceWindow(**(await cur.fetchone() or {}))
        await insert_audit(cur, actor=actor, action="maintenance.add", sensor_id=sensor_id,
                           device_id=spec.device_id, after=audit_json(window))
        return window


async def _update_audited(cur: AsyncCursor[Any], row: dict[str, Any], values: dict[str, Any], *, actor: str,
                          action: str) -> None:
    """Write the columns of `values` that differ from the locked sensor `row`, with one audit entry; nothing
    when none differs."""
    before, after = audit_diff(row, values)
    if after:
        sets = ", ".join(f"{k} = %({k})s" for k in after)
        await cur.execute(f"UPDATE sensors SET {sets}, updated_at = now() WHERE id = %(id)s",
                          {**after, "id": row["id"]})
        await insert_audit(cur, actor=actor, action=action, sensor_id=row["id"], before=before, after=after)
