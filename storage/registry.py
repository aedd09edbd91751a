"""The sensor registry in the database: upsert sensors, devices and primary devices from the configuration.

I/O (psycopg 3 async). Contract: `upsert_registry` runs in one transaction and makes the `sensors`,
`devices` and `primary_devices` rows of the configured sensors match the configuration; it touches
`updated_at` only when something changed. Columns the configuration does not carry (elevation, address,
mobile, lifecycle, hardware serial) are left as operators set them. A device no longer configured is marked
`active = false`, never deleted (its measurements still reference it). Sensors no longer configured are left
alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from sensors.sensor import Sensor

__all__ = ["RegistryResult", "upsert_registry"]

_SENSORS = """
INSERT INTO sensors AS s (id, name, kind, lat, lon, locality) VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, lat = excluded.lat,
    lon = excluded.lon, locality = excluded.locality, updated_at = now()
WHERE (s.name, s.kind, s.lat, s.lon, s.locality)
    IS DISTINCT FROM (excluded.name, excluded.kind, excluded.lat, excluded.lon, excluded.locality)
"""

_DEVICES = """
INSERT INTO devices AS d (id, sensor_id, protocol, profile, host, port, unit_id, topic, variables,
                          hardware_serial, active)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, true)
ON CONFLICT (id) DO UPDATE SET sensor_id = excluded.sensor_id, protocol = excluded.protocol,
    profile = excluded.profile, host = excluded.host, port = excluded.port, unit_id = excluded.unit_id,
    topic = excluded.topic, variables = excluded.variables,
    hardware_serial = coalesce(excluded.hardware_serial, d.hardware_serial), active = true, updated_at = now()
WHERE (d.sensor_id, d.protocol, d.profile, d.host, d.port, d.unit_id, d.topic, d.variables, d.active)
    IS DISTINCT FROM (excluded.sensor_id, excluded.protocol, excluded.profile, excluded.host, excluded.port,
                      excluded.unit_id, excluded.topic, excluded.variables, true)
    OR (excluded.hardware_serial IS NOT NULL AND d.hardware_serial IS DISTINCT FROM excluded.hardware_serial)
"""

_PRIMARY = """
INSERT INTO primary_devices (sensor_id, variable, device_id) VALUES (%s, %s, %s)
ON CONFLICT (sensor_id, variable) DO UPDATE SET device_id = excluded.device_id
WHERE primary_devices.device_id IS DISTINCT FROM excluded.device_id
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


async def _upsert(conn: AsyncConnection[Any], sensors: Sequence[Sensor]) -> RegistryResult:
    primaries = _primaries(sensors)
    sensor_rows = [(s.id, s.name, s.kind, s.lat, s.lon, s.locality) for s in sensors]
    device_rows = [(d.id, s.id, d.protocol, d.profile, d.host, d.port, d.unit_id, d.topic, list(d.variables),
                    d.hardware_serial)
                   for s in sensors for d in s.devices]
    sensor_ids = [s.id for s in sensors]
    device_ids = [r[0] for r in device_rows]
    async with conn.transaction(), conn.cursor() as cur:
        if sensor_rows:
            await cur.executemany(_SENSORS, sensor_rows)
        if device_rows:
            await cur.executemany(_DEVICES, device_rows)
        await cur.execute(
            "DELETE FROM primary_devices WHERE sensor_id = ANY(%s) "
            "AND (sensor_id, variable) NOT IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            (sensor_ids, [p[0] for p in primaries], [p[1] for p in primaries]))
        if primaries:
            await cur.executemany(_PRIMARY, primaries)
        await cur.execute("UPDATE devices SET active = false, updated_at = now() "
                          "WHERE active AND sensor_id = ANY(%s) AND NOT id = ANY(%s)",
                          (sensor_ids, device_ids))
        deactivated = cur.rowcount
    return RegistryResult(len(sensor_rows), len(device_rows), len(primaries), max(deactivated, 0))


async def upsert_registry(pool_or_conn: AsyncConnectionPool[Any] | AsyncConnection[Any],
                          sensors: Sequence[Sensor]) -> RegistryResult:
    """Make sensors, devices and primary_devices match the configured network (one transaction)."""
    if isinstance(pool_or_conn, AsyncConnectionPool):
        async with pool_or_conn.connection() as conn:
            return await _upsert(conn, sensors)
    return await _upsert(pool_or_conn, sensors)
