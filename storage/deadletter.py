"""Dead letters: record input aqnet could not store as a measurement, for inspection and reprocessing. I/O.

Contract: `record` inserts one row into `dead_letters` on the caller's connection and inside the caller's
transaction (it never commits), so a dead letter and the work that produced it commit or roll back together.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

__all__ = ["record"]


def _dumps(obj: Any) -> str:
    # datetimes (and anything else not JSON-native) as their ISO/str form rather than failing the insert
    return json.dumps(obj, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o))


async def record(conn: AsyncConnection[Any], source: str, reason: str, detail: str,
                 sensor_id: str | None = None, payload: bytes | None = None,
                 reading: dict[str, Any] | None = None) -> int:
    """Insert a dead letter (source: mqtt, modbus, writer, ...; reason: short code); returns its id."""
    if not source or not reason:
        raise ValueError(f"dead letter needs a source and a reason, got source={source!r} reason={reason!r}")
    cur = await conn.execute(
        "INSERT INTO dead_letters (source, sensor_id, reason, detail, payload, reading) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (source, sensor_id, reason, detail, payload, Jsonb(reading, _dumps) if reading is not None else None))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])
