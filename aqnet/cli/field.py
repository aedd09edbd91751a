"""`aqnet sensors test ID` and `aqnet sensors credentials ID`: a technician's tools on site. Shell (click); I/O.
Parses, calls aqnet.commission / sensors.mqtt.broker and the registry, renders a table or `--json`, sets the exit
code.

`test` reads every device of the sensor now (aqnet.commission) and prints raw and normalised values with their
quality flags and a verdict: exit 0 on PASS or WARN, 1 on FAIL (an unreachable device is a FAIL, not a crash).
`credentials` issues MQTT credentials for a microsensor (username = sensor id, a random password printed once),
regenerates the broker's password and pattern ACL files and reloads the running broker (SIGHUP); `--revoke`
takes them away. The database comes from `--url`, `--config`, or the local stack under `--var`, as for
`aqnet db migrate`; the broker's directory from `--broker-dir` or the local stack's.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
import psycopg

from aqnet.cli.options import database_options, database_target, local_stack_state
from aqnet.cli.render import render_table
from aqnet.commission import MqttAccess, check_sensor
from aqnet.config import Settings
from ingest.calibration import CalibrationError
from ingest.commission import CommissionReport, flag_names
from sensors.mqtt.broker import (
    BrokerFiles,
    CredentialsError,
    allowed_topics,
    check_sensor_username,
    issue_credentials,
    reload_after_change,
    remove_user,
)
from sensors.mqtt.directory import topic_matches
from storage import device_credentials
from storage.commission_store import last_stored_readings, sensor_of
from storage.registry import get_sensor
from storage.registry.calibrations import load_calibration_book
from storage.registry.models import RegistryError, SensorRecord
from storage.registry.rows import insert_audit

__all__ = ["credentials_command", "render_report", "report_json", "test_command"]

T = TypeVar("T")


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(main())
    except RegistryError as exc:
        raise click.ClickException(exc.message) from None
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from None


_database_options = database_options("aqnet settings file (database, MQTT broker)")


# ---------------------------------------------------------------------------------------------------- test


def _number(x: float) -> str:
    return "NaN" if math.isnan(x) else f"{x:.4g}"


def report_json(report: CommissionReport) -> dict[str, Any]:
    """The report as JSON for `--json` (times ISO 8601, flags as names and as the stored bitmask)."""
    return {
        "sensor_id": report.sensor_id, "name": report.name, "kind": report.kind, "lifecycle": report.lifecycle,
        "checked_at": report.checked_at.isoformat(), "verdict": report.verdict,
        "findings": [{"level": f.level, "device_id": f.device_id, "message": f.message} for f in report.findings],
        "devices": [{
            "device_id": d.device_id, "protocol": d.protocol, "endpoint": d.endpoint, "status": d.status,
            "detail": d.detail, "stored": d.stored, "missing": list(d.missing),
            "rejected": [{"variable": r.variable, "reason": r.reason, "detail": r.detail} for r in d.rejected],
            "readings": [{
                "variable": r.variable, "time": r.time.isoformat(), "received_at": r.received_at.isoformat(),
                "raw_value": None if math.isnan(r.raw_value) else r.raw_value, "raw_unit": r.raw_unit,
                "value": None if math.isnan(r.value) else r.value, "unit": r.unit, "flags": int(r.flags),
                "flag_names": list(flag_names(r.flags)), "conditions_source": r.conditions_source,
                "calibration_id": r.calibration_id} for r in d.readings],
        } for d in report.devices],
    }


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    return render_table(rows[0], rows[1:]).split("\n")


def render_report(report: CommissionReport) -> str:
    """The report as aligned tables for a terminal."""
    out = [(f"sensor {report.sensor_id} ({report.name}; {report.kind}, {report.lifecycle}) "
           f"checked {report.checked_at.isoformat(timespec='seconds')}"), ""]
    out += _table([("DEVICE", "PROTOCOL", "STATUS", "ENDPOINT"),
                   *((d.device_id, d.protocol, d.status, d.endpoint) for d in report.devices)])
    rows = [(d.device_id, r.variable, f"{_number(r.raw_value)} {r.raw_unit}", f"{_number(r.value)} {r.unit}",
             ",".join(flag_names(r.flags)) or "-", r.time.isoformat(timespec="seconds") + (" (stored)" if d.stored
                                                                                           else ""))
            for d in report.devices for r in d.readings]
    rows += [(d.device_id, r.variable or "(message)", "-", "-", f"rejected: {r.reason}", "")
             for d in report.devices for r in d.rejected]
    if rows:
        out += ["", *_table([("DEVICE", "VARIABLE", "RAW", "NORMALISED", "FLAGS", "TIME"), *rows])]
    if report.findings:
        out.append("")
        out += [f"{f.level}  {f.device_id + ': ' if f.device_id else ''}{f.message}" for f in report.findings]
    out += ["", f"verdict: {report.verdict}"]
    return "\n".join(out)


def _mqtt_access(mqtt_url: str | None, settings: Settings | None) -> MqttAccess | None:
    if mqtt_url:
        return MqttAccess(mqtt_url)
    if settings is None:
        return None
    m = settings.mqtt
    return MqttAccess(m.url, ca_file=m.ca_file, cert_file=m.cert_file, key_file=m.key_file, protocol=m.protocol)


@click.command("test")
@click.argument("sensor_id")
@_database_options
@click.option("--mqtt-url", default=None, help="broker the microsensors publish to (default: the configuration's)")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="MQTT: seconds to wait for a message from each device")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.01), default=2.0, show_default=True,
              help="Modbus: connect and response timeout, s")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
def test_command(sensor_id: str, url: str | None, config_path: Path | None, var_dir: Path, mqtt_url: str | None,
                 wait_s: float, timeout_s: float, as_json: bool) -> None:
    """Read SENSOR_ID's devices now: raw and normalised values, flags and a verdict (exit 1 on FAIL)."""
    where = database_target(url, config_path, var_dir, stack_config=True)
    settings = where.settings
    mqtt = _mqtt_access(mqtt_url, settings)
    tz = ZoneInfo(settings.network.timezone) if settings else UTC
    skew = settings.ingest.clock_skew_tolerance_s if settings else 300.0

    async def main() -> CommissionReport:
        async with await psycopg.AsyncConnection.connect(where.url) as conn:
            record = await get_sensor(conn, sensor_id)
            if record.lifecycle == "retired":
                raise click.ClickException(f"sensor {sensor_id} is retired: nothing to test")
            sensor = sensor_of(record)
            try:
                calibrations = await load_calibration_book(conn, device_ids=[d.id for d in sensor.devices])
            except CalibrationError as exc:
                raise click.ClickException(f"sensor {sensor_id}: a stored calibration is unusable: {exc}") from None
            await conn.commit()  # no transaction stays open while waiting for messages
            return await check_sensor(sensor, lifecycle=record.lifecycle, clock=lambda: datetime.now(UTC),
                                      calibrations=calibrations, mqtt=mqtt, wait_s=wait_s, timeout_s=timeout_s,
                                      tz=tz, skew_tolerance_s=skew,
                                      last_stored=lambda d: last_stored_readings(conn, d))

    report = _run(main)
    click.echo(json.dumps(report_json(report), ensure_ascii=False, indent=2) if as_json else render_report(report))
    if report.verdict == "FAIL":
        raise SystemExit(1)


# --------------------------------------------------------------------------------------------- credentials


def _broker_dir(broker_dir: Path | None, var_dir: Path) -> Path:
    if broker_dir is not None:
        return broker_dir
    state_dir = (local_stack_state(var_dir) or {}).get("mosquitto_dir")
    return Path(state_dir) if state_dir else var_dir / "mosquitto"


def _formats(record: SensorRecord) -> tuple[str, ...]:
    """The payload formats of the sensor's MQTT devices (their `profile`): what its login may publish."""
    return tuple(dict.fromkeys(d.profile for d in record.devices if d.protocol == "mqtt"))


def _publish_topics(record: SensorRecord) -> tuple[str, ...]:
    """The topics the sensor's MQTT devices publish to under the ACL (its own topic of each of its formats);
    a ClickException naming the device if a registered topic is one the ACL would refuse."""
    try:
        allowed = allowed_topics(record.id, _formats(record))
    except CredentialsError as exc:
        raise click.ClickException(str(exc)) from None
    topics: list[str] = []
    for d in record.devices:
        if d.protocol != "mqtt" or not d.topic:
            continue
        fitting = [t for t in allowed if topic_matches(d.topic, t)]
        if not fitting:
            raise click.ClickException(
                f"sensor {record.id}: device {d.id} publishes to {d.topic!r}, but the broker lets a sensor publish "
                f"only to {' or '.join(allowed)}; change the device's topic first (`aqnet sensors update`)")
        topics.extend(t for t in fitting if t not in topics)
    if not topics:
        raise click.ClickException(f"sensor {record.id}: has no MQTT device (protocols: "
                                   f"{', '.join(sorted({d.protocol for d in record.devices})) or 'none'}); "
                                   "MQTT credentials are for microsensors that publish over MQTT")
    return tuple(topics)


@click.command("credentials")
@click.argument("sensor_id")
@_database_options
@click.option("--broker-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="the broker's directory (passwd, acl, pid file); default: the local stack's (VAR/mosquitto)")
@click.option("--pid-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="the running broker's pid file (default: BROKER_DIR/mosquitto.pid)")
@click.option("--revoke", is_flag=True, help="remove the sensor's credentials instead of issuing new ones")
@click.option("--http", "http", is_flag=True,
              help='HTTP basic credentials for a sensor that POSTs (airrohr "send to own API"), not MQTT ones')
@click.option("--no-reload", is_flag=True, help="only write the files; do not signal the broker")
@click.option("--actor", default=None, help="who is making the change (default: the OS user name)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def credentials_command(sensor_id: str, url: str | None, config_path: Path | None, var_dir: Path,
                        broker_dir: Path | None, pid_file: Path | None, revoke: bool, http: bool,
                        no_reload: bool, actor: str | None, as_json: bool) -> None:
    """Issue (or --revoke) MQTT credentials for microsensor SENSOR_ID and reload the broker; with --http, HTTP
    basic credentials for its POSTs to the daemon's intake listener.

    The username is the sensor id and the password is printed once: only its hash is kept. The pattern ACL lets
    the sensor publish to its own topic only; HTTP credentials let it POST its own readings only.
    """
    where = database_target(url, config_path, var_dir, stack_config=True)
    if http:
        _http_credentials(where.url, sensor_id, revoke=revoke, who=actor or getpass.getuser(),
                          as_json=as_json)
        return
    files = BrokerFiles.in_dir(_broker_dir(broker_dir, var_dir))
    who = actor or getpass.getuser()

    async def main() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(where.url) as conn:
            record = await get_sensor(conn, sensor_id)
            async with conn.transaction(), conn.cursor() as cur:
                # the audit row first, the files second: a failed write rolls the audit row back with it
                if revoke:
                    check_sensor_username(sensor_id)  # never a service login (aqnet broker daemon-user --revoke)
                    await insert_audit(cur, actor=who, action="credentials.revoke", sensor_id=sensor_id,
                                       before={"mqtt_username": sensor_id})
                    removed = remove_user(files, sensor_id)
                    return {"sensor_id": sensor_id, "username": sensor_id, "revoked": removed}
                if record.kind != "microsensor":
                    raise click.ClickException(f"sensor {sensor_id} is a {record.kind}: MQTT credentials are for "
                                               "microsensors")
                if record.lifecycle == "retired":
                    raise click.ClickException(f"sensor {sensor_id} is retired: it gets no credentials")
                topics = _publish_topics(record)
                await insert_audit(cur, actor=who, action="credentials.issue", sensor_id=sensor_id,
                                   after={"mqtt_username": sensor_id, "topics": list(topics)})
                issued = issue_credentials(files, sensor_id, formats=_formats(record))
                return {"sensor_id": sensor_id, "username": issued.username, "password": issued.password,
                        "topics": list(topics)}

    try:
        out = _run(main)
        pid, warning = reload_after_change(files, pid_file, no_reload)
    except CredentialsError as exc:
        raise click.ClickException(str(exc)) from None
    out |= {"password_file": str(files.password_file), "acl_file": str(files.acl_file), "reloaded_pid": pid,
            "warning": warning}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if revoke:
        click.echo(f"MQTT credentials of sensor {sensor_id} {'revoked' if out['revoked'] else 'were not issued'}")
    else:
        click.echo(f"MQTT credentials for sensor {sensor_id} (the password is shown once; only its hash is kept)\n"
                   f"  username  {out['username']}\n  password  {out['password']}\n"
                   f"  publish   {', '.join(out['topics'])}")
    click.echo(f"  broker    {'reloaded (pid ' + str(pid) + ')' if pid else 'not reloaded'}; "
               f"files {files.password_file}, {files.acl_file}")
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _http_credentials(database_url: str, sensor_id: str, *, revoke: bool, who: str, as_json: bool) -> None:
    """`aqnet sensors credentials ID --http [--revoke]`: the table `http_device_credentials`, audited."""

    async def main() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            record = await get_sensor(conn, sensor_id)
            async with conn.transaction(), conn.cursor() as cur:
                if revoke:
                    await insert_audit(cur, actor=who, action="credentials.revoke", sensor_id=sensor_id,
                                       before={"http_username": sensor_id})
                    return {"sensor_id": sensor_id, "username": sensor_id,
                            "revoked": await device_credentials.revoke(conn, sensor_id)}
                if record.lifecycle == "retired":
                    raise click.ClickException(f"sensor {sensor_id} is retired: it gets no credentials")
                if not any(d.protocol == "http" for d in record.devices):
                    raise click.ClickException(
                        f"sensor {sensor_id}: has no HTTP device (protocols: "
                        f"{', '.join(sorted({d.protocol for d in record.devices})) or 'none'}); HTTP credentials "
                        "are for sensors that POST to the intake listener")
                await insert_audit(cur, actor=who, action="credentials.issue", sensor_id=sensor_id,
                                   after={"http_username": sensor_id})
                password = await device_credentials.issue(conn, sensor_id, created_by=who)
                return {"sensor_id": sensor_id, "username": sensor_id, "password": password}

    out = _run(main)
    if as_json:
        click.echo(json.dumps(out, indent=2))
    elif revoke:
        click.echo(f"HTTP credentials of sensor {sensor_id} {'revoked' if out['revoked'] else 'were not issued'} "
                   "(a daemon may accept them for up to http.auth_cache_s more)")
    else:
        click.echo(f"HTTP credentials for sensor {sensor_id} (the password is shown once; only its hash is kept)\n"
                   f"  username  {out['username']}\n  password  {out['password']}\n"
                   "  airrohr   Configuration → APIs → Send to own API: server = the intake listener, path "
                   "/intake/airrohr, HTTPS, Basic Auth with this user and password")
