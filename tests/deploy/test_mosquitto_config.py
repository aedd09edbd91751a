"""deploy/mosquitto/aqnet.conf: the real Mosquitto starts with it (paths and port substituted), speaks TLS only,
refuses anonymous clients and wrong passwords, accepts the daemon's user with the password file aqnet writes, and
lets a microsensor publish its own readings topic only (the ACL aqnet writes)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from aqnet.cli import cli
from aqnet.localstack import free_port
from sensors.mqtt.broker.credentials import BrokerFiles, set_password, write_acl
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
    (files.sensor_formats_file).write_text("MS01 airrohr\n")  # as `aqnet sensors credentials` records it
    write_acl(files)
    port, services_port = free_port(), free_port()
    (tmp_path / "data").mkdir()
    text = (CONF.read_text()
            .replace("/etc/mosquitto/certs/", f"{pki}/")
            .replace("/etc/mosquitto/aqnet/", f"{files.directory}/")
            .replace("/var/lib/mosquitto/", f"{tmp_path / 'data'}/")
            .replace("listener 8883", f"listener {port} 127.0.0.1")
            .replace("listener 8884", f"listener {services_port} 127.0.0.1")
            .replace("log_dest syslog", f"log_dest file {tmp_path / 'mosquitto.log'}\n"
                     "log_type subscribe"))  # the tests wait for a subscription to be in place, not for a time
    settings = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "/etc/" not in settings and "/var/lib" not in settings  # every path of the production file's settings
    if os.geteuid() == 0:  # as root Mosquitto drops to its own user, which cannot enter pytest's 0700 tmp_path
        text += "user root\n"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        for listening in (port, services_port):  # both listeners: the second may open a moment after the first
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "mosquitto exited"
                try:
                    socket.create_connection(("127.0.0.1", listening), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"mosquitto did not listen on {listening}"
                    time.sleep(0.1)
        yield {"port": port, "services_port": services_port, "ca": pki / "ca.pem", "log": tmp_path / "mosquitto.log"}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _pub(broker: dict, *args: str, tls: bool = True, services: bool = False) -> subprocess.CompletedProcess[str]:
    port = broker["services_port" if services else "port"]
    payload = () if "-f" in args or "-m" in args else ("-m", "x")
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", *payload, *args]
    if tls:
        cmd += ["--cafile", str(broker["ca"])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def _sub_one(broker: dict, topic: str) -> subprocess.Popen[str]:
    """A subscriber for one message of `topic`, returned once the broker has logged its subscription."""
    client_id = f"sub-{secrets.token_hex(4)}"
    proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker["services_port"]), "--cafile",
                             str(broker["ca"]), "-u", DAEMON_USER, "-P", "daemon-secret", "-i", client_id, "-t",
                             topic, "-C", "1", "-W", "5", "-q", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    subscribed, deadline = f"{client_id} 1 {topic}\n", time.monotonic() + 15
    while not (broker["log"].is_file() and subscribed in broker["log"].read_text(errors="replace")):
        assert proc.poll() is None, f"mosquitto_sub exited: {proc.communicate()}"
        assert time.monotonic() < deadline, f"the broker did not log the subscription to {topic}"
        time.sleep(0.05)
    return proc


def test_tls_and_a_password_are_required(broker: dict) -> None:
    assert _pub(broker, "-t", "aqnet/MS01/readings", "-u", DAEMON_USER, "-P", "daemon-secret").returncode == 0
    anonymous = _pub(broker, "-t", "aqnet/MS01/readings")
    assert anonymous.returncode != 0 and "not authorised" in anonymous.stderr.lower()
    wrong = _pub(broker, "-t", "aqnet/MS01/readings", "-u", DAEMON_USER, "-P", "nope")
    assert wrong.returncode != 0
    plain = _pub(broker, "-t", "aqnet/MS01/readings", "-u", DAEMON_USER, "-P", "daemon-secret", tls=False)
    assert plain.returncode != 0  # no clear-text listener


def test_the_production_daemon_login_reads_sensors_and_publishes_alerts_only(broker: dict) -> None:
    assert DAEMON_USER == "aqnet-daemon"
    alert = _sub_one(broker, "aqnet/alerts/#")  # the daemon's own login may read its alert states back
    assert _pub(broker, "-t", "aqnet/alerts/7", "-u", DAEMON_USER, "-P", "daemon-secret", "-V", "5").returncode == 0
    out, _ = alert.communicate(timeout=10)
    assert out.strip() == "x"
    denied = _pub(broker, "-t", "city/other", "-u", DAEMON_USER, "-P", "daemon-secret", "-V", "5")
    assert denied.returncode != 0 or "not authori" in (denied.stderr + denied.stdout).lower()


# ------------------------------------------------------------------------------------ attacks (issue 16)


def test_a_sensor_publishes_only_its_own_formats_topic(broker: dict) -> None:
    # MS01 is an airrohr (its recorded format): its airrohr topic reaches the daemon; its aqnet JSON topic, or the
    # airrohr topic of another sensor, does not
    own = _sub_one(broker, "airrohr/MS01/data")
    assert _pub(broker, "-t", "airrohr/MS01/data", "-u", "MS01", "-P", "ms01-secret").returncode == 0
    out, _ = own.communicate(timeout=10)
    assert out.strip() == "x"
    others = {topic: _sub_one(broker, topic)  # each waits its 5 s at once, not one after another
              for topic in ("aqnet/MS01/readings", "purpleair/MS01/data", "airrohr/MS02/data")}
    for topic in others:
        _pub(broker, "-t", topic, "-u", "MS01", "-P", "ms01-secret")  # the ACL drops it
    for topic, other in others.items():
        out, _ = other.communicate(timeout=10)
        assert out.strip() == "" and other.returncode != 0, topic


def _daemon_session(broker: dict, client_id: str):  # type: ignore[no-untyped-def]
    """A persistent-session subscriber with the daemon's login and client id on the services' listener (paho,
    reconnecting by itself); returns (client, received queue, disconnect reasons)."""
    import queue
    import ssl

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.properties import PacketTypes, Properties

    received: queue.Queue[bytes] = queue.Queue()
    disconnects: list[str] = []
    subscribed = queue.Queue()  # type: ignore[var-annotated]
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.username_pw_set(DAEMON_USER, "daemon-secret")
    client.tls_set_context(ssl.create_default_context(cafile=str(broker["ca"])))
    client.on_message = lambda c, u, m: received.put(bytes(m.payload))
    client.on_disconnect = lambda c, u, f, rc, p: disconnects.append(str(rc))
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(rcs)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("airrohr/+/data", qos=1)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", broker["services_port"], clean_start=False, properties=props)
    client.loop_start()
    subscribed.get(timeout=15)
    return client, received, disconnects


def test_no_other_login_can_take_the_daemons_session(broker: dict) -> None:
    client_id = "aqnet-ingest-1"  # printed in deploy/aqnet.production.yaml
    daemon, received, disconnects = _daemon_session(broker, client_id)
    try:
        # a sensor connects with the daemon's client id, clean start (which would discard the daemon's session):
        # on the sensors' listener the broker gives it its own login as client id instead
        attack = _pub(broker, "-t", "airrohr/MS01/data", "-m", "attack", "-u", "MS01", "-P", "ms01-secret",
                      "-i", client_id, "-V", "5")
        assert attack.returncode == 0, attack.stderr
        assert received.get(timeout=15) == b"attack"  # delivered to the daemon's session, on its connection
        # on the services' listener a sensor's login is refused outright
        services = _pub(broker, "-t", "airrohr/MS01/data", "-u", "MS01", "-P", "ms01-secret", "-i", client_id,
                        services=True)
        assert services.returncode != 0
        assert _pub(broker, "-t", "airrohr/MS01/data", "-m", "after", "-u", "MS01", "-P",
                    "ms01-secret").returncode == 0
        assert received.get(timeout=15) == b"after"
        assert disconnects == [], disconnects  # the daemon was never disconnected (no takeover, no session loss)
        assert "already connected" not in broker["log"].read_text()
    finally:
        daemon.loop_stop()
        daemon.disconnect()


def test_a_1mb_payload_is_refused_by_the_broker(broker: dict, tmp_path: Path) -> None:
    from sensors.mqtt.payloads._json import MAX_PAYLOAD_BYTES

    max_packet = next(int(line.split()[1]) for line in CONF.read_text().splitlines()
                      if line.startswith("max_packet_size "))
    assert max_packet == MAX_PAYLOAD_BYTES + 1024  # the decoders' limit, plus the header, topic and properties
    daemon, received, _ = _daemon_session(broker, "aqnet-ingest-big")
    try:
        big = tmp_path / "big"
        big.write_bytes(b"{" + b" " * (1 << 20) + b"}")
        # MQTT 3.1.1: the client cannot know the limit (MQTT 5 clients are told it in the CONNACK and refuse to send)
        refused = _pub(broker, "-t", "airrohr/MS01/data", "-f", str(big), "-u", "MS01", "-P", "ms01-secret")
        assert refused.returncode != 0, refused  # disconnected by the broker: never forwarded, never queued
        assert _pub(broker, "-t", "airrohr/MS01/data", "-m", "small", "-u", "MS01", "-P",
                    "ms01-secret").returncode == 0
        assert received.get(timeout=15) == b"small"  # the next message arrives; the 1 MB one never did
        assert received.empty()
    finally:
        daemon.loop_stop()
        daemon.disconnect()


def test_the_daemon_login_reads_sensors_through_a_shared_subscription(broker: dict) -> None:
    # `ingest.processes` > 1 subscribes `$share/<mqtt.share_group>/<filter>` (aqnet.daemon.processes): the ACL the
    # daemon's login has on the filter holds for its shared form too
    shared = _sub_one(broker, "$share/aqnet/airrohr/+/data")
    assert _pub(broker, "-t", "airrohr/MS01/data", "-u", "MS01", "-P", "ms01-secret").returncode == 0
    out, _ = shared.communicate(timeout=10)
    assert out.strip() == "x"
