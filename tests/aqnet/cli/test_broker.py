"""Service users of the broker (sensors/mqtt/broker roles, `aqnet broker daemon-user`): the daemon's login gets
exactly what it needs, never a sensor's grants, and no sensor can take a service name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aqnet.cli import cli
from sensors.mqtt.broker.acl import CredentialsError, ServiceRole, parse_roles, render_acl, render_roles
from sensors.mqtt.broker.credentials import BrokerFiles, issue_credentials, parse_password_file, read_roles


def _section(acl: str, user: str) -> list[str]:
    lines = acl.splitlines()
    start = lines.index(f"user {user}") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_a_daemon_role_reads_sensor_topics_and_publishes_its_alert_prefix_only() -> None:
    roles = {"aqnet-daemon": ServiceRole("aqnet-daemon", "daemon", "city/alerts")}
    acl = render_acl(["aqnet-daemon", "MS01"], roles)
    assert _section(acl, "aqnet-daemon") == [
        "topic read aqnet/+/readings", "topic read airrohr/+/data", "topic read purpleair/+/data",
        # its read-access probes (sensors.mqtt.client.probe_topic): the sensor topics named after itself
        "topic write aqnet/aqnet-daemon/readings", "topic write airrohr/aqnet-daemon/data",
        "topic write purpleair/aqnet-daemon/data", "topic readwrite city/alerts/#"]
    assert "topic readwrite #" not in acl  # nothing more than needed
    no_alerts = render_acl(["aqnet-ingest-2"], {"aqnet-ingest-2": ServiceRole("aqnet-ingest-2", "daemon", None)})
    section = _section(no_alerts, "aqnet-ingest-2")
    assert not any(line.startswith("topic readwrite") for line in section)
    assert [line for line in section if line.startswith("topic write")] == [
        "topic write aqnet/aqnet-ingest-2/readings", "topic write airrohr/aqnet-ingest-2/data",
        "topic write purpleair/aqnet-ingest-2/data"]


def test_a_service_name_without_a_role_gets_no_section() -> None:
    assert "user aqnet-ghost" not in render_acl(["aqnet-ghost"], {})


def test_roles_file_round_trip_and_errors_name_the_line() -> None:
    roles = {"aqnet-a": ServiceRole("aqnet-a"), "aqnet-b": ServiceRole("aqnet-b", alert_prefix=None)}
    assert parse_roles(render_roles(roles)) == roles
    with pytest.raises(CredentialsError, match=r"roles: line 2: .*starting with 'aqnet'"):
        parse_roles("aqnet-a daemon\nMS01 daemon\n", where="roles")
    with pytest.raises(CredentialsError, match=r"line 1: .*role: expected one of daemon"):
        parse_roles("aqnet-a root\n")
    with pytest.raises(CredentialsError, match=r"alert prefix"):
        ServiceRole("aqnet-a", alert_prefix="aqnet/#")


def test_a_sensor_never_gets_a_service_name(tmp_path: Path) -> None:
    files = BrokerFiles.in_dir(tmp_path)
    for name in ("aqnet-daemon", "AQNET-ingest-2", "aqnet"):
        with pytest.raises(CredentialsError, match="reserved for aqnet's own clients"):
            issue_credentials(files, name)
    assert not files.password_file.exists()


def test_daemon_user_command_writes_password_roles_and_acl(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret-for-the-daemon\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["broker", "daemon-user", "aqnet-daemon", "--password-file", str(secret),
                              "--broker-dir", str(tmp_path / "b"), "--no-reload", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert "password" not in out and out["grants"][-1] == "topic readwrite aqnet/alerts/#"
    files = BrokerFiles.in_dir(tmp_path / "b")
    entries = parse_password_file(files.password_file.read_text())
    assert set(entries) == {"aqnet-daemon"} and "s3cret" not in entries["aqnet-daemon"]
    assert read_roles(files) == {"aqnet-daemon": ServiceRole("aqnet-daemon")}
    assert _section(files.acl_file.read_text(), "aqnet-daemon") == out["grants"]
    # a sensor's credentials keep the daemon's section; the daemon's name stays out of a sensor's reach
    issue_credentials(files, "MS01")
    assert _section(files.acl_file.read_text(), "aqnet-daemon") == out["grants"]
    bad = runner.invoke(cli, ["broker", "daemon-user", "MS02", "--broker-dir", str(tmp_path / "b"), "--no-reload"])
    assert bad.exit_code != 0 and "starting with 'aqnet'" in bad.output
    gone = runner.invoke(cli, ["broker", "daemon-user", "aqnet-daemon", "--revoke", "--broker-dir",
                               str(tmp_path / "b"), "--no-reload"])
    assert gone.exit_code == 0 and "revoked" in gone.output
    assert set(parse_password_file(files.password_file.read_text())) == {"MS01"}
    assert "aqnet-daemon" not in files.acl_file.read_text() and read_roles(files) == {}


def test_probe_topics_replace_wildcards_with_the_username() -> None:
    from sensors.mqtt.client import probe_topic

    assert probe_topic("aqnet/+/readings", "aqnet-daemon") == "aqnet/aqnet-daemon/readings"
    assert probe_topic("airrohr/+/data", "aqnet-daemon") == "airrohr/aqnet-daemon/data"
    assert probe_topic("$share/aqnet/aqnet/+/readings", "aqnet-daemon") is None  # another member may get it
    assert probe_topic("a/#", None) == "a/aqnet-probe"
