"""`aqnet export day | catalogue` and `aqnet report annual` against a real TimescaleDB: the day is exported into the
configured directory with the configured licence and publisher, a second run says unchanged, missing licence
settings are refused naming them; the annual report prints as a table, JSON and CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import psycopg
import yaml
from click.testing import CliRunner

from aqnet.cli import cli
from tests.alerts.opendata.test_compliance_read import seeded  # noqa: F401 - a fixture
from tests.alerts.opendata.test_export_job import seed


def config(tmp_path: Path, url: str, open_data: dict[str, Any] | None = None, **exports: Any) -> Path:
    path = tmp_path / "aqnet.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": url}, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
                                    "exports": exports, "open_data": open_data or {}}), encoding="utf-8")
    return path


PUBLICATION = {"licence_id": "CC-BY-4.0", "licence_url": "https://creativecommons.org/licenses/by/4.0/",
               "publisher": "Secretaría Distrital de Ambiente", "contact_email": "datos@example.org"}


def test_export_day_writes_the_configured_directory_then_says_unchanged(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed(conn)
    out = tmp_path / "open-data"
    cfg = config(tmp_path, database_url, PUBLICATION, directory=str(out), network_slug="rmcab")
    runner = CliRunner()
    first = runner.invoke(cli, ["export", "day", "2026-03-02", "--config", str(cfg), "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["version"] == 1 and doc["directory"] == str(out / "2026" / "2026-03-02" / "v1")
    package = json.loads((out / "2026" / "2026-03-02" / "v1" / "datapackage.json").read_text(encoding="utf-8"))
    assert package["name"] == "rmcab-2026-03-02" and package["licenses"][0]["name"] == "CC-BY-4.0"
    catalogue = json.loads((out / "catalogue.jsonld").read_text(encoding="utf-8"))
    assert catalogue["@id"].startswith("file:///") and len(catalogue["dcat:dataset"]) == 3

    second = runner.invoke(cli, ["export", "day", "2026-03-02", "--config", str(cfg)])
    assert second.exit_code == 0 and "unchanged" in second.output

    rewritten = runner.invoke(cli, ["export", "catalogue", "--config", str(cfg)])
    assert rewritten.exit_code == 0 and rewritten.output.strip() == str(out / "catalogue.jsonld")


def test_export_without_licence_or_directory_is_refused_naming_what_is_missing(database_url: str,
                                                                               tmp_path: Path) -> None:
    runner = CliRunner()
    no_dir = runner.invoke(cli, ["export", "day", "2026-03-02", "--config", str(config(tmp_path, database_url))])
    assert no_dir.exit_code == 1 and "no export directory" in no_dir.output
    bare = config(tmp_path, database_url, {"publisher": "SDA"})
    refused = runner.invoke(cli, ["export", "day", "2026-03-02", "--config", str(bare), "--dir", str(tmp_path)])
    assert refused.exit_code == 1
    assert "open_data.contact_email not set" in refused.output
    assert not list(tmp_path.glob("2026"))


def test_report_annual_as_table_json_and_csv(seeded: Any, tmp_path: Path) -> None:  # noqa: F811
    url, _ = seeded
    runner = CliRunner()
    table = runner.invoke(cli, ["report", "annual", "2025", "--url", url])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == "2025 (America/Bogota)"
    assert any(line.split()[:6] == ["KEN", "pm25", "year", "20.7", "25", "complies"] for line in lines), lines
    assert any(line.split()[:5] == ["KEN", "pm25", "day", "10", "exceedances"] for line in lines), lines

    as_json = runner.invoke(cli, ["report", "annual", "2025", "--url", url, "--json"])
    doc = json.loads(as_json.stdout)
    assert doc["year"] == 2025 and [s["variable"] for s in doc["series"]] == ["no2", "pm25"]

    as_csv = runner.invoke(cli, ["report", "annual", "2025", "--url", url, "--csv"])
    rows = list(csv.DictReader(as_csv.stdout.splitlines()))
    annual = next(r for r in rows if r["variable"] == "pm25" and r["figure"] == "annual_mean")
    assert float(annual["value"]) == 6300 / 305 and annual["valid_periods"] == "305"
    assert annual["excluded_periods"] == "3" and annual["excluded_hours"] == "99.0"

    both = runner.invoke(cli, ["report", "annual", "2025", "--url", url, "--json", "--csv"])
    assert both.exit_code == 2
