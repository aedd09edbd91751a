"""`aqnet reprocess`: re-derive a sensor's normalised values from its raw ones after a calibration fix. Shell (click);
I/O.

Parses, calls `storage.reprocess.reprocess` (one transaction: an explicit UPDATE, recorded in `reprocess_runs`
and `reprocess_changes`), renders a summary or `--json`. `--dry-run` shows what would change and writes nothing.
Times are ISO 8601 with a UTC offset; the range is [--from, --to). The database is `--url`, else the
configuration's (`--config`), else the running local stack's (`--var`, as `aqnet db url`).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import click
import psycopg

from aqnet.cli.options import database_target
from aqnet.cli.times import parse_time
from storage.reprocess import ReprocessError, ReprocessResult, reprocess

__all__ = ["reprocess_command"]

#: how many changed rows the table output lists (all of them with --json)
_SHOWN = 20


async def _run(url: str, sensor_id: str, time_from: datetime, time_to: datetime, run_by: str, dry_run: bool,
               note: str) -> ReprocessResult:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await reprocess(conn, sensor_id, time_from, time_to, run_by=run_by, dry_run=dry_run, note=note)


def _fmt(x: float) -> str:
    return "NULL" if math.isnan(x) else f"{x:.6g}"


def _render(result: ReprocessResult) -> str:
    verb = "would change" if result.dry_run else "changed"
    lines = [(f"sensor {result.sensor_id} [{result.time_from.isoformat()}, {result.time_to.isoformat()}): "
             f"{result.examined} readings examined, {result.changed} {verb}, "
             f"{sum(result.skipped.values())} skipped")]
    if result.skipped:
        lines.append("skipped: " + ", ".join(f"{reason} {n}" for reason, n in sorted(result.skipped.items())))
    lines.append("calibrations applied: " + (", ".join(map(str, result.calibration_ids)) or "none"))
    for c in result.changes[:_SHOWN]:
        lines.append(f"  {c.time.isoformat()} {c.device_id} {c.variable}: {_fmt(c.old.value)} → "
                     f"{_fmt(c.new.value)} {c.new.unit} (flags {int(c.old.flags)} → {int(c.new.flags)}, "
                     f"calibration {c.old.calibration_id or '-'} → {c.new.calibration_id or '-'})")
    if result.changed > _SHOWN:
        lines.append(f"  … and {result.changed - _SHOWN} more (--json lists all)")
    lines.append("dry run: nothing written" if result.dry_run else f"recorded as reprocess run {result.run_id}")
    return "\n".join(lines)


@click.command("reprocess")
@click.option("--sensor", "sensor_id", required=True, help="sensor id (reference.json code or microsensor id)")
@click.option("--from", "time_from", required=True, metavar="TIME", help="start, inclusive (ISO 8601 with offset)")
@click.option("--to", "time_to", required=True, metavar="TIME", help="end, exclusive (ISO 8601 with offset)")
@click.option("--dry-run", is_flag=True, help="show what would change; write nothing")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="settings file whose database to use")
@click.option("--url", default=None, help="database URL")
@click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var"),
              help="directory of the local stack, when neither --url nor --config is given; default ./var")
@click.option("--by", "run_by", default=None, help="who runs it, recorded with the run (default: login name)")
@click.option("--note", default="", help="why (recorded with the run), e.g. the calibration ticket")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def reprocess_command(sensor_id: str, time_from: str, time_to: str, dry_run: bool, config_path: Path | None,
                      url: str | None, var_dir: Path, run_by: str | None, note: str, as_json: bool) -> None:
    """Re-derive normalised values from raw ones with the calibrations now in force (recorded; raw untouched)."""
    now = datetime.now(UTC)
    start = parse_time(time_from, None, now, option="--from")
    end = parse_time(time_to, None, now, option="--to")
    db_url = database_target(url, config_path, var_dir, exclusive=True).url
    try:
        result = asyncio.run(_run(db_url, sensor_id, start, end, run_by or getpass.getuser(), dry_run, note))
    except ReprocessError as exc:
        raise click.ClickException(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from None
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else _render(result))
