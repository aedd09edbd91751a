"""What the commissioning check (`aqnet sensors test ID`) takes from storage: the registry record of the sensor as
the drivers see it, and the readings an HTTP push device last sent. Stage 3 (storage); `sensor_of` is pure,
`last_stored_readings` I/O (psycopg 3 async, on the caller's connection).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from ingest.reading import Reading
from sensors.sensor import Device, Sensor
from storage.registry.models import SensorRecord
from storage.rows import MEASUREMENT_COLUMNS, row_reading

__all__ = ["last_stored_readings", "sensor_of"]


async def last_stored_readings(conn: AsyncConnection[Any], device: Device) -> list[Reading]:
    """The newest stored reading of each variable of `device` (what an HTTP push device last sent)."""
    query = sql.SQL("SELECT DISTINCT ON (variable) {} FROM measurements WHERE sensor_id = %s AND device_id = %s "
                    "ORDER BY variable, time DESC").format(sql.SQL(", ").join(map(sql.Identifier, MEASUREMENT_COLUMNS)))
    async with conn.cursor() as cur:
        await cur.execute(query, (device.sensor_id, device.id))
        return [row_reading(row) for row in await cur.fetchall()]


def sensor_of(record: SensorRecord) -> Sensor:
    """The driver-shaped `Sensor` of a registry record (its active devices; primary as the record says)."""
    devices = tuple(Device(
        id=d.id, sensor_id=record.id, protocol=d.protocol, profile=d.profile, variables=tuple(d.variables),
        host=d.host, port=d.port, unit_id=d.unit_id, topic=d.topic,
        primary=tuple(d.variables) if d.primary else (), serial_port=d.serial_port, baudrate=d.baudrate,
        parity=d.parity, stopbits=d.stopbits, bytesize=d.bytesize, hardware_serial=d.hardware_serial,
        channels=tuple(d.channels)) for d in record.devices)
    return Sensor(id=record.id, name=record.name, kind=record.kind, lat=record.location.lat,
                  lon=record.location.lon, locality=record.location.locality, devices=devices)
