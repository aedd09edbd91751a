"""`aqnet calibrate propose|show|apply` against a real TimescaleDB (the issue's acceptance): a simulated
microsensor beside USQ with a known bias, slope and humidity effect; the proposal recovers them within stated
tolerances, its report lists each EPA target with pass/fail, and applying it changes the stored values through
the reprocess path, audited, never before a technician applies it."""

from __future__ import annotations

import json
import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg_pool import AsyncConnectionPool

from aqnet.cli.root import cli
from ingest import units
from ingest.calibration import Calibration
from ingest.normalise import SiteConditions, normalise
from sensors.network import bundled_network
from sensors.reading import RawReading
from storage.registry import upsert_registry
from storage.registry.calibrations import insert_calibration
from storage.writer import TimescaleWriter

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 10
SITE = SiteConditions(14.0, 752.0, "nearest:USQ")
FACTOR = units.reference_factor(SITE.temp_c, SITE.pressure_hpa)
#: the simulated microsensor at local conditions: x = SLOPE·reference + HUMIDITY·RH + BIAS + noise (σ = 1)
SLOPE, HUMIDITY, BIAS = 1.6, 0.08, 3.0


@pytest.fixture
async def colocated(database_url: str) -> AsyncIterator[str]:
    rng = random.Random(11)
    raws: list[RawReading] = []
    averages: list[tuple[Any, ...]] = []
    for h in range(DAYS * 24):
        end = T0 + timedelta(hours=h + 1)
        ref_local = 8.0 + 10.0 * (1 + math.sin(2 * math.pi * h / 24)) + rng.uniform(0, 15)
        rh = 55.0 + 25.0 * math.sin(2 * math.pi * (h + 6) / 24 + 0.3 * (h // 24)) + rng.uniform(-5, 5)
        # the reference's 1-h average, stored at the reference conditions as the averages job stores it
        averages.append(("USQ", end, ref_local * FACTOR))
        for minute in (10, 30, 50):
            t = end - timedelta(hours=1) + timedelta(minutes=minute)
            x = SLOPE * ref_local + HUMIDITY * rh + BIAS + rng.gauss(0, 1.0)
            raws.append(RawReading("MS01", "MS01", "relativehumidity", rh, "%", t, t + timedelta(seconds=2)))
            raws.append(RawReading("MS01", "MS01", "pm25", x, "ug/m3", t, t + timedelta(seconds=2), "local"))
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False,
                                   kwargs={"autocommit": True}) as pool:
        await upsert_registry(pool, bundled_network())
        await TimescaleWriter(pool).write([normalise(r, SITE) for r in raws])
        async with pool.connection() as conn:
            await conn.execute("UPDATE sensors SET lat = s.lat + 0.0001, lon = s.lon FROM sensors s "
                               "WHERE sensors.id = 'MS01' AND s.id = 'USQ'")
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, "
                    "coverage, samples, valid) VALUES (%s, 'pm25', '1h', %s - interval '1 hour', %s, %s, 'µg/m³', "
                    "1, 60, true)", [(s, e, e, v) for s, e, v in averages])
            # the calibration in force before: a datasheet factor, to be replaced by a new version
            await insert_calibration(conn, device_id="MS01", variable="pm25", kind="linear", coefficients=(0.7, 0.0),
                                     unit="µg/m³", valid_from=T0 - timedelta(days=30), source="datasheet",
                                     created_by="tech0")
        yield database_url


def _period() -> list[str]:
    return ["--from", T0.isoformat(), "--to", (T0 + timedelta(days=DAYS)).isoformat()]


def test_proposal_recovers_the_simulated_sensor_and_applying_it_reprocesses_audited(colocated: str) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["calibrate", "propose", "MS01", "--variable", "pm25", *_period(), "--url", colocated,
                              "--by", "tech1", "--json"])
    assert out.exit_code == 0, out.output
    p = json.loads(out.output)
    assert p["status"] == "proposed" and p["reference_sensor_id"] == "USQ" and p["distance_m"] < 20
    assert p["kind"] == "linear_rh" and p["pairs"] == DAYS * 24 and p["unit"] == "ug/m3"
    a, b, c = p["coefficients"]
    # tolerances (240 hours, σ = 1 µg/m³; about 5 standard errors): slope 2 %, humidity 0.02 per %, bias 1.5
    assert 1 / a == pytest.approx(SLOPE, rel=0.02)
    assert -b / a == pytest.approx(HUMIDITY, abs=0.02)
    assert -c / a == pytest.approx(BIAS, abs=1.5)
    report = p["report"]
    metrics = [t["metric"] for t in report["after"]["targets"]]
    assert metrics == ["r2", "slope", "intercept", "rmse", "nrmse_pct"]
    assert all(t["passed"] for t in report["after"]["targets"])
    before = {t["metric"]: t for t in report["before"]["targets"]}
    assert before["slope"]["passed"] is False and before["slope"]["value"] == pytest.approx(SLOPE + 0.0, rel=0.15)
    assert all(t["source"] and t["status"] in ("verified_secondary", "unverified")
               for t in report["after"]["targets"])
    shown = runner.invoke(cli, ["calibrate", "show", str(p["id"]), "--url", colocated])
    assert shown.exit_code == 0, shown.output
    assert "slope" in shown.output and "FAIL" in shown.output and "pass" in shown.output

    with psycopg.connect(colocated) as conn:
        # proposed, not applied: the stored values still carry the old calibration
        olds = conn.execute("SELECT DISTINCT calibration_id FROM measurements WHERE sensor_id = 'MS01' "
                            "AND variable = 'pm25'").fetchall()
    valid_from = T0 + timedelta(days=5)
    done = runner.invoke(cli, ["calibrate", "apply", str(p["id"]), "--from", valid_from.isoformat(), "--url",
                               colocated, "--by", "tech2", "--json"])
    assert done.exit_code == 0, done.output
    applied = json.loads(done.output)
    new_id, rep = applied["calibration_id"], applied["reprocess"]
    assert applied["closed_calibration_id"] is not None and rep["changed"] == 5 * 24 * 3
    with psycopg.connect(colocated) as conn:
        rows = conn.execute(
            "SELECT m.time, m.raw_value, m.value, m.calibration_id, m.calibration_rh_pct, m.flags "
            "FROM measurements m WHERE m.sensor_id = 'MS01' AND m.variable = 'pm25' ORDER BY m.time").fetchall()
        after = [r for r in rows if r[0] >= valid_from]
        kept = [r for r in rows if r[0] < valid_from]
        cal = Calibration(new_id, "MS01", "pm25", "linear_rh", (a, b, c), "ug/m3", valid_from)
        for _, raw, value, cal_id, rh, _ in after:
            assert cal_id == new_id and rh is not None
            assert value == pytest.approx(units.to_reference_conditions(cal.apply(raw, rh_pct=rh) or math.nan,
                                                                        SITE.temp_c, SITE.pressure_hpa))
        assert {r[3] for r in kept} == {o[0] for o in olds}  # before valid_from: the old version, untouched
        audit = conn.execute("SELECT actor, action, after FROM audit_log WHERE sensor_id = 'MS01' "
                             "AND action LIKE 'calibration.%' ORDER BY id").fetchall()
        assert [(r[0], r[1]) for r in audit][-2:] == [("tech2", "calibration.close"), ("tech2", "calibration.add")]
        assert audit[-1][2]["proposal"] == p["id"] and audit[-1][2]["id"] == new_id
        closed = conn.execute("SELECT valid_to FROM calibrations WHERE id = %s",
                              (applied["closed_calibration_id"],)).fetchone()
        assert closed == (valid_from,)
        run = conn.execute("SELECT run_by, rows_changed, calibration_ids FROM reprocess_runs WHERE id = %s",
                           (rep["run_id"],)).fetchone()
        assert run == ("tech2", 5 * 24 * 3, [new_id])
        status = conn.execute("SELECT status, decided_by, calibration_id FROM calibration_proposals WHERE id = %s",
                              (p["id"],)).fetchone()
        assert status == ("applied", "tech2", new_id)
    again = runner.invoke(cli, ["calibrate", "apply", str(p["id"]), "--from", valid_from.isoformat(), "--url",
                                colocated])
    assert again.exit_code == 1 and "already applied" in again.output


def test_barkjohn_option_and_refusals(colocated: str) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["calibrate", "propose", "MS01", *_period(), "--method", "barkjohn-2021", "--url",
                              colocated, "--json"])
    assert out.exit_code == 0, out.output
    p = json.loads(out.output)
    assert p["coefficients"] == [0.524, -0.0862, 5.75] and "amt-14-4617-2021" in p["report"]["proposed"]["source"]
    far = runner.invoke(cli, ["calibrate", "propose", "MS02", *_period(), "--url", colocated])
    assert far.exit_code == 1 and "no station measuring pm25 within 20 m" in far.output and "nearest" in far.output
    station = runner.invoke(cli, ["calibrate", "propose", "USQ", *_period(), "--url", colocated])
    assert station.exit_code == 1 and "reference station" in station.output
    empty = runner.invoke(cli, ["calibrate", "propose", "MS01", "--from", "2025-01-01T00:00:00+00:00", "--to",
                                "2025-01-02T00:00:00+00:00", "--url", colocated])
    assert empty.exit_code == 1 and "no valid reading" in empty.output
    rejected = runner.invoke(cli, ["calibrate", "reject", str(p["id"]), "--url", colocated, "--by", "tech3"])
    assert rejected.exit_code == 0
    listed = runner.invoke(cli, ["calibrate", "list", "MS01", "--url", colocated])
    assert "rejected" in listed.output
