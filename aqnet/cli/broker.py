"""`aqnet broker …`: the broker logins of aqnet's own processes. Shell (click); I/O (the broker's files). Parses, calls
sensors.mqtt.broker, renders.

`aqnet broker daemon-user NAME` gives the daemon (or one intake process or node of it) its own MQTT login on the
broker whose password, ACL and roles files live in `--broker-dir` (production: /etc/mosquitto/aqnet, as
deploy/mosquitto/aqnet.conf reads them): the password's hash goes into the password file, a `NAME daemon
alerts=PREFIX` line into the roles file, and the ACL file is regenerated from both, granting NAME exactly: read
every sensor topic (`aqnet/+/readings`, `airrohr/+/data`, `purpleair/+/data`) and publish under the alert
channel's state topic prefix (`PREFIX/#`; `--alerts-prefix -` for a process that delivers no alerts). NAME must
start with `aqnet` (sensors/mqtt/broker/acl.py: such names are never a sensor's). The password comes from
`--password-file` (the one written into `mqtt.url`) or is generated and printed once. The running broker is then
reloaded (SIGHUP through `--pid-file`) unless `--no-reload`. `--revoke` removes the login and its role.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sensors.mqtt.broker import (
    DEFAULT_ALERT_PREFIX,
    BrokerFiles,
    CredentialsError,
    ServiceRole,
    new_password,
    reload_after_change,
    remove_service_user,
    set_service_user,
)

__all__ = ["DEFAULT_BROKER_DIR", "broker"]

#: where deploy/mosquitto/aqnet.conf keeps the password and ACL files
DEFAULT_BROKER_DIR = Path("/etc/mosquitto/aqnet")


@click.group()
def broker() -> None:
    """The MQTT broker's logins for aqnet's own processes."""


def _password(password_file: Path | None) -> tuple[str, bool]:
    """(password, generated): the first line of `password_file`, or a new random one."""
    if password_file is None:
        return new_password(), True
    try:
        text = password_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"{password_file}: cannot read: {exc.strerror}",
                                 param_hint="--password-file") from None
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise click.BadParameter(f"{password_file}: the file is empty", param_hint="--password-file")
    return password, False


@broker.command("daemon-user")
@click.argument("name")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="file whose first line is the password (the one in mqtt.url); default: generate one and print it")
@click.option("--alerts-prefix", default=DEFAULT_ALERT_PREFIX, show_default=True,
              help="the MQTT alert channel's topic_prefix this login publishes under; '-' for none")
@click.option("--broker-dir", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_BROKER_DIR,
              show_default=True, help="the broker's directory: passwd, acl and roles files")
@click.option("--pid-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="the running broker's pid file, to reload it (default: BROKER_DIR/mosquitto.pid)")
@click.option("--revoke", is_flag=True, help="remove the login and its role instead")
@click.option("--no-reload", is_flag=True, help="only write the files; do not signal the broker")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def daemon_user(name: str, password_file: Path | None, alerts_prefix: str, broker_dir: Path, pid_file: Path | None,
                revoke: bool, no_reload: bool, as_json: bool) -> None:
    """Give the aqnet daemon's login NAME (e.g. aqnet-daemon, aqnet-ingest-2) its password and its ACL.

    It may read every sensor's topics and publish alert states under --alerts-prefix, nothing else.
    """
    files = BrokerFiles.in_dir(broker_dir)
    out: dict[str, Any] = {"username": name, "password_file": str(files.password_file),
                              "acl_file": str(files.acl_file), "roles_file": str(files.roles_file)}
    try:
        if revoke:
            out["revoked"] = remove_service_user(files, name)
        else:
            role = ServiceRole(name, "daemon", None if alerts_prefix == "-" else alerts_prefix)
            password, generated = _password(password_file)
            out["grants"] = list(set_service_user(files, role, password))
            if generated:
                out["password"] = password
        pid, warning = reload_after_change(files, pid_file, no_reload)
        if warning is not None:
            out["warning"] = warning
        out["reloaded_pid"] = pid
    except CredentialsError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if revoke:
        click.echo(f"broker login {name} {'revoked' if out['revoked'] else 'did not exist'}")
    else:
        click.echo(f"broker login {name} (role daemon)")
        if "password" in out:
            click.echo(f"  password  {out['password']}   (shown once: put it in mqtt.url; only its hash is kept)")
        for grant in out["grants"]:
            click.echo(f"  acl       {grant}")
    pid = out["reloaded_pid"]
    click.echo(f"  broker    {f'reloaded (pid {pid})' if pid else 'not reloaded'}; "
               f"files {files.password_file}, {files.acl_file}, {files.roles_file}")
    if "warning" in out:
        click.echo(f"warning: {out['warning']}", err=True)
