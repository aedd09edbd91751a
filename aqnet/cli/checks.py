"""`aqnet checks …`: the analysers' zero/span checks recorded in `zero_span_checks` (responses against expected
values, verdict, drift). Shell (click); I/O. Parses, calls `storage.zero_span_store.list_checks`, renders a table or
`--json`. The database is `--url`, else the `--config` file's `database.url`, else the running local stack's.
Exit status 0 (also when nothing matches)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import psycopg

from aqnet.cli.options import database_options, database_target
from aqnet.cli.render import render_table
from aqnet.cli.times import parse_time
from sensors.redact import redact
from storage.zero_span_store import list_checks

__all__ = ["checks"]


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _doc(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


@click.group("checks")
def checks() -> None:
    """Zero/span checks of the reference analysers: responses, verdicts and drift."""


@checks.command("list")
@click.option("--sensor", "sensor_id", default=None, help="only this sensor id")
@click.option("--since", default=None, help="checks started since: an ISO 8601 time, or an age like 2h, 7d")
@click.option("--failed", is_flag=True, help="only checks beyond their limits or without a response")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="newest N checks")
@click.option("--json", "as_json", is_flag=True, help="print JSON, every column of zero_span_checks")
@database_options("YAML settings: its database and time zone")
def list_command(sensor_id: str | None, since: str | None, failed: bool, limit: int, as_json: bool,
                 url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """List recorded zero/span checks, newest first."""
    target = database_target(url, config_path, var_dir)
    since_t = parse_time(since, target.tz, datetime.now(UTC), relative="age", option="--since") if since else None
    try:
        with psycopg.connect(target.url) as conn:
            rows = list_checks(conn, sensor_id=sensor_id, since=since_t, failed_only=failed, limit=limit)
    except psycopg.OperationalError as exc:
        raise click.ClickException(redact(f"cannot use the database at {target.url}: {exc}")) from None
    if as_json:
        click.echo(json.dumps([_doc(r) for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no zero/span checks match")
        return
    verdict = {True: "pass", False: "FAIL", None: "no data"}
    click.echo(render_table(
        ["STARTED (local)", "SENSOR", "DEVICE", "VAR", "ZERO", "SPAN (expected)", "ZERO ERR", "SPAN ERR %",
         "% OF LIMIT", "DRIFT/DAY zero, span %", "VERDICT"],
        [[r["started_at"].astimezone(target.tz).strftime("%Y-%m-%d %H:%M"), r["sensor_id"], r["device_id"],
          r["variable"], f"{_num(r['zero_response'], '.2f')} {r['unit']}",
          f"{_num(r['span_response'], '.1f')} ({r['span_expected']:g})", _num(r["zero_error"], "+.2f"),
          _num(r["span_error_pct"], "+.1f"), _num(r["percent_of_limit"], ".0f"),
          f"{_num(r['zero_drift_per_day'], '+.2f')}, {_num(r['span_drift_pct_per_day'], '+.2f')}",
          verdict[r["passed"]]] for r in rows]))
    sources = sorted({f"{r['limits_source']} ({r['limits_status']})" for r in rows})
    click.echo(f"{len(rows)} check(s) shown (newest first, --limit {limit}); limits: " + "; ".join(sources))
