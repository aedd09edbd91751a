"""storage/writer.py, storage/registry/ and storage/deadletter.py against a real, migrated TimescaleDB."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from ingest.reading import QC, Reading
from sensors.network import bundled_network
from storage import deadletter
from storage.registry import upsert_registry
from storage.rows import MEASUREMENT_COLUMNS, reading_row
from storage.writer import TimescaleWriter, WriteResult

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
NO_FLAGS = QC(0)
NETWORK = bundled_network()
STATION = next(s for s in NETWORK if s.kind == "station")
PM = next(d for d in STATION.devices if "pm25" in d.variables)


def reading(value: float, minute: int = 0, *, variable: str = "pm25", flags: QC = NO_FLAGS,
            device_id: str = PM.id) -> Reading:
    t = T0 + timedelta(minutes=minute)
    return Reading(sensor_id=STATION.id, device_id=device_id, variable=variable, time=t, value=value,
                   unit="µg/m³", flags=flags, raw_value=value, raw_unit="ug/m3",
                   received_at=t + timedelta(seconds=3))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as p:
        yield p


def rows(url: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(MEASUREMENT_COLUMNS)
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT {cols} FROM measurements ORDER BY time, variable").fetchall()


def dead_letters(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT source, sensor_id, reason, detail, reading FROM dead_letters ORDER BY id").fetchall()


async def test_empty_batch_is_a_noop(pool: AsyncConnectionPool[Any]) -> None:
    assert await TimescaleWriter(pool).write([]) == WriteResult(0, 0, 0)


async def test_insert_stores_every_column(pool: AsyncConnectionPool[Any], database_url: str) -> None:
    batch = [reading(10.0, 0), reading(11.5, 1, flags=QC.SPIKE), reading(12.0, 2)]
    assert await TimescaleWriter(pool).write(batch) == WriteResult(3, 0, 0)
    assert rows(database_url) == [reading_row(r) for r in batch]


async def test_exact_repeat_adds_no_second_row(pool: AsyncConnectionPool[Any], database_url: str) -> None:
    writer = TimescaleWriter(pool)
    batch = [reading(10.0, 0), reading(11.0, 1)]
    await writer.write(batch)
    redelivered = [dataclasses.replace(r, received_at=r.received_at + timedelta(minutes=5)) for r in batch]
    assert await writer.write(redelivered) == WriteResult(0, 2, 0)
    assert rows(database_url) == [reading_row(r) for r in batch]  # the first receive time is kept
    assert dead_letters(database_url) == []


async def test_different_value_is_a_dead_letter_not_a_row(pool: AsyncConnectionPool[Any],
                                                          database_url: str) -> None:
    writer = TimescaleWriter(pool)
    await writer.write([reading(10.0)])
    assert await writer.write([reading(99.0)]) == WriteResult(0, 0, 1)
    assert rows(database_url) == [reading_row(reading(10.0))]
    [(source, sensor_id, reason, detail, doc)] = dead_letters(database_url)
    assert (source, sensor_id, reason) == ("writer", STATION.id, "conflict")
    assert "99" in detail and "10" in detail and "already stored" in detail
    assert doc["value"] == 99.0 and doc["existing_value"] == 10.0 and doc["existing_in"] == "measurements"
    assert doc["device_id"] == PM.id and doc["variable"] == "pm25"


async def test_different_flags_alone_is_a_conflict(pool: AsyncConnectionPool[Any], database_url: str) -> None:
    writer = TimescaleWriter(pool)
    await writer.write([reading(10.0)])
    assert await writer.write([reading(10.0, flags=QC.MAINTENANCE)]) == WriteResult(0, 0, 1)
    assert rows(database_url)[0][MEASUREMENT_COLUMNS.index("flags")] == 0


async def test_batch_mixing_insert_repeat_and_conflict(pool: AsyncConnectionPool[Any],
                                                        database_url: str) -> None:
    writer = TimescaleWriter(pool)
    await writer.write([reading(10.0, 0), reading(20.0, 1)])
    batch = [
        reading(10.0, 0),  # repeat of a stored row
        reading(21.0, 1),  # conflicts with a stored row
        reading(30.0, 2),  # new
        reading(30.0, 2),  # repeat within the batch
        reading(40.0, 3),  # new
        reading(41.0, 3),  # conflicts with an earlier row of the same batch
        reading(5.0, 3, variable="pm10"),  # same time, other variable: new
    ]
    assert await writer.write(batch) == WriteResult(inserted=3, duplicates=2, conflicts=2)
    stored = {(r[2], r[0]): r[3] for r in rows(database_url)}
    assert stored == {("pm25", T0): 10.0, ("pm25", T0 + timedelta(minutes=1)): 20.0,
                      ("pm25", T0 + timedelta(minutes=2)): 30.0, ("pm25", T0 + timedelta(minutes=3)): 40.0,
                      ("pm10", T0 + timedelta(minutes=3)): 5.0}
    letters = dead_letters(database_url)
    assert [(d[4]["value"], d[4]["existing_value"], d[4]["existing_in"]) for d in letters] == [
        (21.0, 20.0, "measurements"), (41.0, 40.0, "batch")]
    assert "earlier in the same batch" in letters[1][3]


async def test_other_device_same_key_otherwise_is_not_a_conflict(pool: AsyncConnectionPool[Any]) -> None:
    writer = TimescaleWriter(pool)
    assert await writer.write([reading(10.0), reading(12.0, device_id="spare-pm")]) == WriteResult(2, 0, 0)


async def test_concurrent_batches_never_lose_a_conflict(pool: AsyncConnectionPool[Any],
                                                        database_url: str) -> None:
    writer = TimescaleWriter(pool)
    a = [reading(1.0, m) for m in range(50)]
    b = [reading(2.0, m) for m in range(50)]
    ra, rb = await asyncio.gather(writer.write(a), writer.write(b))
    assert ra.inserted + rb.inserted == 50
    assert ra.conflicts + rb.conflicts == 50
    assert len(rows(database_url)) == 50 and len(dead_letters(database_url)) == 50


async def test_deadletter_record_round_trip(pool: AsyncConnectionPool[Any], database_url: str) -> None:
    async with pool.connection() as conn:
        dl_id = await deadletter.record(conn, "mqtt", "not_json", "aqnet/MS01/readings: expected JSON",
                                        sensor_id="MS01", payload=b"\xff\x00garbage",
                                        reading={"time": T0, "value": 1.5})
    assert dl_id > 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT source, sensor_id, reason, detail, payload, reading, received_at "
                           "FROM dead_letters WHERE id = %s", (dl_id,)).fetchone()
    assert row is not None
    assert row[:5] == ("mqtt", "MS01", "not_json", "aqnet/MS01/readings: expected JSON", b"\xff\x00garbage")
    assert row[5] == {"time": T0.isoformat(), "value": 1.5} and row[6] is not None


async def test_upsert_bundled_network(pool: AsyncConnectionPool[Any], database_url: str) -> None:
    result = await upsert_registry(pool, NETWORK)
    n_devices = sum(len(s.devices) for s in NETWORK)
    assert (result.sensors, result.devices, result.deactivated) == (44, n_devices, 0)
    with psycopg.connect(database_url) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM sensors GROUP BY kind").fetchall())
        assert kinds == {"station": 19, "microsensor": 25}
        assert conn.execute("SELECT count(*) FROM devices WHERE active").fetchone() == (n_devices,)
        primary = conn.execute("SELECT device_id FROM primary_devices WHERE sensor_id = %s AND variable = "
                               "'pm25'", (STATION.id,)).fetchone()
        assert primary == (PM.id,)
        stamp = conn.execute("SELECT max(updated_at) FROM sensors").fetchone()
        device = conn.execute("SELECT protocol, host, port, unit_id, variables FROM devices WHERE id = %s",
                              (PM.id,)).fetchone()
        assert device == ("modbus-tcp", PM.host, PM.port, PM.unit_id, list(PM.variables))
    # idempotent: a second run changes nothing, not even updated_at
    await upsert_registry(pool, NETWORK)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT max(updated_at) FROM sensors").fetchone() == stamp
        assert conn.execute("SELECT count(*) FROM sensors").fetchone() == (44,)
    # a device dropped from the configuration is deactivated, its primary rows removed
    changed = dataclasses.replace(STATION, devices=tuple(d for d in STATION.devices if d.id != PM.id))
    result = await upsert_registry(pool, [changed if s.id == STATION.id else s for s in NETWORK])
    assert result.deactivated == 1
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT active FROM devices WHERE id = %s", (PM.id,)).fetchone() == (False,)
        assert conn.execute("SELECT count(*) FROM primary_devices WHERE device_id = %s",
                            (PM.id,)).fetchone() == (0,)


async def test_two_primaries_for_one_variable_is_refused(pool: AsyncConnectionPool[Any]) -> None:
    twin = dataclasses.replace(PM, id=PM.id + "-twin", unit_id=99)
    bad = dataclasses.replace(STATION, devices=(*STATION.devices, twin))
    with pytest.raises(ValueError, match="two primary devices"):
        await upsert_registry(pool, [bad])


async def test_a_redelivery_differing_only_in_arrival_flags_is_a_duplicate(pool: AsyncConnectionPool[Any],
                                                                           database_url: str) -> None:
    writer = TimescaleWriter(pool)
    assert await writer.write([reading(10.0, flags=QC.SPIKE)]) == WriteResult(1, 0, 0)
    # after a restart the QC state is new: the same reading arrives without SPIKE but late (STALE)
    assert await writer.write([reading(10.0, flags=QC.STALE)]) == WriteResult(0, 1, 0)
    assert await writer.write([reading(10.0, flags=QC.STALE | QC.DEVICE_INVALID)]) == WriteResult(0, 0, 1)
