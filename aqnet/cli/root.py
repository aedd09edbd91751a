"""`aqnet` itself: the root command group with `run`, `up`, `simulate` and `status`, and every command group
attached to it. Shell (click): each command parses, calls a stage or shell function, renders, sets the exit code.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from aqnet.cli.alerts import alerts
from aqnet.cli.broker import broker
from aqnet.cli.calibrate import calibrate
from aqnet.cli.checks import checks
from aqnet.cli.db import db
from aqnet.cli.deadletter import deadletter
from aqnet.cli.exports import export, report
from aqnet.cli.nodes import nodes_command
from aqnet.cli.options import VAR_HELP, load_config, running_stack_state
from aqnet.cli.profiles import profiles
from aqnet.cli.reprocess import reprocess_command
from aqnet.cli.sensors import sensors
from aqnet.cli.tokens import tokens
from aqnet.cli.users import users
from aqnet.cli.validation import alert_record_command, publication_command, validation
from aqnet.logs import setup_logging
from sensors.redact import redact

__all__ = ["cli", "main"]


@click.group()
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
def cli(log_level: str) -> None:
    """aqnet: ingestion and alerting for city air quality monitoring networks."""
    setup_logging(log_level)


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="YAML settings file (see README, Configuration)")
def run(config_path: Path) -> None:
    """Run the daemon alone against the configured database and broker (what systemd starts)."""
    from aqnet.daemon import run_daemon

    sys.exit(run_daemon(load_config(config_path)))


def _scenario_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options `aqnet up` and `aqnet simulate` share."""
    for option in reversed([
        click.option("--scenario", default="normal", show_default=True,
                     help="scenario name (simulators/scenarios: normal, pm25-episode, faults) or a YAML file"),
        click.option("--speed", type=click.FloatRange(min=1), default=None,
                     help="simulated seconds per real second (default: the scenario's; > 1 accelerates)"),
        click.option("--seed", type=int, default=None, help="simulators' random seed (default: the scenario's)"),
        click.option("--stations", type=click.IntRange(min=0), default=None,
                     help="scale mode: N synthetic stations SYN-S0001… (default: the scenario's)"),
        click.option("--microsensors", type=click.IntRange(min=0), default=None,
                     help="scale mode: N synthetic microsensors SYN-M0001… (default: the scenario's)"),
    ]):
        f = option(f)
    return f


@cli.command()
@click.option("--duration", type=float, default=None,
              help="stop by itself after SECONDS (real); accelerated, simulated time then ends at now")
@click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var"),
              help=VAR_HELP)
@click.option("--poll-interval", type=float, default=None,
              help="Modbus poll interval, simulated s (default 5; accelerated: the scenario's)")
@click.option("--publish-interval", type=float, default=None,
              help="simulated microsensors' publish interval, simulated s (default 5; accelerated: the scenario's)")
@_scenario_options
@click.option("--no-simulators", is_flag=True, help="start the stack and the daemon without the simulators")
@click.option("--secure", is_flag=True,
              help="broker with authentication and per-sensor ACLs (see `aqnet sensors credentials`)")
def up(duration: float | None, var_dir: Path, poll_interval: float | None, publish_interval: float | None,
       scenario: str, speed: float | None, seed: int | None, stations: int | None, microsensors: int | None,
       no_simulators: bool, secure: bool) -> None:
    """Run the local stack: TimescaleDB, Mosquitto, the simulated network and the daemon."""
    from aqnet.localstack.up import UpOptions, run_up
    from simulators.scenario import ScenarioError

    try:
        code = run_up(UpOptions(var_dir, duration_s=duration, poll_interval_s=poll_interval,
                                publish_interval_s=publish_interval, seed=seed, simulate=not no_simulators,
                                speed=speed, scenario=scenario, stations=stations, microsensors=microsensors,
                                secure=secure))
    except ScenarioError as exc:
        raise click.ClickException(f"invalid scenario:\n{exc}") from None
    sys.exit(code)


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), required=True)
@_scenario_options
@click.option("--publish-interval", type=float, default=None,
              help="microsensors' publish interval, simulated s (default: the scenario's)")
@click.option("--rtu-link-file", type=click.Path(path_type=Path, dir_okay=False), default=None, hidden=True)
def simulate(config_path: Path, scenario: str, speed: float | None, seed: int | None, stations: int | None,
             microsensors: int | None, publish_interval: float | None, rtu_link_file: Path | None) -> None:
    """Run the simulated network (Modbus stations and MQTT microsensors) of a configuration and a scenario."""
    from aqnet.simulate import SimulateOptions, run_simulators
    from simulators.scenario import ScenarioError

    opts = SimulateOptions(scenario=scenario, speed=speed, seed=seed, stations=stations, microsensors=microsensors,
                           publish_interval_s=publish_interval, rtu_link_file=rtu_link_file)
    try:
        code = run_simulators(load_config(config_path), opts)
    except ScenarioError as exc:
        raise click.ClickException(f"invalid scenario:\n{exc}") from None
    sys.exit(code)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var"),
              help=VAR_HELP)
def status(as_json: bool, var_dir: Path) -> None:
    """Where the running local stack is, and when each sensor last reported."""
    state = running_stack_state(var_dir)
    try:
        with urllib.request.urlopen(state["status_url"], timeout=5) as resp:  # noqa: S310 - the stack's own http URL
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"the daemon at {state['status_url']} does not answer: {exc}") from None
    # no passwords: `aqnet db url` prints the database URL whole for whoever asks for it
    out = {"database_url": redact(state["database_url"]), "mqtt_url": redact(state["mqtt_url"]),
           "metrics_url": state["metrics_url"], "sensors_configured": doc["sensors_configured"],
           "sensors_reporting": doc["sensors_reporting"], "readings_total": doc.get("readings_total"),
           "last_seen": doc["last_seen"]}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"database  {out['database_url']}\nmqtt      {out['mqtt_url']}\nmetrics   {out['metrics_url']}")
    click.echo(f"sensors reporting {out['sensors_reporting']}/{out['sensors_configured']}")
    for sid, seen in out["last_seen"].items():
        click.echo(f"  {sid:6} {seen or 'never'}")


cli.add_command(db)
cli.add_command(profiles)
cli.add_command(sensors)
cli.add_command(deadletter)
cli.add_command(reprocess_command)
cli.add_command(calibrate)
cli.add_command(tokens)
cli.add_command(users)
cli.add_command(alerts)
cli.add_command(broker)
cli.add_command(validation)
cli.add_command(nodes_command)
alerts.add_command(alert_record_command)
sensors.add_command(publication_command)
cli.add_command(checks)
cli.add_command(export)
cli.add_command(report)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="aqnet")
