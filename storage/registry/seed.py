"""Seeding the registry from the daemon's configuration (`upsert_registry`), without undoing technicians' work.

I/O (psycopg 3 async); part of `storage.registry`, which re-exports it. Contract: one transaction; each change
gets an audit row with actor "config"; a run that changes nothing writes nothing (not even updated_at).
- A configured sensor missing from the registry is added (lifecycle active) with its devices.
- A sensor already in the registry keeps its name, kind, location, lifecycle and notes: technicians own them
  (`aqnet sensors update|move|…`). A retired sensor is skipped entirely.
- The configuration keeps its own devices (origin config) in step: endpoint, profile, variables; a device it no
  longer lists is deactivated. It never touches devices technicians added (origin registry) nor re-activates
  a device a technician took out (retired_at set, e.g. by a swap), and it gives no primary role away from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from sensors.sensor import Device, Sensor
from storage.registry.models import DeviceSpec
from storage.registry.read import DEVICE_FIELDS
from storage.registry.rows import insert_audit, insert_device, update_device

__all__ = ["CONFIG_ACTOR", "RegistryResult", "upsert_registry"]

CONFIG_ACTOR = "config"

_PRIMARY = """
INSERT INTO primary_devices AS p (sensor_id, variable, device_id) VALUES (%s, %s, %s)
ON CONFLICT (sensor_id, variable) DO UPDATE SET device_id = excluded.device_id
WHERE p.device_id IS DISTINCT FROM excluded.device_id
    AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = p.device_id AND d.active AND d.origin = 'registry')
"""


@dataclass(frozen=True, slots=True)
class RegistryResult:
    """How many configured rows were written (each upserted, changed or not), and devices deactivated."""

    sensors: int
    devices: int
    primaries: int
    deactivated: int


def _primaries(sensors: Sequence[Sensor]) -> list[tuple[str, str, str]]:
    rows: dict[tuple[str, str], str] = {}
    for s in sensors:
        for d in s.devices:
            for v in d.primary:
                other = rows.setdefault((s.id, v), d.id)
                if other != d.id:
                    raise ValueError(f"sensor {s.id}: variable {v!r} has two primary devices, {other} "
                                     f"and {d.id}; expected exactly one")
    return [(sid, v, did) for (sid, v), did in rows.items()]


def _values(d: Device) -> dict[str, Any]:
    """The configured device as devices columns (firmware and client id are not configured)."""
    values = {f: getattr(d, f, None) for f in DEVICE_FIELDS}
    values["variables"] = list(d.variables)
    values["channels"] = list(d.channels)
    return values


def _spec(d: Device) -> DeviceSpec:
    values = {k: v for k, v in _values(d).items() if v is not None}
    return DeviceSpec.model_construct(id=d.id, primary=bool(d.primary), **values)  # the config is validated


async def _sync_device(cur: AsyncCursor[Any], s: Sensor, d: Device, row: dict[str, Any] | None) -> bool:
    """Insert or update one configured device; False when technicians own it (then the config leaves it)."""
    values = _values(d)
    if row is None:
        await insert_device(cur, s.id, _spec(d), origin="config")
        await insert_audit(cur, actor=CONFIG_ACTOR, action="device.add", sensor_id=s.id, device_id=d.id,
                           after={"sensor_id": s.id, **values})
        return True
    if row["origin"] != "config" or row["retired_at"] is not None:
        return False
    if values["hardware_serial"] is None:  # set by a technician for a configured microsensor: keep it
        values["hardware_serial"] = row["hardware_serial"]
    wanted = {"sensor_id": s.id, "active": True, **values}
    current = {k: (list(row[k]) if isinstance(row[k], list) else row[k]) for k in wanted}
    changed = [k for k in wanted if current[k] != wanted[k]]
    if changed:
        await update_device(cur, _spec(d).model_copy(update={"hardware_serial": values["hardware_serial"]}),
                            origin="config")
        if row["sensor_id"] != s.id:
            await cur.execute("UPDATE devices SET sensor_id = %s WHERE id = %s", (s.id, d.id))
        await insert_audit(cur, actor=CONFIG_ACTOR, action="device.config", sensor_id=s.id, device_id=d.id,
                           before={k: current[k] for k in changed}, after={k: wanted[k] for k in changed})
    return True


#: pg_advisory_xact_lock key of the registry's seeding ("aqnetsee" in ASCII, as a bigint)
SEED_LOCK = 0x6171_6E65_7473_6565


async def _upsert(conn: AsyncConnection[Any], sensors: Sequence[Sensor]) -> RegistryResult:
    primaries = _primaries(sensors)
    sensor_ids = [s.id for s in sensors]
    device_ids = [d.id for s in sensors for d in s.devices]
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        # one seeder at a time: FOR UPDATE locks the rows that exist, not the ones two seeders (the daemon and
        # `aqnet simulate`) would both insert; the SELECTs below run after the lock, so they see the other's rows
        await cur.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK,))
        await cur.execute("SELECT id, lifecycle FROM sensors WHERE id = ANY(%s) FOR UPDATE", (sensor_ids,))
        existing = {r["id"]: r["lifecycle"] for r in await cur.fetchall()}
        await cur.execute("SELECT * FROM devices WHERE id = ANY(%s) FOR UPDATE", (device_ids,))
        rows = {r["id"]: r for r in await cur.fetchall()}
        live = [s for s in sensors if existing.get(s.id) != "retired"]
        owned: set[str] = set()
        for s in live:
            if s.id not in existing:
                await cur.execute("INSERT INTO sensors (id, name, kind, lat, lon, locality, lifecycle) "
                                  "VALUES (%s, %s, %s, %s, %s, %s, 'active')",
                                  (s.id, s.name, s.kind, s.lat, s.lon, s.locality))
                await insert_audit(cur, actor=CONFIG_ACTOR, action="sensor.add", sensor_id=s.id,
                                   after={"name": s.name, "kind": s.kind, "lat": s.lat, "lon": s.lon,
                                          "locality": s.locality, "lifecycle": "active"})
            for d in s.devices:
                if await _sync_device(cur, s, d, rows.get(d.id)):
                    owned.add(d.id)
        live_ids = [s.id for s in live]
        mine = [p for p in primaries if p[2] in owned]
        await cur.execute(
            "DELETE FROM primary_devices p USING devices d WHERE d.id = p.device_id AND d.origin = 'config' "
            "AND p.sensor_id = ANY(%s) AND (p.sensor_id, p.variable) NOT IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            (live_ids, [p[0] for p in mine], [p[1] for p in mine]))
        if mine:
            await cur.executemany(_PRIMARY, mine)
        await cur.execute("UPDATE devices SET active = false, updated_at = now() WHERE active AND origin = 'config' "
                          "AND sensor_id = ANY(%s) AND NOT id = ANY(%s) RETURNING id, sensor_id",
                          (live_ids, device_ids))
        gone = await cur.fetchall()
        for r in gone:
            await insert_audit(cur, actor=CONFIG_ACTOR, action="device.deactivate", sensor_id=r["sensor_id"],
                               device_id=r["id"], before={"active": True}, after={"active": False})
    return RegistryResult(len(sensors), len(device_ids), len(primaries), len(gone))


async def upsert_registry(pool_or_conn: AsyncConnectionPool[Any] | AsyncConnection[Any],
                          sensors: Sequence[Sensor]) -> RegistryResult:
    """Seed the registry from the configured network (one transaction; see the module docstring)."""
    if isinstance(pool_or_conn, AsyncConnectionPool):
        async with pool_or_conn.connection() as conn:
            return await _upsert(conn, sensors)
    return await _upsert(pool_or_conn, sensors)
