"""Who operates each sensor and whether its location may be published exactly (migration 0013): set and read. I/O
(psycopg 3 async).

Contract: `set_publication` changes a sensor's `operator` and/or `location_publication` in one transaction (a
savepoint when the caller has one) with its `audit_log` row (action `publication`, before and after), like every
registry change; `RegistryError("not_found")` for an unknown sensor, `RegistryError("invalid")` for a value
outside exact | coarse | None (by kind). `public_locations` reads `sensors_public_location`: the location each
sensor may be published at (rounded to 0.01° when coarse, an aqnet convention).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from storage.registry.models import RegistryError
from storage.registry.rows import insert_audit

__all__ = ["LOCATION_PUBLICATION", "public_locations", "set_publication"]

LOCATION_PUBLICATION = ("exact", "coarse")
_UNSET = object()


async def set_publication(conn: AsyncConnection[Any], sensor_id: str, *, operator: str | None = None,
                          location_publication: str | object | None = _UNSET, actor: str) -> dict[str, Any]:
    """Set the sensor's operator (None: unchanged) and location publication ('exact', 'coarse', None: by kind;
    omitted: unchanged); returns the sensor's row of `sensors_public_location`."""
    if location_publication is not _UNSET and location_publication not in (*LOCATION_PUBLICATION, None):
        raise RegistryError("invalid", f"location_publication: expected exact or coarse, got {location_publication!r}",
                            field="location_publication")
    if operator is not None and (len(operator) > 200 or "\x00" in operator):
        raise RegistryError("invalid", "operator: at most 200 characters, no NUL", field="operator")
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT operator, location_publication FROM sensors WHERE id = %s FOR UPDATE",
                          (sensor_id,))
        before = await cur.fetchone()
        if before is None:
            raise RegistryError("not_found", f"unknown sensor {sensor_id!r}", field="sensor_id")
        after = dict(before)
        if operator is not None:
            after["operator"] = operator.strip()
        if location_publication is not _UNSET:
            after["location_publication"] = location_publication
        if after != before:
            await cur.execute("UPDATE sensors SET operator = %s, location_publication = %s, updated_at = now() "
                              "WHERE id = %s", (after["operator"], after["location_publication"], sensor_id))
            await insert_audit(cur, actor=actor, action="publication", sensor_id=sensor_id, before=dict(before),
                               after=after)
        await cur.execute("SELECT * FROM sensors_public_location WHERE id = %s", (sensor_id,))
        row = await cur.fetchone()
        assert row is not None
        return dict(row)


async def public_locations(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Every sensor's operator and publishable location (`sensors_public_location`), by id."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM sensors_public_location ORDER BY id")
        return list(await cur.fetchall())
