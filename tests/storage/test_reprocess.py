"""storage/reprocess.py against a real TimescaleDB: a calibration fixed after the fact, then reprocessed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from ingest.normalise import SiteConditions, normalise
from ingest.reading import QC, Reading
from sensors.network import bundled_network
from sensors.reading import RawReading
from storage.registry import upsert_registry
from storage.registry.calibrations import insert_calibration, load_calibration_book, revoke_calibration
from storage.reprocess import ReprocessError, reprocess
from storage.rows import MEASUREMENT_COLUMNS, row_reading
from storage.writer import TimescaleWriter

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SITE = SiteConditions(14.0, 752.0, "nearest:USQ")


def raw(sensor: str, device: str, variable: str, value: float, unit: str, minute: int,
        conditions: str | None = None) -> RawReading:
    t = T0 + timedelta(minutes=minute)
    return RawReading(sensor, device, variable, value, unit, t, t + timedelta(seconds=4),
                      conditions)  # type: ignore[arg-type]


def ingest_batch() -> list[RawReading]:
    out = []
    for i in range(7):  # every 10 min, 12:00 … 13:00
        out.append(raw("USQ", "USQ-pm", "pm25", 20.0 + i, "ug/m3", 10 * i, "local"))
        out.append(raw("USQ", "USQ-nox", "no2", 30.0 + i, "ppb", 10 * i))
        out.append(raw("USQ", "USQ-met", "temperature", 14.0, "°C", 10 * i))
        out.append(raw("MS01", "MS01", "relativehumidity", 50.0, "%", 10 * i))
        out.append(raw("MS01", "MS01", "pm25", 33.0, "ug/m3", 10 * i, "local"))
    return out


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False,
                                   kwargs={"autocommit": True}) as p:
        await upsert_registry(p, bundled_network())
        yield p


@pytest.fixture
async def stored(pool: AsyncConnectionPool[Any]) -> list[Reading]:
    readings = [normalise(r, SITE) for r in ingest_batch()]
    await TimescaleWriter(pool).write(readings)
    return readings


async def fetch(pool: AsyncConnectionPool[Any], sensor: str = "USQ") -> dict[tuple[str, str, datetime], Reading]:
    cols = ", ".join(MEASUREMENT_COLUMNS)
    async with pool.connection() as conn:
        rows = await (await conn.execute(f"SELECT {cols} FROM measurements WHERE sensor_id = %s",
                                         (sensor,))).fetchall()
    return {(r.device_id, r.variable, r.time): r for r in map(row_reading, rows)}


async def test_calibration_fixed_after_the_fact_is_reprocessed(pool: AsyncConnectionPool[Any],
                                                               stored: list[Reading]) -> None:
    before = await fetch(pool)
    async with pool.connection() as conn:
        # PM halved from 12:30 on; NO2 re-spanned for the whole period
        pm_cal = await insert_calibration(conn, device_id="USQ-pm", variable="pm25", kind="linear",
                                          coefficients=(0.5, 0.0), unit="µg/m³", valid_from=T0 + timedelta(minutes=30),
                                          source="co-location", created_by="tech1")
        no2_cal = await insert_calibration(conn, device_id="USQ-nox", variable="no2", kind="linear",
                                           coefficients=(1.1, -2.0), unit="ppb", valid_from=T0 - timedelta(days=1),
                                           created_by="tech1")
        book = await load_calibration_book(conn)
        result = await reprocess(conn, "USQ", T0, T0 + timedelta(hours=1), run_by="tech1", note="ticket 7")
    # [12:00, 13:00): 6 of the 7 readings per series; PM from 12:30 (3) and every NO2 (6) change
    assert result.examined == 6 * 3 and result.changed == 3 + 6 and result.skipped == {}
    assert result.calibration_ids == (pm_cal, no2_cal) and result.run_id is not None

    after = await fetch(pool)
    expected = {(r.device_id, r.variable, r.time): normalise(r, SITE, calibrations=book)
                for r in ingest_batch() if r.sensor_id == "USQ" and r.time < T0 + timedelta(hours=1)}
    for key, old in before.items():
        new = after[key]
        assert (new.raw_value, new.raw_unit, new.received_at) == (old.raw_value, old.raw_unit, old.received_at)
        assert (new.conditions_temp_c, new.conditions_pressure_hpa, new.conditions_source) == \
            (old.conditions_temp_c, old.conditions_pressure_hpa, old.conditions_source)
        if key in expected and key[1] != "temperature":
            assert new == expected[key]
        else:
            assert new == old  # temperature, and the 13:00 readings outside the range
    pm_1240 = after[("USQ-pm", "pm25", T0 + timedelta(minutes=40))]
    assert pm_1240.flags == QC.CALIBRATED and pm_1240.calibration_id == pm_cal
    assert pm_1240.value == pytest.approx(before[("USQ-pm", "pm25", T0 + timedelta(minutes=40))].value / 2)
    assert after[("USQ-pm", "pm25", T0)].calibration_id is None

    async with pool.connection() as conn:
        run = await (await conn.execute(
            "SELECT run_by, sensor_id, time_from, time_to, rows_examined, rows_changed, rows_skipped, "
            "calibration_ids, note FROM reprocess_runs WHERE id = %s", (result.run_id,))).fetchone()
        assert run == ("tech1", "USQ", T0, T0 + timedelta(hours=1), 18, 9, 0, [pm_cal, no2_cal], "ticket 7")
        changes = await (await conn.execute(
            "SELECT device_id, variable, old_value, new_value, old_flags, new_flags, new_calibration_id "
            "FROM reprocess_changes WHERE run_id = %s ORDER BY device_id, time", (result.run_id,))).fetchall()
    assert len(changes) == 9
    assert changes[0][:2] == ("USQ-nox", "no2") and changes[0][4:] == (0, int(QC.CALIBRATED), no2_cal)

    # twice: no further change (recorded as a run that changed nothing)
    async with pool.connection() as conn:
        again = await reprocess(conn, "USQ", T0, T0 + timedelta(hours=1), run_by="tech1")
    assert again.changed == 0 and again.examined == 18 and again.run_id != result.run_id
    assert await fetch(pool) == after


async def test_revoking_a_wrong_calibration_and_reprocessing_restores_values(
        pool: AsyncConnectionPool[Any], stored: list[Reading]) -> None:
    before = await fetch(pool)
    async with pool.connection() as conn:
        wrong = await insert_calibration(conn, device_id="USQ-nox", variable="no2", kind="polynomial",
                                         coefficients=(1.0, 2.0, 0.01), unit="ppb", valid_from=T0, created_by="t")
        changed = await reprocess(conn, "USQ", T0, T0 + timedelta(hours=2), run_by="t")
        assert changed.changed == 7
        await revoke_calibration(conn, wrong, revoked_by="t")
        undone = await reprocess(conn, "USQ", T0, T0 + timedelta(hours=2), run_by="t")
    assert undone.changed == 7 and undone.calibration_ids == ()
    assert await fetch(pool) == before


async def test_dry_run_writes_nothing(pool: AsyncConnectionPool[Any], stored: list[Reading]) -> None:
    before = await fetch(pool)
    async with pool.connection() as conn:
        await insert_calibration(conn, device_id="USQ-nox", variable="no2", kind="linear", coefficients=(2.0, 0.0),
                                 unit="ppb", valid_from=T0, created_by="t")
        dry = await reprocess(conn, "USQ", T0, T0 + timedelta(hours=2), run_by="t", dry_run=True)
        runs = await (await conn.execute("SELECT count(*) FROM reprocess_runs")).fetchone()
    assert dry.dry_run and dry.changed == 7 and dry.run_id is None
    assert dry.changes[0].new.value == pytest.approx(2 * dry.changes[0].old.value)
    assert runs == (0,)
    assert await fetch(pool) == before


async def test_humidity_calibration_uses_the_stored_relative_humidity(pool: AsyncConnectionPool[Any],
                                                                      stored: list[Reading]) -> None:
    async with pool.connection() as conn:
        hid = await insert_calibration(conn, device_id="MS01", variable="pm25", kind="humidity",
                                       coefficients=(0.165,), unit="ug/m3", valid_from=T0, created_by="t")
        result = await reprocess(conn, "MS01", T0, T0 + timedelta(hours=2), run_by="t")
    assert result.changed == 7 and result.calibration_ids == (hid,)
    after = await fetch(pool, "MS01")
    pm = after[("MS01", "pm25", T0 + timedelta(minutes=20))]
    # 33 / (1 + 0.1 · 0.5/0.5) = 30 µg/m³ per actual m³, then to reference conditions with the recorded T/P
    assert pm.calibration_rh_pct == 50.0 and pm.flags == QC.CALIBRATED
    expected = normalise(raw("MS01", "MS01", "pm25", 30.0, "ug/m3", 20, "local"), SITE)
    assert pm.value == pytest.approx(expected.value, rel=1e-12)
    assert after[("MS01", "relativehumidity", T0)].calibration_id is None


async def test_rows_without_provenance_are_skipped(pool: AsyncConnectionPool[Any], stored: list[Reading]) -> None:
    async with pool.connection() as conn:
        # a PM row written before migration 0002: no recorded conditions
        await conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, raw_value, "
                           "raw_unit, device_id, received_at) VALUES (%s, 'USQ', 'pm10', 40, 'µg/m³', 0, 31, "
                           "'ug/m3', 'USQ-pm', %s)", (T0 + timedelta(minutes=5), T0))
        await insert_calibration(conn, device_id="USQ-pm", variable="pm10", kind="linear", coefficients=(2.0, 0.0),
                                 unit="ug/m3", valid_from=T0, created_by="t")
        result = await reprocess(conn, "USQ", T0, T0 + timedelta(hours=2), run_by="t")
        legacy = await (await conn.execute("SELECT value, flags FROM measurements WHERE variable = 'pm10'"
                                           )).fetchone()
        skipped = await (await conn.execute("SELECT rows_skipped, skipped_reasons FROM reprocess_runs WHERE id = %s",
                                            (result.run_id,))).fetchone()
    assert result.skipped == {"no_provenance": 1} and result.changed == 0
    assert legacy == (40.0, 0)
    assert skipped == (1, {"no_provenance": 1})


async def test_bad_requests_change_nothing(pool: AsyncConnectionPool[Any], stored: list[Reading]) -> None:
    async with pool.connection() as conn:
        with pytest.raises(ReprocessError, match="unknown sensor 'NOPE'"):
            await reprocess(conn, "NOPE", T0, T0 + timedelta(hours=1), run_by="t")
        with pytest.raises(ReprocessError, match="must be before"):
            await reprocess(conn, "USQ", T0, T0, run_by="t")
        with pytest.raises(ReprocessError, match="UTC offset"):
            await reprocess(conn, "USQ", T0.replace(tzinfo=None), T0 + timedelta(hours=1), run_by="t")
        runs = await (await conn.execute("SELECT count(*) FROM reprocess_runs")).fetchone()
    assert runs == (0,)
