"""storage/registry/calibrations.py and the 0002 schema (calibrations, provenance columns) against TimescaleDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ingest.calibration import CalibrationError
from sensors.network import bundled_network
from storage.registry import upsert_registry
from storage.registry.calibrations import (
    insert_calibration,
    load_calibration_book,
    load_calibrations,
    revoke_calibration,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
        await upsert_registry(c, bundled_network())
        yield c


async def test_insert_and_load_round_trip(conn: psycopg.AsyncConnection[Any]) -> None:
    cid = await insert_calibration(conn, device_id="USQ-nox", variable="no2", kind="linear",
                                   coefficients=(1.05, -1.5), unit="ppb", valid_from=T0,
                                   source="co-location report 2026-02", created_by="tech1")
    hid = await insert_calibration(conn, device_id="MS01", variable="pm25", kind="humidity", coefficients=[0.2],
                                   unit="ug/m3", valid_from=T0, valid_to=T0 + timedelta(days=30),
                                   source="site study", created_by="tech1")
    cals = await load_calibrations(conn)
    assert [(c.id, c.device_id, c.kind, c.coefficients, c.valid_to) for c in cals] == [
        (hid, "MS01", "humidity", (0.2,), T0 + timedelta(days=30)),
        (cid, "USQ-nox", "linear", (1.05, -1.5), None)]
    book = await load_calibration_book(conn, device_ids={"USQ-nox"})
    assert len(book) == 1
    found = book.find("USQ-nox", "no2", T0 + timedelta(days=400))
    assert found is not None and found.id == cid and found.source == "co-location report 2026-02"
    row = await (await conn.execute("SELECT created_by, revoked_at FROM calibrations WHERE id = %s",
                                    (cid,))).fetchone()
    assert row == ("tech1", None)


async def test_overlap_refused_until_the_first_is_revoked(conn: psycopg.AsyncConnection[Any]) -> None:
    first = await insert_calibration(conn, device_id="USQ-nox", variable="no2", kind="linear",
                                     coefficients=(2.0, 0.0), unit="ppb", valid_from=T0, created_by="tech1")
    with pytest.raises(CalibrationError, match="overlaps a calibration in force"):
        await insert_calibration(conn, device_id="USQ-nox", variable="no2", kind="linear",
                                 coefficients=(1.1, 0.0), unit="ppb", valid_from=T0 + timedelta(days=1),
                                 created_by="tech1")
    # another variable of the same device is independent
    await insert_calibration(conn, device_id="USQ-nox", variable="no", kind="linear", coefficients=(1.1, 0.0),
                             unit="ppb", valid_from=T0, created_by="tech1")
    await revoke_calibration(conn, first, revoked_by="tech2")
    fixed = await insert_calibration(conn, device_id="USQ-nox", variable="no2", kind="linear",
                                     coefficients=(1.1, 0.0), unit="ppb", valid_from=T0, created_by="tech2")
    assert {c.id for c in await load_calibrations(conn, device_ids=["USQ-nox"])} >= {fixed}
    assert first not in {c.id for c in await load_calibrations(conn)}
    with pytest.raises(CalibrationError, match="already revoked"):
        await revoke_calibration(conn, first, revoked_by="tech2")


async def test_malformed_or_unknown_device_refused(conn: psycopg.AsyncConnection[Any]) -> None:
    with pytest.raises(CalibrationError, match="unknown device 'NOPE'"):
        await insert_calibration(conn, device_id="NOPE", variable="no2", kind="linear", coefficients=(1.0, 0.0),
                                 unit="ppb", valid_from=T0, created_by="t")
    with pytest.raises(CalibrationError, match="humidity: expected coefficients"):
        await insert_calibration(conn, device_id="MS01", variable="pm25", kind="humidity", coefficients=(),
                                 unit="ug/m3", valid_from=T0, created_by="t")


@pytest.mark.parametrize(("kind", "coefficients"), [
    ("linear", [1.0]), ("linear", [0.0, 1.0]), ("polynomial", [1.0]), ("humidity", [-0.1]),
    ("linear", [1.0, float("nan")]), ("cubic", [1.0, 2.0]),
])
async def test_table_constraints_are_the_last_line(conn: psycopg.AsyncConnection[Any], kind: str,
                                                   coefficients: list[float]) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        await conn.execute("INSERT INTO calibrations (device_id, variable, kind, coefficients, unit, valid_from) "
                           "VALUES ('MS01', 'pm25', %s, %s, 'ug/m3', %s)", (kind, coefficients, T0))


async def test_readings_reference_calibrations(conn: psycopg.AsyncConnection[Any]) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, device_id, "
                           "received_at, calibration_id) VALUES (%s, 'MS01', 'pm25', 1, 'µg/m³', 'MS01', %s, 999)",
                           (T0, T0))
