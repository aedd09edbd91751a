"""A simulated day of the bundled network, produced by the real pipeline (tests/deploy/pipeline_data.py: the
simulators' registers and messages through the drivers' decoding, normalisation, QC, the writer and the averaging
job), exports as a package `frictionless validate` accepts, with every station's hours and day, and its annual
report counts what the stored averages hold."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from frictionless import validate

from alerts.opendata.compliance_read import read_annual_report
from alerts.opendata.datapackage import Network
from alerts.opendata.export_job import ExportTarget, export_day
from alerts.opendata.metadata import Publication
from tests.deploy.pipeline_data import BOGOTA, produce

PUBLICATION = Publication("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/", "SDA", "datos@example.org")


def test_a_simulated_day_exports_valid_and_complete(database_url: str, tmp_path: Path) -> None:
    data = produce(database_url)
    day = (data.start + timedelta(hours=2)).astimezone(BOGOTA).date()  # the whole local day inside the 26 h
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        result = export_day(conn, ExportTarget(tmp_path, PUBLICATION, Network("rmcab", "America/Bogota")), day, now)
        stored_days = conn.execute("SELECT count(*) FROM averages WHERE period = 'day' AND period_end = %s",
                                   (datetime(day.year, day.month, day.day, tzinfo=BOGOTA) + timedelta(days=1),)
                                   ).fetchone()
        report = read_annual_report(conn, day.year, "America/Bogota", now)
        exceedances = conn.execute("SELECT sensor_id, variable, count(*) FILTER (WHERE value > 37) FROM averages "
                                   "WHERE period = 'day' AND valid AND variable = 'pm25' AND sensor_id IN "
                                   "(SELECT id FROM sensors WHERE kind = 'station') GROUP BY 1, 2").fetchall()
    assert result.version == 1 and result.directory is not None
    report_valid = validate(str(result.directory / "datapackage.json"))
    assert report_valid.valid, report_valid.flatten(["rowNumber", "fieldName", "type", "note"])

    measurements = list(csv.DictReader((result.directory / "measurements.csv").read_text(encoding="utf-8")
                                       .splitlines()))
    assert len(measurements) > 1000
    assert all(r["time"].startswith(day.isoformat()) and r["time"].endswith("-05:00") for r in measurements)
    flags = Counter(name for r in measurements for name in r["qc_flag_names"].split(";") if name)
    assert flags["negative"] and flags["clock_skew"]  # the scenario's faults, spelled out
    skewed = [r for r in measurements if "clock_skew" in r["qc_flag_names"]]
    assert {(r["qc_valid"], r["validity"], r["verification"]) for r in skewed} == {("false", "-1", "3")}
    hourly = json.loads((result.directory / "hourly.json").read_text(encoding="utf-8"))
    hours_per_series = Counter((h["sensor_id"], h["variable"]) for h in hourly)
    assert hours_per_series and max(hours_per_series.values()) == 24
    daily = json.loads((result.directory / "daily.json").read_text(encoding="utf-8"))
    assert stored_days is not None and len(daily) == stored_days[0] > 0

    pm25 = {s.sensor_id: s for s in report.series if s.variable == "pm25"}
    assert pm25 and report.partial is (now < report.year_end)
    for sensor_id, _, count in exceedances:
        (daily_count,) = pm25[sensor_id].short_term
        assert daily_count.exceedances == count
