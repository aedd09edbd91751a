"""The sensor registry technicians edit: sensors, devices, lifecycle, swaps, calibrations, maintenance, imports.

I/O (psycopg 3 async). Contract: each public write runs in ONE transaction (a savepoint when the caller already
has one) together with its audit_log row(s), so a change and its record commit or vanish together; a refused
change raises `RegistryError` (code, field, message naming what and where) and leaves nothing behind. Checks
that need only the value live in the pydantic models (`storage.registry_models`); here are the ones that need
the database or the installed profiles: duplicate ids, unknown device profile, a topic or hardware serial already
used by another sensor, an invalid or overlapping calibration, an illegal lifecycle transition.

Lifecycle: planned → commissioning → active ⇄ maintenance; any state but retired → retired, which is final and
takes the sensor's devices out of service. A device swap deactivates the old device from a given time and
records it in device_history; measurements are keyed by sensor_id, so the sensor's series stays continuous.
Reads (`list_sensors`, `get_sensor`, …) live in `storage.registry_read`; the daemon's seeding from its
configuration (`upsert_registry`) in `storage.registry_seed`. Both are re-exported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row

from ingest.calibration import CalibrationError, check_calibration
from sensors.modbus.profile import ProfileError, list_profiles, load_profile
from sensors.mqtt.payloads import FORMATS
from sensors.sensor import MODBUS_PROTOCOLS, Sensor
from storage.calibrations import insert_calibration
from storage.registry_models import (
    CalibrationSpec,
    DeviceSpec,
    ImportResult,
    Lifecycle,
    Location,
    MaintenanceSpec,
    MaintenanceWindow,
    RegistryError,
    SensorPatch,
    SensorRecord,
    SensorSpec,
)
from storage.registry_read import (
    audit_log,
    export_network,
    get_sensor,
    list_maintenance,
    list_sensors,
    load_network,
    registry_version,
)
from storage.registry_rows import insert_audit, insert_device, set_primaries, update_device
from storage.registry_seed import RegistryResult, upsert_registry

__all__ = ["TRANSITIONS", "RegistryError", "RegistryResult", "add_device", "add_maintenance", "add_sensor",
           "audit_log", "calibrate", "export_network", "get_sensor", "import_network", "list_maintenance",
           "list_sensors", "load_network", "move_sensor", "registry_version", "set_lifecycle", "spec_from_sensor",
           "swap_device", "update_sensor", "upsert_registry"]

#: lifecycle → the states it may go to (retired is final)
TRANSITIONS: dict[str, frozenset[str]] = {
    "planned": frozenset({"commissioning", "retired"}),
    "commissioning": frozenset({"active", "retired"}),
    "active": frozenset({"maintenance", "retired"}),
    "maintenance": frozenset({"active", "retired"}),
    "retired": frozenset(),
}
_LOCATION_COLUMNS = ("lat", "lon", "elevation_m", "address", "locality")


@asynccontextmanager
async def _write(conn: AsyncConnection[Any], where: str) -> AsyncIterator[AsyncCursor[Any]]:
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


def _json(model: Any) -> dict[str, Any]:
    return dict(model.model_dump(mode="json"))


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


async def _lock_sensor(cur: AsyncCursor[Any], sensor_id: str) -> dict[str, Any]:
    await cur.execute("SELECT * FROM sensors WHERE id = %s FOR UPDATE", (sensor_id,))
    row = await cur.fetchone()
    if row is None:
        raise RegistryError("not_found", f"sensor {sensor_id}: not in the registry (see `aqnet sensors list`)",
                            field="id", sensor_id=sensor_id)
    return dict(row)


def _not_retired(row: dict[str, Any], doing: str) -> None:
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


async def _check_devices(cur: AsyncCursor[Any], sensor_id: str, devices: Sequence[DeviceSpec], *,
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


async def _insert_sensor(cur: AsyncCursor[Any], spec: SensorSpec, *, actor: str, action: str) -> None:
    await cur.execute("SELECT 1 FROM sensors WHERE id = %s", (spec.id,))
    if await cur.fetchone() is not None:
        raise RegistryError("duplicate", f"sensor {spec.id}: already in the registry (use `aqnet sensors update` "
                            "or `move` to change it)", field="id", sensor_id=spec.id)
    await _check_devices(cur, spec.id, spec.devices, fields=[f"devices[{i}]" for i in range(len(spec.devices))],
                         new_ids=[True] * len(spec.devices))
    loc = spec.location
    retired = spec.lifecycle == "retired"
    await cur.execute(
        "INSERT INTO sensors (id, name, kind, lat, lon, elevation_m, address, locality, mobile, lifecycle, notes, "
        "retired_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)",
        (spec.id, spec.name, spec.kind, loc.lat, loc.lon, loc.elevation_m, loc.address, loc.locality, spec.mobile,
         spec.lifecycle, spec.notes, retired))
    for device in spec.devices:
        await insert_device(cur, spec.id, device, origin="registry", active=not retired)
        if retired:
            await cur.execute("UPDATE devices SET retired_at = now() WHERE id = %s", (device.id,))
            await cur.execute("UPDATE device_history SET removed_at = now() WHERE device_id = %s", (device.id,))
        await set_primaries(cur, spec.id, device)
    await insert_audit(cur, actor=actor, action=action, sensor_id=spec.id, after=_json(spec))


async def add_sensor(conn: AsyncConnection[Any], spec: SensorSpec, *, actor: str) -> SensorRecord:
    """Register a sensor with its devices; RegistryError duplicate, unknown_profile or conflict."""
    async with _write(conn, f"sensor {spec.id}") as cur:
        await _insert_sensor(cur, spec, actor=actor, action="sensor.add")
        return await get_sensor(conn, spec.id)


async def update_sensor(conn: AsyncConnection[Any], sensor_id: str, patch: SensorPatch, *, actor: str
                        ) -> SensorRecord:
    """Change name, notes, mobile, address or locality (the fields the patch sets); audited when anything changed."""
    async with _write(conn, f"sensor {sensor_id}") as cur:
        row = await _lock_sensor(cur, sensor_id)
        before, after = _diff(row, patch.model_dump(exclude_none=True))
        if after:
            sets = ", ".join(f"{k} = %({k})s" for k in after)
            await cur.execute(f"UPDATE sensors SET {sets}, updated_at = now() WHERE id = %(id)s",
                              {**after, "id": sensor_id})
            await insert_audit(cur, actor=actor, action="sensor.update", sensor_id=sensor_id, before=before,
                               after=after)
        return await get_sensor(conn, sensor_id)


async def move_sensor(conn: AsyncConnection[Any], sensor_id: str, location: Location, *, actor: str
                      ) -> SensorRecord:
    """Set a sensor's location (coordinates, elevation, address, locality); audited with before and after."""
    async with _write(conn, f"sensor {sensor_id}") as cur:
        row = await _lock_sensor(cur, sensor_id)
        _not_retired(row, "moved")
        before, after = _diff(row, location.model_dump())
        if after:
            sets = ", ".join(f"{k} = %({k})s" for k in after)
            await cur.execute(f"UPDATE sensors SET {sets}, updated_at = now() WHERE id = %(id)s",
                              {**after, "id": sensor_id})
            await insert_audit(cur, actor=actor, action="sensor.move", sensor_id=sensor_id, before=before,
                               after=after)
        return await get_sensor(conn, sensor_id)


def _check_transition(sensor_id: str, current: str, to: str, retired_at: datetime | None) -> None:
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


async def _retire_devices(cur: AsyncCursor[Any], sensor_id: str, device_ids: Sequence[str] | None = None) -> None:
    """Take devices (all active ones of the sensor when None) out of service now; close their history."""
    await cur.execute("UPDATE devices SET active = false, retired_at = now(), updated_at = now() "
                      "WHERE sensor_id = %s AND active AND (%s::text[] IS NULL OR id = ANY(%s)) RETURNING id",
                      (sensor_id, device_ids, device_ids))
    ids = [r["id"] for r in await cur.fetchall()]
    await cur.execute("UPDATE device_history SET removed_at = now() WHERE device_id = ANY(%s) AND removed_at IS NULL",
                      (ids,))


async def _set_lifecycle(cur: AsyncCursor[Any], row: dict[str, Any], to: str, *, actor: str, reason: str) -> None:
    _check_transition(row["id"], row["lifecycle"], to, row["retired_at"])
    await cur.execute("UPDATE sensors SET lifecycle = %s, retired_at = CASE WHEN %s THEN now() END, "
                      "updated_at = now() WHERE id = %s", (to, to == "retired", row["id"]))
    if to == "retired":
        await _retire_devices(cur, row["id"])
    after = {"lifecycle": to, "reason": reason} if reason else {"lifecycle": to}
    await insert_audit(cur, actor=actor, action="sensor.lifecycle", sensor_id=row["id"],
                       before={"lifecycle": row["lifecycle"]}, after=after)


async def set_lifecycle(conn: AsyncConnection[Any], sensor_id: str, to: Lifecycle, *, actor: str, reason: str = ""
                        ) -> SensorRecord:
    """Move a sensor along its lifecycle; RegistryError illegal_transition (e.g. retiring it twice)."""
    async with _write(conn, f"sensor {sensor_id}") as cur:
        row = await _lock_sensor(cur, sensor_id)
        await _set_lifecycle(cur, row, to, actor=actor, reason=reason)
        return await get_sensor(conn, sensor_id)


async def _primary_taken(cur: AsyncCursor[Any], sensor_id: str, device: DeviceSpec, field: str) -> None:
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


async def add_device(conn: AsyncConnection[Any], sensor_id: str, device: DeviceSpec, *, actor: str
                     ) -> SensorRecord:
    """Add a device to a sensor; RegistryError duplicate, unknown_profile or conflict."""
    async with _write(conn, f"sensor {sensor_id}") as cur:
        row = await _lock_sensor(cur, sensor_id)
        _not_retired(row, "given a device")
        await _check_devices(cur, sensor_id, [device], fields=["device"], new_ids=[True])
        await _primary_taken(cur, sensor_id, device, "device")
        await insert_device(cur, sensor_id, device, origin="registry")
        await set_primaries(cur, sensor_id, device)
        await insert_audit(cur, actor=actor, action="device.add", sensor_id=sensor_id, device_id=device.id,
                           after=_json(device))
        return await get_sensor(conn, sensor_id)


async def swap_device(conn: AsyncConnection[Any], sensor_id: str, old_device_id: str, new: DeviceSpec, *,
                      actor: str, at: datetime) -> SensorRecord:
    """Replace a device from `at`: the old one goes out of service, the new one measures its variables and takes
    its primary role; recorded in device_history and the audit log. The sensor's series is continuous."""
    if at.tzinfo is None:
        raise RegistryError("invalid", f"sensor {sensor_id}: swap time {at.isoformat()} must be timezone-aware",
                            field="at", sensor_id=sensor_id)
    async with _write(conn, f"sensor {sensor_id}") as cur:
        row = await _lock_sensor(cur, sensor_id)
        _not_retired(row, "given a device")
        old = next((d for d in (await get_sensor(conn, sensor_id)).devices if d.id == old_device_id), None)
        if old is None:
            raise RegistryError("not_found", f"sensor {sensor_id}: has no device {old_device_id} in service; "
                                "see `aqnet sensors show " + sensor_id + "`", field="old_device_id",
                                sensor_id=sensor_id)
        await _check_devices(cur, sensor_id, [new], fields=["device"], new_ids=[True])
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
                           before=_json(old), after={**_json(new), "at": at.isoformat()})
        return await get_sensor(conn, sensor_id)


async def calibrate(conn: AsyncConnection[Any], device_id: str, spec: CalibrationSpec, *, actor: str) -> int:
    """Add a calibration to a device (validated by ingest.calibration) and return its id; RegistryError
    not_found or invalid_calibration (malformed, a variable the device does not measure, overlapping one)."""
    async with _write(conn, f"device {device_id}") as cur:
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
                           device_id=device_id, after={"id": cal_id, **_json(spec)})
        return cal_id


async def add_maintenance(conn: AsyncConnection[Any], sensor_id: str, spec: MaintenanceSpec, *, actor: str
                          ) -> MaintenanceWindow:
    """Put a sensor, or one device or variable of it, in maintenance for [starts_at, ends_at)."""
    async with _write(conn, f"sensor {sensor_id}") as cur:
        row = await _lock_sensor(cur, sensor_id)
        _not_retired(row, "put in maintenance")
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
                           device_id=spec.device_id, after=_json(window))
        return window


def _same(a: SensorSpec, b: SensorSpec) -> bool:
    """Equal but for the order of the devices."""
    return (a.model_copy(update={"devices": sorted(a.devices, key=lambda d: d.id)})
            == b.model_copy(update={"devices": sorted(b.devices, key=lambda d: d.id)}))


async def _import_one(cur: AsyncCursor[Any], conn: AsyncConnection[Any], spec: SensorSpec, *, actor: str) -> str:
    """Add or update one sensor as the file says; "added", "updated" or "unchanged"."""
    await cur.execute("SELECT * FROM sensors WHERE id = %s FOR UPDATE", (spec.id,))
    row = await cur.fetchone()
    if row is None:
        await _insert_sensor(cur, spec, actor=actor, action="sensor.import")
        return "added"
    current = (await get_sensor(conn, spec.id)).spec()
    if "lifecycle" not in spec.model_fields_set:  # the file does not say: keep what technicians set
        spec = spec.model_copy(update={"lifecycle": current.lifecycle})
    if _same(spec, current):
        return "unchanged"
    _not_retired(dict(row), "changed by an import")
    fields = [f"devices[{i}]" for i in range(len(spec.devices))]
    await cur.execute("SELECT id, sensor_id FROM devices WHERE id = ANY(%s)", ([d.id for d in spec.devices],))
    owners = {r["id"]: r["sensor_id"] for r in await cur.fetchall()}
    for device, field in zip(spec.devices, fields, strict=True):
        if owners.get(device.id, spec.id) != spec.id:
            raise RegistryError("duplicate", f"sensor {spec.id}: device id {device.id} belongs to sensor "
                                f"{owners[device.id]}", field=f"{field}.id", sensor_id=spec.id)
    await _check_devices(cur, spec.id, spec.devices, fields=fields, new_ids=[False] * len(spec.devices))
    loc = spec.location
    await cur.execute("UPDATE sensors SET name = %s, kind = %s, lat = %s, lon = %s, elevation_m = %s, address = %s, "
                      "locality = %s, mobile = %s, notes = %s, updated_at = now() WHERE id = %s",
                      (spec.name, spec.kind, loc.lat, loc.lon, loc.elevation_m, loc.address, loc.locality,
                       spec.mobile, spec.notes, spec.id))
    keep = [d.id for d in spec.devices]
    await cur.execute("SELECT id FROM devices WHERE sensor_id = %s AND active AND NOT id = ANY(%s)",
                      (spec.id, keep))
    gone = [r["id"] for r in await cur.fetchall()]
    if gone:
        await _retire_devices(cur, spec.id, gone)
        await cur.execute("DELETE FROM primary_devices WHERE device_id = ANY(%s)", (gone,))
    was = {d.id: d for d in current.devices}
    for device in spec.devices:
        if device.id not in owners:
            await insert_device(cur, spec.id, device, origin="registry")
        elif was.get(device.id) != device:
            await update_device(cur, device, origin="registry")
        await set_primaries(cur, spec.id, device)
    before, after = _diff(_json(current), _json(spec))
    after.pop("lifecycle", None)
    before.pop("lifecycle", None)
    if after:
        await insert_audit(cur, actor=actor, action="sensor.import", sensor_id=spec.id, before=before, after=after)
    if spec.lifecycle != current.lifecycle:
        await _set_lifecycle(cur, dict(row), spec.lifecycle, actor=actor, reason="import")
    return "updated"


async def import_network(conn: AsyncConnection[Any], specs: Sequence[SensorSpec], *, actor: str, source: str
                         ) -> ImportResult:
    """Make the registry hold `specs` (add new sensors, update changed ones), all or nothing in one transaction;
    a RegistryError carries `index`, the position of the sensor at fault. Sensors not in `specs` are left alone."""
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.id in seen:
            raise RegistryError("duplicate", f"sensor {spec.id}: appears twice in {source} (entries "
                                f"{seen[spec.id] + 1} and {i + 1})", field="id", index=i, sensor_id=spec.id)
        seen[spec.id] = i
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    async with _write(conn, source) as cur:
        for i, spec in enumerate(specs):
            try:
                counts[await _import_one(cur, conn, spec, actor=actor)] += 1
            except RegistryError as exc:
                exc.index = i
                raise
        if counts["added"] or counts["updated"]:
            await insert_audit(cur, actor=actor, action="network.import", sensor_id=None,
                               after={"source": source, **counts})
    return ImportResult(**counts)


def spec_from_sensor(sensor: Sensor) -> SensorSpec:
    """The spec of a configured or bundled sensor (lifecycle active): what `aqnet sensors import --bundled` adds."""
    devices = [DeviceSpec(id=d.id, profile=d.profile, protocol=d.protocol, variables=list(d.variables),
                          host=d.host, port=d.port, unit_id=d.unit_id, serial_port=d.serial_port, baudrate=d.baudrate,
                          parity=d.parity, stopbits=d.stopbits, bytesize=d.bytesize,  # type: ignore[arg-type]
                          topic=d.topic, hardware_serial=d.hardware_serial, channels=list(d.channels),
                          primary=bool(d.primary)) for d in sensor.devices]
    return SensorSpec(id=sensor.id, name=sensor.name, kind=sensor.kind,
                      location=Location(lat=sensor.lat, lon=sensor.lon, locality=sensor.locality),
                      lifecycle="active", devices=devices)
