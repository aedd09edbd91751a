"""`aqnet validation validate | invalidate | undo | audit | values`, `aqnet alerts record` and `aqnet sensors
publication`: validation by people, the record of decisions on alerts, and what the public may see of a sensor.
Shell (click); I/O. Parses, calls `storage.validation`, `storage.alert_record` and `storage.publication`, renders
an aligned table or `--json`, sets the exit code (1 when refused: a token that is not a technician's or an
officer's, an unknown sensor, device or decision, an undo already done, an unreachable database; 2 on a usage
error such as an unknown reason).

`validate`, `invalidate` and `undo` need a technician's or an officer's API token (`--token`, or the environment
variable AQNET_TOKEN; `aqnet tokens create --role technician|officer`): the actor recorded is the token's name and
role, via "cli". Times without a UTC offset are in the network's time zone. The database is `--url`, else the
`--config` file's `database.url`, else the running local stack's, as for `aqnet alerts`.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar

import click
from psycopg import AsyncConnection

from aqnet.cli.db_context import DbContext
from aqnet.cli.options import database_options, database_target
from aqnet.cli.render import render_table
from aqnet.cli.times import parse_time
from ingest.validation import REASONS, DecisionError, Period, Scope

__all__ = ["alert_record_command", "publication_command", "validation"]

T = TypeVar("T")
VALIDATOR_HELP = ("a technician's or officer's API token (`aqnet tokens create --role technician`); "
                  "default: $AQNET_TOKEN")


class _Ctx(DbContext):
    """Where the database is, the network's time zone, how to print."""

    def __init__(self, url: str | None, config_path: Path | None, var_dir: Path, as_json: bool) -> None:
        from storage.validation import DecisionRefused

        target = database_target(url, config_path, var_dir)
        self.url, self.tz, self.as_json = target.url, target.tz, as_json
        self.refusals = (DecisionRefused,)


def _common(f: Any) -> Any:
    f = click.option("--json", "as_json", is_flag=True, help="print JSON for programs")(f)
    return database_options("YAML settings: its database and time zone")(f)


def _scope(f: Any) -> Any:
    f = click.option("--to", "time_to", required=True, help="end of the period (exclusive), ISO 8601")(f)
    f = click.option("--from", "time_from", required=True, help="start of the period (inclusive), ISO 8601")(f)
    f = click.option("--variable", default=None, help="only this variable (of the device, or of every device)")(f)
    f = click.option("--device", default=None, help="only this device of the sensor")(f)
    f = click.argument("sensor_id", metavar="SENSOR")(f)
    return click.option("--token", envvar="AQNET_TOKEN", default=None, show_envvar=True, help=VALIDATOR_HELP)(f)


def _period(ctx: _Ctx, time_from: str, time_to: str) -> Period:
    now = datetime.now(UTC)
    start = parse_time(time_from, ctx.tz, now, option="--from")
    end = parse_time(time_to, ctx.tz, now, option="--to")
    try:
        return Period(start, end)
    except DecisionError as exc:
        raise click.BadParameter(exc.message, param_hint="--from/--to") from None


def _scope_of(sensor_id: str, device: str | None, variable: str | None) -> Scope:
    try:
        return Scope(sensor_id, device, variable)
    except DecisionError as exc:
        raise click.BadParameter(exc.message, param_hint=exc.field) from None


def _take(ctx: _Ctx, secret: str | None, doing: str, **decision: Any) -> Any:
    """Authenticate the token (technician or officer) and take the decision as its owner, via cli."""
    from storage.tokens import authenticate
    from storage.validation import decide

    async def work(conn: AsyncConnection[Any]) -> Any:
        if not secret:
            ctx.fail("unauthorized", f"{doing} needs a technician's or officer's API token: pass --token or set "
                                     "AQNET_TOKEN (`aqnet tokens create --role technician --name NAME`)")
        token = await authenticate(conn, secret)
        if token is None:
            ctx.fail("unauthorized", f"{doing}: the token is unknown or revoked (see `aqnet tokens list`)")
        if token.role not in ("technician", "officer"):
            ctx.fail("forbidden", f"{doing}: token {token.name!r} has role {token.role}; validating data needs a "
                                  "technician or officer token")
        return await decide(conn, actor=token.name, role=token.role, via="cli", now=datetime.now(UTC), **decision)

    return ctx.run(work)


def _said(d: Any, tz: tzinfo) -> str:
    e = d.effect
    what = {"validate": "validated", "invalidate": f"invalidated ({d.reason})", "undo": f"undid decision {d.undoes}:"}
    alerts = e.get("alerts_evidence_invalidated") or []
    return (f"decision {d.id}: {d.actor} ({d.actor_role}) {what[d.action]} {d.scope.describe()} from "
            f"{d.period.start.astimezone(tz):%Y-%m-%d %H:%M} to {d.period.end.astimezone(tz):%Y-%m-%d %H:%M}: "
            f"{e.get('readings', 0)} readings, {e.get('changed', 0)} changed, {e.get('slots_recomputed', 0)} "
            "15-minute slots to recompute" + (f"; evidence invalidated of alert(s) {alerts}" if alerts else ""))


@click.group()
def validation() -> None:
    """Validation by people: validate or invalidate periods of data, undo, audit trail, verified values."""


@validation.command("validate")
@_scope
@click.option("--text", default="", help="a note kept with the decision")
@_common
def validate_command(sensor_id: str, device: str | None, variable: str | None, time_from: str, time_to: str,
                     token: str | None, text: str, url: str | None, config_path: Path | None, var_dir: Path,
                     as_json: bool) -> None:
    """Mark a period of a sensor (or one device, or one variable) as validated: verified by a person."""
    ctx = _Ctx(url, config_path, var_dir, as_json)
    d = _take(ctx, token, f"validating {sensor_id}", action="validate", scope=_scope_of(sensor_id, device, variable),
              period=_period(ctx, time_from, time_to), text=text)
    ctx.echo(d.as_dict(), _said(d, ctx.tz))


@validation.command("invalidate")
@_scope
@click.option("--reason", required=True, type=click.Choice(list(REASONS)),
              help="why: " + "; ".join(f"{k}: {v}" for k, v in REASONS.items()))
@click.option("--text", default="", help="why, in words (required with --reason other)")
@_common
def invalidate_command(sensor_id: str, device: str | None, variable: str | None, time_from: str, time_to: str,
                       token: str | None, reason: str, text: str, url: str | None, config_path: Path | None,
                       var_dir: Path, as_json: bool) -> None:
    """Mark a period of a sensor (or one device, or one variable) as invalid: its readings leave the averages,
    indices and exceedances (recomputed by the next averaging run); raw values stay stored."""
    ctx = _Ctx(url, config_path, var_dir, as_json)
    d = _take(ctx, token, f"invalidating {sensor_id}", action="invalidate",
              scope=_scope_of(sensor_id, device, variable), period=_period(ctx, time_from, time_to), reason=reason,
              text=text)
    ctx.echo(d.as_dict(), _said(d, ctx.tz))


@validation.command("undo")
@click.argument("decision_id", type=click.IntRange(min=1), metavar="ID")
@click.option("--text", default="", help="why it is undone")
@click.option("--token", envvar="AQNET_TOKEN", default=None, show_envvar=True, help=VALIDATOR_HELP)
@_common
def undo_command(decision_id: int, text: str, token: str | None, url: str | None, config_path: Path | None,
                 var_dir: Path, as_json: bool) -> None:
    """Undo a validation or an invalidation: what decided before it decides again."""
    ctx = _Ctx(url, config_path, var_dir, as_json)
    d = _take(ctx, token, f"undoing decision {decision_id}", action="undo", undoes=decision_id, text=text)
    ctx.echo(d.as_dict(), _said(d, ctx.tz))


@validation.command("audit")
@click.option("--sensor", "sensor_id", default=None, help="only this sensor's decisions")
@click.option("--from", "time_from", default=None, help="only decisions whose period ends after this")
@click.option("--to", "time_to", default=None, help="only decisions whose period starts before this")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@_common
def audit_command(sensor_id: str | None, time_from: str | None, time_to: str | None, limit: int, url: str | None,
                  config_path: Path | None, var_dir: Path, as_json: bool) -> None:
    """The audit trail of decisions, newest first: who, when, what, why, what it changed, who undid it."""
    from storage.validation import list_decisions

    ctx = _Ctx(url, config_path, var_dir, as_json)
    now = datetime.now(UTC)
    since = parse_time(time_from, ctx.tz, now, option="--from") if time_from else None
    until = parse_time(time_to, ctx.tz, now, option="--to") if time_to else None
    found = ctx.run(lambda conn: list_decisions(conn, sensor_id=sensor_id, since=since, until=until, limit=limit))
    tz = ctx.tz
    ctx.echo([d.as_dict() for d in found], render_table(
        ["ID", "DECIDED", "WHO", "ROLE", "VIA", "ACTION", "SCOPE", "FROM", "TO", "REASON", "TEXT", "UNDONE BY"],
        [[d.id, f"{d.decided_at.astimezone(tz):%Y-%m-%d %H:%M}", d.actor, d.actor_role, d.via,
          d.action + (f" {d.undoes}" if d.undoes else ""), d.scope.describe(),
          f"{d.period.start.astimezone(tz):%Y-%m-%d %H:%M}", f"{d.period.end.astimezone(tz):%Y-%m-%d %H:%M}",
          d.reason or "", d.text, d.undone_by or ""] for d in found]))


@validation.command("values")
@click.argument("sensor_id", metavar="SENSOR")
@click.argument("variable", metavar="VARIABLE")
@click.option("--from", "time_from", required=True, help="start (inclusive), ISO 8601")
@click.option("--to", "time_to", required=True, help="end (exclusive), ISO 8601")
@click.option("--device", default=None, help="only this device")
@click.option("--limit", type=click.IntRange(1, 100_000), default=10_000, show_default=True)
@_common
def values_command(sensor_id: str, variable: str, time_from: str, time_to: str, device: str | None, limit: int,
                   url: str | None, config_path: Path | None, var_dir: Path, as_json: bool) -> None:
    """A series' values with their three levels (raw, QC, person) and e-Reporting verification and validity."""
    from storage.validation import values

    ctx = _Ctx(url, config_path, var_dir, as_json)
    period = _period(ctx, time_from, time_to)
    rows = ctx.run(lambda conn: values(conn, sensor_id, variable, period, device_id=device, limit=limit))
    ctx.echo(rows, render_table(
        ["TIME", "DEVICE", "RAW", "VALUE", "FLAGS", "PERSON", "DECISION", "VERIFICATION", "VALIDITY"],
        [[f"{r['time'].astimezone(ctx.tz):%Y-%m-%d %H:%M:%S}", r["device_id"], f"{r['raw_value']:g} {r['raw_unit']}"
          if r["raw_value"] is not None else "", f"{r['value']:g} {r['unit']}" if r["value"] is not None else "",
          r["flags"], r["decision"] or "", r["decision_id"] or "", r["verification"], r["validity"]] for r in rows]))


@click.command("record")
@click.argument("alert_id", type=click.IntRange(min=1), metavar="ID")
@click.option("--names", is_flag=True, help="show who acted by name (default: by role, as a public view does)")
@_common
def alert_record_command(alert_id: int, names: bool, url: str | None, config_path: Path | None, var_dir: Path,
                         as_json: bool) -> None:
    """An alert's record: every transition with its evidence, level, threshold, legal source and who acted."""
    from storage.alert_record import alert_record

    ctx = _Ctx(url, config_path, var_dir, as_json)
    rows = ctx.run(lambda conn: alert_record(conn, alert_id, show_names=names))
    if not rows:
        ctx.fail("not_found", f"no alert {alert_id}")
    ctx.echo(rows, render_table(
        ["TIME", "TRANSITION", "LEVEL", "VALUE", "THRESHOLD", "SOURCE", "PERIOD", "WHO", "NOTE"],
        [[f"{r['time'].astimezone(ctx.tz):%Y-%m-%d %H:%M}", r["kind"], r["level"] or "",
          "" if r["value"] is None else f"{r['value']:g} {r['unit'] or ''}",
          "" if r["threshold"] is None else f"{r['threshold']:g}", r["source"] or "",
          "" if r["period_end"] is None else f"{r['period'] or ''} to {r['period_end'].astimezone(ctx.tz):%H:%M}",
          r["actor"] or "", r["note"] or ""] for r in rows]))


@click.command("publication")
@click.argument("sensor_id", metavar="SENSOR")
@click.option("--operator", default=None, help="the institution responsible for the sensor")
@click.option("--location", "location", type=click.Choice(["exact", "coarse", "by-kind"]), default=None,
              help="publish the location exactly, coarsely (rounded to 0.01°), or by kind (stations exact, "
                   "microsensors coarse)")
@click.option("--actor", default=None, help="who makes the change (default: $USER)")
@_common
def publication_command(sensor_id: str, operator: str | None, location: str | None, actor: str | None,
                        url: str | None, config_path: Path | None, var_dir: Path, as_json: bool) -> None:
    """Show or set a sensor's operator and whether its location may be published exactly (recorded in the
    registry's audit log)."""
    import getpass

    from storage.publication import set_publication
    from storage.registry.models import RegistryError

    ctx = _Ctx(url, config_path, var_dir, as_json)
    changes: dict[str, Any] = {} if location is None else {
        "location_publication": None if location == "by-kind" else location}
    try:
        row = ctx.run(lambda conn: set_publication(conn, sensor_id, operator=operator,
                                                   actor=f"cli:{actor or getpass.getuser()}", **changes))
    except RegistryError as exc:
        ctx.fail(exc.code, exc.message)
    ctx.echo(row, f"{row['id']}: operator {row['operator'] or '(not set)'}; location published "
                  f"{row['location_publication']} at {row['lat']}, {row['lon']}")
