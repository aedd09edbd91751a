"""`aqnet sensors health` through click's CliRunner against a real TimescaleDB: --update, table and --json."""

from __future__ import annotations

import json

from click.testing import CliRunner

from aqnet.cli.root import cli
from tests.alerts.health.seed import NOW, seeded

__all__ = ["seeded"]  # the fixture, used by name


def test_health_table_and_json(seeded: str) -> None:
    runner = CliRunner()
    at = NOW.isoformat()
    done = runner.invoke(cli, ["sensors", "health", "MS01", "--url", seeded, "--at", at, "--update", "--json"])
    assert done.exit_code == 0, done.output
    [ms01] = json.loads(done.output)
    assert ms01["device"] == "MS01" and ms01["status"] == "up"
    assert ms01["24h"]["failures"] == 1 and ms01["24h"]["mttr_s"] == 3 * 3600
    assert ms01["flat_variable"] == "pm25" and ms01["flat_minutes"] == 180
    table = runner.invoke(cli, ["sensors", "health", "--url", seeded, "--at", at])
    assert table.exit_code == 0, table.output
    line = next(row for row in table.output.splitlines() if row.startswith("MS01"))
    assert "87.5%" in line and "3.0 h" in line and "pm25 3.0 h" in line
    missing = runner.invoke(cli, ["sensors", "health", "NOPE", "--url", seeded, "--at", at])
    assert missing.exit_code == 1 and "NOPE" in missing.output
