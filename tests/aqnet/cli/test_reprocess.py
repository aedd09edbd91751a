"""`aqnet reprocess` through click's CliRunner against a real TimescaleDB: summary, --json, --dry-run, errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import psycopg
from click.testing import CliRunner

from aqnet.cli.reprocess import reprocess_command
from ingest.normalise import SiteConditions, normalise
from sensors.network import bundled_network
from sensors.reading import RawReading
from storage.registry import upsert_registry
from storage.registry.calibrations import insert_calibration
from storage.writer import TimescaleWriter

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 12:00 in Bogotá
RANGE = ["--sensor", "USQ", "--from", "2026-03-02T12:00-05:00", "--to", "2026-03-02T13:00-05:00"]


def _setup(url: str) -> None:
    async def go() -> None:
        from psycopg_pool import AsyncConnectionPool

        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False, kwargs={"autocommit": True}) as pool:
            await upsert_registry(pool, bundled_network())
            raws = [RawReading("USQ", "USQ-nox", "no2", 40.0 + i, "ppb", T0 + timedelta(minutes=10 * i),
                               T0 + timedelta(minutes=10 * i, seconds=3)) for i in range(3)]
            await TimescaleWriter(pool).write([normalise(r, SiteConditions(14.0, 752.0, "own")) for r in raws])
            async with pool.connection() as conn:
                await insert_calibration(conn, device_id="USQ-nox", variable="no2", kind="linear",
                                         coefficients=(1.1, -2.0), unit="ppb", valid_from=T0, created_by="tech1")
    asyncio.run(go())


def _values(url: str) -> list[tuple[float, int, int | None, float]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT value, flags, calibration_id, raw_value FROM measurements "
                            "ORDER BY time").fetchall()


def test_dry_run_then_run_then_json(database_url: str) -> None:
    _setup(database_url)
    before = _values(database_url)
    runner = CliRunner()
    dry = runner.invoke(reprocess_command, [*RANGE, "--url", database_url, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "3 readings examined, 3 would change, 0 skipped" in dry.output
    assert "dry run: nothing written" in dry.output
    assert _values(database_url) == before

    done = runner.invoke(reprocess_command, [*RANGE, "--url", database_url, "--by", "tech2", "--note", "span fix"])
    assert done.exit_code == 0, done.output
    assert "3 changed" in done.output and "recorded as reprocess run" in done.output
    after = _values(database_url)
    assert [raw for *_, raw in after] == [raw for *_, raw in before]  # raw untouched
    assert all(flags == 256 and cal is not None for _, flags, cal, _ in after)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT run_by, note, rows_changed FROM reprocess_runs").fetchall() == [
            ("tech2", "span fix", 3)]

    again = runner.invoke(reprocess_command, [*RANGE, "--url", database_url, "--json"])
    assert again.exit_code == 0, again.output
    doc = json.loads(again.output)
    assert (doc["examined"], doc["changed"], doc["dry_run"]) == (3, 0, False)
    assert doc["time_from"] == "2026-03-02T12:00:00-05:00" and len(doc["calibration_ids"]) == 1


def test_errors_exit_non_zero_with_a_reason(database_url: str) -> None:
    _setup(database_url)
    runner = CliRunner()
    naive = runner.invoke(reprocess_command, ["--sensor", "USQ", "--from", "2026-03-02T12:00",
                                              "--to", "2026-03-02T13:00", "--url", database_url])
    assert naive.exit_code == 2 and "no UTC offset" in naive.output
    garbage = runner.invoke(reprocess_command, ["--sensor", "USQ", "--from", "yesterday", "--to", "now",
                                                "--url", database_url])
    assert garbage.exit_code == 2 and "ISO 8601" in garbage.output
    unknown = runner.invoke(reprocess_command, ["--sensor", "NOPE", *RANGE[2:], "--url", database_url])
    assert unknown.exit_code == 1 and "unknown sensor 'NOPE'" in unknown.output
    both = runner.invoke(reprocess_command, [*RANGE, "--url", database_url, "--config", "x.yaml"])
    assert both.exit_code == 2 and "not both" in both.output
