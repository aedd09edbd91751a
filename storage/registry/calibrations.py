"""The `calibrations` table: load the calibrations in force into a CalibrationBook, add and revoke them. I/O.

Contract: every function runs on the caller's async connection and inside the caller's transaction (none
commits). Calibrations are validated by `ingest.calibration` before they are written (the table's CHECK and
exclusion constraints say the same, as a last line); an overlap with a calibration in force is refused by the
database and raised as `CalibrationError` (the caller's transaction is then aborted: roll it back). A wrong
calibration is revoked, never deleted (readings and reprocess runs reference it); revoked ones are not loaded.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from ingest.calibration import Calibration, CalibrationBook, CalibrationError, check_calibration

__all__ = ["insert_calibration", "load_calibration_book", "load_calibrations", "revoke_calibration"]

_COLUMNS = ("id", "device_id", "variable", "kind", "coefficients", "unit", "valid_from", "valid_to", "source")


def _select(device_ids: Collection[str] | None) -> tuple[sql.Composed, dict[str, Any]]:
    where = [sql.SQL("revoked_at IS NULL")]
    params: dict[str, Any] = {}
    if device_ids is not None:
        where.append(sql.SQL("device_id = ANY(%(devices)s)"))
        params["devices"] = list(device_ids)
    query = sql.SQL("SELECT {} FROM calibrations WHERE {} ORDER BY device_id, variable, valid_from, id").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS), sql.SQL(" AND ").join(where))
    return query, params


async def load_calibrations(conn: AsyncConnection[Any], *, device_ids: Collection[str] | None = None
                            ) -> list[Calibration]:
    """Every calibration in force (not revoked), optionally only those of `device_ids`."""
    query, params = _select(device_ids)
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    return [Calibration(id=int(r[0]), device_id=r[1], variable=r[2], kind=r[3],
                        coefficients=tuple(float(c) for c in r[4]), unit=r[5], valid_from=r[6], valid_to=r[7],
                        source=r[8]) for r in rows]


async def load_calibration_book(conn: AsyncConnection[Any], *, device_ids: Collection[str] | None = None
                                ) -> CalibrationBook:
    """A CalibrationBook of the calibrations in force (the daemon's start and refresh; reprocess)."""
    return CalibrationBook(await load_calibrations(conn, device_ids=device_ids))


async def insert_calibration(conn: AsyncConnection[Any], *, device_id: str, variable: str, kind: str,
                             coefficients: Sequence[float], unit: str, valid_from: datetime,
                             valid_to: datetime | None = None, source: str = "", note: str = "",
                             created_by: str) -> int:
    """Add a calibration and return its id; CalibrationError if malformed or overlapping one in force."""
    where = f"new calibration (device {device_id} {variable})"
    check_calibration(where, variable, kind, coefficients, unit, valid_from, valid_to)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO calibrations (device_id, variable, kind, coefficients, unit, valid_from, valid_to, "
                "source, note, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (device_id, variable, kind, [float(c) for c in coefficients], unit, valid_from, valid_to, source,
                 note, created_by))
            row = await cur.fetchone()
    except psycopg.errors.ExclusionViolation:
        raise CalibrationError(where, f"its validity from {valid_from.isoformat()} to "
                                      f"{valid_to.isoformat() if valid_to else 'open'} overlaps a calibration in "
                                      "force: close (valid_to) or revoke that one first") from None
    except psycopg.errors.ForeignKeyViolation:
        raise CalibrationError(where, f"unknown device {device_id!r} (not in the registry)") from None
    assert row is not None
    return int(row[0])


async def revoke_calibration(conn: AsyncConnection[Any], calibration_id: int, *, revoked_by: str,
                             at: datetime | None = None) -> None:
    """Withdraw a calibration as wrong (kept for the record); CalibrationError if unknown or already revoked."""
    async with conn.cursor() as cur:
        await cur.execute("UPDATE calibrations SET revoked_at = coalesce(%s, now()), revoked_by = %s "
                          "WHERE id = %s AND revoked_at IS NULL", (at, revoked_by, calibration_id))
        if cur.rowcount != 1:
            raise CalibrationError(f"calibration {calibration_id}", "no such calibration in force "
                                   "(unknown id, or already revoked)")
