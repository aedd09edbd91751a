"""`aqnet export day [DATE] | catalogue` and `aqnet report annual YEAR [--json|--csv]`: the daily open-data exports
and the annual compliance report. Shell (click); I/O. Parses, calls `alerts.opendata.export_job` and
`alerts.opendata.compliance_read`, renders, sets the exit code (1 when the exports are not configured, the day is
not over, or the database does not answer).

The database is `--url`, else the `--config` file's `database.url`, else the running local stack's (as for every
command); the export directory is `--dir`, else the configuration's `exports.directory`; the licence, publisher
and contact are the configuration's `exports.*` (docs/operators/open-data-exports.md).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import psycopg

from aqnet.cli.options import DatabaseTarget, database_options, database_target
from aqnet.cli.render import render_table
from sensors.redact import redact

__all__ = ["export", "report"]

_CONFIG_HELP = "YAML settings file: its database, network.timezone and exports.* (licence, publisher, directory)"


def _connect(target: DatabaseTarget) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(target.url, autocommit=True, application_name="aqnet-export")
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"database {redact(target.url)} does not answer: {exc}") from None


def _export_target(target: DatabaseTarget, directory: Path | None) -> Any:
    from alerts.opendata.export_job import ExportTarget
    from alerts.opendata.settings import ExportsSettings
    from aqnet.config import OpenDataSettings

    settings = target.settings
    exports = settings.exports if settings is not None else ExportsSettings()
    open_data = settings.open_data if settings is not None else OpenDataSettings()
    root = directory or (Path(exports.directory) if exports.directory else None)
    if root is None:
        raise click.ClickException("no export directory: pass --dir, or set exports.directory in --config")
    try:
        publication = exports.publication(open_data)
    except ValueError as exc:
        raise click.ClickException(f"{exc} (set them in --config's open_data section)") from None
    return ExportTarget(root, publication, exports.network(str(target.tz.key)), base_url=exports.base_url)


@click.group()
def export() -> None:
    """Daily open-data exports: CSV and JSON tables, a Data Package descriptor and a DCAT catalogue."""


@export.command("day")
@click.argument("day", required=False, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="export directory (default: the configuration's exports.directory)")
@click.option("--force", is_flag=True, help="render and compare even when nothing seems to have touched the day")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@database_options(_CONFIG_HELP)
def export_day_command(day: datetime | None, directory: Path | None, force: bool, as_json: bool, url: str | None,
                       config_path: Path | None, var_dir: Path) -> None:
    """Export one local day (default: yesterday in the network's time zone) as a new version when it was never
    exported or its content changed, then rewrite the catalogue."""
    from alerts.opendata.export_job import export_day, write_catalogue

    target = database_target(url, config_path, var_dir, stack_config=True)
    export_target = _export_target(target, directory)
    now = datetime.now(UTC)
    wanted: date = day.date() if day is not None else now.astimezone(target.tz).date() - timedelta(days=1)
    with _connect(target) as conn:
        try:
            result = export_day(conn, export_target, wanted, now, force=force)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        catalogue = write_catalogue(conn, export_target, now)
    doc = {"day": result.day.isoformat(), "version": result.version, "note": result.note,
           "directory": str(result.directory) if result.directory else None, "catalogue": str(catalogue)}
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    elif result.version is None:
        click.echo(f"{doc['day']}: {result.note} ({doc['directory']})")
    else:
        click.echo(f"{doc['day']}: version {result.version} written to {doc['directory']}: {result.note}\n"
                   f"catalogue {catalogue}")


@export.command("catalogue")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="export directory (default: the configuration's exports.directory)")
@database_options(_CONFIG_HELP)
def export_catalogue_command(directory: Path | None, url: str | None, config_path: Path | None,
                             var_dir: Path) -> None:
    """Rewrite the DCAT catalogue (catalogue.jsonld) from the latest version of every exported day."""
    from alerts.opendata.export_job import write_catalogue

    target = database_target(url, config_path, var_dir, stack_config=True)
    export_target = _export_target(target, directory)
    with _connect(target) as conn:
        path = write_catalogue(conn, export_target, datetime.now(UTC))
    click.echo(str(path))


@click.group()
def report() -> None:
    """Reports on the stored data: the annual compliance report."""


@report.command("annual")
@click.argument("year", type=click.IntRange(1900, 9999))
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--csv", "as_csv", is_flag=True, help="print the report as CSV (one row per figure)")
@database_options(_CONFIG_HELP)
def report_annual_command(year: int, as_json: bool, as_csv: bool, url: str | None, config_path: Path | None,
                          var_dir: Path) -> None:
    """Annual compliance report: per station and pollutant, the annual mean against Res. 2254/2017 Tabla 1's
    annual limit and the exceedances of each short-term limit, with coverage and the periods validation
    excluded."""
    from alerts.opendata.compliance_read import read_annual_report
    from alerts.opendata.compliance_render import report_csv, report_json

    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    target = database_target(url, config_path, var_dir, stack_config=True)
    tz = target.tz
    with _connect(target) as conn:
        found = read_annual_report(conn, year, str(tz.key), datetime.now(UTC))
    if as_json:
        click.echo(json.dumps(report_json(found, tz), ensure_ascii=False, indent=2))
        return
    if as_csv:
        sys.stdout.write(report_csv(found, tz))
        return
    rows = []
    for s in found.series:
        a = s.annual
        rows.append([s.sensor_id, s.variable, "year", "" if a.value is None else f"{a.value:.1f}",
                     "" if a.limit_ugm3 is None else f"{a.limit_ugm3:g}", a.verdict,
                     f"{a.valid_days}/{a.days} ({a.coverage:.0%})", f"{s.excluded_hours:g}"])
        rows += [[s.sensor_id, s.variable, c.period, f"{c.exceedances} exceedances", f"{c.limit_ugm3:g}", c.verdict,
                  f"{c.valid_periods}/{c.expected_periods} ({c.coverage:.0%})", ""] for c in s.short_term]
    title = f"{year} ({found.timezone}){' — partial: the year has not ended' if found.partial else ''}"
    click.echo(title)
    click.echo(render_table(["SENSOR", "VARIABLE", "AVERAGING", "FIGURE", "LIMIT µg/m³", "VERDICT", "VALID",
                             "EXCLUDED h"], rows) if rows else "no station averages with a Tabla 1 limit that year")
