"""Issue 15 acceptance: the production shape, run as shipped.

`deploy/aqnet.production.yaml` and `deploy/mosquitto/aqnet.conf` run with only their host names, ports and paths
rewritten (tests/e2e/production.py lists every key it may touch, with why; the test asserts nothing else differs):

- TimescaleDB with TLS (the test PKI's server certificate; the daemon connects with `sslmode=verify-full` against
  the test CA, as the shipped URL says) as a role that is not a superuser, made by `aqnet db init`; its password
  must come over TLS (SCRAM) and is read from `PGPASSFILE`; the schema is applied by `aqnet db migrate --config`
  (systemd's ExecStartPre);
- Mosquitto with the shipped configuration (TLS only, password file, ACL); the daemon's login provisioned by
  `aqnet broker daemon-user aqnet-daemon` with the password of the shipped `mqtt.url`; microsensors registered
  with `aqnet sensors add` (`network.bundled: false`: the registry is the network) and given credentials by
  `aqnet sensors credentials`;
- `python -m aqnet run --config <rewritten production yaml>`;
- readings from every kind of sensor: a Modbus reference station (simulators.station serving the bundled
  station KEN's analysers), aqnet JSON, airrohr and PurpleAir over MQTT (real payloads, tests/data/samples) and
  airrohr over HTTP (`POST /intake/airrohr`), each found in `measurements`;
- an NO2 episode: the station's NO2 readings of a past hour, 195 µg/m³ every minute (written before the daemon
  starts, as if it had polled them), raise the shipped rule `no2-1h-levels` (prevention >= 190, below the 200
  limit of `no2-1h-limit`) at the daemon's first averaging run, and the alert is delivered through every officers'
  channel of the file: e-mail (STARTTLS + AUTH, certificate checked through SSL_CERT_FILE), the HTTPS webhook,
  Alertmanager and the retained MQTT state topic.
No scheduler interval of the shipped file is shortened: the daemon averages at once when it takes the jobs' lock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import psycopg
import pytest
import yaml
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from alerts.delivery.signing import verify_signature
from aqnet.cli import cli
from aqnet.localstack import PostgresTls, TimescaleCluster, free_port
from sensors.mqtt.client import parse_mqtt_url
from sensors.network import StationLink, bundled_network
from simulators.signals import CitySignals
from simulators.station import StationServer
from storage.registry import spec_from_sensor
from storage.registry.network_file import dump_network
from tests.e2e.production import (
    MOSQUITTO_CONF,
    YAML_KEYS,
    conf_changes,
    rewrite_mosquitto_conf,
    rewrite_settings,
    runs_as_root,
    shipped_settings,
    url_changes,
    with_url,
    yaml_changes,
)
from tests.fixtures.alertmanager import alertmanager_factory  # noqa: F401  (fixture)
from tests.fixtures.receivers import SmtpReceiver, WebhookReceiver, smtp_receiver_factory  # noqa: F401

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
STATION = "KEN"
DB_PASSWORD = "db-secret-for-the-test"
SMTP_PASSWORD = "smtp-secret-for-the-test"
NO2_EPISODE = 195.0  #: µg/m³: >= 190 (no2-1h-levels prevention), <= 200 (no2-1h-limit is "> 200": not raised)
#: microsensor id → (payload format, transport, hardware serial) of the registered devices
MICROSENSORS = {
    "MS90": ("aqnet-json", "mqtt", None),
    "MS91": ("airrohr", "mqtt", "1234567"),  # luftdaten-server_README_dht22_post.json's esp8266id
    "MS92": ("purpleair", "mqtt", "00:00:00:00:00:02"),  # purpleair-local_pa2_outdoor_dual_laser.json's SensorId
    "MS93": ("airrohr", "http", "12331981"),  # airrohr-prometheus-exporter_README_post_body.json's esp8266id
}
VARIABLES = {"aqnet-json": "pm25 pm10", "airrohr": "pm10 pm25 temperature relativehumidity",
             "purpleair": "pm25 pm10 temperature relativehumidity pressure"}


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str, check: Callable[[], None] | None = None,
          every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check is not None:
            check()
        result = predicate()
        if result:
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _cli(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, f"aqnet {' '.join(args)}:\n{res.output}"
    return res.output


# ------------------------------------------------------------------------------------------------ services

class ShippedMosquitto:
    """Mosquitto with deploy/mosquitto/aqnet.conf, its paths and port rewritten (tests/e2e/production.py)."""

    def __init__(self, directory: Path, pki: Path, broker_dir: Path) -> None:
        self.port = free_port()  #: the sensors' listener (8883 in the shipped file)
        self.services_port = free_port()  #: aqnet's own processes' listener (8884)
        self.log = directory / "mosquitto.log"
        (directory / "data").mkdir()
        self.values: dict[str, dict[str, str] | str] = {
            "password_file": {"/etc/mosquitto/aqnet/passwd": str(broker_dir / "passwd"),
                              "/etc/mosquitto/aqnet/passwd-services": str(broker_dir / "passwd-services")},
            "acl_file": {"/etc/mosquitto/aqnet/acl": str(broker_dir / "acl")},
            "listener": {"8883": f"{self.port} 127.0.0.1", "8884": f"{self.services_port} 127.0.0.1"},
            "cafile": {"/etc/mosquitto/certs/ca.pem": str(pki / "ca.pem")},
            "certfile": {"/etc/mosquitto/certs/server.pem": str(pki / "server.pem")},
            "keyfile": {"/etc/mosquitto/certs/server.key": str(pki / "server.key")},
            "persistence_location": {"/var/lib/mosquitto/": f"{directory / 'data'}/"},
            "log_dest": {"syslog": f"file {self.log}"},
            **({"user": "root"} if runs_as_root() else {}),
        }
        self.shipped = MOSQUITTO_CONF.read_text(encoding="utf-8")
        self.text = rewrite_mosquitto_conf(self.shipped, self.values)
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(self.text)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        _wait(listening, 30, "mosquitto to listen")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class StationThread:
    """simulators.station serving the station's analysers on its own event loop, in a thread."""

    def __init__(self, sensor: Any) -> None:
        signals = CitySignals(7)
        self.server = StationServer(sensor, signals.value,
                                    lambda: datetime.now(UTC), port=sensor.devices[0].port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="station", daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


class StateTopics:
    """Every message under aqnet/alerts/# (retained ones included), read over TLS as the daemon's login."""

    def __init__(self, port: int, ca: Path, user: str, password: str) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="prod-test-state-topics",
                                   protocol=paho.MQTTv311)
        self._client.tls_set(ca_certs=str(ca))
        self._client.username_pw_set(user, password)
        self._client.on_connect = lambda c, *_: c.subscribe("aqnet/alerts/#", qos=1)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return  # the daemon's empty probe
        with self._lock:
            self.messages[msg.topic] = payload

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _login(port: int, ca: Path, user: str, password: str) -> paho.Client | None:
    """A connected client over TLS with these credentials, or None when the broker refuses the login."""
    answer: list[Any] = []
    accepted = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"prod-test-{user}", protocol=paho.MQTTv311)
    client.tls_set(ca_certs=str(ca))
    client.username_pw_set(user, password)
    client.on_connect = lambda c, u, f, rc, p: (answer.append(rc), accepted.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    if accepted.wait(30) and not answer[0].is_failure:
        return client
    client.disconnect()
    client.loop_stop()
    return None


def _publish(port: int, ca: Path, user: str, password: str, topic: str, payload: bytes) -> None:
    """One QoS 1 message over TLS with the sensor's credentials, acknowledged by the broker (the login is retried
    while the broker has not yet re-read its password file)."""
    client = _wait(lambda: _login(port, ca, user, password), 30, f"the broker to accept {user}'s login")
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(30)
        assert info.is_published(), f"{user}: {topic} not acknowledged"
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def cluster(tmp_path: Path, pki: Path) -> Iterator[TimescaleCluster]:
    """A cluster of its own with TLS, whose superuser is `postgres` (the session cluster's is `aqnet`, the daemon's
    role of the production file). The daemon's role `aqnet` must come over TLS with its password."""
    own = TimescaleCluster(tmp_path / "pgdata", free_port(), database="postgres", user="postgres", persistent=False,
                           tls=PostgresTls(pki / "server.pem", pki / "server.key", password_roles=("aqnet",)))
    own.start()
    try:
        yield own
    finally:
        own.discard()


# ------------------------------------------------------------------------------------------------ the test

def test_the_shipped_production_files_ingest_every_kind_of_sensor_and_deliver_an_alert(
        tmp_path: Path, pki: Path, cluster: TimescaleCluster, smtp_receiver_factory: Any,  # noqa: F811
        alertmanager_factory: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    shipped = shipped_settings()
    db_url = urlsplit(shipped["database"]["url"])
    db_role, database = db_url.username, db_url.path.lstrip("/")
    assert db_role and database, shipped["database"]["url"]
    mqtt_url = parse_mqtt_url(shipped["mqtt"]["url"])

    # -- the receivers of the alert channels
    smtp: SmtpReceiver = smtp_receiver_factory(starttls=True, auth=("aqnet", SMTP_PASSWORD))
    hook = WebhookReceiver(tls=pki)
    request.addfinalizer(hook.stop)  # every service is stopped after the test (finalizers run in reverse order)
    am_hook = WebhookReceiver()  # where Alertmanager sends its own notifications
    request.addfinalizer(am_hook.stop)
    am = alertmanager_factory(am_hook.url)

    # -- the production configuration, rewritten where the test machine differs
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    mosquitto = ShippedMosquitto(tmp_path, pki, broker_dir)
    request.addfinalizer(mosquitto.stop)
    (tmp_path / "smtp.password").write_text(SMTP_PASSWORD + "\n")
    http_port, intake_port, api_port = free_port(), free_port(), free_port()  # internal, intake, api
    ch = shipped["alerts"]["channels"]
    values = {
        ("database", "url"): with_url(shipped["database"]["url"], host="127.0.0.1", port=cluster.port,
                                      query_paths={"sslrootcert": str(pki / "ca.pem")}),
        ("mqtt", "url"): with_url(shipped["mqtt"]["url"], host="127.0.0.1", port=mosquitto.services_port),
        ("mqtt", "ca_file"): str(pki / "ca.pem"),
        ("storage", "spool_dir"): str(tmp_path / "spool"),
        ("http", "intake", "host"): "127.0.0.1",
        ("http", "intake", "port"): intake_port,
        ("http", "intake", "tls_cert_file"): str(pki / "server.pem"),
        ("http", "intake", "tls_key_file"): str(pki / "server.key"),
        ("http", "api", "host"): "127.0.0.1",
        ("http", "api", "port"): api_port,
        ("http", "api", "tls_cert_file"): str(pki / "server.pem"),
        ("http", "api", "tls_key_file"): str(pki / "server.key"),
        ("http", "internal", "port"): http_port,
        ("http", "public", "port"): free_port(),
        ("alerts", "signing_key_file"): str(tmp_path / "alert-signing.key"),
        ("alerts", "link_key_file"): str(tmp_path / "alert-link.key"),
        ("alerts", "channels", 0, "host"): smtp.host,
        ("alerts", "channels", 0, "port"): smtp.port,
        ("alerts", "channels", 0, "password_file"): str(tmp_path / "smtp.password"),
        ("alerts", "channels", 1, "url"): with_url(ch[1]["url"], host="127.0.0.1", port=hook.port),
        ("alerts", "channels", 2, "url"): with_url(ch[2]["url"], host="127.0.0.1", port=int(am.url.rsplit(":", 1)[1])),
        ("alerts", "channels", 4, "host"): smtp.host,
        ("alerts", "channels", 4, "port"): smtp.port,
        ("alerts", "channels", 4, "password_file"): str(tmp_path / "smtp.password"),
    }
    settings = rewrite_settings(shipped, values)
    config = tmp_path / "aqnet.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))

    # what runs is the shipped files: only the listed keys differ, and in a URL only its host, port and file path
    assert yaml_changes(shipped, yaml.safe_load(config.read_text())) <= set(YAML_KEYS)
    assert url_changes(shipped["database"]["url"], settings["database"]["url"]) <= {"hostname", "port",
                                                                                    "query:sslrootcert"}
    assert "sslmode=verify-full" in settings["database"]["url"]
    for key in (("mqtt", "url"), ("alerts", "channels", 1, "url"), ("alerts", "channels", 2, "url")):
        before, after = shipped, settings
        for part in key:
            before, after = before[part], after[part]  # type: ignore[index]
        assert url_changes(before, after) <= {"hostname", "port"}, key  # type: ignore[arg-type]
    assert conf_changes(mosquitto.shipped, mosquitto.text) <= set(mosquitto.values)
    assert settings["network"]["bundled"] is False and settings["scheduler"] == shipped["scheduler"]

    # -- 1. the database: `aqnet db init` as the administrator, then the schema as the daemon's role
    (tmp_path / "db.password").write_text(DB_PASSWORD + "\n")
    _cli("db", "init", "--admin-url", cluster.url_for("postgres"), "--role", db_role, "--database", database,
         "--password-file", str(tmp_path / "db.password"))
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{cluster.port}:{database}:{db_role}:{DB_PASSWORD}\n")
    pgpass.chmod(0o600)
    env = {**os.environ, "PGPASSFILE": str(pgpass), "SSL_CERT_FILE": str(pki / "ca.pem")}
    monkeypatch.setenv("PGPASSFILE", str(pgpass))  # the registry commands below, as a technician runs them
    migrate = subprocess.run([sys.executable, "-m", "aqnet", "db", "migrate", "--config", str(config)], env=env,
                             capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    admin = cluster.url_for(database)
    with psycopg.connect(admin) as conn:
        role = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
                            (db_role,)).fetchone()
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'measurements'").fetchone()
    assert role == (False, False, False) and owner == (db_role,)
    with pytest.raises(psycopg.OperationalError):  # the daemon's role needs TLS and its password
        psycopg.connect(f"postgresql://{db_role}@127.0.0.1:{cluster.port}/{database}?sslmode=disable",
                        connect_timeout=5, passfile=str(pgpass)).close()

    # -- 2. the registry is the network: a reference station and four microsensors
    station = next(s for s in bundled_network({STATION: StationLink(host="127.0.0.1", port=free_port())})
                   if s.id == STATION)
    (tmp_path / "station.yaml").write_text(dump_network([spec_from_sensor(station)], fmt="yaml"))
    _cli("sensors", "add", "--file", str(tmp_path / "station.yaml"), "--config", str(config), "--actor", "test")
    for sid, (fmt, transport, serial) in MICROSENSORS.items():
        device = ["--profile", fmt, "--protocol", transport, "--variables", VARIABLES[fmt]]
        if fmt == "aqnet-json":
            device += ["--topic", f"aqnet/{sid}/readings"]
        elif transport == "mqtt":
            device += ["--topic", f"{fmt}/+/data"]
        if serial is not None:
            device += ["--hardware-serial", serial]
        _cli("sensors", "add", sid, "--name", f"Microsensor {sid}", "--kind", "microsensor", "--lat", "4.63",
             "--lon", "-74.15", "--locality", "Kennedy", "--lifecycle", "active", *device, "--config", str(config),
             "--actor", "test")
    secrets: dict[str, str] = {}

    def credentials(sid: str) -> None:
        out = _cli("sensors", "credentials", sid, "--config", str(config), "--broker-dir", str(broker_dir),
                   "--no-reload", "--json", "--actor", "test")
        secrets[sid] = json.loads(out)["password"]

    for sid in ("MS90", "MS91"):  # before the broker starts; MS92 once it runs (below)
        credentials(sid)
    # the HTTP airrohr's own basic-auth credentials for the intake listener (stored hashed)
    out = _cli("sensors", "credentials", "MS93", "--http", "--config", str(config), "--json", "--actor", "test")
    http_secret = json.loads(out)["password"]

    # -- 3. the broker: the daemon's login with the password of the shipped mqtt.url, then Mosquitto
    (tmp_path / "mqtt.password").write_text(f"{mqtt_url.password}\n")
    _cli("broker", "daemon-user", mqtt_url.username, "--password-file", str(tmp_path / "mqtt.password"),
         "--broker-dir", str(broker_dir), "--no-reload")
    mosquitto.start()
    # a sensor commissioned while the broker runs: its login applies at the reload (SIGHUP, what `systemctl reload
    # mosquitto` sends; the shipped file writes no pid file for `aqnet sensors credentials` to find)
    credentials("MS92")
    assert mosquitto.proc is not None
    mosquitto.proc.send_signal(signal.SIGHUP)

    # -- 4. an NO2 episode in the last hour that ended, as the station's analyser measured it (a reading a minute).
    # The rule looks at the latest hourly average, which the daemon computes once the hour is `scheduler.settle_s`
    # (120 s) old: at once, or (in an hour's first two minutes) at a later tick of `averages_every_s`.
    no2 = next(d for d in station.devices if "no2" in d.variables)
    hour_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(admin) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, raw_value, raw_unit, "
            "device_id, received_at) VALUES (%s, %s, 'no2', %s, 'µg/m³', 0, %s, 'µg/m³', %s, %s)",
            [(hour_end - timedelta(minutes=60 - m), STATION, NO2_EPISODE, NO2_EPISODE, no2.id,
              hour_end - timedelta(minutes=60 - m, seconds=-2)) for m in range(60)])

    daemon_start = datetime.now(UTC).replace(microsecond=0)  # every live reading is timed from here on
    station_server = StationThread(station)
    station_server.start()
    request.addfinalizer(station_server.stop)
    state = StateTopics(mosquitto.services_port, pki / "ca.pem", mqtt_url.username, mqtt_url.password)  # type: ignore[arg-type]
    request.addfinalizer(state.close)
    log_path = tmp_path / "daemon.log"
    daemon: subprocess.Popen[bytes] | None = None
    try:
        # -- 5. the daemon, as systemd runs it
        with log_path.open("wb") as log:
            daemon = subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(config)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)

        def alive() -> None:
            assert daemon is not None
            if daemon.poll() is not None:
                raise AssertionError(f"the daemon exited with {daemon.returncode}:\n"
                                     f"{log_path.read_text(errors='replace')[-6000:]}\n"
                                     f"mosquitto:\n{mosquitto.log_tail()}")

        def connected() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return False
            return "aqnet_mqtt_connected 1.0" in text

        _wait(connected, 90, "the daemon to connect to the broker", alive)

        # -- 6. readings from every kind of microsensor
        now = datetime.now(UTC)
        _publish(mosquitto.port, pki / "ca.pem", "MS90", secrets["MS90"], "aqnet/MS90/readings",
                 json.dumps({"time": now.isoformat(), "values": {"pm25": 12.3, "pm10": 20.1}}).encode())
        airrohr = json.loads((SAMPLES / "airrohr" / "luftdaten-server_README_dht22_post.json").read_text())
        _publish(mosquitto.port, pki / "ca.pem", "MS91", secrets["MS91"], "airrohr/MS91/data",
                 json.dumps(airrohr).encode())
        purpleair = json.loads((SAMPLES / "purpleair" / "purpleair-local_pa2_outdoor_dual_laser.json").read_text())
        purpleair["DateTime"] = now.strftime("%Y/%m/%dT%H:%M:%Sz")  # a live device sends its current time
        _publish(mosquitto.port, pki / "ca.pem", "MS92", secrets["MS92"], "purpleair/MS92/data",
                 json.dumps(purpleair).encode())
        body = (SAMPLES / "airrohr" / "airrohr-prometheus-exporter_README_post_body.json").read_bytes()
        # over TLS to the intake listener, with the device's own credentials (the firmware's basic auth)
        basic = base64.b64encode(f"MS93:{http_secret}".encode()).decode()
        request = urllib.request.Request(f"https://127.0.0.1:{intake_port}/intake/airrohr", data=body,
                                         method="POST", headers={"X-Sensor": "esp8266-12331981",
                                                                 "Content-Type": "application/json",
                                                                 "Authorization": f"Basic {basic}"})
        tls = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with urllib.request.urlopen(request, timeout=60, context=tls) as response:
            assert response.status == 200, response.read()

        def stored() -> dict[tuple[str, str], float]:
            """(sensor, variable) → raw value of the live readings (the NO2 episode written above is older)."""
            with psycopg.connect(admin) as conn:
                rows = conn.execute("SELECT sensor_id, variable, raw_value FROM measurements WHERE time >= %s",
                                    (daemon_start,)).fetchall()
            return {(sid, var): raw for sid, var, raw in rows}

        expected = [(STATION, "no2"), (STATION, "pm25"), (STATION, "o3"), ("MS90", "pm25"), ("MS90", "pm10"),
                    ("MS91", "pm25"), ("MS91", "pm10"), ("MS92", "pm25"), ("MS92", "pm10"), ("MS93", "pm25"),
                    ("MS93", "pm10")]
        readings = _wait(lambda: (r := stored()) and all(k in r for k in expected) and r, 120,
                         f"readings of every kind of sensor: {expected}", alive, every_s=1)
        # the payloads as decoded (airrohr: SDS_P1 is PM10, SDS_P2 is PM2.5; values as reported)
        assert readings[("MS90", "pm25")] == 12.3
        assert (readings[("MS91", "pm10")], readings[("MS91", "pm25")]) == (4.05, 2.25)
        assert (readings[("MS93", "pm10")], readings[("MS93", "pm25")]) == (0.40, 0.20)
        with psycopg.connect(admin) as conn:  # the daemon's sessions: its own role, over TLS
            sessions = conn.execute("SELECT a.usename, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s "
                                    "ON s.pid = a.pid WHERE a.usename = %s", (db_role,)).fetchall()
        assert sessions and all(tls for _, tls in sessions), sessions

        # -- 7. the alert, delivered through every officers' channel of the file
        with psycopg.connect(admin, autocommit=True) as conn:
            try:
                alert = _wait(lambda: conn.execute(
                    "SELECT id, sensor_id, level FROM alerts WHERE rule = 'no2-1h-levels'").fetchone(), 240,
                    "the no2-1h-levels alert", alive)
            except AssertionError as exc:
                averages = conn.execute("SELECT * FROM averages WHERE variable = 'no2'").fetchall()
                suppressed = conn.execute("SELECT * FROM alert_suppressions").fetchall()
                raise AssertionError(f"{exc}\naverages: {averages}\nsuppressions: {suppressed}") from None
        alert_id, scope, level = alert
        assert scope == STATION and level == "prevention"

        def mail() -> bool:
            return any("calidad-aire@example.org" in r.rcpt_tos for r in smtp.received)

        _wait(mail, 60, "the officers' e-mail", alive)
        officers = [r for r in smtp.received if "calidad-aire@example.org" in r.rcpt_tos]
        assert all(r.tls and r.auth_user == "aqnet" for r in officers)
        assert any(STATION in (r.message.get_body(("plain",)).get_content()) for r in officers)  # type: ignore[union-attr]
        hooks = _wait(lambda: [r for r in hook.requests if r.json().get("alert_id") == alert_id], 60,
                      "the webhook", alive)
        assert hooks[0].path == "/hooks/air-quality"
        key = (tmp_path / "alert-signing.key").read_bytes()
        assert verify_signature(key, hooks[0].body, hooks[0].headers["x-aqnet-signature"])
        assert hooks[0].json()["level"] == "prevention" and hooks[0].json()["value"] == NO2_EPISODE
        _wait(lambda: [a for a in am.alerts() if a["labels"].get("alertname") == "no2-1h-levels"], 60,
              "the alert at Alertmanager", alive)
        topic = _wait(lambda: state.snapshot().get(f"aqnet/alerts/{alert_id}"), 60, "the MQTT state topic", alive)
        assert topic.get("level") == "prevention"
        assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").glob("*.seg"))
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    assert daemon.returncode == 0, log_path.read_text(errors="replace")[-4000:]
    print(f"production acceptance: {time.monotonic() - started:.1f} s")
