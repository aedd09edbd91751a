"""`aqnet calibrate propose|show|list|apply|reject`: co-location calibration of microsensors, reviewed by a
technician (storage.colocation_store; the fit and report in ingest.colocation_fit; docs/operators/colocation.md).
Shell (click): parses, calls the stage functions, renders a summary or `--json`.

- `propose SENSOR --variable pm25 --from T --to T`: fits a calibration (`--kind linear_rh` by default, or
  `linear`; `--method barkjohn-2021` proposes the cited PurpleAir correction instead) from the sensor's hours
  beside its reference, stores it as a proposal and prints its report. Nothing is applied.
- `show ID`, `list [SENSOR]`: a proposal's report (each EPA target with pass/fail), the proposals.
- `apply ID --from T`: the proposal becomes a new calibration version from T (the one in force is closed
  there), audited; then the sensor's stored values from T to now are re-derived (`aqnet reprocess`'s path).
- `reject ID`: kept for the record, never applied.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg

from alerts.settings import HealthSettings
from aqnet.cli.options import database_options, database_target
from aqnet.cli.times import parse_time
from storage.colocation_store import (
    ProposalError,
    apply_proposal,
    get_proposal,
    list_proposals,
    propose,
    reject_proposal,
)
from storage.reprocess import ReprocessError, reprocess

__all__ = ["calibrate"]

T = TypeVar("T")


def _run(url: str, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    async def go() -> T:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True, application_name="aqnet-cli") as c:
            return await work(c)

    try:
        return asyncio.run(go())
    except (ProposalError, ReprocessError) as exc:
        raise click.ClickException(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from None


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.4g}"


def render_proposal(p: dict[str, Any]) -> str:
    """A proposal and its report, for a technician to review."""
    r = p["report"]
    lines = [(f"proposal {p['id']} ({p['status']}): sensor {p['sensor_id']} device {p['device_id']} "
              f"{p['variable']} beside {p['reference_sensor_id']} ({_num(p['distance_m'])} m), {p['pairs']} paired "
              f"hours {p['time_from'].isoformat()} to {p['time_to'].isoformat()}"),
             f"proposed ({p['method']}): {p['kind']} {[round(c, 6) for c in p['coefficients']]} in {p['unit']}"
             + (" — y = a·x + b·RH + c" if p["kind"] == "linear_rh" else " — y = a·x + b")]
    if r["proposed"].get("source"):
        lines.append(f"source: {r['proposed']['source']}")
    for kind, got in r["fits"].items():
        lines.append(f"fit {kind}: " + (str([round(c, 6) for c in got["coefficients"]]) if "coefficients" in got
                                        else got["error"]))
    lines.append(f"EPA/600/R-20/280 targets on {r['interval']} means"
                 + (" (interval unverified)" if r.get("interval_status") == "unverified" else "") + ":")
    lines.append(f"  {'metric':<10} {'target':<16} {'raw':>10} {'':<4} {'corrected':>10} {'':<4} status")
    before, after = r["before"], r["after"]
    if "error" in after:
        lines.append(f"  no figures: {after['error']}")
    else:
        for i, t in enumerate(after["targets"]):
            b = before.get("targets", [{}] * len(after["targets"]))[i] if "targets" in before else {}
            bound = (f"{'' if t['low'] is None else _num(t['low'])}..{'' if t['high'] is None else _num(t['high'])}"
                     f" {t['unit']}").strip()
            lines.append(f"  {t['metric']:<10} {bound:<16} {_num(b.get('value')):>10} "
                         f"{('pass' if b.get('passed') else 'FAIL') if b else '':<4} {_num(t['value']):>10} "
                         f"{'pass' if t['passed'] else 'FAIL':<4} {t['status']}")
    if p["status"] == "applied":
        lines.append(f"applied by {p['decided_by']} at {p['decided_at'].isoformat()} as calibration "
                     f"{p['calibration_id']}")
    return "\n".join(lines)


def _json(p: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in p.items()}


@click.group()
def calibrate() -> None:
    """Co-location calibration of microsensors: propose, review, apply (never automatic)."""


@calibrate.command("propose")
@click.argument("sensor_id")
@click.option("--variable", default="pm25", show_default=True, help="vocabulary code")
@click.option("--from", "time_from", required=True, metavar="TIME", help="start of the co-location (ISO 8601)")
@click.option("--to", "time_to", required=True, metavar="TIME", help="end, exclusive (ISO 8601)")
@click.option("--kind", type=click.Choice(["linear_rh", "linear"]), default="linear_rh", show_default=True,
              help="the form fitted: linear with RH as covariate, or linear")
@click.option("--method", type=click.Choice(["fit", "barkjohn-2021"]), default="fit", show_default=True,
              help="fit from the pairs, or propose Barkjohn et al. (2021)'s US-wide PurpleAir correction")
@click.option("--reference", "reference_id", default=None, help="the reference station (default: the nearest "
              "measuring the variable within health.colocation_max_distance_m)")
@click.option("--interval", type=click.Choice(["24h", "1h"]), default="24h", show_default=True,
              help="averaging of the pairs the EPA targets are judged on")
@click.option("--by", "actor", default=None, help="who proposes it (default: login name)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@database_options("settings file whose database and `health.colocation_max_distance_m` to use")
def propose_command(sensor_id: str, variable: str, time_from: str, time_to: str, kind: str, method: str,
                    reference_id: str | None, interval: str, actor: str | None, as_json: bool, url: str | None,
                    config_path: Path | None, var_dir: Path) -> None:
    """Fit a calibration from the hours beside a reference and store it as a proposal (not applied)."""
    now = datetime.now(UTC)
    start = parse_time(time_from, None, now, option="--from")
    end = parse_time(time_to, None, now, option="--to")
    target = database_target(url, config_path, var_dir, stack_config=True)
    health = target.settings.health if target.settings is not None else HealthSettings()

    async def work(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
        pid = await propose(conn, sensor_id=sensor_id, variable=variable, time_from=start, time_to=end,
                            max_distance_m=health.colocation_max_distance_m, created_by=actor or getpass.getuser(),
                            kind=kind, method=method, reference_id=reference_id, interval=interval)
        return await get_proposal(conn, pid)

    p = _run(target.url, work)
    click.echo(json.dumps(_json(p), indent=2) if as_json else render_proposal(p)
               + f"\nreview it, then: aqnet calibrate apply {p['id']} --from TIME")


@calibrate.command("show")
@click.argument("proposal_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@database_options("settings file whose database to use")
def show_command(proposal_id: int, as_json: bool, url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """A proposal and its report: the fits, each EPA target with pass/fail before and after."""
    p = _run(database_target(url, config_path, var_dir).url, lambda c: get_proposal(c, proposal_id))
    click.echo(json.dumps(_json(p), indent=2) if as_json else render_proposal(p))


@calibrate.command("list")
@click.argument("sensor_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@database_options("settings file whose database to use")
def list_command(sensor_id: str | None, as_json: bool, url: str | None, config_path: Path | None,
                 var_dir: Path) -> None:
    """The proposals, newest first."""
    rows = _run(database_target(url, config_path, var_dir).url, lambda c: list_proposals(c, sensor_id=sensor_id))
    if as_json:
        click.echo(json.dumps([_json(p) for p in rows], indent=2))
        return
    for p in rows:
        click.echo(f"{p['id']:>5} {p['status']:<9} {p['sensor_id']} {p['variable']} {p['method']} {p['kind']} "
                   f"{[round(c, 4) for c in p['coefficients']]} beside {p['reference_sensor_id']} "
                   f"({p['pairs']} h) by {p['created_by']} {p['created_at']:%Y-%m-%d %H:%M}")


@calibrate.command("apply")
@click.argument("proposal_id", type=int)
@click.option("--from", "valid_from", required=True, metavar="TIME",
              help="the new calibration is valid from this time; readings from it to now are reprocessed")
@click.option("--by", "actor", default=None, help="who applies it, recorded in the audit log (default: login)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@database_options("settings file whose database to use")
def apply_command(proposal_id: int, valid_from: str, actor: str | None, as_json: bool, url: str | None,
                  config_path: Path | None, var_dir: Path) -> None:
    """Apply a reviewed proposal as a new calibration version (audited), then reprocess the readings since."""
    now = datetime.now(UTC)
    start = parse_time(valid_from, None, now, option="--from")
    who = actor or getpass.getuser()

    async def work(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
        done = await apply_proposal(conn, proposal_id, valid_from=start, actor=who)
        result = None
        if start < now:
            result = await reprocess(conn, done.sensor_id, start, now, run_by=who,
                                     note=f"calibration proposal {proposal_id} applied")
        return {"proposal": proposal_id, "calibration_id": done.calibration_id,
                "closed_calibration_id": done.closed_calibration_id, "valid_from": start.isoformat(),
                "reprocess": result.as_dict() if result is not None else None}

    out = _run(database_target(url, config_path, var_dir, exclusive=True).url, work)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    rep = out["reprocess"]
    click.echo(f"proposal {proposal_id} applied as calibration {out['calibration_id']} from {out['valid_from']}"
               + (f" (calibration {out['closed_calibration_id']} closed there)" if out["closed_calibration_id"]
                  else "")
               + (f"; reprocess run {rep['run_id']}: {rep['changed']} readings changed" if rep else ""))


@calibrate.command("reject")
@click.argument("proposal_id", type=int)
@click.option("--by", "actor", default=None, help="who rejects it (default: login name)")
@database_options("settings file whose database to use")
def reject_command(proposal_id: int, actor: str | None, url: str | None, config_path: Path | None,
                   var_dir: Path) -> None:
    """Reject a proposal (kept for the record)."""
    _run(database_target(url, config_path, var_dir).url,
         lambda c: reject_proposal(c, proposal_id, actor=actor or getpass.getuser()))
    click.echo(f"proposal {proposal_id} rejected")
