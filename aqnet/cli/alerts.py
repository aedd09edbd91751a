"""`aqnet alerts list | show | ack | resolve | note | test-rule | exceedances`: alerts for officers and technicians.
Shell (click); I/O. Parses, calls `storage.alerts_store` (and `alerts.rules.evaluate` for test-rule), renders an aligned
table or `--json`, sets the exit code (1 when refused: unknown alert, illegal transition, a token without the
officer role, an unreachable database; 2 on a usage error).

The database is `--url`, else the `--config` file's `database.url`, else the running local stack's
(`var/state.json`), as for `aqnet sensors`. `ack`, `resolve` and `note` need an officer's API token (`--token`, or
the environment variable AQNET_TOKEN; `aqnet tokens create --role officer`): the actor recorded is the token's
name, via "cli". `test-rule` evaluates one rule at one time against the stored averages inside a transaction that
is rolled back: it prints what would be raised, escalated or resolved (and what would be suppressed), writes
nothing and sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg
from psycopg import AsyncConnection

from aqnet.cli.db_context import DbContext
from aqnet.cli.options import database_options, database_target
from aqnet.cli.render import render_table
from aqnet.cli.times import parse_time
from aqnet.config import Settings
from sensors.redact import redact
from storage.tokens import ApiToken, authenticate

__all__ = ["alerts"]

T = TypeVar("T")
OFFICER_HELP = "an officer's API token (`aqnet tokens create --role officer`); default: $AQNET_TOKEN"


@dataclass(frozen=True)
class _Ctx(DbContext):
    """Where the database is, the network's time zone, the settings (when --config is given), how to print."""

    url: str
    tz: tzinfo
    settings: Settings | None
    as_json: bool

    @property
    def refusals(self) -> tuple[type[Exception], ...]:  # type: ignore[override]
        from storage.alerts_store import AlertError

        return (AlertError,)


def _ctx(url: str | None, config_path: Path | None, var_dir: Path, as_json: bool) -> _Ctx:
    target = database_target(url, config_path, var_dir)
    return _Ctx(target.url, target.tz, target.settings, as_json)


def _common(f: Any) -> Any:
    f = click.option("--json", "as_json", is_flag=True, help="print JSON for programs")(f)
    return database_options("YAML settings: its database, time zone and rules file")(f)


def _officer(f: Any) -> Any:
    return click.option("--token", envvar="AQNET_TOKEN", default=None, show_envvar=True, help=OFFICER_HELP)(f)


async def _as_officer(ctx: _Ctx, conn: AsyncConnection[Any], secret: str | None, doing: str) -> ApiToken:
    """The officer token `secret` is, or exit 1 saying what is missing (no token, unknown, another role)."""
    if not secret:
        ctx.fail("unauthorized", f"{doing} needs an officer's API token: pass --token or set AQNET_TOKEN "
                                 "(`aqnet tokens create --role officer --name NAME`)")
    token = await authenticate(conn, secret)
    if token is None:
        ctx.fail("unauthorized", f"{doing}: the token is unknown or revoked (see `aqnet tokens list`)")
    if token.role != "officer":
        ctx.fail("forbidden", f"{doing}: token {token.name!r} has role {token.role}; acknowledging, resolving and "
                              "annotating alerts needs an officer token")
    return token


# ------------------------------------------------------------------------------------------------ rendering

def _t(value: datetime | None, tz: tzinfo) -> str:
    return "" if value is None else f"{value.astimezone(tz):%Y-%m-%d %H:%M}"


def _v(value: float | None, unit: str | None = None) -> str:
    if value is None:
        return ""
    return f"{value:g} {unit}" if unit else f"{value:g}"


def _detail_doc(found: Any) -> dict[str, Any]:
    from aqnet.api import alert_detail

    return alert_detail(found).model_dump(mode="json")


def _alerts_table(rows: list[Any], tz: tzinfo) -> str:
    return render_table(
        ["ID", "STATE", "SEVERITY", "RULE", "LEVEL", "WHERE", "VALUE", "STARTED", "ACK BY"],
        [[a.id, a.state, a.severity, a.rule, a.level,
          a.scope_key if a.scope == "sensor" else f"{a.scope_key} ({a.sensor_id or '-'})",
          _v(a.value, a.unit) + (" (indicative)" if a.indicative else ""), _t(a.started_at, tz),
          a.acknowledged_by or ""] for a in rows])


def _show_text(doc: dict[str, Any], found: Any, tz: tzinfo) -> str:
    a = found.alert
    period = f"{a.period} ending {_t(a.period_end, tz)}" if a.period else "-"
    coverage = f", coverage {a.coverage:.0%}" if a.coverage is not None else ""
    lines = [f"alert {a.id}  {a.rule}  {a.state}  ({a.audience}, {a.severity}{', indicative' if a.indicative else ''})",
             f"  where      {a.scope} {a.scope_key}" + (f", sensor {a.sensor_id}" if a.sensor_id else "")
             + (f", {a.locality}" if a.locality else ""),
             f"  level      {a.level}: {_v(a.value, a.unit)} (threshold {_v(a.threshold, a.unit)})",
             f"  variable   {a.variable or '-'}, {period}{coverage}",
             f"  source     {a.source or '-'}",
             f"  started    {_t(a.started_at, tz)}"]
    if a.acknowledged_by:
        lines.append(f"  acked      {_t(a.acknowledged_at, tz)} by {a.acknowledged_by}")
    if a.resolved_at:
        lines.append(f"  resolved   {_t(a.resolved_at, tz)}" + (f" by {a.resolved_by}" if a.resolved_by else ""))
    lines += ["", render_table(["TIME", "EVENT", "LEVEL", "VALUE", "BY", "NOTE"],
                               [[_t(e["time"] and datetime.fromisoformat(e["time"]), tz), e["kind"],
                                 e["level"] or "", _v(e["value"]), " ".join(x for x in (e["actor"], e["via"] and
                                                                                       f"({e['via']})") if x),
                                 e["note"] or ""] for e in doc["events"]])]
    if doc["deliveries"]:
        lines += ["", render_table(["EVENT", "CHANNEL", "DELIVERY", "ATTEMPTS", "ERROR"],
                                   [[d["event_id"], d["channel"], d["state"], d["attempts"], d["last_error"] or ""]
                                    for d in doc["deliveries"]])]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- commands

@click.group()
def alerts() -> None:
    """Alerts: list and inspect them; officers acknowledge, resolve and annotate; test a rule on stored data."""


@alerts.command("list")
@click.option("--state", type=click.Choice(["firing", "acknowledged", "resolved"]), default=None)
@click.option("--audience", type=click.Choice(["officers", "technicians"]), default=None,
              help="officers: air quality; technicians: equipment")
@click.option("--sensor", "sensor_id", default=None, help="only alerts reporting this sensor")
@click.option("--locality", default=None)
@click.option("--rule", default=None, help="rule id, e.g. pm25-24h-levels")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@_common
def list_command(state: str | None, audience: str | None, sensor_id: str | None, locality: str | None,
                 rule: str | None, limit: int, url: str | None, config_path: Path | None, var_dir: Path,
                 as_json: bool) -> None:
    """Alerts, newest first."""
    from aqnet.api import AlertRecord
    from storage import alerts_store

    ctx = _ctx(url, config_path, var_dir, as_json)
    rows = ctx.run(lambda conn: alerts_store.list_alerts(conn, state=state, audience=audience, sensor_id=sensor_id,
                                                        locality=locality, rule=rule, limit=limit))
    ctx.echo([AlertRecord.model_validate(a).model_dump(mode="json") for a in rows],
             _alerts_table(list(rows), ctx.tz) if rows else "no alerts")


@alerts.command("show")
@click.argument("alert_id", type=click.IntRange(min=1), metavar="ID")
@_common
def show_command(alert_id: int, url: str | None, config_path: Path | None, var_dir: Path, as_json: bool) -> None:
    """One alert with its evidence, its history and its deliveries."""
    from storage import alerts_store

    ctx = _ctx(url, config_path, var_dir, as_json)
    found = ctx.run(lambda conn: alerts_store.get_alert(conn, alert_id))
    doc = _detail_doc(found)
    ctx.echo(doc, _show_text(doc, found, ctx.tz) if not as_json else "")


def _officer_op(ctx: _Ctx, secret: str | None, alert_id: int, doing: str,
                op: Callable[[AsyncConnection[Any], str], Coroutine[Any, Any, Any]]) -> tuple[str, Any]:
    """Authenticate the officer, run `op(conn, actor)`, return (actor, the alert afterwards)."""
    from storage import alerts_store

    async def work(conn: AsyncConnection[Any]) -> tuple[str, Any]:
        token = await _as_officer(ctx, conn, secret, doing)
        await op(conn, token.name)
        return token.name, await alerts_store.get_alert(conn, alert_id)

    return ctx.run(work)


@alerts.command("ack")
@click.argument("alert_id", type=click.IntRange(min=1), metavar="ID")
@click.option("--note", default=None, help="a note recorded with the acknowledgement")
@_officer
@_common
def ack_command(alert_id: int, note: str | None, token: str | None, url: str | None, config_path: Path | None,
                var_dir: Path, as_json: bool) -> None:
    """Acknowledge a firing alert (officers): you are on it; unacknowledged alerts escalate."""
    from storage import alerts_store

    ctx = _ctx(url, config_path, var_dir, as_json)
    actor, found = _officer_op(ctx, token, alert_id, f"acknowledging alert {alert_id}",
                               lambda conn, who: alerts_store.acknowledge(conn, alert_id, actor=who, via="cli",
                                                                          note=note, at=datetime.now(UTC)))
    ctx.echo(_detail_doc(found), f"alert {alert_id} acknowledged by {actor}")


@alerts.command("resolve")
@click.argument("alert_id", type=click.IntRange(min=1), metavar="ID")
@click.option("--note", default=None, help="a note recorded with the resolution")
@_officer
@_common
def resolve_command(alert_id: int, note: str | None, token: str | None, url: str | None,
                    config_path: Path | None, var_dir: Path, as_json: bool) -> None:
    """Resolve an alert by hand (officers); it stays resolved until the value falls below its clear level."""
    from storage import alerts_store

    ctx = _ctx(url, config_path, var_dir, as_json)
    actor, found = _officer_op(ctx, token, alert_id, f"resolving alert {alert_id}",
                               lambda conn, who: alerts_store.resolve(conn, alert_id, actor=who, via="cli",
                                                                      note=note, at=datetime.now(UTC)))
    ctx.echo(_detail_doc(found), f"alert {alert_id} resolved by {actor}")


@alerts.command("note")
@click.argument("alert_id", type=click.IntRange(min=1), metavar="ID")
@click.argument("text")
@_officer
@_common
def note_command(alert_id: int, text: str, token: str | None, url: str | None, config_path: Path | None,
                 var_dir: Path, as_json: bool) -> None:
    """Add a note to an alert's history (officers)."""
    from storage import alerts_store

    ctx = _ctx(url, config_path, var_dir, as_json)
    if not text.strip():
        raise click.BadParameter("expected some text", param_hint="TEXT")
    actor, found = _officer_op(ctx, token, alert_id, f"annotating alert {alert_id}",
                               lambda conn, who: alerts_store.add_note(conn, alert_id, actor=who, via="cli",
                                                                       text=text))
    ctx.echo(_detail_doc(found), f"note added to alert {alert_id} by {actor}")


@alerts.command("exceedances", short_help="Days and hours above the norm's limits, per sensor, variable and year.")
@click.option("--year", type=click.IntRange(1900, 9999), default=None)
@click.option("--sensor", "sensor_id", default=None)
@click.option("--variable", default=None, help="e.g. pm25, pm10, so2, no2, o3, co")
@_common
def exceedances_command(year: int | None, sensor_id: str | None, variable: str | None, url: str | None,
                        config_path: Path | None, var_dir: Path, as_json: bool) -> None:
    """Exceedances of Res. 2254/2017's limits per sensor, variable and calendar year: days whose valid daily
    average is above the 24-hour limit, hours whose valid 1-hour (or 8-hour rolling) average is above its limit,
    and the valid annual mean above the annual limit (period year)."""
    from aqnet.api import ExceedanceRecord
    from storage import alerts_store

    ctx = _ctx(url, config_path, var_dir, as_json)
    tz_name = str(getattr(ctx.tz, "key", "America/Bogota"))
    rows = [ExceedanceRecord.model_validate(e) for e in ctx.run(
        lambda conn: alerts_store.exceedances(conn, year=year, sensor_id=sensor_id, variable=variable, tz=tz_name))]
    ctx.echo([e.model_dump(mode="json") for e in rows], render_table(
        ["YEAR", "SENSOR", "VARIABLE", "PERIOD", "EXCEEDANCES", "VALID", "LIMIT µg/m³", "SOURCE"],
        [[e["year"], e["sensor_id"], e["variable"], e["period"], e["exceedances"], e["valid_periods"],
          f"{e['limit_ugm3']:g}", e["source"]] for e in (r.model_dump() for r in rows)])
        if rows else "no valid averages with a norm limit")


@alerts.command("test-rule")
@click.argument("rule_id")
@click.option("--rules", "rules_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="rules YAML (default: the configuration's alerts.rules_file, else the bundled rules)")
@click.option("--at", "at_text", default="now", show_default=True,
              help="evaluate as of this time: now, -2h, or ISO 8601 (without an offset: network time zone)")
@_common
def test_rule_command(rule_id: str, rules_path: Path | None, at_text: str, url: str | None,
                      config_path: Path | None, var_dir: Path, as_json: bool) -> None:
    """Evaluate one rule against the stored data, changing nothing and sending nothing: prints what would be
    raised, escalated or resolved, and what would be suppressed (maintenance or invalid data)."""
    from alerts.settings import AlertsSettings

    ctx = _ctx(url, config_path, var_dir, as_json)
    rules = _rules(rules_path, ctx.settings)
    rule = next((r for r in rules if r.id == rule_id), None)
    if rule is None:
        ctx.fail("not_found", f"rule {rule_id!r}: not in {rules_path or 'the rules'}; known: "
                              f"{', '.join(r.id for r in rules)}")
    at = parse_time(at_text, ctx.tz, datetime.now(UTC), relative="signed", option="--at")
    escalate = (ctx.settings.alerts if ctx.settings else AlertsSettings()).escalate_unacknowledged_after_min
    try:
        events, suppressed = _dry_run(ctx.url, rule, at, ctx.tz, escalate)
    except psycopg.OperationalError as exc:
        raise click.ClickException(redact(f"cannot use the database at {ctx.url}: {exc}")) from None
    doc = {"rule": rule.id, "at": at.isoformat(), "dry_run": True, "events": events, "suppressed": suppressed}
    lines = [f"rule {rule.id} at {_t(at, ctx.tz)} (dry run: nothing written, nothing sent)"]
    if events:
        lines.append(render_table(["WOULD", "WHERE", "LEVEL", "VALUE", "THRESHOLD", "PERIOD END", "SOURCE"],
                                  [[e["kind"], e["scope_key"], (f"{e['from_level']} → " if e["from_level"] else "")
                                    + str(e["level"]), _v(e["value"], e["unit"]), _v(e["threshold"]),
                                    _t(e["time"], ctx.tz), e["source"]] for e in events]))
    else:
        lines.append("nothing would be raised, escalated or resolved")
    if suppressed:
        lines += ["", "suppressed (no alert from these data):", render_table(
            ["WHERE", "SENSOR", "LEVEL", "VALUE", "PERIOD END", "REASON", "DETAIL"],
            [[s["scope_key"], s["sensor_id"] or "", s["level"] or "", _v(s["value"]), _t(s["period_end"], ctx.tz),
              s["reason"], s["detail"]] for s in suppressed])]
    ctx.echo(doc, "\n".join(lines))


def _rules(path: Path | None, settings: Settings | None) -> tuple[Any, ...]:
    from alerts.rules.model import RulesError, default_rules, parse_rules

    if path is None and settings is not None and settings.alerts.rules_file:
        path = Path(settings.alerts.rules_file)
    try:
        return parse_rules(path.read_text(encoding="utf-8"), source=str(path)) if path else default_rules()
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read the rules: {exc.strerror}") from None
    except RulesError as exc:
        raise click.ClickException(f"invalid rules:\n{exc}") from None


def _dry_run(url: str, rule: Any, at: datetime, tz: tzinfo, escalate_after_min: float
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`alerts.jobs.dry_run_rule` for one rule at `at`: nothing is written."""
    from alerts.jobs import dry_run_rule

    with psycopg.connect(url, application_name="aqnet-test-rule") as conn:
        run = dry_run_rule(conn, rule, at, tz=tz, escalate_after_min=escalate_after_min)
    return [_event_doc(e) for e in run.events], list(run.suppressed)


def _event_doc(event: Any) -> dict[str, Any]:
    """An `alerts.rules.state` event as a dict: what would happen, where, at which level and value."""
    return {"kind": event.kind, "rule": event.rule_id, "scope_key": event.sensor_id,
            "variable": getattr(event, "variable", None), "level": event.level,
            "from_level": getattr(event, "from_level", None), "value": event.value, "unit": event.unit,
            "threshold": event.threshold, "source": event.source, "time": event.time}
