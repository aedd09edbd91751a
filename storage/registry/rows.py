"""Row-level writes shared by the registry's operations and its configuration seeding: audit rows, device rows.

I/O (psycopg 3 async); part of `storage.registry`. Every function runs inside the caller's transaction, so an
audit row commits or rolls back with the change it records. Each audit row also sends
`NOTIFY aqnet_registry, '<audit id>'` (delivered at commit) for listeners that prefer it to polling
`registry_version`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncCursor, sql
from psycopg.types.json import Jsonb

from storage.registry_models import DeviceSpec
from storage.registry_read import DEVICE_FIELDS

__all__ = ["NOTIFY_CHANNEL", "insert_audit", "insert_device", "set_primaries", "update_device"]

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
