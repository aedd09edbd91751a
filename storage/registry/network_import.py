"""Importing a whole network (a file of SensorSpecs) into the registry, and the spec of a configured sensor. I/O.

Part of `storage.registry` (psycopg 3 async). `import_network` makes the registry hold the given specs, all or
nothing in one transaction: new sensors are added, changed ones updated (devices the file no longer lists are
taken out of service), unchanged ones left alone, and a lifecycle the file does not say keeps the registry's;
each change gets its audit row, and a refusal is a `RegistryError` carrying the position of the sensor at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, AsyncCursor

from sensors.sensor import Sensor
from storage.registry.checks import check_devices, not_retired, transaction
from storage.registry.models import DeviceSpec, ImportResult, Location, RegistryError, SensorSpec
from storage.registry.read import get_sensor
from storage.registry.rows import (
    audit_diff,
    audit_json,
    change_lifecycle,
    insert_audit,
    insert_device,
    insert_sensor,
    retire_devices,
    set_primaries,
    update_device,
)

__all__ = ["import_network", "spec_from_sensor"]


def _same(a: SensorSpec, b: SensorSpec) -> bool:
    """Equal but for the order of the devices."""
    return (a.model_copy(update={"devices": sorted(a.devices, key=lambda d: d.id)})
            == b.model_copy(update={"devices": sorted(b.devices, key=lambda d: d.id)}))


async def _import_one(cur: AsyncCursor[Any], conn: AsyncConnection[Any], spec: SensorSpec, *, actor: str) -> str:
    """Add or update one sensor as the file says; "added", "updated" or "unchanged"."""
    await cur.execute("SELECT * FROM sensors WHERE id = %s FOR UPDATE", (spec.id,))
    row = await cur.fetchone()
    if row is None:
        await insert_sensor(cur, spec, actor=actor, action="sensor.import")
        return "added"
    current = (await get_sensor(conn, spec.id)).spec()
    if "lifecycle" not in spec.model_fields_set:  # the file does not say: keep what technicians set
        spec = spec.model_copy(update={"lifecycle": current.lifecycle})
    if _same(spec, current):
        return "unchanged"
    not_retired(dict(row), "changed by an import")
    fields = [f"devices[{i}]" for i in range(len(spec.devices))]
    await cur.execute("SELECT id, sensor_id FROM devices WHERE id = ANY(%s)", ([d.id for d in spec.devices],))
    owners = {r["id"]: r["sensor_id"] for r in await cur.fetchall()}
    for device, field in zip(spec.devices, fields, strict=True):
        if owners.get(device.id, spec.id) != spec.id:
            raise RegistryError("duplicate", f"sensor {spec.id}: device id {device.id} belongs to sensor "
                                f"{owners[device.id]}", field=f"{field}.id", sensor_id=spec.id)
    await check_devices(cur, spec.id, spec.devices, fields=fields, new_ids=[False] * len(spec.devices))
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
        await retire_devices(cur, spec.id, gone)
        await cur.execute("DELETE FROM primary_devices WHERE device_id = ANY(%s)", (gone,))
    was = {d.id: d for d in current.devices}
    for device in spec.devices:
        if device.id not in owners:
            await insert_device(cur, spec.id, device, origin="registry")
        elif was.get(device.id) != device:
            await update_device(cur, device, origin="registry")
        await set_primaries(cur, spec.id, device)
    before, after = audit_diff(audit_json(current), audit_json(spec))
    after.pop("lifecycle", None)
    before.pop("lifecycle", None)
    if after:
        await insert_audit(cur, actor=actor, action="sensor.import", sensor_id=spec.id, before=before, after=after)
    if spec.lifecycle != current.lifecycle:
        await change_lifecycle(cur, dict(row), spec.lifecycle, actor=actor, reason="import")
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
    async with transaction(conn, source) as cur:
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
