"""deploy/mosquitto/aqnet.conf: the real Mosquitto starts with it (paths and port substituted), speaks TLS only,
refuses anonymous clients and wrong passwords, accepts the daemon's user with the password file aqnet writes, and
lets a microsensor publish its own readings topic only (the ACL aqnet writes)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from aqnet.cli import cli
from aqnet.credentials import BrokerFiles, set_password, write_acl
from aqnet.localstack import free_port
from sensors.mqtt.client import parse_mqtt_url

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "mosquitto" / "aqnet.conf"
#: the daemon's broker login in the shipped production configuration, provisioned below as an operator would
DAEMON_USER = parse_mqtt_url(yaml.safe_load((ROOT / "deploy" / "aqnet.production.yaml").read_text())["mqtt"]["url"]
                             ).username
pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path, pki: Path):  # type: ignore[no-untyped-def]
    files = BrokerFiles.in_dir(tmp_path / "aqnet")
    files.directory.mkdir()
    (tmp_path / "daemon.password").write_text("daemon-secret\n")
    res = CliRunner().invoke(cli, ["broker", "daemon-user", DAEMON_USER, "--password-file",
                                   str(tmp_path / "daemon.password"), "--broker-dir", str(files.directory),
                                   "--no-reload"])
    assert res.exit_code == 0, res.output
    set_password(files, "MS01", "ms01-secret")
    write_acl(files)
    port = free_port()
    (tmp_path / "data").mkdir()
    text = (CONF.read_text()
            .replace("/etc/mosquitto/certs/", f"{pki}/")
            .replace("/etc/mosquitto/aqnet/passwd", str(files.password_file))
            .replace("/etc/mosquitto/aqnet/acl", str(files.acl_file))
            .replace("/var/lib/mosquitto/", f"{tmp_path / 'data'}/")
            .replace("listener 8883", f"listener {port} 127.0.0.1")
            .replace("log_dest syslog", f"log_dest file {tmp_path / 'mosquitto.log'}"))
    settings = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "/etc/" not in settings and "/var/lib" not in settings  # every path of the production file's settings
    if os.geteuid() == 0:  # as root Mosquitto drops to its own user, which cannot enter pytest's 0700 tmp_path
        text += "user root\n"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "mosquitto exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.1)
        yield {"port": port, "ca": pki / "ca.pem"}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _pub(broker: dict, *args: str, tls: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker["port"]), "-q", "1", "-m", "x", *args]
    if tls:
        cmd += ["--cafile", str(broker["ca"])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def _sub_one(broker: dict, topic: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker["port"]), "--cafile",
                             str(broker["ca"]), "-u", DAEMON_USER, "-P", "daemon-secret", "-t", topic, "-C", "1",
                             "-W", "5", "-q", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_tls_and_a_password_are_required(broker: dict) -> None:
    assert _pub(broker, "-t", "aqnet/MS01/readings", "-u", DAEMON_USER, "-P", "daemon-secret").returncode == 0
    anonymous = _pub(broker, "-t", "aqnet/MS01/readings")
    assert anonymous.returncode != 0 and "not authorised" in anonymous.stderr.lower()
    wrong = _pub(broker, "-t", "aqnet/MS01/readings", "-u", DAEMON_USER, "-P", "nope")
    assert wrong.returncode != 0
    plain = _pub(broker, "-t", "aqnet/MS01/readings", "-u", DAEMON_USER, "-P", "daemon-secret", tls=False)
    assert plain.returncode != 0  # no clear-text listener


def test_a_microsensor_publishes_its_own_topic_only(broker: dict) -> None:
    own = _sub_one(broker, "aqnet/MS01/readings")
    time.sleep(0.5)
    assert _pub(broker, "-t", "aqnet/MS01/readings", "-u", "MS01", "-P", "ms01-secret").returncode == 0
    out, _ = own.communicate(timeout=10)
    assert out.strip() == "x"
    other = _sub_one(broker, "aqnet/MS02/readings")
    time.sleep(0.5)
    _pub(broker, "-t", "aqnet/MS02/readings", "-u", "MS01", "-P", "ms01-secret")  # the ACL drops it silently
    out, _ = other.communicate(timeout=10)
    assert out.strip() == "" and other.returncode != 0  # -W 5: timed out with nothing received


def test_the_production_daemon_login_reads_sensors_and_publishes_alerts_only(broker: dict) -> None:
    assert DAEMON_USER == "aqnet-daemon"
    alert = _sub_one(broker, "aqnet/alerts/#")  # the daemon's own login may read its alert states back
    time.sleep(0.5)
    assert _pub(broker, "-t", "aqnet/alerts/7", "-u", DAEMON_USER, "-P", "daemon-secret", "-V", "5").returncode == 0
    out, _ = alert.communicate(timeout=10)
    assert out.strip() == "x"
    denied = _pub(broker, "-t", "city/other", "-u", DAEMON_USER, "-P", "daemon-secret", "-V", "5")
    assert denied.returncode != 0 or "not authori" in (denied.stderr + denied.stdout).lower()
