"""`aqnet sensors health`: each device's health — status, uptime and completeness over 24 h and 30 days, MTBF,
MTTR, flat and drift indicators (alerts.health; definitions in docs/operators/device-health.md). Shell (click):
parses, calls `alerts.health`, renders a table or `--json`.

Read only, unless `--update`: then the status job runs first (`alerts.health.update_status`, as the daemon's
'health' job does), recording outages up to now. The settings are `--config`'s `health` section, else the
defaults (and the local stack's configuration when neither --url nor --config is given).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import psycopg

from alerts.health import DeviceHealth, device_health, update_status
from alerts.settings import HealthSettings
from aqnet.cli.options import database_options, database_target
from aqnet.cli.render import render_table
from aqnet.cli.times import parse_time
from aqnet.health_job import health_policy

__all__ = ["health_command"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def _status(h: DeviceHealth) -> str:
    if h.checked_until is None:
        return "unknown"
    return f"DOWN since {h.down_since:%Y-%m-%d %H:%M}" if h.down_since is not None else "up"


def _drift(h: DeviceHealth) -> str:
    parts = [f"{d.variable} vs {d.reference_sensor}: {d.per_day:+.3g}/d (bias {d.bias:+.3g}, {d.hours} h)"
             if d.per_day is not None else f"{d.variable} vs {d.reference_sensor}: bias {d.bias:+.3g} ({d.hours} h)"
             for d in h.drifts]
    return "; ".join(parts) or "-"


def render(report: list[DeviceHealth]) -> str:
    """The report as a table, one device a row."""
    header = ["sensor", "device", "status", "up 24h", "up 30d", "data 24h", "data 30d", "failures 30d", "MTBF",
              "MTTR", "flat", "drift"]
    rows = [[h.sensor_id, h.device_id, _status(h), _pct(h.short.uptime), _pct(h.long.uptime),
             _pct(h.completeness_24h), _pct(h.completeness_30d), h.long.failures, _dur(h.long.mtbf_s),
             _dur(h.long.mttr_s), f"{h.flat_variable} {_dur(h.flat_minutes * 60)}" if h.flat_variable else "-",
             _drift(h)] for h in report]
    return render_table(header, rows)


@click.command("health")
@click.argument("sensor_id", required=False)
@click.option("--at", "at", default=None, metavar="TIME", help="report as of this time (ISO 8601; default now)")
@click.option("--update", is_flag=True, help="record outages up to now first (as the daemon's health job does)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@database_options("settings file whose database and `health` section to use")
def health_command(sensor_id: str | None, at: str | None, update: bool, as_json: bool, url: str | None,
                   config_path: Path | None, var_dir: Path) -> None:
    """Each device's health: status, uptime, completeness, MTBF, MTTR, flat and drift indicators."""
    now = datetime.now(UTC)
    when = parse_time(at, None, now, option="--at") if at is not None else now
    target = database_target(url, config_path, var_dir, stack_config=True)
    policy = health_policy(target.settings.health if target.settings is not None else HealthSettings())
    try:
        with psycopg.connect(target.url, autocommit=True, application_name="aqnet-cli") as conn:
            if update:
                update_status(conn, when, policy)
            report = device_health(conn, when, policy, sensor_id=sensor_id)
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from None
    if sensor_id is not None and not report:
        raise click.ClickException(f"sensor {sensor_id!r}: no active device of an active sensor by that id")
    click.echo(json.dumps([h.as_dict() for h in report], indent=2) if as_json else render(report))
