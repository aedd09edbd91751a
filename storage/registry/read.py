"""Reading the registry: sensor rows, devices, primaries and maintenance windows as models and driver records.

I/O (psycopg 3 async), read-only; part of `storage.registry`, which re-exports the public functions. Every
function runs on the caller's connection and inside the caller's transaction, if any. A sensor's record lists
its active devices; a retired sensor's lists the devices it had when it was retired (taken out with it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from sensors.sensor import Device, Sensor
from storage.registry.models import (
    AuditEntry,
    DeviceSpec,
    Location,
    MaintenanceWindow,
    RegistryError,
    SensorRecord,
    SensorSpec,
)

__all__ = ["DEVICE_FIELDS", "audit_log", "device_rows", "export_network", "get_sensor", "list_maintenance",
           "list_sensors", "load_network", "registry_version", "sensor_records"]

#: DeviceSpec fields stored as devices columns of the same name (primary lives in primary_devices)
DEVICE_FIELDS: tuple[str, ...] = ("profile", "protocol", "variables", "firmware", "host", "port", "unit_id",
                                  "serial_port", "baudrate", "parity", "stopbits", "bytesize", "topic", "client_id",
                                  "hardware_serial", "channels")
_SENSOR_COLUMNS = ("id, name, kind, lat, lon, elevation_m, address, locality, mobile, lifecycle, notes, "
                   "created_at, updated_at, retired_at")
#: the daemon reads these lifecycles
RUNNING = ("commissioning", "active", "maintenance")


async def device_rows(conn: AsyncConnection[Any], sensor_ids: list[str] | None) -> list[dict[str, Any]]:
    """Device rows of the sensors (all when None) that their records show, with `is_primary` set."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT d.*, s.lifecycle AS sensor_lifecycle, EXISTS (SELECT 1 FROM primary_devices p "
            "WHERE p.device_id = d.id AND p.sensor_id = d.sensor_id) AS is_primary "
            "FROM devices d JOIN sensors s ON s.id = d.sensor_id "
            "WHERE (%(ids)s::text[] IS NULL OR d.sensor_id = ANY(%(ids)s)) "
            "AND (d.active OR (s.lifecycle = 'retired' AND d.retired_at = s.retired_at)) "
            "ORDER BY d.sensor_id, d.created_at, d.id", {"ids": sensor_ids})
        return await cur.fetchall()


def _device_spec(row: dict[str, Any]) -> DeviceSpec:
    fields = {f: row[f] for f in DEVICE_FIELDS if row[f] is not None}
    fields["variables"] = list(row["variables"])
    fields["channels"] = list(row["channels"] or [])
    return DeviceSpec(id=row["id"], primary=bool(row["is_primary"]), **fields)


async def _maintenance(conn: AsyncConnection[Any], where: str, params: dict[str, Any]) -> list[MaintenanceWindow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, sensor_id, device_id, variable, starts_at, ends_at, reason, created_by, "
                          f"created_at FROM maintenance_windows WHERE {where} ORDER BY starts_at, id", params)
        return [MaintenanceWindow(**row) for row in await cur.fetchall()]


async def sensor_records(conn: AsyncConnection[Any], *, ids: list[str] | None = None, kind: str | None = None,
                         lifecycle: str | None = None) -> list[SensorRecord]:
    """Sensors as records (stations first, then by id), filtered by ids, kind and lifecycle."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_SENSOR_COLUMNS} FROM sensors WHERE (%(ids)s::text[] IS NULL OR id = ANY(%(ids)s)) "
            "AND (%(kind)s::text IS NULL OR kind = %(kind)s) "
            "AND (%(lifecycle)s::text IS NULL OR lifecycle = %(lifecycle)s) "
            "ORDER BY kind <> 'station', id", {"ids": ids, "kind": kind, "lifecycle": lifecycle})
        sensors = await cur.fetchall()
    if not sensors:
        return []
    sensor_ids = [s["id"] for s in sensors]
    devices: dict[str, list[DeviceSpec]] = {}
    for row in await device_rows(conn, sensor_ids):
        devices.setdefault(row["sensor_id"], []).append(_device_spec(row))
    windows: dict[str, list[MaintenanceWindow]] = {}
    for w in await _maintenance(conn, "sensor_id = ANY(%(ids)s)", {"ids": sensor_ids}):
        windows.setdefault(w.sensor_id, []).append(w)
    return [SensorRecord(
        id=s["id"], name=s["name"], kind=s["kind"],
        location=Location(lat=s["lat"], lon=s["lon"], elevation_m=s["elevation_m"], address=s["address"],
                          locality=s["locality"]),
        mobile=s["mobile"], lifecycle=s["lifecycle"], notes=s["notes"], devices=devices.get(s["id"], []),
        created_at=s["created_at"], updated_at=s["updated_at"], retired_at=s["retired_at"],
        maintenance=windows.get(s["id"], [])) for s in sensors]


async def list_sensors(conn: AsyncConnection[Any], *, kind: str | None = None, lifecycle: str | None = None
                       ) -> list[SensorRecord]:
    """Every sensor (stations first, then by id), optionally of one kind and lifecycle."""
    return await sensor_records(conn, kind=kind, lifecycle=lifecycle)


async def get_sensor(conn: AsyncConnection[Any], sensor_id: str) -> SensorRecord:
    """One sensor; RegistryError not_found when the registry has no such id."""
    found = await sensor_records(conn, ids=[sensor_id])
    if not found:
        raise RegistryError("not_found", f"sensor {sensor_id}: not in the registry (see `aqnet sensors list`)",
                            field="id", sensor_id=sensor_id)
    return found[0]


async def list_maintenance(conn: AsyncConnection[Any], *, sensor_id: str | None = None,
                           overlapping: tuple[datetime, datetime] | None = None) -> list[MaintenanceWindow]:
    """Maintenance windows, of one sensor and/or overlapping [from, to), by start time."""
    start, end = overlapping if overlapping is not None else (None, None)
    return await _maintenance(
        conn, "(%(sid)s::text IS NULL OR sensor_id = %(sid)s) "
              "AND (%(start)s::timestamptz IS NULL OR (starts_at < %(end)s AND ends_at > %(start)s))",
        {"sid": sensor_id, "start": start, "end": end})


async def audit_log(conn: AsyncConnection[Any], *, sensor_id: str | None = None, limit: int = 200
                    ) -> list[AuditEntry]:
    """The newest audit entries first, optionally of one sensor."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, at, actor, action, sensor_id, device_id, before, after FROM audit_log "
                          "WHERE (%(sid)s::text IS NULL OR sensor_id = %(sid)s) ORDER BY id DESC LIMIT %(limit)s",
                          {"sid": sensor_id, "limit": limit})
        return [AuditEntry(**row) for row in await cur.fetchall()]


async def export_network(conn: AsyncConnection[Any]) -> list[SensorSpec]:
    """The whole network as specs (stations first, then by id): what `aqnet sensors export` writes."""
    return [r.spec() for r in await sensor_records(conn)]


async def registry_version(conn: AsyncConnection[Any]) -> int:
    """max(audit_log.id), 0 when empty: it changes whenever anything in the registry changes."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT coalesce(max(id), 0) FROM audit_log")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def load_network(conn: AsyncConnection[Any]) -> list[Sensor]:
    """The sensors the daemon runs (commissioning, active, maintenance) with their active devices, as drivers
    take them; a device is primary for the variables primary_devices gives it."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, name, kind, lat, lon, locality FROM sensors WHERE lifecycle = ANY(%s) "
                          "ORDER BY kind <> 'station', id", (list(RUNNING),))
        sensors = await cur.fetchall()
        await cur.execute("SELECT sensor_id, variable, device_id FROM primary_devices")
        primaries: dict[str, list[str]] = {}
        for p in await cur.fetchall():
            primaries.setdefault(p["device_id"], []).append(p["variable"])
    devices: dict[str, list[Device]] = {}
    for row in await device_rows(conn, [s["id"] for s in sensors]):
        if not row["active"]:
            continue
        variables = tuple(row["variables"])
        devices.setdefault(row["sensor_id"], []).append(Device(
            id=row["id"], sensor_id=row["sensor_id"], protocol=row["protocol"], profile=row["profile"],
            variables=variables, host=row["host"], port=row["port"], unit_id=row["unit_id"], topic=row["topic"],
            primary=tuple(v for v in variables if v in primaries.get(row["id"], ())),
            serial_port=row["serial_port"], baudrate=row["baudrate"], parity=row["parity"],
            stopbits=row["stopbits"], bytesize=row["bytesize"], hardware_serial=row["hardware_serial"],
            channels=tuple(row["channels"] or ())))
    return [Sensor(id=s["id"], name=s["name"], kind=s["kind"], lat=s["lat"], lon=s["lon"], locality=s["locality"],
                   devices=tuple(devices.get(s["id"], ()))) for s in sensors]
