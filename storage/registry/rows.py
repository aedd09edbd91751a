"""Row-level writes shared by the registry's operations, its network import and its configuration seeding: audit
rows, sensor and device rows, primaries, lifecycle changes.

I/O (psycopg 3 async); part of `storage.registry`. Every function runs inside the caller's transaction, so an
audit row commits or rolls back with the change it records. Each audit row also sends
`NOTIFY aqnet_registry, '<audit id>'` (delivered at commit) for listeners that prefer it to polling
`registry_version`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncCursor, sql
from psycopg.types.json import Jsonb

from storage.registry.checks import check_devices, check_transition
from storage.registry.models import DeviceSpec, RegistryError, SensorSpec
from storage.registry.read import DEVICE_FIELDS

__all__ = ["NOTIFY_CHANNEL", "audit_diff", "audit_json", "change_lifecycle", "insert_audit", "insert_device",
           "insert_sensor", "retire_devices", "set_primaries", "update_device"]

NOTIFY_CHANNEL = "aqnet_registry"


def _jsonb(value: dict[str, Any] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=lambda o: json.dumps(o, default=str, ensure_ascii=False))


async def insert_audit(cur: AsyncCursor[Any], *, actor: str, action: str, sensor_id: str | None,
                       device_id: str | None = None, before: dict[str, Any] | None = None,
                       after: dict[str, Any] | None = None) -> int:
    """Append one audit row (and notify listeners at commit); its id."""
    await cur.execute("INSERT INTO audit_log (actor, action, sensor_id, device_id, before, after) "
                      "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                      (actor, action, sensor_id, device_id, _jsonb(before), _jsonb(after)))
    row = await cur.fetchone()
    assert row is not None
    audit_id = int(row["id"] if isinstance(row, dict) else row[0])  # dict_row or tuple cursors
    await cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(audit_id)))
    return audit_id


def _values(device: DeviceSpec) -> list[Any]:
    return [getattr(device, f) for f in DEVICE_FIELDS]


async def insert_device(cur: AsyncCursor[Any], sensor_id: str, device: DeviceSpec, *, origin: str,
                        active: bool = True, at: datetime | None = None) -> None:
    """Insert a device row and open its device_history row at `at` (default now)."""
    columns = ["id", "sensor_id", *DEVICE_FIELDS, "active", "origin"]
    # clock_timestamp(), not now(): devices added in one transaction keep their order (records list by created_at)
    query = sql.SQL("INSERT INTO devices ({}, created_at) VALUES ({}, clock_timestamp())").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    await cur.execute(query, [device.id, sensor_id, *_values(device), active, origin])
    await cur.execute("INSERT INTO device_history (sensor_id, device_id, installed_at) "
                      "VALUES (%s, %s, coalesce(%s, now()))", (sensor_id, device.id, at))


async def update_device(cur: AsyncCursor[Any], device: DeviceSpec, *, origin: str) -> None:
    """Set every spec column of an existing device, re-activating it."""
    query = sql.SQL("UPDATE devices SET {}, active = true, retired_at = NULL, origin = %s, updated_at = now() "
                    "WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(f)) for f in DEVICE_FIELDS))
    await cur.execute(query, [*_values(device), origin, device.id])


async def set_primaries(cur: AsyncCursor[Any], sensor_id: str, device: DeviceSpec) -> None:
    """Make `device` the primary of each of its variables when device.primary; drop its primaries otherwise."""
    if device.primary:
        await cur.executemany(
            "INSERT INTO primary_devices (sensor_id, variable, device_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (sensor_id, variable) DO UPDATE SET device_id = excluded.device_id",
            [(sensor_id, v, device.id) for v in device.variables])
        await cur.execute("DELETE FROM primary_devices WHERE device_id = %s AND NOT variable = ANY(%s)",
                          (device.id, list(device.variables)))
    else:
        await cur.execute("DELETE FROM primary_devices WHERE device_id = %s", (device.id,))


def audit_json(model: Any) -> dict[str, Any]:
    """A pydantic model as the JSON an audit row stores."""
    return dict(model.model_dump(mode="json"))


def audit_diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keys of `after` whose value differs from `before`: (their old values, their new values)."""
    keys = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


async def insert_sensor(cur: AsyncCursor[Any], spec: SensorSpec, *, actor: str, action: str) -> None:
    """Insert a sensor (unless its id is taken) with its devices and primaries, and its audit row."""
    await cur.execute("SELECT 1 FROM sensors WHERE id = %s", (spec.id,))
    if await cur.fetchone() is not None:
        raise RegistryError("duplicate", f"sensor {spec.id}: already in the registry (use `aqnet sensors update` "
                            "or `move` to change it)", field="id", sensor_id=spec.id)
    await check_devices(cur, spec.id, spec.devices, fields=[f"devices[{i}]" for i in range(len(spec.devices))],
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
    await insert_audit(cur, actor=actor, action=action, sensor_id=spec.id, after=audit_json(spec))


async def retire_devices(cur: AsyncCursor[Any], sensor_id: str, device_ids: Sequence[str] | None = None) -> None:
    """Take devices (all active ones of the sensor when None) out of service now; close their history."""
    await cur.execute("UPDATE devices SET active = false, retired_at = now(), updated_at = now() "
                      "WHERE sensor_id = %s AND active AND (%s::text[] IS NULL OR id = ANY(%s)) RETURNING id",
                      (sensor_id, device_ids, device_ids))
    ids = [r["id"] for r in await cur.fetchall()]
    await cur.execute("UPDATE device_history SET removed_at = now() WHERE device_id = ANY(%s) AND removed_at IS NULL",
                      (ids,))


async def change_lifecycle(cur: AsyncCursor[Any], row: dict[str, Any], to: str, *, actor: str, reason: str) -> None:
    """Move a sensor's row along its lifecycle (retiring takes its devices out of service), audited."""
    check_transition(row["id"], row["lifecycle"], to, row["retired_at"])
    await cur.execute("UPDATE sensors SET lifecycle = %s, retired_at = CASE WHEN %s THEN now() END, "
                      "updated_at = now() WHERE id = %s", (to, to == "retired", row["id"]))
    if to == "retired":
        await retire_devices(cur, row["id"])
    after = {"lifecycle": to, "reason": reason} if reason else {"lifecycle": to}
    await insert_audit(cur, actor=actor, action="sensor.lifecycle", sensor_id=row["id"],
                       before={"lifecycle": row["lifecycle"]}, after=after)
